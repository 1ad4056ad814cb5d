"""Locks on result keys: Prefect's ``LockManager`` protocol and ``SQLLockManager``.

``SQLLockManager`` keeps one row per held key in ``sqlresults_locks``, in the same database as the
records, so a record write can check the lock in the same statement (see
:meth:`~sqlresults.results.ResultStore.persist_result_record`). What it fixes in Prefect's
managers (reference §5):

- every lock has a lease (``hold_timeout``, default ``SQLRESULTS_LOCK_HOLD_TIMEOUT``): a holder
  that crashes frees its key within one lease instead of blocking it forever;
- acquiring is one upsert that takes a free or expired row, or extends the caller's own, and
  bumps a fencing counter; there is no check-then-create race;
- releasing checks the holder in the same statement, so a slow holder can never release the lock
  someone else took after its lease ran out;
- fencing: the process remembers the fence each of its locks was granted with, and a holder's
  writes, renewals and releases carry it, so a holder whose lease ran out and whose lock was taken
  (or swept) since can never overwrite newer work (:class:`~sqlresults.errors.LeaseLostError`);
- ``acquire_timeout=0`` tries once; waiting polls with a read (which never blocks SQLite's
  writer) and jittered exponential backoff, and takes the write lock only to acquire; on
  PostgreSQL a release is announced with NOTIFY and waiters wake at once;
- a wait rides out an outage (a server restart, a dropped connection): it reconnects and goes
  on waiting through up to ``SQLRESULTS_BUSY_TIMEOUT`` seconds of outage, then raises
  :class:`~sqlresults.errors.StorageUnavailableError`. An outage is never reported as "still
  locked" (False) nor as "free" (see :class:`_Outage`).
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from sqlresults import async_locking, queries
from sqlresults.async_database import async_database
from sqlresults.backoff import Backoff
from sqlresults.database import Database, resolve_database
from sqlresults.dialects import release_payload
from sqlresults.errors import LockNotHeldError, StorageUnavailableError
from sqlresults.settings import get_settings
from sqlresults.validation import (
    check_holder,
    check_key,
    check_lease,
    check_namespace,
    check_timeout,
)

__all__ = ["IsolationLevel", "LockManager", "SQLLockManager"]

# Polling between lock attempts, in seconds (see sqlresults.backoff). The cap bounds how late a
# waiter notices a release.
_FIRST_POLL = 0.001
_MAX_POLL = 0.05


class IsolationLevel(enum.Enum):
    """How a transaction shares its key with others.

    ``READ_COMMITTED``: no lock; concurrent transactions may compute the same key.
    ``SERIALIZABLE``: the transaction holds the key's lock from begin to commit, so one process
    or thread computes a key at a time.
    """

    READ_COMMITTED = "READ_COMMITTED"
    SERIALIZABLE = "SERIALIZABLE"


@runtime_checkable
class LockManager(Protocol):
    """Prefect's lock manager protocol: locks on keys, owned by named holders."""

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Acquire the lock on ``key`` for ``holder``.

        Args:
            key: The key to lock.
            holder: Who holds the lock. Acquiring again as the same holder succeeds.
            acquire_timeout: Seconds to wait; None waits forever, 0 tries once.
            hold_timeout: Seconds the lock is held before it expires.

        Returns:
            True if acquired, False if ``acquire_timeout`` ran out.
        """
        ...

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Async form of :meth:`acquire_lock`."""
        ...

    def release_lock(self, key: str, holder: str) -> None:
        """Release the lock on ``key`` held by ``holder``.

        Raises:
            ValueError: Another holder holds the lock.
        """
        ...

    def is_locked(self, key: str) -> bool:
        """Whether anyone holds an unexpired lock on ``key``."""
        ...

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """Whether ``holder`` holds an unexpired lock on ``key``."""
        ...

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is unlocked; True if it is (now or within ``timeout`` seconds)."""
        ...

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Async form of :meth:`wait_for_lock`."""
        ...


class SQLLockManager:
    """Leased, holder-checked locks kept in the result database.

    Args:
        database: Anything :func:`~sqlresults.results.resolve_result_storage` accepts: a
            :class:`~sqlresults.database.Database`, a URL or a path to a SQLite file; None for
            the default database.
        namespace: The namespace whose keys it locks (``SQLRESULTS_NAMESPACE`` by default).
            Locks in different namespaces never conflict.
        default_hold_timeout: Lease in seconds when an acquire passes none
            (``SQLRESULTS_LOCK_HOLD_TIMEOUT`` by default); more than zero.

    Raises:
        InvalidArgumentError: The namespace is not 1 to 255 characters of storable text (no
            NUL, no lone surrogate), or the default lease is not more than zero seconds.
    """

    def __init__(
        self,
        database: Any = None,
        *,
        namespace: str | None = None,
        default_hold_timeout: float | None = None,
    ) -> None:
        settings = get_settings()
        self.database: Database = resolve_database(database)
        self.namespace: str = check_namespace(
            namespace if namespace is not None else settings.namespace
        )
        default = check_lease(default_hold_timeout, "default_hold_timeout")
        # The setting is checked where it is read (it must be more than zero, too).
        self.default_hold_timeout: float = (
            default if default is not None else settings.lock_hold_timeout
        )

    def __repr__(self) -> str:
        return f"SQLLockManager({self.database!r}, namespace={self.namespace!r})"

    # -- acquire ---------------------------------------------------------------------------

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Acquire the lock on ``key`` for ``holder``, waiting up to ``acquire_timeout``.

        Args:
            key: The key to lock.
            holder: Who holds it. The same holder acquiring again succeeds and extends the lease.
            acquire_timeout: Seconds to wait for another holder's lock; None waits forever, 0
                tries exactly once.
            hold_timeout: Lease in seconds; None uses ``default_hold_timeout``. Renew with
                :meth:`renew_lock` to hold longer.

        Returns:
            True if acquired, False if ``acquire_timeout`` ran out first.

        Raises:
            InvalidArgumentError: A bad key, holder or timeout, or a lease of zero or less.
            StorageUnavailableError: The database could not be reached for
                ``SQLRESULTS_BUSY_TIMEOUT`` seconds of the wait, or when ``acquire_timeout``
                ran out (whether the key is still locked is then unknown); or it failed
                otherwise.
        """
        attempt, wait = self._acquire_attempt(key, holder, acquire_timeout, hold_timeout)
        return self._poll(key, attempt, lambda: not self.is_locked(key), wait)

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Async form of :meth:`acquire_lock`; waiting does not block the event loop.

        On PostgreSQL it holds no thread: statements are awaited on asyncio connections and
        the wait sleeps until the release is announced, the holder's lease ends or a fallback
        poll (:mod:`sqlresults.async_locking`). On SQLite (no asyncio driver) each check runs
        in a worker thread, between plain sleeps.
        """
        aio = async_database(self.database)
        if aio is None:
            attempt, wait = self._acquire_attempt(key, holder, acquire_timeout, hold_timeout)
            return await self._apoll(key, attempt, lambda: not self.is_locked(key), wait)
        params, wait = self._acquire_params(key, holder, acquire_timeout, hold_timeout)
        scope = self._scope

        def granted(fence: int) -> None:
            _FENCES.remember(scope, key, holder, fence)

        attempt_async = async_locking.acquire_attempt(aio, params, granted)
        outage = _Outage(self.database, key)
        return await async_locking.wait_until_free(
            aio, self.namespace, key, wait, outage, attempt_async
        )

    def _acquire_params(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None,
        hold_timeout: float | None,
    ) -> tuple[dict[str, Any], Backoff]:
        params = {
            "ns": self.namespace,
            "key": check_key(key),
            "holder": check_holder(holder),
            "hold": self._lease(hold_timeout),
        }
        return params, _lock_backoff(check_timeout(acquire_timeout, "acquire_timeout"))

    def _acquire_attempt(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None,
        hold_timeout: float | None,
    ) -> tuple[Callable[[], bool], Backoff]:
        params, wait = self._acquire_params(key, holder, acquire_timeout, hold_timeout)
        database = self.database

        def attempt() -> bool:
            # The database stamps "now" when the statement runs, so the lease starts when its
            # row is written, whatever migration or busy wait came first.
            row = database.fetchone(queries.lock_acquire, params)
            if row is None:
                return False
            _FENCES.remember(self._scope, key, holder, int(row[0]))
            return True

        return attempt, wait

    def _lease(self, hold_timeout: float | None) -> float:
        lease = check_lease(hold_timeout)
        return self.default_hold_timeout if lease is None else lease

    # -- release and renew -----------------------------------------------------------------

    def release_lock(self, key: str, holder: str) -> None:
        """Release ``holder``'s lock on ``key``.

        The holder is checked in the same statement that deletes the row. Releasing a key that
        nobody holds (never locked, or its lease ran out and nobody took it since) is a no-op.

        Raises:
            LockNotHeldError: Another holder holds an unexpired lock on ``key`` (a
                ``ValueError``, with Prefect's message); the lock is left untouched.
        """
        params = self._params(key, holder)
        released = self.database.fetchone(queries.lock_release, params) is not None
        # Released, or not ours any more: either way this process holds no lock here now.
        _FENCES.forget(self._scope, key, holder)
        if not released:
            self._raise_if_held_by_other(key, holder)

    async def _arelease_lock(self, key: str, holder: str) -> None:
        """Async form of :meth:`release_lock` (for async transactions): awaited on
        PostgreSQL, in a worker thread on SQLite."""
        aio = async_database(self.database)
        if aio is None:
            await asyncio.to_thread(self.release_lock, key, holder)
            return
        params = self._params(key, holder)
        released = await aio.fetchone(queries.lock_release, params) is not None
        _FENCES.forget(self._scope, key, holder)
        if not released:
            row = await aio.fetchone(queries.lock_state, {"ns": self.namespace, "key": key})
            if row is not None and row[0] != holder:
                raise LockNotHeldError(key, holder)

    def renew_lock(self, key: str, holder: str, hold_timeout: float | None = None) -> bool:
        """Extend ``holder``'s lease on ``key`` to ``hold_timeout`` seconds from now.

        Returns:
            True if ``holder`` still had the lock row, with the fence this process was granted
            (even if its lease had just run out, as long as nobody took it since); False if the
            lock is gone or someone else holds it.
        """
        params = self._params(key, holder)
        params["hold"] = self._lease(hold_timeout)
        renewed = self.database.fetchone(queries.lock_renew, params) is not None
        if not renewed:
            _FENCES.forget(self._scope, key, holder)
        return renewed

    def held_fence(self, key: str, holder: str) -> int | None:
        """The fence ``holder``'s lock on ``key`` was granted with, if this process acquired it
        and has not released it since (whether it is still held is the database's to say).

        Writes and releases carry it, so that they are refused once the lock was lost.
        """
        return _FENCES.fence(self._scope, key, holder)

    def forget_lock(self, key: str, holder: str) -> None:
        """Forget the fence of ``holder``'s lock on ``key`` (it was released or lost)."""
        _FENCES.forget(self._scope, key, holder)

    @property
    def _scope(self) -> tuple[str, str]:
        return (self.database.identity, self.namespace)

    def _raise_if_held_by_other(self, key: str, holder: str) -> None:
        owner = self.lock_holder(key)
        if owner is not None and owner != holder:
            raise LockNotHeldError(key, holder)

    # -- inspection ------------------------------------------------------------------------

    def lock_holder(self, key: str) -> str | None:
        """The holder of the unexpired lock on ``key``, or None when it is free."""
        row = self.database.fetchone(
            queries.lock_state, {"ns": self.namespace, "key": check_key(key)}
        )
        return None if row is None else str(row[0])

    def is_locked(self, key: str) -> bool:
        """Whether anyone holds an unexpired lock on ``key``."""
        return self.lock_holder(key) is not None

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """Whether ``holder`` holds an unexpired lock on ``key``."""
        return self.lock_holder(key) == check_holder(holder)

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until nobody holds an unexpired lock on ``key``, without taking it.

        Args:
            key: The key to watch.
            timeout: Seconds to wait; None waits forever, 0 checks once.

        Returns:
            True if the key is free (now or within ``timeout``), False otherwise.

        Raises:
            StorageUnavailableError: The database could not be reached for
                ``SQLRESULTS_BUSY_TIMEOUT`` seconds of the wait, or when ``timeout`` ran out;
                or it failed otherwise.
        """
        check_key(key)
        wait = _lock_backoff(check_timeout(timeout, "timeout"))
        return self._poll(key, lambda: not self.is_locked(key), lambda: True, wait)

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Async form of :meth:`wait_for_lock`: on PostgreSQL it holds no thread and wakes at
        the release's announcement or the holder's lease end (see :meth:`aacquire_lock`); on
        SQLite it checks from worker threads."""
        check_key(key)
        wait = _lock_backoff(check_timeout(timeout, "timeout"))
        aio = async_database(self.database)
        if aio is None:
            return await self._apoll(key, lambda: not self.is_locked(key), lambda: True, wait)
        outage = _Outage(self.database, key)
        return await async_locking.wait_until_free(aio, self.namespace, key, wait, outage)

    def _poll(
        self,
        key: str,
        attempt: Callable[[], bool],
        worth_trying: Callable[[], bool],
        wait: Backoff,
    ) -> bool:
        """Call ``attempt`` until it succeeds or ``wait`` runs out.

        Between attempts, pause (on PostgreSQL until the key's release is announced, at the
        latest until the backoff's pause ends: a lease that runs out is announced by nobody)
        and only call ``attempt`` again once ``worth_trying`` (a cheap read) says it may
        succeed: attempts may be writes, and polling with writes would compete with real
        writers for SQLite's single write lock. An outage is ridden out as :class:`_Outage`
        says.
        """
        outage = _Outage(self.database, key)
        if outage.check(attempt):
            return True
        with self.database.wakeups(release_payload(self.namespace, key)) as pause:
            # Check again once listening: a release between the first attempt and the LISTEN
            # was announced to nobody.
            while not outage.check(lambda: worth_trying() and attempt()):
                if wait.expired():
                    return outage.timed_out()
                pause(wait.next_pause())
        return True

    async def _apoll(
        self,
        key: str,
        attempt: Callable[[], bool],
        worth_trying: Callable[[], bool],
        wait: Backoff,
    ) -> bool:
        """Async form of :meth:`_poll` for SQLite, which has no asyncio driver: database calls
        run in a worker thread, and pauses are plain sleeps."""
        outage = _Outage(self.database, key)
        if await asyncio.to_thread(outage.check, attempt):
            return True
        while True:
            if wait.expired():
                return outage.timed_out()
            await asyncio.sleep(wait.next_pause())
            if await asyncio.to_thread(outage.check, lambda: worth_trying() and attempt()):
                return True

    def _params(self, key: str, holder: str) -> dict[str, Any]:
        key, holder = check_key(key), check_holder(holder)
        return {
            "ns": self.namespace,
            "key": key,
            "holder": holder,
            "fence": _FENCES.fence(self._scope, key, holder),
        }


class _Outage:
    """How a lock wait treats an outage: the database cannot be reached (a server restart, a
    failover, a dropped network; :meth:`~sqlresults.database.Database.is_outage`).

    A check that fails with an outage counts as "not yet", and the wait goes on with its usual
    pauses (each check reconnects). The outage is raised once it has lasted the database's
    ``busy_timeout`` (``SQLRESULTS_BUSY_TIMEOUT``, default 30 s), counted from the start of
    the first check that failed, and at once if the wait's own timeout runs out during it:
    nobody knows then whether the key is still locked, so False would be a guess. Other errors
    are raised at once.

    Args:
        database: The database the checks use.
        key: The key waited for (named in the error).
    """

    def __init__(self, database: Database, key: str) -> None:
        self._database = database
        self._key = key
        self._since: float | None = None
        self._error: StorageUnavailableError | None = None

    def check(self, condition: Callable[[], bool]) -> bool:
        """Return ``condition()``, or False while the database is down.

        Raises:
            StorageUnavailableError: The outage has lasted ``busy_timeout`` seconds.
        """
        started = time.monotonic()
        try:
            result = condition()
        except StorageUnavailableError as exc:
            return self._failed(exc, started)
        self._since = self._error = None
        return result

    async def acheck(self, condition: Callable[[], Awaitable[bool]]) -> bool:
        """Async form of :meth:`check`: ``condition`` is awaited."""
        started = time.monotonic()
        try:
            result = await condition()
        except StorageUnavailableError as exc:
            return self._failed(exc, started)
        self._since = self._error = None
        return result

    def _failed(self, exc: StorageUnavailableError, started: float) -> bool:
        """A check that started at ``started`` failed with ``exc``: False while the outage
        lasts less than ``busy_timeout``, else raise."""
        if not self._database.is_outage(exc):
            raise exc
        if self._since is None:
            self._since = started
        self._error = exc
        lasted = time.monotonic() - self._since
        if lasted >= self._database.busy_timeout:
            raise StorageUnavailableError(
                f"{exc} A wait for the lock on {self._key!r} gave up after the database "
                f"stayed unreachable for {lasted:.3g} s (SQLRESULTS_BUSY_TIMEOUT)."
            ) from exc
        return False

    def timed_out(self) -> bool:
        """What a wait returns when its timeout has run out: False, "still locked".

        Raises:
            StorageUnavailableError: The last check failed with an outage.
        """
        error = self._error
        if error is not None:
            raise StorageUnavailableError(
                f"{error} A wait for the lock on {self._key!r} timed out while the database "
                "was unreachable, so whether the key is still locked is unknown."
            ) from error
        return False


class _FenceBook:
    """The fences of the locks this process acquired and has not released.

    Keyed by (database identity, namespace, key, holder), so every lock manager and store on
    the same database shares it. A holder's writes, renewals and releases carry the fence: a
    lock row whose fence changed was re-acquired by someone after the holder's lease ran out,
    and must not be touched. Entries go when the lock is released, or found lost.
    """

    def __init__(self) -> None:
        self._fences: dict[tuple[str, str, str, str], int] = {}
        self._lock = threading.Lock()

    def remember(self, scope: tuple[str, str], key: str, holder: str, fence: int) -> None:
        with self._lock:
            self._fences[(*scope, key, holder)] = fence

    def forget(self, scope: tuple[str, str], key: str, holder: str) -> None:
        with self._lock:
            self._fences.pop((*scope, key, holder), None)

    def fence(self, scope: tuple[str, str], key: str, holder: str) -> int | None:
        return self._fences.get((*scope, key, holder))


_FENCES = _FenceBook()


def _lock_backoff(timeout: float | None) -> Backoff:
    return Backoff(timeout, first=_FIRST_POLL, cap=_MAX_POLL)
