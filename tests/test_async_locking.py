"""Tests of sqlresults.async_locking: lock waits of coroutines on PostgreSQL. A waiter wakes at
the release's announcement and at the holder's lease end, not at its fallback poll, and rides
out an outage as a sync waiter does. (Both backends' async lock API: tests/test_locking.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import PrivateServer, run_async
from threads import JOIN_TIMEOUT

from sqlresults import async_locking, locking
from sqlresults.database import Database
from sqlresults.errors import StorageUnavailableError
from sqlresults.locking import SQLLockManager


@pytest.fixture
def no_fallback_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stretch the fallback poll (and the sync backoff) far beyond any test's hang guard: a
    waiter that wakes in time was woken by something else."""
    monkeypatch.setattr(async_locking, "FALLBACK_POLL", 3600.0)
    monkeypatch.setattr(locking, "_FIRST_POLL", 3600.0)
    monkeypatch.setattr(locking, "_MAX_POLL", 3600.0)


async def within_guard(awaitable: Any) -> Any:
    """``awaitable``'s value; the hang guard fails the test if it never comes."""
    return await asyncio.wait_for(awaitable, JOIN_TIMEOUT)


@pytest.mark.postgres
@pytest.mark.usefixtures("no_fallback_poll")
class TestWakeups:
    @pytest.mark.parametrize("wait", ["await_for_lock", "aacquire_lock"])
    def test_a_waiter_wakes_at_the_release_announcement(
        self, wait: str, postgres_url: str, namespace: str
    ) -> None:
        """A waiter (no timeout) for a lock held on a one-hour lease gets it once the holder
        releases it: the release NOTIFYs and the listening waiter checks at once."""
        manager = SQLLockManager(Database(postgres_url), namespace=namespace)
        assert manager.acquire_lock("k", "holder1", hold_timeout=3600)

        async def waiter() -> bool:
            if wait == "await_for_lock":
                return await manager.await_for_lock("k")
            return await manager.aacquire_lock("k", "holder2")

        async def scenario() -> bool:
            waiting = asyncio.ensure_future(waiter())
            await asyncio.sleep(0.2)  # let it start waiting; either order is covered
            await manager._arelease_lock("k", "holder1")
            return bool(await within_guard(waiting))

        assert run_async(scenario) is True
        assert manager.is_lock_holder("k", "holder2") is (wait == "aacquire_lock")

    @pytest.mark.parametrize("wait", ["await_for_lock", "aacquire_lock"])
    def test_a_waiter_sees_a_lease_that_ran_out(
        self, wait: str, postgres_url: str, namespace: str
    ) -> None:
        """Nobody announces an expiry: the waiter reads how long the holder's lease has left
        and checks again when it ends."""
        manager = SQLLockManager(Database(postgres_url), namespace=namespace)
        assert manager.acquire_lock("k", "holder1", hold_timeout=0.5)

        async def scenario() -> bool:
            if wait == "await_for_lock":
                return bool(await within_guard(manager.await_for_lock("k")))
            return bool(await within_guard(manager.aacquire_lock("k", "holder2")))

        assert run_async(scenario) is True
        assert manager.is_lock_holder("k", "holder2") is (wait == "aacquire_lock")

    def test_a_timeout_still_ends_the_wait(self, postgres_url: str, namespace: str) -> None:
        """The wait's own timeout bounds every pause: False once it runs out."""
        manager = SQLLockManager(Database(postgres_url), namespace=namespace)
        assert manager.acquire_lock("k", "holder1", hold_timeout=3600)

        async def scenario() -> list[bool]:
            return [
                await within_guard(manager.await_for_lock("k", timeout=0.2)),
                await within_guard(manager.aacquire_lock("k", "holder2", acquire_timeout=0.2)),
            ]

        assert run_async(scenario) == [False, False]

    def test_many_waiters_on_many_keys(self, postgres_url: str, namespace: str) -> None:
        """50 waiters for 50 keys each get their own key when its holder releases it, and
        a release wakes only its own waiter's check to success."""
        manager = SQLLockManager(Database(postgres_url), namespace=namespace)
        keys = [f"k{i}" for i in range(50)]
        for key in keys:
            assert manager.acquire_lock(key, "holder1", hold_timeout=3600)

        async def scenario() -> list[bool]:
            waiting = [asyncio.ensure_future(manager.aacquire_lock(key, "holder2")) for key in keys]
            await asyncio.sleep(0.2)
            for key in keys:
                await manager._arelease_lock(key, "holder1")
            return list(await within_guard(asyncio.gather(*waiting)))

        assert run_async(scenario) == [True] * 50
        assert all(manager.is_lock_holder(key, "holder2") for key in keys)


@pytest.mark.slow
@pytest.mark.postgres
class TestOutage:
    """On a private server the test shuts down and starts again (see tests/test_locking.py's
    TestWaitsThroughAServerOutage for the waits' shared rules)."""

    @pytest.mark.usefixtures("no_fallback_poll")
    def test_a_waiter_listens_again_after_a_restart(
        self, private_server: PrivateServer, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The server goes down while a waiter listens and comes back within the busy
        timeout: the waiter polls through the outage (backoff, as the sync waiter), listens
        again once the server is back, and is woken by the holder's release announcement
        even with the fallback poll an hour long."""
        monkeypatch.setattr(locking, "_FIRST_POLL", 0.001)
        monkeypatch.setattr(locking, "_MAX_POLL", 0.05)
        holder = SQLLockManager(Database(private_server.url), namespace=namespace)
        waiter = SQLLockManager(Database(private_server.url), namespace=namespace)
        assert holder.acquire_lock("k", "holder1", hold_timeout=3600)

        async def scenario() -> bool:
            waiting = asyncio.ensure_future(waiter.aacquire_lock("k", "holder2"))
            await asyncio.sleep(0.3)
            await asyncio.to_thread(private_server.down)
            await asyncio.sleep(0.3)
            assert not waiting.done()
            await asyncio.to_thread(private_server.up)
            await asyncio.sleep(1.0)  # the waiter listens again at its next backoff pause
            await asyncio.to_thread(holder.release_lock, "k", "holder1")
            return bool(await within_guard(waiting))

        assert run_async(scenario) is True
        assert waiter.is_lock_holder("k", "holder2")

    def test_a_server_that_stays_down_ends_the_wait(
        self, private_server: PrivateServer, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """As the sync waiter: an outage longer than SQLRESULTS_BUSY_TIMEOUT (here 0.5 s)
        raises StorageUnavailableError; never psycopg's error, never False."""
        holder = SQLLockManager(Database(private_server.url), namespace=namespace)
        assert holder.acquire_lock("k", "holder1", hold_timeout=3600)
        monkeypatch.setenv("SQLRESULTS_BUSY_TIMEOUT", "0.5")
        waiter = SQLLockManager(Database(private_server.url), namespace=namespace)

        async def scenario() -> None:
            waiting = asyncio.ensure_future(waiter.aacquire_lock("k", "holder2"))
            await asyncio.sleep(0.3)
            await asyncio.to_thread(private_server.down)
            with pytest.raises(StorageUnavailableError, match="SQLRESULTS_BUSY_TIMEOUT"):
                await within_guard(waiting)

        run_async(scenario)
