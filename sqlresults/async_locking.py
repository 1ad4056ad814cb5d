"""Lock acquires and waits for coroutines on PostgreSQL: awaited statements, no worker thread.

One job: the wait loop of :meth:`SQLLockManager.aacquire_lock
<sqlresults.locking.SQLLockManager.aacquire_lock>` and ``await_for_lock`` on the asyncio path
(:mod:`sqlresults.async_database`), with the sync loop's rules (``SQLLockManager._poll``): try
first; then check the lock with a read, and attempt (a write) only once it is free; ride out an
outage as the manager's ``_Outage`` says; a timeout that runs out returns False.

Between checks a waiter sleeps until, whichever comes first:

- the key's release is announced (the release statement NOTIFYs in its own transaction, so a
  record written with the release is committed when the waiter wakes;
  :mod:`sqlresults.async_wakeups` LISTENs for every waiter of the loop on one connection);
- the holder's lease ends (the check reads how long it has left): expiry announces nothing;
- the fallback poll, :data:`FALLBACK_POLL` seconds, for what no announcement covers (a lock row
  deleted by hand in SQL, an announcement lost with a LISTEN connection that dropped);
- the wait's own timeout.

While nothing listens (the server cannot be reached, or refuses LISTEN), the waiter polls with
the sync path's jittered backoff. SQLite has no asyncio path: its waiters poll from worker
threads (:mod:`sqlresults.locking`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlresults import queries
from sqlresults.async_database import AsyncDatabase
from sqlresults.async_wakeups import wakeups
from sqlresults.backoff import Backoff
from sqlresults.dialects import release_payload

__all__ = ["FALLBACK_POLL", "acquire_attempt", "wait_until_free"]

#: Seconds a listening waiter sleeps at most between checks when no announcement and no lease
#: end comes first.
FALLBACK_POLL = 1.0

# Seconds past the holder's lease end before checking again: the server's clock decides
# expiry, and a check a hair early would find the lease still running.
_LEASE_MARGIN = 0.005


class Outage(Protocol):
    """How a wait treats an outage (``sqlresults.locking._Outage``)."""

    async def acheck(self, condition: Callable[[], Awaitable[bool]]) -> bool: ...

    def timed_out(self) -> bool: ...


def acquire_attempt(
    aio: AsyncDatabase, params: dict[str, Any], granted: Callable[[int], None]
) -> Callable[[], Awaitable[bool]]:
    """One try at the lock: the upsert of ``lock_acquire``; ``granted(fence)`` on success.

    Args:
        aio: The database's asyncio path.
        params: The statement's parameters (namespace, key, holder, lease).
        granted: Called with the fence the lock was granted with.
    """

    async def attempt() -> bool:
        # The database stamps "now" when the statement runs, so the lease starts then.
        row = await aio.fetchone(queries.lock_acquire, params)
        if row is None:
            return False
        granted(int(row[0]))
        return True

    return attempt


async def wait_until_free(
    aio: AsyncDatabase,
    namespace: str,
    key: str,
    wait: Backoff,
    outage: Outage,
    attempt: Callable[[], Awaitable[bool]] | None = None,
) -> bool:
    """Wait until the lock on ``key`` is free (and ``attempt`` succeeds, when given).

    Args:
        aio: The database's asyncio path.
        namespace: The lock's namespace.
        key: The key.
        wait: The wait's timeout (its pauses are used while nothing listens).
        outage: Rides out an outage, and says what a timeout returns.
        attempt: Awaited once the key is found free (an acquire); None just waits.

    Returns:
        True once free (and acquired), False if ``wait`` ran out.

    Raises:
        StorageUnavailableError: As ``outage`` decides.
    """
    lease_left: list[float | None] = [None]
    state = {"ns": namespace, "key": key}

    async def free_then_attempt() -> bool:
        row = await aio.fetchone(queries.lock_state, state)
        if row is not None:
            lease_left[0] = None if row[2] is None else float(row[2])
            return False
        lease_left[0] = None
        return attempt is None or await attempt()

    if await outage.acheck(attempt or free_then_attempt):
        return True
    async with wakeups(aio, release_payload(namespace, key)) as wakeup:
        # Check again once listening: a release between the first check and the LISTEN was
        # announced to nobody.
        while not await outage.acheck(free_then_attempt):
            if wait.expired():
                return outage.timed_out()
            listening = wakeup.listening
            await wakeup.pause(
                _listening_pause(wait, lease_left[0]) if listening else wait.next_pause()
            )
    return True


def _listening_pause(wait: Backoff, lease_left: float | None) -> float:
    """How long a listening waiter sleeps: to the lease's end, the fallback poll or the
    wait's deadline, whichever comes first."""
    pause = FALLBACK_POLL
    if lease_left is not None:
        pause = min(pause, max(0.0, lease_left) + _LEASE_MARGIN)
    if wait.deadline is not None:
        pause = min(pause, max(0.0, wait.deadline - time.monotonic()))
    return pause
