"""Tests of sqlresults.async_results: the async record operations of ResultStore. On PostgreSQL
they await the database (no worker thread); on SQLite they run the sync methods in threads. On
both they keep every rule of the sync methods: checksum, lock-holder check, fencing, expiry."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from conftest import FakeClock, run_async
from sqlalchemy import update

from sqlresults import async_results
from sqlresults.database import Database
from sqlresults.errors import (
    IntegrityError,
    LeaseLostError,
    LockHeldByOtherError,
    LockTimeoutError,
    RecordNotFoundError,
)
from sqlresults.locking import IsolationLevel
from sqlresults.records import ResultRecord
from sqlresults.results import ResultStore
from sqlresults.schema import records
from sqlresults.transactions import atransaction


def tamper(database: Database, namespace: str, key: str) -> None:
    """Change a stored payload behind the store's back."""
    with database.engine.begin() as connection:
        connection.execute(
            update(records)
            .where(records.c.namespace == namespace, records.c.key == key)
            .values(payload=b"tampered")
        )


class TestSameRulesAsSync:
    """Both backends: what the async methods return and raise is what the sync ones do."""

    def test_round_trip(self, store: ResultStore) -> None:
        """awrite, aexists, aread and adelete agree with each other and with the sync
        methods."""

        async def scenario() -> list[Any]:
            await store.awrite({"a": 1}, key="k")
            record = ResultRecord.from_storage("k2", [2], store.serializer, None, None, None)
            await store.apersist_result_record(record)
            store.cache.clear()
            return [
                await store.aexists("k"),
                (await store.aread("k")).result,
                (await store.aread("k2")).result,
                await store.adelete("k"),
                await store.adelete("k"),
                await store.aexists("k"),
            ]

        assert run_async(scenario) == [True, {"a": 1}, [2], True, False, False]
        assert store.read("k2").result == [2]
        assert not store.exists("k")

    def test_missing_and_expired_records_are_not_found(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A missing key and an expired record raise RecordNotFoundError; an expired one is
        returned with include_expired."""
        clocked_store.write("old", key="k", expiration=timedelta(seconds=5))
        clock.advance(10)
        clocked_store.cache.clear()

        async def scenario() -> Any:
            with pytest.raises(RecordNotFoundError):
                await clocked_store.aread("missing")
            with pytest.raises(RecordNotFoundError):
                await clocked_store.aread("k")
            assert not await clocked_store.aexists("k")
            return (await clocked_store.aread("k", include_expired=True)).result

        assert run_async(scenario) == "old"

    def test_a_tampered_payload_fails_its_checksum(
        self, database: Database, namespace: str
    ) -> None:
        """A payload changed in the table is refused before it is deserialized."""
        store = ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )
        store.write("value", key="k")
        tamper(database, namespace, "k")
        with pytest.raises(IntegrityError, match="checksum"):
            run_async(lambda: store.aread("k"))

    def test_another_holders_lock_refuses_writes_and_deletes(self, store: ResultStore) -> None:
        """awrite and adelete under another holder's lock raise LockHeldByOtherError and
        change nothing; aread waits for the lock, up to lock_timeout."""
        store.write("before", key="k")
        assert store.acquire_lock("k", holder="holder1")

        async def scenario() -> None:
            with pytest.raises(LockHeldByOtherError):
                await store.awrite("after", key="k", holder="holder2")
            with pytest.raises(LockHeldByOtherError):
                await store.adelete("k", holder="holder2")
            with pytest.raises(LockTimeoutError):
                await store.aread("k", holder="holder2", lock_timeout=0.1)
            await store.awrite("mine", key="k", holder="holder1")

        run_async(scenario)
        store.release_lock("k", holder="holder1")
        assert store.read("k").result == "mine"

    def test_a_reader_waits_for_the_holders_write(self, store: ResultStore) -> None:
        """aread of a locked key waits until the holder writes and releases, and returns
        what it wrote."""
        assert store.acquire_lock("k", holder="holder1")

        async def holder() -> None:
            await asyncio.sleep(0.1)
            await store.awrite("computed", key="k", holder="holder1")
            await store._arelease_lock("k", holder="holder1")

        async def scenario() -> Any:
            read, _ = await asyncio.gather(store.aread("k", holder="holder2"), holder())
            return read.result

        assert run_async(scenario) == "computed"

    def test_a_holder_whose_lease_was_taken_over_cannot_write(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """Fencing: holder1's leases run out and holder2 takes the keys; holder1's late write
        and delete raise LeaseLostError and change nothing."""
        for key in ("w", "d"):
            clocked_store.write("holder2's", key=key)
            assert clocked_store.acquire_lock(key, holder="holder1", hold_timeout=1)
        clock.advance(5)
        for key in ("w", "d"):
            assert clocked_store.acquire_lock(key, holder="holder2", hold_timeout=60)
            clocked_store.release_lock(key, holder="holder2")

        async def scenario() -> None:
            with pytest.raises(LeaseLostError):
                await clocked_store.awrite("stale", key="w", holder="holder1")
            with pytest.raises(LeaseLostError):
                await clocked_store.adelete("d", holder="holder1")

        run_async(scenario)
        clocked_store.cache.clear()
        assert clocked_store.read("w").result == clocked_store.read("d").result == "holder2's"

    def test_a_large_payload_round_trips(
        self, store: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A payload over OFFLOAD_BYTES round-trips, its sealing, checking and deserializing
        run in worker threads (off the loop), on the asyncio path as on SQLite's threads."""
        value = b"x" * (async_results.OFFLOAD_BYTES * 2)
        offloaded: list[str] = []
        real_to_thread = asyncio.to_thread

        async def counting_to_thread(function: Any, /, *args: Any, **kwargs: Any) -> Any:
            offloaded.append(getattr(function, "__name__", repr(function)))
            return await real_to_thread(function, *args, **kwargs)

        monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)

        async def scenario() -> Any:
            await store.awrite(value, key="big")
            written = len(offloaded)
            store.cache.clear()
            result = (await store.aread("big")).result
            return written, len(offloaded) - written, result

        written, read, result = run_async(scenario)
        assert result == value
        assert written >= 1
        assert read >= 1


@pytest.mark.postgres
class TestNoThreadPerCall:
    def test_200_concurrent_areads_use_no_worker_thread(
        self, postgres_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """200 concurrent areads (memory cache off, so each goes to the database) complete
        with asyncio.to_thread and the loop's executor made to fail, and without a single new
        thread. (Before: each aread ran read() in a worker thread.)"""
        store = ResultStore(
            result_storage=Database(postgres_url),
            namespace=namespace,
            cache_result_in_memory=False,
        )
        for i in range(200):
            store.write(i, key=f"k{i}")

        def no_thread(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a worker thread was used")

        monkeypatch.setattr(asyncio, "to_thread", no_thread)
        monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", no_thread)
        peak = [0]

        async def scenario() -> list[Any]:
            async def read(i: int) -> Any:
                record = await store.aread(f"k{i}")
                peak[0] = max(peak[0], threading.active_count())
                return record.result

            before = threading.active_count()
            results = await asyncio.gather(*(read(i) for i in range(200)))
            peak[0] -= before
            return results

        assert run_async(scenario) == list(range(200))
        assert peak[0] == 0, "threads were started during the reads"

    def test_serializable_async_transactions_use_no_worker_thread(
        self, postgres_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """20 concurrent SERIALIZABLE atransactions on one key (lock, read, write and release
        in one database transaction) compute the value once, with asyncio.to_thread and the
        loop's executor made to fail. (Before: the write and the release ran in to_thread.)"""
        store = ResultStore(result_storage=Database(postgres_url), namespace=namespace)

        def no_thread(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a worker thread was used")

        monkeypatch.setattr(asyncio, "to_thread", no_thread)
        monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", no_thread)
        computed: list[int] = []

        async def compute_once(i: int) -> Any:
            async with atransaction("k", store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
                record = await txn.read() if txn.is_committed() else None
                if record is not None:
                    return record.result
                computed.append(i)
                await asyncio.sleep(0.01)
                txn.stage(f"value {i}")
            return f"value {i}"

        async def scenario() -> list[Any]:
            return list(await asyncio.gather(*(compute_once(i) for i in range(20))))

        results = run_async(scenario)
        assert len(computed) == 1
        assert results == [f"value {computed[0]}"] * 20
        assert not store.is_locked("k")

    def test_a_foreign_lock_manager_keeps_worker_threads(
        self, postgres_url: str, namespace: str
    ) -> None:
        """With locks kept elsewhere (Prefect's protocol), the store asks that manager's sync
        methods, as the sync path does: its async methods run in worker threads."""
        database = Database(postgres_url)
        other = ResultStore(result_storage=database, namespace=namespace + "-locks")
        store = ResultStore(
            result_storage=database, namespace=namespace, lock_manager=other.lock_manager
        )
        assert not store._has_async_path
        run_async(lambda: store.awrite("v", key="k"))
        assert run_async(lambda: store.aread("k")).result == "v"
