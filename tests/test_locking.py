"""Tests for sqlresults.locking: ``SQLLockManager`` and the store's lock API.

Prefect's lock-manager behaviours 45-56 (reference §10), adapted to leased locks kept in the
result database (DESIGN §2, §10 "Locks"). Lease expiry is driven by a fake clock
(``clocked_database``), never by sleeping; waits are bounded by generous hang guards and tests
assert orderings and outcomes, never durations.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock, OwnSessions, PrivateServer
from helpers_processes import use_pickled_lock_manager
from sqlalchemy import String, bindparam, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable
from threads import JOIN_TIMEOUT, join, run_in_thread, wait_until

from sqlresults import locking, queries
from sqlresults.async_database import async_database
from sqlresults.backoff import Backoff
from sqlresults.database import Database
from sqlresults.dialects import Dialect
from sqlresults.errors import (
    InvalidArgumentError,
    InvalidKeyError,
    LeaseLostError,
    LockHeldByOtherError,
    LockNotHeldError,
    RecordNotFoundError,
    StorageUnavailableError,
)
from sqlresults.locking import IsolationLevel, LockManager, SQLLockManager
from sqlresults.results import ResultStore
from sqlresults.schema import locks
from sqlresults.transactions import transaction

# Hang guard for threads that wait on a lock: generous, never a measurement.


def _lock_rows(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Every lock row of a namespace, expired ones included: (key, holder, expires, fence)."""
    return (
        select(locks.c.key, locks.c.holder, locks.c.expires, locks.c.fence)
        .where(locks.c.namespace == bindparam("ns", type_=String()))
        .order_by(locks.c.key)
    )


def lock_rows(manager: SQLLockManager) -> dict[str, tuple[str, float, int]]:
    """The raw lock rows of ``manager``'s namespace: {key: (holder, expires, fence)}."""
    rows = manager.database.fetchall(_lock_rows, {"ns": manager.namespace})
    return {
        str(key): (str(holder), float(expires), int(fence)) for key, holder, expires, fence in rows
    }


def fence(manager: SQLLockManager, key: str) -> int | None:
    """The fencing counter of the unexpired lock on ``key``, or None when it is free."""
    row = manager.database.fetchone(
        queries.lock_state,
        {"ns": manager.namespace, "key": key, "now": manager.database.clock()},
    )
    return None if row is None else int(row[1])


@pytest.fixture
def manager(database: Database, namespace: str) -> SQLLockManager:
    """A lock manager on the test database (real clock), in this test's namespace."""
    return SQLLockManager(database, namespace=namespace)


@pytest.fixture
def clocked_manager(clocked_database: Database, namespace: str) -> SQLLockManager:
    """A lock manager whose leases follow the fake ``clock``."""
    return SQLLockManager(clocked_database, namespace=namespace)


class TestConstruction:
    def test_is_a_lock_manager(self, database: Database) -> None:
        """SQLLockManager satisfies Prefect's runtime-checkable LockManager protocol."""
        assert isinstance(SQLLockManager(database), LockManager)

    def test_accepts_a_database(self, database: Database, namespace: str) -> None:
        """A Database is used as is (DESIGN §10 "Locks": anything resolve_result_storage takes)."""
        assert SQLLockManager(database, namespace=namespace).database is database

    def test_accepts_a_url(self, database_url: str, namespace: str) -> None:
        """A URL string resolves to a Database on that URL, and its locks work."""
        manager = SQLLockManager(database_url, namespace=namespace)
        assert isinstance(manager.database, Database)
        assert manager.acquire_lock("k", "holder1", acquire_timeout=0)
        assert manager.is_lock_holder("k", "holder1")
        manager.release_lock("k", "holder1")
        assert not manager.is_locked("k")

    def test_accepts_a_path(self, tmp_path: Path) -> None:
        """A pathlib.Path names a SQLite file, created and migrated on first use."""
        path = tmp_path / "locks.db"
        manager = SQLLockManager(path)
        assert manager.database.dialect.is_sqlite
        assert manager.acquire_lock("k", "holder1", acquire_timeout=0)
        assert path.exists()
        assert manager.is_lock_holder("k", "holder1")

    def test_defaults_come_from_settings(
        self, database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Namespace and lease default to SQLRESULTS_NAMESPACE and SQLRESULTS_LOCK_HOLD_TIMEOUT."""
        assert SQLLockManager(database).namespace == "default"
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", "team")
        monkeypatch.setenv("SQLRESULTS_LOCK_HOLD_TIMEOUT", "12.5")
        manager = SQLLockManager(database)
        assert manager.namespace == "team"
        assert manager.default_hold_timeout == 12.5

    @pytest.mark.parametrize("bad", [0, -1, math.nan, "10", True], ids=repr)
    def test_bad_default_hold_timeout(self, database: Database, bad: Any) -> None:
        """A zero, negative, NaN or non-numeric default lease is refused with
        InvalidArgumentError, with the one message every lease gets."""
        with pytest.raises(
            InvalidArgumentError, match=r"^default_hold_timeout must be more than zero seconds"
        ):
            SQLLockManager(database, default_hold_timeout=bad)

    @pytest.mark.parametrize(
        "bad",
        ["", "n" * 256, "ns\x00", "\ud800", 5],
        ids=["empty", "long", "nul", "surrogate", "int"],
    )
    def test_bad_namespace(self, database: Database, bad: Any) -> None:
        """The manager checks its namespace as a store does: 1 to 255 characters of storable
        text (no NUL, no lone surrogate), on both backends."""
        with pytest.raises(InvalidArgumentError, match="namespace"):
            SQLLockManager(database, namespace=bad)


class TestAcquireAndRelease:
    def test_acquire_then_release(self, manager: SQLLockManager) -> None:
        """Behaviour 49: acquire → is_locked; release → not locked."""
        assert not manager.is_locked("k")
        assert manager.acquire_lock("k", "holder1")
        assert manager.is_locked("k")
        manager.release_lock("k", "holder1")
        assert not manager.is_locked("k")
        assert lock_rows(manager) == {}

    def test_is_lock_holder(self, manager: SQLLockManager) -> None:
        """Behaviour 53: is_lock_holder is False before acquire, True for the holder, False for
        others, and False again after release."""
        assert not manager.is_lock_holder("k", "holder1")
        manager.acquire_lock("k", "holder1")
        assert manager.is_lock_holder("k", "holder1")
        assert not manager.is_lock_holder("k", "holder2")
        assert manager.lock_holder("k") == "holder1"
        manager.release_lock("k", "holder1")
        assert not manager.is_lock_holder("k", "holder1")
        assert manager.lock_holder("k") is None

    def test_acquire_is_idempotent_for_the_same_holder(self, manager: SQLLockManager) -> None:
        """Behaviour 49: acquiring twice with the same holder gives True both times; every
        acquire bumps the fencing counter."""
        assert manager.acquire_lock("k", "holder1", acquire_timeout=0)
        first = fence(manager, "k")
        assert manager.acquire_lock("k", "holder1", acquire_timeout=0)
        second = fence(manager, "k")
        assert first is not None
        assert second is not None
        assert second > first
        assert manager.is_lock_holder("k", "holder1")

    def test_reacquire_extends_the_lease(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """A same-holder re-acquire extends the lease from now (Prefect's memory manager does not
        extend it; sqlresults does, like the file-system manager)."""
        manager = clocked_manager
        assert manager.acquire_lock("k", "holder1", hold_timeout=10)
        clock.advance(8)
        assert manager.acquire_lock("k", "holder1", acquire_timeout=0, hold_timeout=10)
        clock.advance(8)  # 16 s after the first acquire, 8 s after the second
        assert manager.is_lock_holder("k", "holder1")
        clock.advance(2.5)
        assert not manager.is_locked("k")

    def test_other_holder_with_zero_timeout_gets_false(self, manager: SQLLockManager) -> None:
        """acquire_timeout=0 tries exactly once: another holder gets False without waiting
        (Prefect's file manager blocks forever here); the lock stays the first holder's."""
        manager.acquire_lock("k", "holder1")
        before = fence(manager, "k")
        assert manager.acquire_lock("k", "holder2", acquire_timeout=0) is False
        assert manager.is_lock_holder("k", "holder1")
        assert fence(manager, "k") == before

    def test_other_holder_with_timeout_gets_false(self, manager: SQLLockManager) -> None:
        """Behaviour 51: held by holder1, holder2 with acquire_timeout=0.1 gets False when the
        timeout runs out; holder1 keeps the lock."""
        manager.acquire_lock("k", "holder1")
        assert manager.acquire_lock("k", "holder2", acquire_timeout=0.1) is False
        assert manager.is_lock_holder("k", "holder1")

    def test_acquire_without_timeout_waits_until_released(self, manager: SQLLockManager) -> None:
        """Behaviour 55: a waiter with acquire_timeout=None blocks until the holder (in another
        thread) releases, then gets the lock."""
        manager.acquire_lock("k", "holder1")
        events: list[str] = []
        waiting = threading.Event()
        results: list[bool] = []

        def waiter() -> None:
            waiting.set()
            results.append(manager.acquire_lock("k", "holder2"))
            events.append("holder2 acquired")

        thread = run_in_thread(waiter)
        assert waiting.wait(JOIN_TIMEOUT)
        assert manager.is_lock_holder("k", "holder1")
        events.append("holder1 releasing")
        manager.release_lock("k", "holder1")
        join(thread)
        assert events == ["holder1 releasing", "holder2 acquired"]
        assert results == [True]
        assert manager.is_lock_holder("k", "holder2")

    def test_handoff_across_threads(self, manager: SQLLockManager) -> None:
        """Behaviour 55: a lock taken and released in a worker thread is then acquired in the
        main thread; holders are names, not threads."""
        taken = threading.Event()
        release = threading.Event()

        def worker() -> None:
            manager.acquire_lock("k", "worker")
            taken.set()
            release.wait(JOIN_TIMEOUT)
            manager.release_lock("k", "worker")

        thread = run_in_thread(worker)
        assert taken.wait(JOIN_TIMEOUT)
        assert manager.acquire_lock("k", "main", acquire_timeout=0) is False
        release.set()
        assert manager.acquire_lock("k", "main", acquire_timeout=JOIN_TIMEOUT)
        join(thread)
        assert manager.is_lock_holder("k", "main")
        # A holder name is not tied to the thread that acquired it.
        run = run_in_thread(manager.release_lock, "k", "main")
        join(run)
        assert not manager.is_locked("k")


class TestLeases:
    def test_lock_expires_after_its_hold_timeout(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """Behaviour 50: once hold_timeout elapses the key is unlocked, for is_locked,
        is_lock_holder and wait_for_lock alike."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=5)
        clock.advance(4.9)
        assert manager.is_lock_holder("k", "holder1")
        assert manager.wait_for_lock("k", timeout=0) is False
        clock.advance(0.2)
        assert not manager.is_locked("k")
        assert not manager.is_lock_holder("k", "holder1")
        assert manager.wait_for_lock("k", timeout=0) is True

    def test_expired_lock_is_acquirable_by_another_holder(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """Behaviour 50: after holder1's lease runs out, holder2 acquires (without a timeout:
        it must not wait for a lock nobody holds)."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=1)
        clock.advance(1)
        assert manager.acquire_lock("k", "holder2")
        assert manager.is_lock_holder("k", "holder2")
        assert not manager.is_lock_holder("k", "holder1")

    def test_default_lease_comes_from_the_manager(
        self, clocked_database: Database, namespace: str, clock: FakeClock
    ) -> None:
        """An acquire without hold_timeout gets default_hold_timeout: every lock has a lease,
        so a crashed holder's key frees by itself (Prefect's locks may be held forever)."""
        manager = SQLLockManager(clocked_database, namespace=namespace, default_hold_timeout=30)
        manager.acquire_lock("k", "holder1")
        clock.advance(29)
        assert manager.is_locked("k")
        clock.advance(2)
        assert not manager.is_locked("k")

    def test_default_lease_from_settings(
        self,
        clocked_database: Database,
        namespace: str,
        clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """SQLRESULTS_LOCK_HOLD_TIMEOUT sets the lease of the store's locks."""
        monkeypatch.setenv("SQLRESULTS_LOCK_HOLD_TIMEOUT", "20")
        store = ResultStore(result_storage=clocked_database, namespace=namespace)
        assert store.acquire_lock("k", holder="holder1")
        clock.advance(19)
        assert store.is_lock_holder("k", "holder1")
        clock.advance(2)
        assert not store.is_locked("k")


class TestLeaseStartsWhenTheRowIsWritten:
    """A lease runs from the moment its row is written, never from before the statement ran:
    first-use migration or busy retries must not eat it (issue: "a lease can start in the
    past")."""

    def test_first_use_migration_does_not_eat_the_lease(
        self,
        empty_database_url: str,
        namespace: str,
        clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The first acquire on an unmigrated database migrates it first; the migration takes
        10 s of the (fake) clock, and a 1 s lease must still be held when acquire returns."""
        from sqlresults import migrations

        upgrade = migrations.upgrade

        def slow_upgrade(database: Database, *args: Any, **kwargs: Any) -> Any:
            clock.advance(10)
            return upgrade(database, *args, **kwargs)

        monkeypatch.setattr(migrations, "upgrade", slow_upgrade)
        database = Database(empty_database_url, auto_migrate=True, clock=clock)
        try:
            manager = SQLLockManager(database, namespace=namespace)
            assert manager.acquire_lock("k", "holder1", hold_timeout=1)
            assert manager.is_lock_holder("k", "holder1")
            clock.advance(0.9)
            assert manager.is_lock_holder("k", "holder1")
            clock.advance(0.2)
            assert not manager.is_locked("k")
        finally:
            database.close()

    def test_busy_retries_do_not_eat_the_lease(
        self,
        tmp_path: Path,
        request: pytest.FixtureRequest,
        namespace: str,
        clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """SQLite: another connection holds the write lock, and the acquire retries while 10 s
        of the clock pass; its 1 s lease starts when the retry finally writes the row."""
        import shutil
        import sqlite3

        from sqlresults import database as database_module

        path = tmp_path / "busy.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        database = Database(f"sqlite:///{path}", clock=clock)
        manager = SQLLockManager(database, namespace=namespace)
        assert not manager.is_locked("warm-up")  # connect (and check the schema) first
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")

        class SlowBackoff(database_module.Backoff):  # type: ignore[misc]
            def sleep(self) -> None:
                # The first busy retry: 10 s pass and the other connection lets go.
                if blocker.in_transaction:
                    clock.advance(10)
                    blocker.execute("COMMIT")
                super().sleep()

        monkeypatch.setattr(database_module, "Backoff", SlowBackoff)
        try:
            assert manager.acquire_lock("k", "holder1", hold_timeout=1)
            assert not blocker.in_transaction  # the acquire really had to retry
            assert manager.is_lock_holder("k", "holder1")
        finally:
            blocker.close()
            database.close()


class TestRelease:
    def test_wrong_holder_release_raises_and_leaves_the_lock(self, manager: SQLLockManager) -> None:
        """Behaviour 52: a release by the wrong holder raises LockNotHeldError, a ValueError
        with Prefect's message; the lock, fence included, is untouched."""
        manager.acquire_lock("k", "holder1")
        before = lock_rows(manager)
        with pytest.raises(LockNotHeldError) as caught:
            manager.release_lock("k", "holder2")
        assert isinstance(caught.value, ValueError)
        assert str(caught.value) == "No lock held by holder2 for transaction with key k"
        assert caught.value.key == "k"
        assert caught.value.holder == "holder2"
        assert lock_rows(manager) == before
        assert manager.is_lock_holder("k", "holder1")

    def test_release_of_a_never_locked_key_is_a_no_op(self, manager: SQLLockManager) -> None:
        """Behaviour 56: releasing a key nobody holds does nothing and raises nothing."""
        assert manager.release_lock("never-locked", "holder1") is None
        assert not manager.is_locked("never-locked")
        assert lock_rows(manager) == {}

    def test_release_after_own_lease_expired_is_a_no_op(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """Releasing one's own lock after its lease ran out, when nobody took it since, is a
        no-op (DESIGN §10 "Locks"); the key is free for others afterwards."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=1)
        clock.advance(5)
        manager.release_lock("k", "holder1")
        assert not manager.is_locked("k")
        assert manager.acquire_lock("k", "holder2", acquire_timeout=0)

    def test_release_after_another_holder_took_over_raises(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """Behaviour 56 / DESIGN §10: holder1's lease ran out and holder2 took the key; a late
        release by holder1 raises LockNotHeldError and never frees holder2's lock."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=1)
        clock.advance(2)
        assert manager.acquire_lock("k", "holder2", acquire_timeout=0, hold_timeout=10)
        before = lock_rows(manager)
        with pytest.raises(
            LockNotHeldError, match=r"^No lock held by holder1 for transaction with key k$"
        ):
            manager.release_lock("k", "holder1")
        assert lock_rows(manager) == before
        assert manager.is_lock_holder("k", "holder2")

    def test_wrong_holder_release_of_an_expired_lock_is_a_no_op(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """Once holder1's lease has run out nobody holds the key, so holder2's release is a
        no-op rather than an error."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=1)
        clock.advance(2)
        manager.release_lock("k", "holder2")
        assert not manager.is_locked("k")

    def test_store_release_with_wrong_holder(self, store: ResultStore) -> None:
        """Behaviour 52 through the store: ResultStore.release_lock raises the same error."""
        store.acquire_lock("k", holder="holder1")
        with pytest.raises(ValueError, match="No lock held by holder2 for transaction with key k"):
            store.release_lock("k", holder="holder2")
        assert store.is_lock_holder("k", "holder1")
        store.release_lock("k", holder="holder1")
        assert not store.is_locked("k")


class TestRenew:
    def test_renew_extends_the_holders_lease(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """renew_lock extends the holder's lease to hold_timeout seconds from now."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=10)
        clock.advance(9)
        assert manager.renew_lock("k", "holder1", hold_timeout=10) is True
        clock.advance(9)
        assert manager.is_lock_holder("k", "holder1")
        clock.advance(1.5)
        assert not manager.is_locked("k")

    def test_renew_by_another_holder_is_false_and_changes_nothing(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """renew_lock by a holder that does not hold the lock returns False; the owner's lease
        is not extended."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=10)
        before = lock_rows(manager)
        assert manager.renew_lock("k", "holder2", hold_timeout=100) is False
        assert lock_rows(manager) == before
        clock.advance(10)
        assert not manager.is_locked("k")

    def test_renew_after_takeover_is_false(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """After holder2 took the expired key, holder1's renew returns False and leaves
        holder2's lock alone."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=1)
        clock.advance(2)
        manager.acquire_lock("k", "holder2", hold_timeout=10)
        before = lock_rows(manager)
        assert manager.renew_lock("k", "holder1", hold_timeout=100) is False
        assert lock_rows(manager) == before
        assert manager.is_lock_holder("k", "holder2")

    def test_renew_of_a_free_key_is_false(self, manager: SQLLockManager) -> None:
        """renew_lock on a key nobody locked returns False and creates no lock."""
        assert manager.renew_lock("k", "holder1") is False
        assert not manager.is_locked("k")

    def test_renew_after_own_lease_ran_out_unclaimed(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """As documented: renewing after one's own lease ran out, when nobody took the key
        since, succeeds and holds the key again."""
        manager = clocked_manager
        manager.acquire_lock("k", "holder1", hold_timeout=1)
        clock.advance(2)
        assert manager.renew_lock("k", "holder1", hold_timeout=10) is True
        assert manager.is_lock_holder("k", "holder1")

    def test_store_renew_lock(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        """ResultStore.renew_lock: True for the holder (lease extended), False for others."""
        store = clocked_store
        store.acquire_lock("k", holder="holder1", hold_timeout=5)
        clock.advance(4)
        assert store.renew_lock("k", holder="holder1", hold_timeout=5)
        assert not store.renew_lock("k", holder="holder2", hold_timeout=5)
        clock.advance(4)
        assert store.is_lock_holder("k", "holder1")


class TestWaitForLock:
    def test_never_locked_key(self, manager: SQLLockManager) -> None:
        """Behaviour 54: wait_for_lock on a never-locked key is True."""
        assert manager.wait_for_lock("k") is True
        assert manager.wait_for_lock("k", timeout=0) is True

    def test_held_lock_times_out_and_stays_held(self, manager: SQLLockManager) -> None:
        """Behaviour 54: wait_for_lock(timeout=0.1) on a held lock is False, and the lock is
        still held afterwards."""
        manager.acquire_lock("k", "holder1")
        assert manager.wait_for_lock("k", timeout=0.1) is False
        assert manager.is_lock_holder("k", "holder1")

    def test_expired_lock(self, clocked_manager: SQLLockManager, clock: FakeClock) -> None:
        """Behaviour 54: a lock whose hold expired is free for wait_for_lock."""
        clocked_manager.acquire_lock("k", "holder1", hold_timeout=1)
        clock.advance(1.5)
        assert clocked_manager.wait_for_lock("k", timeout=0) is True

    def test_waits_for_a_release_without_taking_the_lock(self, manager: SQLLockManager) -> None:
        """Behaviour 54: a waiter without timeout returns True once the holder releases, and
        does not take the lock itself."""
        manager.acquire_lock("k", "holder1")
        events: list[str] = []
        waiting = threading.Event()

        def waiter() -> None:
            waiting.set()
            events.append(f"free={manager.wait_for_lock('k')}")

        thread = run_in_thread(waiter)
        assert waiting.wait(JOIN_TIMEOUT)
        events.append("released")
        manager.release_lock("k", "holder1")
        join(thread)
        assert events == ["released", "free=True"]
        assert not manager.is_locked("k")


class TestAsync:
    def test_aacquire_lock(self, manager: SQLLockManager) -> None:
        """aacquire_lock: True for a free key, idempotent for the holder, False for another
        holder with timeout=0."""

        async def scenario() -> list[bool]:
            return [
                await manager.aacquire_lock("k", "holder1"),
                await manager.aacquire_lock("k", "holder1", acquire_timeout=0),
                await manager.aacquire_lock("k", "holder2", acquire_timeout=0),
                await manager.aacquire_lock("k", "holder2", acquire_timeout=0.1),
            ]

        assert asyncio.run(scenario()) == [True, True, False, False]
        assert manager.is_lock_holder("k", "holder1")

    def test_waiting_does_not_block_the_event_loop(self, manager: SQLLockManager) -> None:
        """An awaiting aacquire_lock lets other tasks run: the task that releases the lock runs
        while the waiter waits, and the waiter then gets the lock."""
        manager.acquire_lock("k", "holder1")
        events: list[str] = []

        async def waiter() -> None:
            got = await manager.aacquire_lock("k", "holder2", acquire_timeout=JOIN_TIMEOUT)
            events.append(f"holder2 acquired={got}")

        async def releaser() -> None:
            await asyncio.sleep(0.05)
            events.append("holder1 releasing")
            await asyncio.to_thread(manager.release_lock, "k", "holder1")

        async def scenario() -> None:
            await asyncio.gather(waiter(), releaser())

        asyncio.run(scenario())
        assert events == ["holder1 releasing", "holder2 acquired=True"]
        assert manager.is_lock_holder("k", "holder2")

    def test_await_for_lock(self, manager: SQLLockManager) -> None:
        """await_for_lock: True for a free key, False on timeout while held (still held), True
        once the holder releases in another task."""
        manager.acquire_lock("k", "holder1")
        events: list[str] = []

        async def scenario() -> list[bool]:
            free_other = await manager.await_for_lock("other")
            timed_out = await manager.await_for_lock("k", timeout=0.1)

            async def release_soon() -> None:
                await asyncio.sleep(0.05)
                events.append("released")
                await asyncio.to_thread(manager.release_lock, "k", "holder1")

            task = asyncio.create_task(release_soon())
            freed = await manager.await_for_lock("k", timeout=JOIN_TIMEOUT)
            events.append("freed")
            await task
            return [free_other, timed_out, freed]

        assert asyncio.run(scenario()) == [True, False, True]
        assert events == ["released", "freed"]

    def test_store_async_lock_api(self, store: ResultStore) -> None:
        """ResultStore.aacquire_lock and await_for_lock behave like their sync twins."""

        async def scenario() -> list[bool]:
            return [
                await store.aacquire_lock("k", holder="holder1"),
                await store.aacquire_lock("k", holder="holder2", timeout=0),
                await store.await_for_lock("k", timeout=0),
            ]

        assert asyncio.run(scenario()) == [True, False, False]
        store.release_lock("k", holder="holder1")
        assert asyncio.run(store.await_for_lock("k", timeout=0)) is True


class TestNamespaces:
    def test_namespaces_do_not_share_locks(self, database: Database, namespace: str) -> None:
        """DESIGN §10 "Namespaces": a lock in one namespace neither blocks nor is released by
        the same key in another."""
        first = SQLLockManager(database, namespace=namespace)
        second = SQLLockManager(database, namespace=namespace + "-other")
        assert first.acquire_lock("k", "holder1", acquire_timeout=0)
        assert not second.is_locked("k")
        assert second.acquire_lock("k", "holder2", acquire_timeout=0)
        second.release_lock("k", "holder2")
        assert first.is_lock_holder("k", "holder1")
        first.release_lock("k", "holder1")
        assert not first.is_locked("k")

    def test_store_writes_ignore_other_namespaces_locks(
        self, database: Database, namespace: str
    ) -> None:
        """A lock in namespace A does not stop a write to the same key in namespace B."""
        a = ResultStore(result_storage=database, namespace=namespace)
        b = ResultStore(result_storage=database, namespace=namespace + "-b")
        a.acquire_lock("k", holder="holder1")
        b.write("b's value", key="k", holder="holder2")
        assert b.read("k").result == "b's value"
        assert not a.exists("k")


BAD_CALLS = {
    "acquire empty key": lambda m: m.acquire_lock("", "holder2"),
    "acquire non-string key": lambda m: m.acquire_lock(42, "holder2"),
    "acquire over-long key": lambda m: m.acquire_lock("x" * 1025, "holder2"),
    "acquire empty holder": lambda m: m.acquire_lock("k", ""),
    "acquire None holder": lambda m: m.acquire_lock("k", None),
    "acquire negative timeout": lambda m: m.acquire_lock("k", "holder2", acquire_timeout=-1),
    "acquire NaN timeout": lambda m: m.acquire_lock("k", "holder2", acquire_timeout=math.nan),
    "acquire negative hold": lambda m: m.acquire_lock("free", "holder2", hold_timeout=-1),
    "acquire negative hold, own key": lambda m: m.acquire_lock("k", "holder1", hold_timeout=-5),
    "acquire zero hold": lambda m: m.acquire_lock("free", "holder2", hold_timeout=0),
    "renew to a zero hold": lambda m: m.renew_lock("k", "holder1", hold_timeout=0),
    "release empty key": lambda m: m.release_lock("", "holder1"),
    "release empty holder": lambda m: m.release_lock("k", ""),
    "renew negative hold": lambda m: m.renew_lock("k", "holder1", hold_timeout=-1),
    "renew empty holder": lambda m: m.renew_lock("k", ""),
    "acquire NUL holder": lambda m: m.acquire_lock("free", "holder\x00"),
    "acquire lone-surrogate holder": lambda m: m.acquire_lock("free", "holder\ud800"),
    "release NUL holder": lambda m: m.release_lock("k", "holder1\x00"),
    "renew NUL holder": lambda m: m.renew_lock("k", "holder1\x00"),
    "is_locked empty key": lambda m: m.is_locked(""),
    "is_lock_holder empty holder": lambda m: m.is_lock_holder("k", ""),
    "wait negative timeout": lambda m: m.wait_for_lock("k", timeout=-1),
    "wait empty key": lambda m: m.wait_for_lock(""),
}


class TestBadInput:
    @pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
    def test_bad_input_raises_and_changes_nothing(self, manager: SQLLockManager, call: Any) -> None:
        """DESIGN §4: an empty key or holder, a negative timeout, or a lease of zero seconds
        raises InvalidArgumentError (a ValueError) and changes nothing in the database."""
        manager.acquire_lock("k", "holder1")
        before = lock_rows(manager)
        with pytest.raises(InvalidArgumentError):
            call(manager)
        assert lock_rows(manager) == before

    @pytest.mark.parametrize("lease", [0, -1, -5.5, math.nan], ids=repr)
    @pytest.mark.parametrize("method", ["acquire_lock", "renew_lock"])
    def test_one_lease_rule_one_message(
        self, manager: SQLLockManager, method: str, lease: float
    ) -> None:
        """A lease of zero or less gets the same message from every entry point, whatever
        the value: hold_timeout must be more than zero seconds."""
        manager.acquire_lock("k", "holder1")
        with pytest.raises(InvalidArgumentError) as caught:
            getattr(manager, method)("k", "holder1", hold_timeout=lease)
        assert str(caught.value).startswith(
            f"hold_timeout must be more than zero seconds, not {lease!r}"
        )

    def test_bad_key_is_an_invalid_key_error(self, manager: SQLLockManager) -> None:
        """A bad key raises InvalidKeyError naming the limit."""
        with pytest.raises(InvalidKeyError, match="1024 bytes"):
            manager.acquire_lock("é" * 513, "holder1")
        with pytest.raises(InvalidKeyError, match="empty"):
            manager.acquire_lock("", "holder1")

    def test_store_bad_input(self, store: ResultStore) -> None:
        """The store's lock methods validate the same way, before touching the database."""
        with pytest.raises(InvalidArgumentError):
            store.acquire_lock("", holder="holder1")
        with pytest.raises(InvalidArgumentError):
            store.acquire_lock("k", holder="holder1", timeout=-1)
        with pytest.raises(InvalidArgumentError):
            store.wait_for_lock("k", timeout=-0.5)
        assert not store.is_locked("k")


class TestStoreLocks:
    def test_read_waits_for_the_holder(self, store: ResultStore) -> None:
        """Behaviour 46: while holder1 holds the key, a reader in another thread blocks until
        holder1 writes and releases, then gets the value."""
        store.acquire_lock("k", holder="holder1")
        events: list[str] = []
        reading = threading.Event()

        def reader() -> None:
            reading.set()
            value = store.read("k").result
            events.append(f"read {value}")

        thread = run_in_thread(reader)
        assert reading.wait(JOIN_TIMEOUT)
        events.append("writing")
        store.write("computed", key="k", holder="holder1")
        store.release_lock("k", holder="holder1")
        join(thread)
        assert events == ["writing", "read computed"]

    def test_read_never_misses_a_write_made_while_it_looked(
        self, store: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Behaviour 46, the race made deterministic: the reader finds no record while holder1
        holds the lock, and holder1 writes and releases right then (between the reader's
        statements). The reader must still end up with holder1's value: the lock it saw
        promised a result, so "not found" would be a wrong answer."""
        database = store.result_storage
        original = database.fetchone
        interleaved: list[str] = []

        def fetchone(query: Any, params: Any) -> Any:
            row = original(query, params)
            # After the reader's first look at the record, whichever statement it used.
            if query in (queries.record_fetch, queries.record_read) and not interleaved:
                interleaved.append("holder1 wrote and released")
                store.write("computed", key="k", holder="holder1")
                store.release_lock("k", holder="holder1")
            return row

        store.acquire_lock("k", holder="holder1")
        monkeypatch.setattr(database, "fetchone", fetchone)
        assert store.read("k", holder="reader").result == "computed"
        assert interleaved == ["holder1 wrote and released"]

    def test_write_with_the_default_holder(self, store: ResultStore) -> None:
        """Behaviour 47: acquire_lock with the default holder, then write with the default
        holder: the write succeeds."""
        assert store.acquire_lock("k")
        assert store.is_lock_holder("k")
        store.write("value", key="k")
        assert store.read("k").result == "value"
        store.release_lock("k")
        assert not store.is_locked("k")

    def test_write_refused_for_another_holder(self, store: ResultStore) -> None:
        """Behaviour 48: locked by holder1, write(holder="holder2") raises
        LockHeldByOtherError, a RuntimeError with Prefect's message; nothing is written."""
        store.write("old", key="k", holder="holder1")
        store.acquire_lock("k", holder="holder1")
        with pytest.raises(LockHeldByOtherError) as caught:
            store.write("new", key="k", holder="holder2")
        assert isinstance(caught.value, RuntimeError)
        assert str(caught.value) == (
            "Cannot write to result record with key k because it is locked by another holder."
        )
        assert store.read("k", holder="holder1").result == "old"
        assert store.is_lock_holder("k", "holder1")

    def test_write_refused_leaves_no_record(self, store: ResultStore) -> None:
        """A refused write of a new key leaves no record behind."""
        store.acquire_lock("k", holder="holder1")
        with pytest.raises(LockHeldByOtherError):
            store.write("new", key="k", holder="holder2")
        assert not store.exists("k")
        with pytest.raises(RecordNotFoundError):
            store.read("k", holder="holder1")

    def test_write_allowed_for_the_holder(self, store: ResultStore) -> None:
        """The holder's own write succeeds and keeps the lock (write does not release)."""
        store.acquire_lock("k", holder="holder1")
        store.write("mine", key="k", holder="holder1")
        assert store.read("k", holder="holder1").result == "mine"
        assert store.is_lock_holder("k", "holder1")

    def test_write_allowed_after_the_lease_expired(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """Once holder1's lease has run out, holder2 may write: a dead holder never blocks a
        key for longer than its lease."""
        store = clocked_store
        store.acquire_lock("k", holder="holder1", hold_timeout=5)
        with pytest.raises(LockHeldByOtherError):
            store.write("early", key="k", holder="holder2")
        clock.advance(5)
        store.write("late", key="k", holder="holder2")
        assert store.read("k", holder="holder2").result == "late"

    def test_persist_and_release_in_one_step(self, store: ResultStore) -> None:
        """persist_result_record(release_lock=True) writes the record and frees the holder's
        lock together."""
        store.acquire_lock("k", holder="holder1")
        record = store.create_result_record({"a": 1}, key="k")
        store.persist_result_record(record, holder="holder1", release_lock=True)
        assert not store.is_locked("k")
        assert store.read("k").result == {"a": 1}

    def test_refused_persist_and_release_changes_nothing(self, store: ResultStore) -> None:
        """persist_result_record(release_lock=True) by a non-holder is refused as a whole:
        nothing is written and the holder's lock stays."""
        store.acquire_lock("k", holder="holder1")
        rows_before = lock_rows(store.lock_manager)  # type: ignore[arg-type]
        record = store.create_result_record("intruder", key="k")
        with pytest.raises(LockHeldByOtherError):
            store.persist_result_record(record, holder="holder2", release_lock=True)
        assert lock_rows(store.lock_manager) == rows_before  # type: ignore[arg-type]
        assert not store.exists("k")

    def test_stale_holders_write_is_fenced(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """holder1 took the lock; its lease ran out, holder2 took the key, wrote "B" and
        released. holder1's later write (it still believes it holds the lock) raises
        LeaseLostError and writes nothing: the lock it acquired is gone."""
        store = clocked_store
        assert store.acquire_lock("k", holder="holder1", hold_timeout=5)
        clock.advance(6)
        assert store.acquire_lock("k", holder="holder2", timeout=0)
        store.write("B", key="k", holder="holder2")
        store.release_lock("k", holder="holder2")
        with pytest.raises(LeaseLostError, match="'k'"):
            store.write("A", key="k", holder="holder1")
        with pytest.raises(LeaseLostError, match="'k'"):
            store.persist_result_record(
                store.create_result_record("A", key="k"), holder="holder1", release_lock=True
            )
        assert store.read("k").result == "B"
        assert not store.is_locked("k")

    def test_stale_holders_delete_is_fenced(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """Deletes are fenced like writes: holder1 lost its lock to holder2, which wrote "B";
        holder1's delete raises LeaseLostError and "B" stays. Once told, holder1 knows it holds
        nothing: its next delete is an ordinary one, refused while holder2 holds the key."""
        store = clocked_store
        assert store.acquire_lock("k", holder="holder1", hold_timeout=5)
        clock.advance(6)
        assert store.acquire_lock("k", holder="holder2", timeout=0)
        store.write("B", key="k", holder="holder2")
        with pytest.raises(LeaseLostError, match="'k'"):
            store.delete("k", holder="holder1")
        assert store.read("k", holder="holder2").result == "B"
        with pytest.raises(LockHeldByOtherError):
            store.delete("k", holder="holder1")

    def test_holder_deletes_under_its_lock(self, store: ResultStore) -> None:
        """A holder that still has its lock deletes (True), and deleting a missing key under
        the lock is not an error (False)."""
        store.write("v", key="k")
        assert store.acquire_lock("k", holder="holder1")
        assert store.delete("k", holder="holder1") is True
        assert store.delete("k", holder="holder1") is False
        assert store.is_lock_holder("k", "holder1")

    def test_release_lock_true_needs_the_lock(self, store: ResultStore) -> None:
        """persist_result_record(release_lock=True) says "I hold the lock and release it with
        this write": without the lock it raises LeaseLostError and writes nothing."""
        record = store.create_result_record("v", key="k")
        with pytest.raises(LeaseLostError):
            store.persist_result_record(record, holder="holder1", release_lock=True)
        assert not store.exists("k")

    def test_holder_writes_after_release_are_plain_writes(self, store: ResultStore) -> None:
        """Once a holder released its lock, its writes are ordinary unlocked writes again
        (Prefect: no lock is needed to write), not fenced ones."""
        assert store.acquire_lock("k", holder="holder1")
        store.release_lock("k", holder="holder1")
        store.write("v", key="k", holder="holder1")
        assert store.read("k").result == "v"

    def test_renewed_fence_survives_a_reacquire_by_the_same_holder(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """Re-acquiring as the same holder bumps the fence; the holder's writes follow the new
        fence and keep working."""
        store = clocked_store
        assert store.acquire_lock("k", holder="holder1", hold_timeout=5)
        assert store.acquire_lock("k", holder="holder1", hold_timeout=5)
        assert store.renew_lock("k", holder="holder1", hold_timeout=5)
        store.write("v", key="k", holder="holder1")
        assert store.read("k", holder="holder1").result == "v"

    def test_delete_refused_for_another_holder(self, store: ResultStore) -> None:
        """delete() by a holder that does not hold the key's lock is refused; the holder may
        delete."""
        store.write("v", key="k")
        store.acquire_lock("k", holder="holder1")
        with pytest.raises(LockHeldByOtherError):
            store.delete("k", holder="holder2")
        assert store.exists("k")
        assert store.delete("k", holder="holder1") is True
        assert not store.exists("k")

    def test_sweep_removes_only_dead_lock_rows(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """sweep_expired deletes lock rows whose lease ended and keeps live locks; dead lock
        rows are not counted in its return value (DESIGN §10 "Store return values")."""
        store = clocked_store
        manager = store.lock_manager
        assert isinstance(manager, SQLLockManager)
        store.acquire_lock("dead", holder="holder1", hold_timeout=1)
        store.acquire_lock("live", holder="holder2", hold_timeout=100)
        store.write("kept", key="record", holder="holder3")
        clock.advance(10)
        assert set(lock_rows(manager)) == {"dead", "live"}
        assert store.sweep_expired() == 0
        assert set(lock_rows(manager)) == {"live"}
        assert store.is_lock_holder("live", "holder2")
        assert store.read("record").result == "kept"
        assert store.stats().locks_held == 1

    def test_sweep_leaves_other_namespaces_alone(
        self, clocked_database: Database, namespace: str, clock: FakeClock
    ) -> None:
        """sweep_expired works within its store's namespace only."""
        mine = ResultStore(result_storage=clocked_database, namespace=namespace)
        theirs = ResultStore(result_storage=clocked_database, namespace=namespace + "-x")
        theirs.acquire_lock("dead", holder="holder1", hold_timeout=1)
        clock.advance(10)
        mine.sweep_expired()
        theirs_manager = theirs.lock_manager
        assert isinstance(theirs_manager, SQLLockManager)
        assert set(lock_rows(theirs_manager)) == {"dead"}


@pytest.mark.postgres
class TestReleaseNotifications:
    """PostgreSQL only: SQLite has no LISTEN/NOTIFY, so its waiters poll (tested above)."""

    def test_a_waiter_wakes_at_the_release_not_at_its_next_poll(
        self, postgres_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With every poll pause stretched to a minute, a waiter blocked in
        acquire_lock(timeout=None) still takes the lock once the holder releases it: the
        release statement announces itself and the listening waiter wakes up (or, if the
        release came before it listened, its check right after LISTEN finds the key free).
        Without either it would sleep out its pause and the hang guard would fire."""
        monkeypatch.setattr(locking, "_FIRST_POLL", 120.0)
        monkeypatch.setattr(locking, "_MAX_POLL", 120.0)
        manager = SQLLockManager(Database(postgres_url), namespace=namespace)
        assert manager.acquire_lock("k", "holder1")
        waiting = threading.Event()
        taken: list[bool] = []

        def waiter() -> None:
            waiting.set()
            taken.append(manager.acquire_lock("k", "holder2"))

        thread = run_in_thread(waiter)
        assert waiting.wait(JOIN_TIMEOUT)
        time.sleep(0.2)  # let the waiter start waiting; either order is covered, never measured
        manager.release_lock("k", "holder1")
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), "the waiter slept through the release announcement"
        assert taken == [True]
        assert manager.is_lock_holder("k", "holder2")

    def test_a_release_of_another_key_does_not_wake_a_waiter(
        self, postgres_url: str, namespace: str
    ) -> None:
        """The announcement names the namespace and key it frees: a waiter for another key
        sleeps its whole pause through another key's release."""
        database = Database(postgres_url)
        manager = SQLLockManager(database, namespace=namespace)
        manager.acquire_lock("other", "holder1")
        with database.wakeups(f"{namespace}/mine") as pause:
            manager.release_lock("other", "holder1")
            started = time.monotonic()
            pause(0.3)
            assert time.monotonic() - started >= 0.25


class TestPickling:
    def test_round_trip(self, manager: SQLLockManager) -> None:
        """A pickled lock manager unpickles to one on the same database, namespace and default
        lease, sharing the locks (before the fix: "cannot pickle '_thread._local'")."""
        restored = pickle.loads(pickle.dumps(manager))
        assert restored.namespace == manager.namespace
        assert restored.default_hold_timeout == manager.default_hold_timeout
        assert manager.acquire_lock("k", "holder1", acquire_timeout=0)
        assert restored.is_lock_holder("k", "holder1")
        assert restored.acquire_lock("k", "holder2", acquire_timeout=0) is False

    def test_a_spawned_worker_takes_a_lock_the_parent_sees(self, manager: SQLLockManager) -> None:
        """A lock manager sent to a spawn-based worker takes a lock there; the parent sees it
        held by the worker's holder and cannot take it."""
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            taken = pool.submit(use_pickled_lock_manager, manager, "k", "worker").result(120)
        assert taken is True
        assert manager.is_lock_holder("k", "worker")
        assert manager.acquire_lock("k", "parent", acquire_timeout=0) is False


# -- waits through outages (PostgreSQL) ----------------------------------------------------------


def outcome_of(call: Callable[[], Any]) -> Any:
    """What ``call()`` returned, or the exception it raised: a waiter's fate, to assert on."""
    try:
        return call()
    except Exception as exc:
        return exc


def _serializable_begin(store: ResultStore) -> Any:
    """Open a SERIALIZABLE transaction on "k" (its begin waits for the lock) and return the
    value it then finds written."""
    with transaction(
        "k", store, isolation_level=IsolationLevel.SERIALIZABLE, lock_timeout=JOIN_TIMEOUT
    ) as txn:
        record = txn.read()
    return None if record is None else record.result


# Waits on key "k" while "holder1" holds it, until it writes "computed" and releases: each
# takes the waiter's store and returns what the waiter gets, and what it should get.
WAITS: dict[str, tuple[Callable[[ResultStore], Any], Any]] = {
    "acquire_lock": (
        lambda store: store.lock_manager.acquire_lock("k", "waiter", acquire_timeout=60),
        True,
    ),
    "wait_for_lock": (lambda store: store.wait_for_lock("k", timeout=60), True),
    "read": (lambda store: store.read("k", holder="waiter").result, "computed"),
    "SERIALIZABLE transaction": (_serializable_begin, "computed"),
    "aacquire_lock": (
        lambda store: asyncio.run(store.lock_manager.aacquire_lock("k", "waiter", 60)),
        True,
    ),
    "await_for_lock": (lambda store: asyncio.run(store.await_for_lock("k", timeout=60)), True),
}
SYNC_WAITS = ["acquire_lock", "wait_for_lock", "read", "SERIALIZABLE transaction"]
ASYNC_WAITS = ["aacquire_lock", "await_for_lock"]


def write_and_release(holder: ResultStore) -> None:
    """What "holder1" does when it is done with "k"."""
    holder.write("computed", key="k", holder="holder1")
    holder.release_lock("k", holder="holder1")


def start_waiting(waiter: ResultStore, wait: str) -> tuple[threading.Thread, list[Any]]:
    """Run the wait named ``wait`` in a thread; the list receives its outcome."""
    call = WAITS[wait][0]
    outcome: list[Any] = []
    return run_in_thread(lambda: outcome.append(outcome_of(lambda: call(waiter)))), outcome


def end_sessions_mid_wait(
    wait: str,
    postgres_url: str,
    namespace: str,
    own_sessions: OwnSessions,
    waiting: Callable[[], set[int]],
) -> None:
    """Run the wait named ``wait`` on the test's own sessions while "holder1" holds "k"; once
    ``waiting()`` names sessions of the waiter, end them all; once it names new ones, the
    holder writes and releases the key, and the waiter must get what it waited for."""
    holder = ResultStore(result_storage=Database(postgres_url), namespace=namespace)
    waiter = ResultStore(result_storage=Database(own_sessions.url), namespace=namespace)
    assert holder.acquire_lock("k", holder="holder1", hold_timeout=300)
    thread, outcome = start_waiting(waiter, wait)
    wait_until(waiting, thread, outcome)
    ended = own_sessions.terminate()
    wait_until(lambda: waiting() - ended, thread, outcome)
    write_and_release(holder)
    join(thread)
    assert outcome == [WAITS[wait][1]]


class StatementWatch:
    """Watches the statements of a waiter's database: ``polled`` is set once it polls the
    lock's state (it is in its wait loop), and ``failures`` counts the statements that failed
    with StorageUnavailableError (the outage, met once per poll)."""

    def __init__(self, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.polled = threading.Event()
        self.failures = 0
        original = database.fetchone

        def fetchone(query: Any, params: Any) -> Any:
            if query is queries.lock_state:
                self.polled.set()
            try:
                return original(query, params)
            except StorageUnavailableError:
                self.failures += 1
                raise

        monkeypatch.setattr(database, "fetchone", fetchone)
        # Async waits on PostgreSQL run their statements on the asyncio path.
        aio = async_database(database)
        if aio is not None:
            original_async = aio.fetchone

            async def afetchone(query: Any, params: Any) -> Any:
                if query is queries.lock_state:
                    self.polled.set()
                try:
                    return await original_async(query, params)
                except StorageUnavailableError:
                    self.failures += 1
                    raise

            monkeypatch.setattr(aio, "fetchone", afetchone)


def wait_into_an_outage(
    private_server: PrivateServer, namespace: str, wait: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[ResultStore, StatementWatch, threading.Thread, list[Any]]:
    """Start the wait named ``wait`` on a store of its own on ``private_server``; once it polls
    the lock's state (it is in its wait loop), shut the server down. Returns the waiter's
    store, the watch on its statements, its thread and the list that receives its outcome."""
    database = Database(private_server.url)
    waiter = ResultStore(result_storage=database, namespace=namespace)
    watch = StatementWatch(database, monkeypatch)
    thread, outcome = start_waiting(waiter, wait)
    wait_until(watch.polled.is_set, thread, outcome)
    private_server.down()
    return waiter, watch, thread, outcome


@pytest.mark.postgres
class TestWaitsSurviveEndedSessions:
    """PostgreSQL only: the server ends a waiter's sessions while it waits (as a restart, a
    failover or an administrator's pg_terminate_backend does). The waiter reconnects and goes
    on waiting: no driver error escapes and the wait is not cut short. Only the test's own
    sessions are ended (tagged by application_name): other tests share the server."""

    @pytest.mark.parametrize("wait", SYNC_WAITS)
    def test_a_waiter_listens_again_and_wakes_at_the_release(
        self,
        wait: str,
        postgres_url: str,
        namespace: str,
        own_sessions: OwnSessions,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A waiter in acquire_lock, wait_for_lock, read of a locked key or a SERIALIZABLE
        transaction's begin has every session ended while it listens for the release. It
        listens again on a new session and, with every poll pause stretched to two minutes,
        still wakes at the holder's release and gets the lock or the value (before the fix:
        psycopg's OperationalError from the listening connection)."""
        monkeypatch.setattr(locking, "_FIRST_POLL", 120.0)
        monkeypatch.setattr(locking, "_MAX_POLL", 120.0)
        end_sessions_mid_wait(wait, postgres_url, namespace, own_sessions, own_sessions.listening)

    @pytest.mark.parametrize("wait", ASYNC_WAITS)
    def test_an_async_waiter_reconnects_and_goes_on_waiting(
        self, wait: str, postgres_url: str, namespace: str, own_sessions: OwnSessions
    ) -> None:
        """aacquire_lock and await_for_lock (awaited on asyncio connections) have every
        session ended mid-wait: the next poll reconnects, and the waiter gets the lock (or
        sees the key free) once the holder releases it."""
        end_sessions_mid_wait(wait, postgres_url, namespace, own_sessions, own_sessions.pids)


@pytest.mark.slow
@pytest.mark.postgres
class TestWaitsThroughAServerOutage:
    """PostgreSQL only, on a private server that the tests shut down and start again (the
    shared one must stay up for the other tests). The rule: a waiter rides out an outage for
    up to SQLRESULTS_BUSY_TIMEOUT seconds, then raises StorageUnavailableError; it never
    reports an outage as "still locked" (False) nor as "free"."""

    @pytest.mark.parametrize("wait", ["acquire_lock", "aacquire_lock"])
    def test_a_waiter_rides_out_a_restart(
        self,
        wait: str,
        private_server: PrivateServer,
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The server shuts down while a waiter waits, and the waiter's polls fail; the server
        comes back within the busy timeout. The waiter reconnects, goes on waiting and gets
        the lock when the holder (reconnected too) releases it. Before the fix: psycopg's
        OperationalError (sync) or StorageUnavailableError at the first failed poll (async)."""
        holder = ResultStore(result_storage=Database(private_server.url), namespace=namespace)
        assert holder.acquire_lock("k", holder="holder1", hold_timeout=300)
        waiter, watch, thread, outcome = wait_into_an_outage(
            private_server, namespace, wait, monkeypatch
        )
        wait_until(lambda: watch.failures, thread, outcome)
        private_server.up()
        holder.release_lock("k", holder="holder1")
        join(thread)
        assert outcome == [True]
        assert waiter.is_lock_holder("k", holder="waiter")

    @pytest.mark.parametrize("wait", ["acquire_lock", "await_for_lock"])
    def test_a_server_that_stays_down_ends_the_wait(
        self,
        wait: str,
        private_server: PrivateServer,
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The server shuts down during a 60 s wait and stays down: the waiter polls on
        through the outage until it has lasted SQLRESULTS_BUSY_TIMEOUT (here 0.5 s), then
        raises StorageUnavailableError; never psycopg's error, never False or True. (Before
        the fix it raised at the first failed poll.)"""
        holder = ResultStore(result_storage=Database(private_server.url), namespace=namespace)
        assert holder.acquire_lock("k", holder="holder1", hold_timeout=300)
        monkeypatch.setenv("SQLRESULTS_BUSY_TIMEOUT", "0.5")
        _, watch, thread, outcome = wait_into_an_outage(
            private_server, namespace, wait, monkeypatch
        )
        join(thread)
        assert [type(error) for error in outcome] == [StorageUnavailableError], outcome
        assert watch.failures > 1, "the waiter gave up at the first failed poll"

    @pytest.mark.parametrize("wait", ["wait_for_lock", "aacquire_lock"])
    def test_a_timeout_that_runs_out_during_an_outage_raises_the_outage(
        self,
        wait: str,
        private_server: PrivateServer,
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The waiter's own timeout runs out while the server is down, long before the busy
        timeout (30 s), and after it went on polling through the outage: it raises
        StorageUnavailableError, since nobody can know whether the key is still locked,
        rather than return False. (The test decides when the timeout runs out, so the order
        is certain. Before the fix the waiter raised at the first failed poll.)"""
        timed_out = threading.Event()

        class Deadline(Backoff):
            def expired(self) -> bool:
                return timed_out.is_set()

        monkeypatch.setattr(
            locking, "_lock_backoff", lambda timeout: Deadline(None, first=0.001, cap=0.05)
        )
        holder = ResultStore(result_storage=Database(private_server.url), namespace=namespace)
        assert holder.acquire_lock("k", holder="holder1", hold_timeout=300)
        _, watch, thread, outcome = wait_into_an_outage(
            private_server, namespace, wait, monkeypatch
        )
        wait_until(lambda: watch.failures > 1, thread, outcome)  # it goes on polling
        timed_out.set()
        join(thread)
        assert [type(error) for error in outcome] == [StorageUnavailableError], outcome
