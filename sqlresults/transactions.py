"""Transactions: stage a result, then commit it (write it) or roll it back, Prefect's way.

A transaction on a key decides whether a result must be computed::

    with transaction(key="expensive-step", store=store,
                     isolation_level=IsolationLevel.SERIALIZABLE) as txn:
        if txn.is_committed():        # computed already (a miss is checked again under the lock)
            value = txn.read().result
        else:
            value = compute()         # one process or thread per key at a time
            txn.stage(value)
    # commit writes the record and releases the lock in ONE database transaction

In async code, ``async with atransaction(...) as txn`` (an :class:`AsyncTransaction`) does the
same without ever blocking the event loop: lock waits, reads and writes run off the loop, async
hooks are awaited and sync hooks run in a worker thread.

Semantics follow Prefect 3 (reference §4; states, nesting, hooks, commit modes, ``get``/``set``),
with these fixes:

- each transaction is its own lock holder (128 random bits), never a thread, so asyncio tasks
  and threads cannot share a lock by accident (PrefectHQ/prefect#17785, #18600);
- a SERIALIZABLE transaction renews its lease while it is open (every third of the lease, from
  one thread per process), so a long computation keeps its lock and a crashed process loses it
  within one lease;
- a key already written is a cache hit without taking the lock (the check is repeated under the
  lock for a miss), so hits cost no write;
- commit writes the staged record and releases the lock in one database transaction; a lock is
  released at most once, so an EAGER child can no longer roll back its parent by releasing twice;
- a commit whose lease was lost (its lock taken by another holder or swept) writes nothing and
  raises :class:`~sqlresults.errors.LeaseLostError` after rolling back;
- a nested transaction that would wait for a lock its own ancestor holds raises
  :class:`~sqlresults.errors.SelfDeadlockError` instead of hanging, and a sync transaction whose
  lock wait would block a running event loop raises
  :class:`~sqlresults.errors.EventLoopBlockingError` instead of hanging it;
- transactions compare by identity.

How one body serves both. Begin, commit, rollback and reset are written once, as plans
(:mod:`sqlresults.effects`) that yield an effect wherever they touch the database, a hook or
another transaction: :class:`Transaction` carries the effects out synchronously,
:class:`AsyncTransaction` awaits them.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import inspect
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar

from sqlresults.effects import (
    Effect,
    Plan,
    arun_plan,
    asettle,
    in_event_loop,
    run_coroutine,
    run_plan,
    settle,
)
from sqlresults.errors import (
    ConfigurationError,
    EventLoopBlockingError,
    LeaseLostError,
    LockError,
    LockTimeoutError,
    SelfDeadlockError,
    SerializationError,
)
from sqlresults.leases import Lease
from sqlresults.locking import IsolationLevel
from sqlresults.records import ResultRecord
from sqlresults.results import ResultStore, get_result_store
from sqlresults.settings import get_settings
from sqlresults.validation import check_lease, check_timeout

__all__ = [
    "AsyncTransaction",
    "BaseTransaction",
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionState",
    "atransaction",
    "get_transaction",
    "transaction",
]

_NOT_SET: Any = object()
_default_logger = logging.getLogger("sqlresults.transactions")


class CommitMode(enum.Enum):
    """When a transaction commits.

    ``EAGER``: at its own exit. ``LAZY`` (default): a nested transaction commits when its outermost
    ancestor does. ``OFF``: never on its own; it rolls back at exit unless committed explicitly.
    """

    EAGER = "EAGER"
    LAZY = "LAZY"
    OFF = "OFF"


class TransactionState(enum.Enum):
    """Where a transaction is in its life."""

    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    STAGED = "STAGED"
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"


Hook = Callable[["BaseTransaction"], Any]

_UNFINISHED = (TransactionState.ACTIVE, TransactionState.STAGED)
_FINISHED = (TransactionState.COMMITTED, TransactionState.ROLLED_BACK)

_current: ContextVar[BaseTransaction | None] = ContextVar("sqlresults_transaction", default=None)


def get_transaction() -> BaseTransaction | None:
    """Return the innermost open transaction of this context (sync or async), or None."""
    return _current.get()


class BaseTransaction:
    """What sync and async transactions share: state, nesting, values, hooks and the plans
    their begin, commit, rollback and reset carry out.

    Args:
        key: The result key; without one (or without a store) nothing is read, locked or written.
        store: The :class:`~sqlresults.results.ResultStore` holding the key.
        commit_mode: When to commit; None inherits the parent's, else LAZY.
        isolation_level: READ_COMMITTED (default for a directly built transaction) or
            SERIALIZABLE (hold the key's lock from begin to commit); None inherits the parent's.
        overwrite: Recompute and rewrite even if a record exists.
        write_on_commit: Write the staged value at commit (False only runs the hooks).
        logger: Where commit and rollback problems are logged.
        lock_timeout: Seconds a SERIALIZABLE transaction waits for the key's lock at begin;
            None (default) waits as long as it takes, like Prefect.
        hold_timeout: The lock's lease in seconds (default ``SQLRESULTS_LOCK_HOLD_TIMEOUT``);
            renewed every third of it while the transaction is open.
        state: The state to start in (Prefect's field; its tests build transactions in every
            state). Entering makes any state ACTIVE, as in Prefect.

    Raises:
        InvalidArgumentError: A negative ``lock_timeout``, or a ``hold_timeout`` that is not
            more than zero seconds.
        ValueError: ``state`` is not a :class:`TransactionState` or the name of one.
    """

    def __init__(
        self,
        key: str | None = None,
        store: ResultStore | None = None,
        commit_mode: CommitMode | None = None,
        isolation_level: IsolationLevel | None = IsolationLevel.READ_COMMITTED,
        overwrite: bool = False,
        write_on_commit: bool = True,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        *,
        lock_timeout: float | None = None,
        hold_timeout: float | None = None,
        state: TransactionState = TransactionState.PENDING,
    ) -> None:
        self.key = key
        self.store = store
        self.commit_mode = commit_mode
        self.isolation_level = isolation_level
        self.overwrite = overwrite
        self.write_on_commit = write_on_commit
        self.logger = logger if logger is not None else _default_logger
        self.lock_timeout = check_timeout(lock_timeout, "lock_timeout")
        self.hold_timeout = check_lease(hold_timeout)
        # A member is taken as is (the common case; the enum lookup costs 0.15 µs).
        self.state = state if type(state) is TransactionState else TransactionState(state)
        self.children: list[BaseTransaction] = []
        self.on_commit_hooks: list[Hook] = []
        self.on_rollback_hooks: list[Hook] = []
        self._stored_values: dict[str, Any] = {}
        self._staged_value: Any = None
        # 128 random bits, as in a uuid4 without its formatting (5 µs per transaction). Unique,
        # not secret: the random module is reseeded in forked children.
        self._holder = f"{random.getrandbits(128):032x}"
        self._token: Token[BaseTransaction | None] | None = None
        self._parent: BaseTransaction | None = None
        self._lease: Lease | None = None

    def __repr__(self) -> str:
        level = self.isolation_level.name if self.isolation_level else None
        return (
            f"{type(self).__name__}(key={self.key!r}, state={self.state.name}, "
            f"isolation_level={level})"
        )

    # -- state -----------------------------------------------------------------------------

    def is_committed(self) -> bool:
        """Whether the transaction committed (or found the key already written at begin)."""
        return self.state is TransactionState.COMMITTED

    def is_rolled_back(self) -> bool:
        """Whether the transaction rolled back."""
        return self.state is TransactionState.ROLLED_BACK

    def is_staged(self) -> bool:
        """Whether a value is staged and waiting for commit."""
        return self.state is TransactionState.STAGED

    def is_pending(self) -> bool:
        """Whether the transaction has not begun."""
        return self.state is TransactionState.PENDING

    def is_active(self) -> bool:
        """Whether the transaction has begun and nothing is staged yet."""
        return self.state is TransactionState.ACTIVE

    @property
    def holder(self) -> str:
        """This transaction's lock holder id (unique per transaction)."""
        return self._holder

    # -- values shared with nested transactions --------------------------------------------

    def set(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name`` for this transaction and its children."""
        self._stored_values[name] = value

    def get(self, name: str, default: Any = _NOT_SET) -> Any:
        """Return a copy of the value stored under ``name`` here or in an ancestor.

        Raises:
            ValueError: Nobody stored ``name`` and no default was given.
        """
        if name in self._stored_values:
            return copy.deepcopy(self._stored_values[name])
        parent = self.get_parent()
        if parent is not None:
            return parent.get(name, default)
        if default is not _NOT_SET:
            return default
        raise ValueError(f"Could not retrieve value for unknown key: {name}")

    @classmethod
    def get_active(cls) -> BaseTransaction | None:
        """The innermost open transaction of this context, sync or async, whichever class
        asks: :func:`get_transaction` under Prefect's other name for it."""
        return get_transaction()

    def get_parent(self) -> BaseTransaction | None:
        """The enclosing transaction (while open), else the current one of this context."""
        if self._token is not None:
            return self._parent
        return get_transaction()

    def add_child(self, child: BaseTransaction) -> None:
        """Adopt ``child``: it commits and rolls back with this transaction."""
        self.children.append(child)

    def stage(
        self,
        value: Any,
        on_rollback_hooks: list[Hook] | None = None,
        on_commit_hooks: list[Hook] | None = None,
    ) -> None:
        """Stage ``value`` (and hooks) for commit; ignored if the transaction is committed
        already (the key was found written at begin)."""
        if self.state is TransactionState.COMMITTED:
            return
        self._staged_value = value
        self.on_rollback_hooks.extend(on_rollback_hooks or [])
        self.on_commit_hooks.extend(on_commit_hooks or [])
        self.state = TransactionState.STAGED

    # -- entering --------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Settle the inherited modes and check the configuration, before begin."""
        if self._token is not None:
            raise RuntimeError("Context already entered. Context enter calls cannot be nested.")
        parent = get_transaction()
        if self.commit_mode is None:
            self.commit_mode = parent.commit_mode if parent is not None else CommitMode.LAZY
        level = self.isolation_level
        if level is None:
            inherited = parent.isolation_level if parent is not None else None
            level = self.isolation_level = inherited or IsolationLevel.READ_COMMITTED
        if (
            self.store is not None
            and self.key is not None
            and not self.store.supports_isolation_level(level)
        ):
            raise ConfigurationError(
                f"Isolation level {level.name} is not supported by provided "
                "configuration. Please ensure you've provided a lock file directory or lock "
                "manager when using the SERIALIZABLE isolation level."
            )
        self._parent = parent
        self.state = TransactionState.ACTIVE

    def _entered(self) -> None:
        self._token = _current.set(self)

    def _check_entered(self) -> None:
        if self._token is None:
            raise RuntimeError("Transaction exited without being entered.")

    # -- plans -----------------------------------------------------------------------------
    #
    # Each plan is the straight-line logic of one step of a transaction's life; it yields an
    # effect wherever it needs the database, a hook or another transaction (see the module
    # docstring), and gets the effect's outcome (or its exception) back.

    def _begin_plan(self) -> Plan[None]:
        """See whether the key is already written; if not, take its lock under SERIALIZABLE and
        look again.

        The second check comes after the lock, so of several transactions racing on a key, the
        first computes and the others find its record. A key found written at once needs no
        lock: the transaction is committed from the start and will write nothing.
        """
        store, key = self.store, self.key
        if store is None or key is None:
            return
        serializable = self.isolation_level is IsolationLevel.SERIALIZABLE
        if serializable:
            self._refuse_self_deadlock(store, key)
        if not self.overwrite and (yield _Exists(store, key)):
            # Written already: nothing will be computed or written, so no lock is needed.
            self.state = TransactionState.COMMITTED
            return
        if not serializable:
            return
        seconds = self._lease_seconds(store)
        if not (yield _AcquireLock(self, store, key, seconds)):
            raise LockTimeoutError(
                f"Could not acquire the lock on key {key!r} within {self.lock_timeout:g} s: "
                "another transaction holds it."
            )
        self._lease = Lease(store, key, self._holder, seconds, self.logger)
        if not self.overwrite and (yield _Exists(store, key)):
            self.state = TransactionState.COMMITTED

    def _commit_plan(self) -> Plan[bool]:
        """Commit children, run the commit hooks, then write the staged value (releasing the
        lock in the same database transaction under SERIALIZABLE)."""
        if self.state in _FINISHED:
            yield _ReleaseLock(self)
            return False
        try:
            for child in self.children:
                yield _Commit(child)
            for hook in self.on_commit_hooks:
                yield _RunHook(self, hook, "commit")
            if self.store is not None and self.key is not None and self.write_on_commit:
                yield _WriteStagedValue(self, self.store, self.key)
            self.state = TransactionState.COMMITTED
            yield _ReleaseLock(self)
            return True
        except LeaseLostError:
            yield from self._rollback_plan()
            raise
        except SerializationError as exc:
            self.logger.warning(
                "Encountered an error while serializing result for transaction %r: %s. Code "
                "execution will continue, but the transaction will not be committed.",
                self.key,
                exc,
            )
            yield from self._rollback_plan()
            return False
        except Exception:
            self.logger.exception(
                "An error was encountered while committing transaction %r", self.key
            )
            yield from self._rollback_plan()
            return False

    def _rollback_plan(self) -> Plan[bool]:
        """Run the rollback hooks (newest first) and roll back the children; release the
        lock whatever happens."""
        if self.state in _FINISHED:
            return False
        try:
            for hook in reversed(self.on_rollback_hooks):
                yield _RunHook(self, hook, "rollback")
            self.state = TransactionState.ROLLED_BACK
            for child in reversed(self.children):
                yield _RollBack(child)
            return True
        except Exception:
            self.logger.exception(
                "An error was encountered while rolling back transaction %r", self.key
            )
            return False
        finally:
            yield _ReleaseLock(self)

    def _reset_plan(self) -> Plan[None]:
        """Leave the context: hand this transaction to its parent and restore the parent as
        current; a rolled-back transaction rolls its parent back."""
        parent = self._parent
        if parent is not None:
            parent.add_child(self)
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if parent is None:
            return
        if self.state is TransactionState.ROLLED_BACK:
            yield _RollBack(parent)
        elif parent.state is TransactionState.ROLLED_BACK:
            # Opened after its parent rolled back: nobody will roll it back later, and under
            # SERIALIZABLE its lease would be renewed for as long as the process lives.
            yield from self._rollback_plan()
        elif parent.state is TransactionState.COMMITTED and self.state in _UNFINISHED:
            # Opened after its parent committed (or under a parent that found its key written):
            # the parent's commit is over, so this one commits now or never.
            yield from self._commit_plan()

    def _exit_plan(self, exc: BaseException | None) -> Plan[None]:
        try:
            if exc is not None:
                yield from self._rollback_plan()
                return
            if self.commit_mode is CommitMode.EAGER:
                yield from self._commit_plan()
            if self._parent is not None:
                return  # the parent commits or rolls back this one
            if self.commit_mode is CommitMode.OFF:
                yield from self._rollback_plan()
            elif self.commit_mode is CommitMode.LAZY:
                yield from self._commit_plan()
        finally:
            # Also when a commit raises (LeaseLostError): the context must be restored.
            yield from self._reset_plan()

    # -- helpers of the plans --------------------------------------------------------------

    def _lease_seconds(self, store: ResultStore) -> float:
        lease = self.hold_timeout
        if lease is None:
            lease = getattr(store.lock_manager, "default_hold_timeout", None)
        if lease is None:
            lease = get_settings().lock_hold_timeout
        return float(lease)

    def _refuse_self_deadlock(self, store: ResultStore, key: str) -> None:
        """Raise if this transaction's own family holds the key's lock: an ancestor, or a LAZY
        child an ancestor adopted (it keeps its lock until the outermost commit), would never
        release it while this transaction waits (PrefectHQ/prefect#18600)."""
        ancestor = get_transaction()
        while ancestor is not None:
            for relative in ancestor._with_descendants():
                lease = relative._lease
                if lease is not None and lease.covers(store, key):
                    raise SelfDeadlockError(
                        f"{self!r} would wait forever for the lock on key {key!r}, which "
                        f"{relative!r} in its own transaction tree holds until the outermost "
                        "transaction commits. Use another key for the nested transaction, or "
                        "READ_COMMITTED."
                    )
            ancestor = ancestor.get_parent()

    def _with_descendants(self) -> Iterator[BaseTransaction]:
        yield self
        for child in self.children:
            yield from child._with_descendants()

    def _write_staged_value(self, store: ResultStore, key: str) -> None:
        record, lease = self._staged_record(store, key)
        try:
            store.persist_result_record(record, holder=self._holder, release_lock=lease is not None)
        except BaseException as exc:
            self._after_failed_write(lease, exc)
            raise

    async def _awrite_staged_value(self, store: ResultStore, key: str) -> None:
        """Async form of :meth:`_write_staged_value` (awaited on PostgreSQL)."""
        record, lease = self._staged_record(store, key)
        try:
            await store.apersist_result_record(
                record, holder=self._holder, release_lock=lease is not None
            )
        except BaseException as exc:
            self._after_failed_write(lease, exc)
            raise

    def _staged_record(self, store: ResultStore, key: str) -> tuple[ResultRecord[Any], Any]:
        """The record to write, and the lease it is written under (its renewals stopped)."""
        staged = self._staged_value
        record = (
            staged
            if isinstance(staged, ResultRecord)
            else store.create_result_record(staged, key=key)
        )
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.stop()
        return record, lease

    def _after_failed_write(self, lease: Any, exc: BaseException) -> None:
        if isinstance(exc, LeaseLostError):
            return  # nothing was written, and the lock is not ours to keep or release
        # Nothing was written and the lock is still ours: keep it until rollback releases it.
        if lease is not None:
            self._lease = lease.restart()

    def _release_lock(self) -> None:
        """Release the lock if this transaction still holds it; never twice."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        lease.stop()
        try:
            lease.store.release_lock(lease.key, holder=self._holder)
        except LockError as exc:
            self._lost_before_release(lease.key, exc)

    async def _arelease_lock(self) -> None:
        """Async form of :meth:`_release_lock` (awaited on PostgreSQL)."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        lease.stop()
        try:
            await lease.store._arelease_lock(lease.key, holder=self._holder)
        except LockError as exc:
            self._lost_before_release(lease.key, exc)

    def _lost_before_release(self, key: str, exc: LockError) -> None:
        # Our lease ran out and another holder took the key: theirs now; leave it be.
        self.logger.warning("Lock on key %r was lost before release: %s", key, exc)

    def _log_hook(self, hook: Hook, kind: str, done: bool) -> None:
        if not getattr(hook, "log_on_run", True):
            return
        name = getattr(hook, "__name__", repr(hook))
        if done:
            self.logger.info("%s hook %r finished running successfully", kind.capitalize(), name)
        else:
            self.logger.info("Running %s hook %r", kind, name)


class Transaction(BaseTransaction):
    """A unit of work on one result key. Use it as a context manager (or via
    :func:`transaction`); arguments as for :class:`BaseTransaction`.

    In a thread that runs an event loop, a lock wait would block the loop (and every coroutine
    that could release the lock): such a transaction raises
    :class:`~sqlresults.errors.EventLoopBlockingError` instead of waiting. Use
    :class:`AsyncTransaction` there.
    """

    def __enter__(self) -> Self:
        self._prepare()
        self.begin()
        self._entered()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._check_entered()
        run_plan(self._exit_plan(exc))

    def begin(self) -> None:
        """See whether the key is already written; if not, take its lock under SERIALIZABLE
        and look again (see :meth:`BaseTransaction._begin_plan`).

        Raises:
            SelfDeadlockError: An ancestor of this transaction holds the lock on the same key.
            LockTimeoutError: ``lock_timeout`` ran out before the lock was free.
            EventLoopBlockingError: The lock is held and waiting for it would block the event
                loop running in this thread.
        """
        run_plan(self._begin_plan())

    def read(self) -> ResultRecord[Any] | None:
        """Read the key's record as this transaction's holder (never waiting on its own lock).

        Returns:
            The record, or None when the transaction has no store or key.

        Raises:
            RecordNotFoundError: The key has no record (yet).
            EventLoopBlockingError: Another holder has the key locked and waiting would block
                the event loop running in this thread.
        """
        if self.store is None or self.key is None:
            return None
        if not in_event_loop():
            return self.store.read(self.key, holder=self._holder)
        try:
            return self.store.read(self.key, holder=self._holder, lock_timeout=0)
        except LockTimeoutError as exc:
            raise _blocking_error(self, self.key, "read its record") from exc

    def commit(self) -> bool:
        """Commit children, run the commit hooks, then write the staged value (releasing the
        lock in the same database transaction under SERIALIZABLE).

        Committing without staging writes None, as Prefect does. A failure (a child's, a hook's,
        or the write's) is logged and rolls the transaction back.

        Returns:
            True if this call committed; False if it was committed or rolled back before, or
            the commit failed.

        Raises:
            LeaseLostError: This transaction's (or a child's) lease ran out and its lock was
                taken or swept before the commit: nothing is written, the transaction rolls
                back (its rollback hooks run), and the error propagates — unlike other commit
                failures, which Prefect only logs — because the caller's result was not kept
                and the record under the key is someone else's newer work.
        """
        return run_plan(self._commit_plan())

    def rollback(self) -> bool:
        """Run the rollback hooks (newest first) and roll back the children.

        A committed transaction never rolls back.

        Returns:
            True if this call rolled back; False if it was committed or rolled back before, or
            a hook failed.
        """
        return run_plan(self._rollback_plan())

    def reset(self) -> None:
        """Leave the context: hand this transaction to its parent and restore the parent as
        current; a rolled-back transaction rolls its parent back."""
        run_plan(self._reset_plan())


class AsyncTransaction(BaseTransaction):
    """A transaction for async code: ``async with``, or :func:`atransaction`; arguments as
    for :class:`BaseTransaction`.

    Prefect's ``AsyncTransaction``, whose lock waits never block the event loop: the lock is
    awaited (polling off the loop), reads and writes run in worker threads, async hooks are
    awaited and sync hooks run in a worker thread. Children may be sync or async transactions.
    """

    async def __aenter__(self) -> Self:
        self._prepare()
        await self.begin()
        self._entered()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._check_entered()
        await arun_plan(self._exit_plan(exc))

    def __enter__(self) -> NoReturn:
        raise NotImplementedError(
            "AsyncTransaction does not support the `with` statement. Use the `async with` "
            "statement instead."
        )

    def __exit__(self, *exc_info: object) -> NoReturn:
        raise NotImplementedError(
            "AsyncTransaction does not support the `with` statement. Use the `async with` "
            "statement instead."
        )

    async def begin(self) -> None:
        """Async form of :meth:`Transaction.begin`: waits for the lock without blocking the
        event loop."""
        await arun_plan(self._begin_plan())

    async def read(self) -> ResultRecord[Any] | None:
        """Async form of :meth:`Transaction.read`."""
        if self.store is None or self.key is None:
            return None
        return await self.store.aread(self.key, holder=self._holder)

    async def commit(self) -> bool:
        """Async form of :meth:`Transaction.commit`."""
        return await arun_plan(self._commit_plan())

    async def rollback(self) -> bool:
        """Async form of :meth:`Transaction.rollback`."""
        return await arun_plan(self._rollback_plan())

    async def reset(self) -> None:
        """Async form of :meth:`Transaction.reset`."""
        await arun_plan(self._reset_plan())


# -- effects: what the plans need done, sync or async (sqlresults.effects) ------------------


class _Exists(Effect):
    def __init__(self, store: ResultStore, key: str) -> None:
        self.store, self.key = store, key

    def run(self) -> bool:
        return self.store.exists(self.key)

    async def arun(self) -> bool:
        return await self.store.aexists(self.key)


class _AcquireLock(Effect):
    def __init__(
        self, txn: BaseTransaction, store: ResultStore, key: str, hold_timeout: float
    ) -> None:
        self.txn, self.store, self.key, self.hold_timeout = txn, store, key, hold_timeout

    def run(self) -> bool:
        txn, store, key = self.txn, self.store, self.key
        if not in_event_loop():
            return store.acquire_lock(
                key, txn.holder, timeout=txn.lock_timeout, hold_timeout=self.hold_timeout
            )
        # Waiting here would block the loop, and with it any coroutine that would release the
        # lock: try once, and refuse to wait.
        if store.acquire_lock(key, txn.holder, timeout=0, hold_timeout=self.hold_timeout):
            return True
        if txn.lock_timeout == 0:
            return False
        raise _blocking_error(txn, key, "take its lock")

    async def arun(self) -> bool:
        txn = self.txn
        return await self.store.aacquire_lock(
            self.key, txn.holder, timeout=txn.lock_timeout, hold_timeout=self.hold_timeout
        )


class _WriteStagedValue(Effect):
    def __init__(self, txn: BaseTransaction, store: ResultStore, key: str) -> None:
        self.txn, self.store, self.key = txn, store, key

    def run(self) -> None:
        self.txn._write_staged_value(self.store, self.key)

    async def arun(self) -> None:
        # Awaited on PostgreSQL; in a worker thread on SQLite (see ResultStore.apersist_...).
        await self.txn._awrite_staged_value(self.store, self.key)


class _ReleaseLock(Effect):
    def __init__(self, txn: BaseTransaction) -> None:
        self.txn = txn

    def run(self) -> None:
        self.txn._release_lock()

    async def arun(self) -> None:
        await self.txn._arelease_lock()


class _RunHook(Effect):
    """A commit or rollback hook: ``hook(txn)``; a failure propagates into the plan."""

    def __init__(self, txn: BaseTransaction, hook: Hook, kind: str) -> None:
        self.txn, self.hook, self.kind = txn, hook, kind

    def run(self) -> None:
        self.txn._log_hook(self.hook, self.kind, done=False)
        outcome = self.hook(self.txn)
        if inspect.isawaitable(outcome):
            run_coroutine(outcome)
        self.txn._log_hook(self.hook, self.kind, done=True)

    async def arun(self) -> None:
        self.txn._log_hook(self.hook, self.kind, done=False)
        if inspect.iscoroutinefunction(self.hook):
            await self.hook(self.txn)
        else:
            # A sync hook may block (it is user code): keep it off the loop, as Prefect does.
            outcome = await asyncio.to_thread(self.hook, self.txn)
            if inspect.isawaitable(outcome):
                await outcome
        self.txn._log_hook(self.hook, self.kind, done=True)


class _Settle(Effect):
    """Commit or roll back another transaction (a child, or the parent) of either kind."""

    def __init__(self, txn: BaseTransaction, method: str) -> None:
        self.txn, self.method = txn, method

    def run(self) -> Any:
        return settle(getattr(self.txn, self.method)())

    async def arun(self) -> Any:
        return await asettle(getattr(self.txn, self.method)())


def _Commit(txn: BaseTransaction) -> _Settle:  # noqa: N802 - reads as the effect it makes
    return _Settle(txn, "commit")


def _RollBack(txn: BaseTransaction) -> _Settle:  # noqa: N802 - reads as the effect it makes
    return _Settle(txn, "rollback")


def _blocking_error(txn: BaseTransaction, key: str, what: str) -> EventLoopBlockingError:
    return EventLoopBlockingError(
        f"{txn!r} would block the running event loop waiting to {what}: another holder has "
        f"key {key!r} locked, and while this thread waits no coroutine of its loop (the holder "
        "may be one) can run. In async code use `async with atransaction(...)`."
    )


@contextmanager
def transaction(
    key: str | None = None,
    store: ResultStore | None = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    *,
    lock_timeout: float | None = None,
    hold_timeout: float | None = None,
) -> Iterator[Transaction]:
    """Open a :class:`Transaction` for the block.

    With a key and no store, the current run's store (or a default
    :class:`~sqlresults.results.ResultStore`) is used. ``commit_mode`` and ``isolation_level``
    default to the enclosing transaction's, else LAZY and READ_COMMITTED.

    Yields:
        The open transaction.
    """
    with _new_transaction(
        Transaction,
        key,
        store,
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=logger,
        lock_timeout=lock_timeout,
        hold_timeout=hold_timeout,
    ) as txn:
        yield txn


@asynccontextmanager
async def atransaction(
    key: str | None = None,
    store: ResultStore | None = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    *,
    lock_timeout: float | None = None,
    hold_timeout: float | None = None,
) -> AsyncIterator[AsyncTransaction]:
    """Open an :class:`AsyncTransaction` for the ``async with`` block (Prefect's
    ``atransaction``); arguments as for :func:`transaction`. Lock waits never block the event
    loop.

    Yields:
        The open transaction.
    """
    async with _new_transaction(
        AsyncTransaction,
        key,
        store,
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=logger,
        lock_timeout=lock_timeout,
        hold_timeout=hold_timeout,
    ) as txn:
        yield txn


Txn = TypeVar("Txn", bound=BaseTransaction)


def _new_transaction(
    kind: type[Txn], key: str | None, store: ResultStore | None, **options: Any
) -> Txn:
    """A transaction of ``kind`` for :func:`transaction` and :func:`atransaction`: with a key
    and no store, on the current run's store (or a default one)."""
    if key is not None and store is None:
        store = get_result_store()
    return kind(key=key, store=store, **options)
