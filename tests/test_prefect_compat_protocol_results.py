"""Prefect's own result store tests, ported to run against ``sqlresults.prefect`` with Prefect
3.9.1 installed: ``tests/results/test_result_store.py`` and the result-store part of
``tests/test_transactions.py`` (``TestWithResultStore``) of Prefect (PrefectHQ/prefect@ce79dd3).

Prefect's ``ResultStore`` and transactions are the client; ``SQLResultStorage`` replaces
``LocalFileSystem`` as their storage (and metadata storage), and ``SQLLockManager`` replaces
``MemoryLockManager``. What Prefect's tests check on files (a result file exists, a metadata file
was removed) is checked, or done, here with sqlresults' own store on the same namespace. Each
test names the Prefect test it mirrors, and runs on SQLite and PostgreSQL; where sqlresults
differs on purpose, the test names the README "Differences from Prefect" row. The transaction
tests of ``TestWithResultStore`` are written once, in ``test_prefect_compat_transactions.py``
against sqlresults' transactions, and ``TestTransactionsWithResultStore`` runs them here with
Prefect's store and Prefect's sync and async transactions.

Not ported, and why:

- The flow and task tests of ``test_result_store.py`` (``test_root_flow_*``,
  ``test_child_flow_*``, ``test_task_*``, ``test_nested_flow_*``, ``test_default_storage_*``,
  ``test_result_store_from_task_*``, ``TestAsyncDispatch``, ``TestDefaultResultStorageResolution``,
  ``TestRemoteResultStorageConfiguration``): they test how Prefect picks a run's storage,
  serializer and persistence from settings and the server, which sqlresults does not change.
  Where the storage is sqlresults' (an unsaved instance, a saved block named by slug, read back
  through the API), real flows show it in ``test_prefect_flows.py``.
- ``test_default_result_store_exists_resolves_default_storage`` is ported as two stores on one
  ``SQLResultStorage`` configuration (Prefect's default storage is its local file system).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import prefect.transactions
import prefect.types._datetime
import pytest
import test_prefect_compat_transactions as compat
from conftest import run_async
from flavors import Flavor
from prefect.filesystems import NullFileSystem
from prefect.results import ResultRecord, ResultStore
from prefect.transactions import IsolationLevel, atransaction, transaction

from sqlresults.prefect import SQLLockManager, SQLResultStorage
from sqlresults.results import ResultStore as NativeStore

# Prefect's sync and async transactions, for the scenarios of tests/flavors.py.
PREFECT_SYNC = Flavor("sync", prefect.transactions.Transaction, transaction, IsolationLevel)
PREFECT_ASYNC = Flavor("async", prefect.transactions.AsyncTransaction, atransaction, IsolationLevel)


@pytest.fixture
def storage(database_url: str, namespace: str) -> SQLResultStorage:
    """Result storage in sqlresults (unsaved), in this test's namespace."""
    return SQLResultStorage(url=database_url, namespace=namespace)


@pytest.fixture
def metadata_storage(database_url: str, namespace: str) -> SQLResultStorage:
    """Metadata storage in sqlresults: a namespace of its own (results and their metadata are
    stored under the same keys)."""
    return SQLResultStorage(url=database_url, namespace=f"{namespace}-metadata")


@pytest.fixture
def native(database_url: str, namespace: str) -> NativeStore:
    """sqlresults' own store on the results' namespace: what Prefect's tests do on files."""
    return NativeStore(result_storage=database_url, namespace=namespace)


@pytest.fixture
def result_store(storage: SQLResultStorage, database_url: str, namespace: str) -> ResultStore:
    """Prefect's store on sqlresults storage and locks (Prefect's fixture: a LocalFileSystem
    and a MemoryLockManager)."""
    return ResultStore(
        result_storage=storage, lock_manager=SQLLockManager(database_url, namespace=namespace)
    )


@pytest.fixture
def advance_time(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """Move Prefect's clock (``prefect.types._datetime.now``) forward, as Prefect's fixture
    of the same name does."""
    offset = timedelta()
    real_now = prefect.types._datetime.now

    def now(tz: Any = "UTC") -> datetime:
        return real_now(tz) + offset

    def advance(by: timedelta) -> None:
        nonlocal offset
        offset += by

    monkeypatch.setattr(prefect.types._datetime, "now", now)
    return advance


def later(seconds: float) -> datetime:
    return prefect.types._datetime.now("UTC") + timedelta(seconds=seconds)


class TestResultStore:
    def test_create_result_record(self, storage: SQLResultStorage) -> None:
        """A record created by the store carries its serializer type and the storage's block
        id (for an unsaved ``SQLResultStorage``, its provisional id).

        Prefect: tests/results/test_result_store.py::test_create_result_record
        """
        store = ResultStore(result_storage=storage)
        record = store.create_result_record({"foo": "bar"})
        assert isinstance(record, ResultRecord)
        assert record.metadata.serializer.type == store.serializer.type
        assert record.metadata.storage_block_id == store.result_storage_block_id
        assert store.result_storage_block_id == storage._block_document_id
        assert record.result == {"foo": "bar"}

    def test_read_and_write_with_metadata_storage(
        self, storage: SQLResultStorage, metadata_storage: SQLResultStorage
    ) -> None:
        """With metadata stored apart, the result storage holds the serializer's bytes and
        the metadata storage the metadata JSON, each exactly as Prefect wrote it.

        Prefect: tests/results/test_result_store.py::
        test_result_store_read_and_write_with_metadata_storage
        """
        result_store = ResultStore(metadata_storage=metadata_storage, result_storage=storage)
        key = "test"
        value = "test"

        async def write_and_read() -> Any:
            await result_store.awrite(key=key, obj=value)
            return await result_store.aread(key=key)

        read_value = run_async(write_and_read)
        assert read_value.result == value
        assert result_store.serializer.loads(storage.read_path(key)) == value
        assert metadata_storage.read_path(key).decode() == read_value.metadata.model_dump_json(
            serialize_as_any=True
        )

    def test_exists_with_metadata_storage(
        self,
        storage: SQLResultStorage,
        metadata_storage: SQLResultStorage,
        database_url: str,
    ) -> None:
        """``exists`` follows the metadata: once the metadata is deleted the result is not
        found, though its bytes are still stored.

        Prefect: tests/results/test_result_store.py::test_result_store_exists_with_metadata_storage
        """
        result_store = ResultStore(metadata_storage=metadata_storage, result_storage=storage)
        key = "test"
        run_async(lambda: result_store.awrite(key=key, obj="test"))

        assert run_async(lambda: result_store.aexists(key=key))
        assert not run_async(lambda: result_store.aexists(key="nonexistent"))
        assert result_store.exists(key=key)
        assert not result_store.exists(key="nonexistent")

        # Remove the metadata and check that the result is not found
        assert NativeStore(
            result_storage=database_url, namespace=metadata_storage.namespace
        ).delete(key)
        assert not run_async(lambda: result_store.aexists(key=key))
        assert not result_store.exists(key=key)
        assert storage.read_path(key)

    def test_two_stores_on_one_storage_see_the_same_records(
        self, database_url: str, namespace: str
    ) -> None:
        """A store writes; another, made separately on the same configuration, finds it.

        Prefect: tests/results/test_result_store.py::
        test_default_result_store_exists_resolves_default_storage
        """
        writer = ResultStore(result_storage=SQLResultStorage(url=database_url, namespace=namespace))
        writer.write(obj="test", key="test")
        reader = ResultStore(result_storage=SQLResultStorage(url=database_url, namespace=namespace))
        assert reader.exists(key="test")
        assert run_async(lambda: reader.aexists(key="test"))

    def test_exists_with_no_metadata_storage(
        self, storage: SQLResultStorage, native: NativeStore
    ) -> None:
        """Without metadata storage, ``exists`` follows the result record itself.

        Prefect: tests/results/test_result_store.py::
        test_result_store_exists_with_no_metadata_storage
        """
        result_store = ResultStore(result_storage=storage)
        key = "test"
        run_async(lambda: result_store.awrite(key=key, obj="test"))
        assert run_async(lambda: result_store.aexists(key=key))
        assert result_store.exists(key=key)

        # Remove the result and check that it is not found
        assert native.delete(key)
        assert not run_async(lambda: result_store.aexists(key=key))
        assert not result_store.exists(key=key)

    def test_supports_isolation_level(self, database_url: str, namespace: str) -> None:
        """SERIALIZABLE is supported with the sqlresults lock manager, and only with a lock
        manager.

        Prefect: tests/results/test_result_store.py::test_supports_isolation_level
        """
        with_lock_manager = ResultStore(
            lock_manager=SQLLockManager(database_url, namespace=namespace)
        )
        without_lock_manager = ResultStore()
        assert with_lock_manager.supports_isolation_level(IsolationLevel.READ_COMMITTED)
        assert with_lock_manager.supports_isolation_level(IsolationLevel.SERIALIZABLE)
        assert without_lock_manager.supports_isolation_level(IsolationLevel.READ_COMMITTED)
        assert not without_lock_manager.supports_isolation_level(IsolationLevel.SERIALIZABLE)


class TestInMemoryCacheExpiration:
    """Prefect's in-memory cache over sqlresults storage."""

    def test_read_returns_cached_result_before_expiration(self, storage: SQLResultStorage) -> None:
        """A record that has not expired is read twice.

        Prefect: tests/results/test_result_store.py::TestInMemoryCacheExpiration::
        test_read_returns_cached_result_before_expiration
        """
        store = ResultStore(result_storage=storage, cache_result_in_memory=True)
        key = "test-not-expired"
        record = store.create_result_record("cached_value", key=key, expiration=later(60))
        store.persist_result_record(record)
        assert store.read(key=key).result == "cached_value"
        assert store.read(key=key).result == "cached_value"

    def test_read_evicts_expired_result_from_cache(
        self, storage: SQLResultStorage, advance_time: Callable[[timedelta], None]
    ) -> None:
        """Once the cached record has expired, a read evicts it and reads the new record from
        storage, which it caches instead.

        Prefect: tests/results/test_result_store.py::TestInMemoryCacheExpiration::
        test_read_evicts_expired_result_from_cache
        """
        store = ResultStore(result_storage=storage, cache_result_in_memory=True)
        key = "test-expired"
        record = store.create_result_record("old_value", key=key, expiration=later(1))
        store.persist_result_record(record)
        assert store.read(key=key).result == "old_value"
        resolved_key = store._resolved_key_path(key)
        assert resolved_key == key  # keys are kept verbatim
        assert resolved_key in store.cache

        advance_time(timedelta(seconds=2))
        store.persist_result_record(store.create_result_record("new_value", key=key))

        assert store.read(key=key).result == "new_value"
        assert store.cache[resolved_key].result == "new_value"

    def test_aread_evicts_expired_result_from_cache(
        self, storage: SQLResultStorage, advance_time: Callable[[timedelta], None]
    ) -> None:
        """The async read evicts an expired cached record too.

        Prefect: tests/results/test_result_store.py::TestInMemoryCacheExpiration::
        test_aread_evicts_expired_result_from_cache
        """
        store = ResultStore(result_storage=storage, cache_result_in_memory=True)
        key = "test-expired-async"

        async def scenario() -> Any:
            record = store.create_result_record("old_value", key=key, expiration=later(1))
            await store.apersist_result_record(record)
            assert (await store.aread(key=key)).result == "old_value"
            assert store._resolved_key_path(key) in store.cache
            advance_time(timedelta(seconds=2))
            await store.apersist_result_record(store.create_result_record("new_value", key=key))
            return (await store.aread(key=key)).result

        assert run_async(scenario) == "new_value"

    def test_read_returns_result_with_no_expiration(self, storage: SQLResultStorage) -> None:
        """A record without expiration is always served.

        Prefect: tests/results/test_result_store.py::TestInMemoryCacheExpiration::
        test_read_returns_result_with_no_expiration
        """
        store = ResultStore(result_storage=storage, cache_result_in_memory=True)
        key = "test-no-expiration"
        store.persist_result_record(store.create_result_record("permanent_value", key=key))
        first_read = store.read(key=key)
        assert first_read.result == "permanent_value"
        assert first_read.metadata.expiration is None
        assert store.read(key=key).result == "permanent_value"

    def test_storage_read_of_an_expired_record_finds_nothing(
        self, storage: SQLResultStorage
    ) -> None:
        """A store that has not cached an expired record cannot read it from storage.

        Difference from Prefect (README "expired records"): Prefect's storage read returns
        expired records; only ``exists`` and the in-memory cache honour expiration.
        Prefect: tests/results/test_result_store.py::TestInMemoryCacheExpiration (the
        storage read those tests fall back to)
        """
        writer = ResultStore(result_storage=storage)
        writer.persist_result_record(
            writer.create_result_record("old", key="k", expiration=later(-1))
        )
        with pytest.raises(KeyError):
            ResultStore(result_storage=storage).read(key="k")


class TestTransactionsWithResultStore(compat.TestWithResultStore):
    """The transaction tests of ``test_prefect_compat_transactions.py::TestWithResultStore``
    (each names the Prefect tests it mirrors), with Prefect's ``ResultStore`` and Prefect's
    ``transaction()`` and ``atransaction()`` as the client, on sqlresults storage and locks."""

    @pytest.fixture
    def store(self, result_store: ResultStore) -> ResultStore:
        """Prefect's store on sqlresults, for the inherited tests."""
        return result_store

    @pytest.fixture(params=[PREFECT_SYNC, PREFECT_ASYNC], ids=str)
    def flavor(self, request: pytest.FixtureRequest) -> Flavor:
        """Prefect's sync or async transactions, for the inherited tests."""
        return request.param  # type: ignore[no-any-return]

    def test_transaction_with_nullfilesystem_metadata(
        self, storage: SQLResultStorage, native: NativeStore
    ) -> None:
        """A store whose metadata storage is a NullFileSystem still commits a record the next
        transaction finds (the transaction gives the store back its envelope).

        Prefect: tests/test_transactions.py::TestWithResultStore::TestTransaction::
        test_transaction_with_nullfilesystem_metadata
        """
        result_store = ResultStore(result_storage=storage, metadata_storage=NullFileSystem())
        key = "test-null-metadata-transaction"
        with transaction(key=key, store=result_store, write_on_commit=True) as txn:
            assert txn.store.metadata_storage is None
            txn.stage({"foo": "bar"})
        assert native.read(key).result == {"foo": "bar"}
        with transaction(key=key, store=result_store) as txn:
            assert txn.is_committed()
