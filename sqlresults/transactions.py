"""Transactions: stage a result, then commit it (write it) or roll it back, Prefect's way.

A transaction on a key decides whether a result must be computed::

    with transaction(key="expensive-step", store=store,
                     isolation_level=IsolationLevel.SERIALIZABLE) as txn:
        if txn.is_committed():        # someone already computed it (checked after the lock)
            value = txn.read().result
        else:
            value = compute()         # one process or thread per key at a time
            txn.stage(value)
    # commit writes the record and releases the lock in ONE database transaction

Semantics follow Prefect 3 (reference §4; states, nesting, hooks, commit modes, ``get``/``set``),
with these fixes:

- each transaction is its own lock holder (a uuid), never a thread, so asyncio tasks and threads
  cannot share a lock by accident (PrefectHQ/prefect#17785, #18600);
- a SERIALIZABLE transaction renews its lease while it is open (every third of the lease, from
  one thread per process), so a long computation keeps its lock and a crashed process loses it
  within one lease;
- a key already written is a cache hit without taking the lock (the check is repeated under the
  lock for a miss), so hits cost no write;
- commit writes the staged record and releases the lock in one database transaction; a lock is
  released at most once, so an EAGER child can no longer roll back its parent by releasing twice;
- a nested transaction that would wait for a lock its own ancestor holds raises
  :class:`~sqlresults.errors.SelfDeadlockError` instead of hanging;
- transactions compare by identity.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from sqlresults.errors import (
    ConfigurationError,
    LeaseLostError,
    LockError,
    LockTimeoutError,
    SelfDeadlockError,
    SerializationError,
)
from sqlresults.locking import IsolationLevel
from sqlresults.records import ResultRecord
from sqlresults.results import ResultStore, get_result_store
from sqlresults.settings import get_settings
from sqlresults.validation import check_lease, check_timeout

__all__ = [
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionState",
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


Hook = Callable[["Transaction"], Any]

_UNFINISHED = (TransactionState.ACTIVE, TransactionState.STAGED)

_current: ContextVar[Transaction | None] = ContextVar("sqlresults_transaction", default=None)


def get_transaction() -> Transaction | None:
    """Return the innermost open transaction of this context, or None."""
    return _current.get()


class Transaction:
    """A unit of work on one result key. Use it as a context manager (or via
    :func:`transaction`).

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
        self.state = TransactionState(state)
        self.children: list[Transaction] = []
        self.on_commit_hooks: list[Hook] = []
        self.on_rollback_hooks: list[Hook] = []
        self._stored_values: dict[str, Any] = {}
        self._staged_value: Any = None
        self._holder = str(uuid.uuid4())
        self._token: Token[Transaction | None] | None = None
        self._parent: Transaction | None = None
        self._lease: _Lease | None = None

    def __repr__(self) -> str:
        return (
            f"Transaction(key={self.key!r}, state={self.state.name}, "
            f"isolation_level={self.isolation_level.name if self.isolation_level else None})"
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

    def get_parent(self) -> Transaction | None:
        """The enclosing transaction (while open), else the current one of this context."""
        if self._token is not None:
            return self._parent
        return get_transaction()

    def add_child(self, child: Transaction) -> None:
        """Adopt ``child``: it commits and rolls back with this transaction."""
        self.children.append(child)

    # -- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> Transaction:
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
        self.begin()
        self._token = _current.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is None:
            raise RuntimeError("Transaction exited without being entered.")
        try:
            if exc is not None:
                self.rollback()
                return
            if self.commit_mode is CommitMode.EAGER:
                self.commit()
            if self._parent is not None:
                return  # the parent commits or rolls back this one
            if self.commit_mode is CommitMode.OFF:
                self.rollback()
            elif self.commit_mode is CommitMode.LAZY:
                self.commit()
        finally:
            # Also when a commit raises (LeaseLostError): the context must be restored.
            self.reset()

    def begin(self) -> None:
        """See whether the key is already written; if not, take its lock under SERIALIZABLE and
        look again.

        The second check comes after the lock, so of several transactions racing on a key, the
        first computes and the others find its record. A key found written at once needs no
        lock: the transaction is committed from the start and will write nothing.

        Raises:
            SelfDeadlockError: An ancestor of this transaction holds the lock on the same key.
            LockTimeoutError: ``lock_timeout`` ran out before the lock was free.
        """
        store, key = self.store, self.key
        if store is None or key is None:
            return
        serializable = self.isolation_level is IsolationLevel.SERIALIZABLE
        if serializable:
            self._refuse_self_deadlock(store, key)
        if not self.overwrite and store.exists(key):
            # Written already: nothing will be computed or written, so no lock is needed.
            # (Double-checked: a miss is checked again below, under the lock.)
            self.state = TransactionState.COMMITTED
            return
        if serializable:
            lease = self.hold_timeout
            if lease is None:
                lease = getattr(store.lock_manager, "default_hold_timeout", None)
            if lease is None:
                lease = get_settings().lock_hold_timeout
            if not store.acquire_lock(
                key, holder=self._holder, timeout=self.lock_timeout, hold_timeout=lease
            ):
                raise LockTimeoutError(
                    f"Could not acquire the lock on key {key!r} within {self.lock_timeout:g} s: "
                    "another transaction holds it."
                )
            self._lease = _Lease(store, key, self._holder, lease, self.logger)
            if not self.overwrite and store.exists(key):
                self.state = TransactionState.COMMITTED

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

    def _with_descendants(self) -> Iterator[Transaction]:
        yield self
        for child in self.children:
            yield from child._with_descendants()

    def read(self) -> ResultRecord[Any] | None:
        """Read the key's record as this transaction's holder (never waiting on its own lock).

        Returns None when the transaction has no store or key.
        """
        if self.store is None or self.key is None:
            return None
        return self.store.read(self.key, holder=self._holder)

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
        if self.state in (TransactionState.COMMITTED, TransactionState.ROLLED_BACK):
            self._release_lock()
            return False
        try:
            for child in self.children:
                child.commit()
            for hook in self.on_commit_hooks:
                self._run_hook(hook, "commit")
            if self.store is not None and self.key is not None and self.write_on_commit:
                self._write_staged_value(self.store, self.key)
            self.state = TransactionState.COMMITTED
            self._release_lock()
            return True
        except LeaseLostError:
            self.rollback()
            raise
        except SerializationError as exc:
            self.logger.warning(
                "Encountered an error while serializing result for transaction %r: %s. Code "
                "execution will continue, but the transaction will not be committed.",
                self.key,
                exc,
            )
            self.rollback()
            return False
        except Exception:
            self.logger.exception(
                "An error was encountered while committing transaction %r", self.key
            )
            self.rollback()
            return False

    def _write_staged_value(self, store: ResultStore, key: str) -> None:
        staged = self._staged_value
        record = (
            staged
            if isinstance(staged, ResultRecord)
            else store.create_result_record(staged, key=key)
        )
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.stop()
        try:
            store.persist_result_record(record, holder=self._holder, release_lock=lease is not None)
        except LeaseLostError:
            raise  # nothing was written, and the lock is not ours to keep or release
        except BaseException:
            # Nothing was written and the lock is still ours: keep it until rollback releases it.
            if lease is not None:
                self._lease = lease.restart()
            raise

    def rollback(self) -> bool:
        """Run the rollback hooks (newest first) and roll back the children.

        A committed transaction never rolls back.

        Returns:
            True if this call rolled back; False if it was committed or rolled back before, or
            a hook failed.
        """
        if self.state in (TransactionState.COMMITTED, TransactionState.ROLLED_BACK):
            return False
        try:
            for hook in reversed(self.on_rollback_hooks):
                self._run_hook(hook, "rollback")
            self.state = TransactionState.ROLLED_BACK
            for child in reversed(self.children):
                child.rollback()
            return True
        except Exception:
            self.logger.exception(
                "An error was encountered while rolling back transaction %r", self.key
            )
            return False
        finally:
            self._release_lock()

    def reset(self) -> None:
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
            parent.rollback()
        elif parent.state is TransactionState.ROLLED_BACK:
            # Opened after its parent rolled back: nobody will roll it back later, and under
            # SERIALIZABLE its lease would be renewed for as long as the process lives.
            self.rollback()
        elif parent.state is TransactionState.COMMITTED and self.state in _UNFINISHED:
            # Opened after its parent committed (or under a parent that found its key written):
            # the parent's commit is over, so this one commits now or never.
            self.commit()

    def _release_lock(self) -> None:
        """Release the lock if this transaction still holds it; never twice."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        lease.stop()
        try:
            lease.store.release_lock(lease.key, holder=self._holder)
        except LockError as exc:
            # Our lease ran out and another holder took the key: theirs now; leave it be.
            self.logger.warning("Lock on key %r was lost before release: %s", lease.key, exc)

    def _run_hook(self, hook: Hook, kind: str) -> None:
        name = getattr(hook, "__name__", repr(hook))
        log = getattr(hook, "log_on_run", True)
        if log:
            self.logger.info("Running %s hook %r", kind, name)
        outcome = hook(self)
        if inspect.isawaitable(outcome):
            _run_coroutine(outcome)
        if log:
            self.logger.info("%s hook %r finished running successfully", kind.capitalize(), name)


class _Lease:
    """A SERIALIZABLE transaction's hold on its key's lock, renewed by :data:`_KEEPER` every
    third of the lease until stopped. A process that dies stops renewing, and its key frees
    within one lease."""

    def __init__(
        self,
        store: ResultStore,
        key: str,
        holder: str,
        seconds: float,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.store = store
        self.key = key
        self.holder = holder
        self.seconds = seconds
        self._logger = logger
        self.stopped = False
        _KEEPER.add(self)

    def renew(self) -> bool:
        """Extend the lease; return whether to keep renewing it."""
        if self.stopped:
            return False
        try:
            renewed = self.store.renew_lock(self.key, self.holder, hold_timeout=self.seconds)
        except Exception:
            # A passing outage: try again at the next renewal, within the lease.
            self._logger.warning("Could not renew the lock on key %r", self.key, exc_info=True)
            return True
        if not renewed and not self.stopped:
            self._logger.warning(
                "The lock on key %r was lost: its lease ran out and another holder took it (or "
                "it was swept). The transaction's commit will raise LeaseLostError and write "
                "nothing.",
                self.key,
            )
        return renewed

    def covers(self, store: ResultStore, key: str) -> bool:
        """Whether this lease is the lock ``store`` would need for ``key``: same key, same
        namespace, same database (however the two stores were configured)."""
        return (
            self.key == key
            and self.store.namespace == store.namespace
            and self.store.result_storage.is_same_database(store.result_storage)
        )

    def stop(self) -> None:
        """Stop renewing (the lock itself is released, or kept, by the caller)."""
        self.stopped = True
        _KEEPER.remove(self)

    def restart(self) -> _Lease:
        """A new lease on the same lock, renewed from now on."""
        return _Lease(self.store, self.key, self.holder, self.seconds, self._logger)


class _LeaseKeeper:
    """Renews every open lease of this process from one daemon thread.

    One thread for all transactions, not one each: starting a thread costs more than a whole
    transaction on SQLite (about 300 µs against 100 µs).
    """

    def __init__(self) -> None:
        self._next_renewal: dict[_Lease, float] = {}
        self._changed = threading.Condition()
        self._pid: int | None = None

    def add(self, lease: _Lease) -> None:
        with self._changed:
            if self._pid != os.getpid():
                # First lease of this process, or of a forked child: the parent's thread does
                # not exist here, and the parent's leases are the parent's to renew.
                self._next_renewal.clear()
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="sqlresults-leases", daemon=True).start()
            self._next_renewal[lease] = time.monotonic() + lease.seconds / 3
            self._changed.notify()

    def remove(self, lease: _Lease) -> None:
        with self._changed:
            self._next_renewal.pop(lease, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [lease for lease, at in self._next_renewal.items() if at <= now]
                if not due:
                    soonest = min(self._next_renewal.values(), default=now + 60.0)
                    self._changed.wait(soonest - now)
                    continue
                for lease in due:
                    self._next_renewal[lease] = now + lease.seconds / 3
            # Renew outside the condition: adding and stopping leases must not wait on the
            # database.
            for lease in due:
                if not lease.renew():
                    self.remove(lease)


_KEEPER = _LeaseKeeper()


def _run_coroutine(awaitable: Any) -> Any:
    """Run an async hook to completion from synchronous code, in or out of an event loop."""

    async def wrapper() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrapper())
    # A loop is running in this thread: run the hook on a fresh loop in a helper thread.
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(wrapper()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


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
    if key is not None and store is None:
        store = get_result_store()
    with Transaction(
        key=key,
        store=store,
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=logger,
        lock_timeout=lock_timeout,
        hold_timeout=hold_timeout,
    ) as txn:
        yield txn
