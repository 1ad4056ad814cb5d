"""``sqlresults.prefect`` in-process, driven by Prefect 3.9.1's own ``ResultStore`` and
transactions: the storage block, the lock manager, and records moving between Prefect's local
storage and sqlresults (export and import). Real flows are in ``test_prefect_flows.py``.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import run_async
from prefect import flow, task
from prefect.cache_policies import INPUTS
from prefect.filesystems import LocalFileSystem, NullFileSystem, WritableFileSystem
from prefect.locking.protocol import LockManager as PrefectLockManager
from prefect.results import ResultRecord as PrefectResultRecord
from prefect.results import ResultStore as PrefectResultStore
from prefect.serializers import Serializer as PrefectSerializer
from prefect.transactions import IsolationLevel, transaction
from sqlalchemy import text
from threads import JOIN_TIMEOUT

from sqlresults.database import Database
from sqlresults.errors import (
    ConfigurationError,
    IntegrityError,
    InvalidArgumentError,
    LeaseLostError,
    LockHeldByOtherError,
    RecordNotFoundError,
    SerializerUnavailableError,
)
from sqlresults.prefect import PrefectBlobSerializer, SQLLockManager, SQLResultStorage
from sqlresults.records import ResultRecord
from sqlresults.results import ResultStore

# Every serializer Prefect writes: its four type strings, and "compressed" around either inner
# serializer with each compression library it accepts.
PREFECT_SERIALIZERS: dict[str, dict[str, Any]] = {
    "pickle": {"type": "pickle"},
    "json": {"type": "json"},
    "compressed/pickle": {"type": "compressed/pickle"},
    "compressed/json": {"type": "compressed/json"},
    "compressed-json-zlib": {"type": "compressed", "serializer": "json", "compressionlib": "zlib"},
    "compressed-pickle-bz2": {
        "type": "compressed",
        "serializer": "pickle",
        "compressionlib": "bz2",
    },
}

# A value each of them round-trips (Prefect's JSON tags UUIDs and datetimes with their type).
VALUE = {
    "rows": [1, 2.5, None, "three"],
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "when": datetime(2026, 11, 21, 4, 19, 16, 466564, tzinfo=UTC),
}


class ReversedText(PrefectSerializer):  # type: ignore[type-arg]
    """A serializer only Prefect knows (Prefect registers it by its ``type``)."""

    type: str = "sqlresults-test-reversed-text"

    def dumps(self, obj: str) -> bytes:
        return obj[::-1].encode()

    def loads(self, blob: bytes) -> str:
        return blob.decode()[::-1]


def prefect_serializer(name: str) -> PrefectSerializer[Any]:
    """Prefect's serializer for one of :data:`PREFECT_SERIALIZERS`."""
    return PrefectSerializer(**PREFECT_SERIALIZERS[name])


@pytest.fixture
def storage(database_url: str, namespace: str) -> SQLResultStorage:
    """An unsaved storage block on the backend under test, in this test's namespace."""
    return SQLResultStorage(url=database_url, namespace=namespace)


@pytest.fixture
def locks(database_url: str, namespace: str) -> SQLLockManager:
    """The Prefect lock manager on the same database and namespace."""
    return SQLLockManager(database_url, namespace=namespace)


@pytest.fixture
def native(database_url: str, namespace: str) -> ResultStore:
    """sqlresults' own store on the same database and namespace, to look at the records."""
    return ResultStore(result_storage=database_url, namespace=namespace)


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def no_prefect_imported(statement: str) -> bool:
    """Run ``statement`` in a fresh interpreter and say whether it left Prefect unimported."""
    check = f"import sys\n{statement}\nsys.exit(1 if 'prefect' in sys.modules else 0)"
    done = subprocess.run([sys.executable, "-c", check], timeout=JOIN_TIMEOUT, check=False)
    return done.returncode == 0


class TestImports:
    def test_importing_sqlresults_never_imports_prefect(self) -> None:
        """``import sqlresults`` (and its command line) leaves Prefect unimported: only
        ``sqlresults.prefect`` imports it."""
        assert no_prefect_imported("import sqlresults, sqlresults.cli, sqlresults.tasks")
        assert not no_prefect_imported("import sqlresults.prefect")


class TestStorageBlock:
    def test_is_a_writable_file_system_that_prefect_accepts_unsaved(
        self, storage: SQLResultStorage
    ) -> None:
        """Prefect's @task and @flow refuse an unsaved storage block (their check looks for a
        block document id); an unsaved ``SQLResultStorage`` is accepted."""
        assert isinstance(storage, WritableFileSystem)
        with pytest.raises(TypeError, match="must be persisted server-side"):
            task(result_storage=LocalFileSystem(basepath="."))(lambda: 1)

        task(result_storage=storage)(lambda: 1)
        flow(result_storage=storage)(lambda: 1)
        assert not storage.is_saved

    def test_provisional_id_is_stable_and_names_database_and_namespace(
        self, database_url: str, namespace: str, storage: SQLResultStorage
    ) -> None:
        """The provisional document id is a uuid5 of the database and namespace: the same for
        every instance (and process), different in another namespace."""
        block_id = storage._block_document_id
        assert isinstance(block_id, uuid.UUID)
        assert block_id.version == 5
        again = SQLResultStorage(url=database_url, namespace=namespace)
        assert again._block_document_id == block_id
        assert again == storage
        other = SQLResultStorage(url=database_url, namespace=f"{namespace}-other")
        assert other._block_document_id != block_id

    def test_url_is_a_secret(self, tmp_path: Path) -> None:
        """The URL's password never shows in the block's repr or JSON, and does not change its
        id (the id names the database, not the credentials)."""
        one = SQLResultStorage(url="postgresql+psycopg://ci:hunter2secret@db.internal/results")
        two = SQLResultStorage(url="postgresql+psycopg://ci:other-secret@db.internal/results")
        for shown in (repr(one), str(one), one.model_dump_json()):
            assert "hunter2secret" not in shown
        assert one._block_document_id == two._block_document_id

    def test_bad_url_or_namespace_is_refused_at_construction(self) -> None:
        """A URL sqlresults cannot use (or an in-memory database, new at every use), or an
        invalid namespace, raises when the block is made."""
        with pytest.raises(ConfigurationError):
            SQLResultStorage(url="mysql://user@host/db")
        with pytest.raises(InvalidArgumentError):
            SQLResultStorage(url="sqlite:///results.db", namespace="")
        with pytest.raises(ConfigurationError, match="in-memory"):
            SQLResultStorage(url="sqlite://")

    def test_pickles_and_copies(self, storage: SQLResultStorage) -> None:
        """A pickled or copied block is equal to the original and reads what it wrote."""
        storage.write_path("k", b"some bytes")
        for clone in (
            pickle.loads(pickle.dumps(storage)),
            copy.deepcopy(storage),
            storage.model_copy(),
        ):
            assert clone == storage
            assert clone.read_path("k") == b"some bytes"


class TestRecords:
    @pytest.mark.parametrize("serializer", sorted(PREFECT_SERIALIZERS))
    def test_a_task_result_becomes_a_sqlresults_record(
        self, serializer: str, storage: SQLResultStorage, native: ResultStore
    ) -> None:
        """What Prefect's store writes for a task result (an envelope) is stored as a record of
        the same key, serializer and expiration, which sqlresults' own store reads."""
        expiration = later(3600)
        prefect_store = PrefectResultStore(
            result_storage=storage, serializer=prefect_serializer(serializer)
        )
        prefect_store.write(VALUE, key="step/1", expiration=expiration)

        record = native.read("step/1")
        assert record.result == VALUE
        assert record.serializer.type == PREFECT_SERIALIZERS[serializer]["type"]
        assert record.expiration == expiration
        assert native.exists("step/1")
        assert prefect_store.read("step/1").result == VALUE

    @pytest.mark.parametrize("serializer", sorted(PREFECT_SERIALIZERS))
    def test_read_path_gives_back_what_prefect_wrote(
        self, serializer: str, storage: SQLResultStorage
    ) -> None:
        """``read_path`` returns, byte for byte, the envelope Prefect gave ``write_path``."""
        prefect_store = PrefectResultStore(
            result_storage=storage, serializer=prefect_serializer(serializer)
        )
        record = prefect_store.create_result_record(VALUE, key="k", expiration=later(60))
        written = record.serialize()
        storage.write_path("k", written)
        assert storage.read_path("k") == written

    def test_other_bytes_are_kept_verbatim(
        self, storage: SQLResultStorage, native: ResultStore
    ) -> None:
        """Bytes that are no envelope (a flow's bare result) come back exactly as written; in
        sqlresults they are a ``prefect/blob`` record whose value is those bytes."""
        for content in (b"\x00\xff raw \x80", b"{}", b'{"metadata": {}, "result": 1}', b""):
            storage.write_path("blob", content)
            assert storage.read_path("blob") == content
            record = native.read("blob")
            assert record.result == content
            assert isinstance(record.serializer, PrefectBlobSerializer)

    def test_keys_are_kept_verbatim(self, storage: SQLResultStorage, native: ResultStore) -> None:
        """Keys are stored as given (slashes, dots, unicode, spaces), never resolved as
        paths."""
        keys = ["a/b/../c.json", "/absolute/looking", "ünï/😀", " spaced "]
        prefect_store = PrefectResultStore(result_storage=storage)
        for key in keys:
            prefect_store.write(key, key=key)
            record = prefect_store.read(key)
            assert record.metadata.storage_key == key
            assert record.result == key
        assert sorted(native.keys()) == sorted(keys)

    def test_expired_record_is_absent(self, storage: SQLResultStorage) -> None:
        """An expired record is absent everywhere: ``read_path`` raises RecordNotFoundError
        and Prefect's ``exists`` says False (its cache lookup misses).

        Difference from Prefect: README "expired records".
        """
        prefect_store = PrefectResultStore(result_storage=storage)
        prefect_store.write(1, key="old", expiration=later(-5))
        assert not prefect_store.exists("old")
        with pytest.raises(RecordNotFoundError, match="has expired"):
            storage.read_path("old")

    def test_missing_key_raises_record_not_found(self, storage: SQLResultStorage) -> None:
        """Reading a key never written raises RecordNotFoundError, a ``KeyError``.

        Difference from Prefect: README "reading a missing key".
        """
        with pytest.raises(KeyError, match="does not exist"):
            storage.read_path("never-written")
        assert not PrefectResultStore(result_storage=storage).exists("never-written")

    def test_damaged_record_is_refused(
        self, storage: SQLResultStorage, database: Database, namespace: str
    ) -> None:
        """A record altered in the database fails its checksum: ``read_path`` raises
        IntegrityError and hands Prefect nothing to unpickle."""
        PrefectResultStore(result_storage=storage).write({"a": 1}, key="k")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE sqlresults_records SET payload = :payload "
                    "WHERE namespace = :ns AND key = :key"
                ),
                {"payload": b"\x80\x05K\x02.", "ns": namespace, "key": "k"},
            )
        with pytest.raises(IntegrityError):
            storage.read_path("k")

    def test_custom_prefect_serializer_round_trips(
        self, storage: SQLResultStorage, native: ResultStore
    ) -> None:
        """A record of a serializer only Prefect knows is stored with its spec: sqlresults
        lists it but cannot decode it, and Prefect reads it back through the storage."""

        prefect_store = PrefectResultStore(result_storage=storage, serializer=ReversedText())
        prefect_store.write("stressed", key="k")
        assert PrefectResultStore(result_storage=storage).read("k").result == "stressed"
        assert list(native.keys()) == ["k"]
        with pytest.raises(SerializerUnavailableError):
            native.read("k")

    def test_write_is_refused_while_another_holder_has_the_lock(
        self, storage: SQLResultStorage, native: ResultStore
    ) -> None:
        """A write of a key another holder has locked is refused (LockHeldByOtherError, a
        ``RuntimeError``) in the statement that would write it; nothing is written."""
        assert native.acquire_lock("k", holder="someone-else", timeout=0)
        with pytest.raises(LockHeldByOtherError):
            PrefectResultStore(result_storage=storage).write(1, key="k")
        assert not native.exists("k")

    def test_async_reads_and_writes(self, storage: SQLResultStorage) -> None:
        """In async code ``read_path``/``write_path`` return coroutines, as Prefect's own
        blocks do, and Prefect's async store methods work through ``aread_path`` and
        ``awrite_path``."""

        async def scenario() -> tuple[Any, bytes, bytes]:
            prefect_store = PrefectResultStore(result_storage=storage)
            await prefect_store.awrite(VALUE, key="async")
            record = await prefect_store.aread("async")
            await storage.write_path("raw", b"raw bytes")
            return record.result, await storage.read_path("raw"), await storage.aread_path("raw")

        result, raw, again = run_async(scenario)
        assert result == VALUE
        assert raw == again == b"raw bytes"


class TestLockManager:
    def test_is_a_prefect_lock_manager(self, locks: SQLLockManager) -> None:
        """It satisfies Prefect's runtime-checkable protocol, and Prefect's cache policies
        (which deep-copy it) and stores take it."""
        assert isinstance(locks, PrefectLockManager)
        policy = INPUTS.configure(isolation_level="SERIALIZABLE", lock_manager=locks)
        assert isinstance(policy.lock_manager, SQLLockManager)
        store = PrefectResultStore(lock_manager=policy.lock_manager)
        assert store.supports_isolation_level(IsolationLevel.SERIALIZABLE)
        assert pickle.loads(pickle.dumps(locks)).namespace == locks.namespace

    def test_a_lock_taken_without_hold_timeout_is_renewed_while_held(
        self, database_url: str, namespace: str
    ) -> None:
        """Prefect's engine passes no ``hold_timeout``: the lock is leased and its lease
        renewed while it is held, so it outlives many leases; released, it is free."""
        locks = SQLLockManager(database_url, namespace=namespace, default_hold_timeout=0.3)
        assert locks.acquire_lock("k", holder="h")
        time.sleep(1.5)  # five leases
        assert locks.lock_holder("k") == "h"
        locks.release_lock("k", holder="h")
        assert not locks.is_locked("k")

    def test_an_explicit_hold_timeout_is_not_renewed(self, locks: SQLLockManager) -> None:
        """A lock taken with a ``hold_timeout`` frees when it runs out (Prefect's protocol)."""
        assert locks.acquire_lock("k", holder="h", hold_timeout=0.2)
        assert locks.wait_for_lock("k", timeout=JOIN_TIMEOUT)
        assert locks.acquire_lock("k", holder="other", acquire_timeout=0)

    def test_prefect_transaction_commits_as_its_holder(
        self, storage: SQLResultStorage, locks: SQLLockManager, native: ResultStore
    ) -> None:
        """A SERIALIZABLE Prefect transaction holds the key (its holder id) until it commits;
        the commit writes the record as that holder and releases the key; another writer is
        refused meanwhile."""
        store = PrefectResultStore(result_storage=storage, lock_manager=locks)
        with transaction(
            key="txn", store=store, isolation_level=IsolationLevel.SERIALIZABLE
        ) as txn:
            assert locks.lock_holder("txn") == txn._holder
            with pytest.raises(RuntimeError, match="locked by another holder"):
                store.write(0, key="txn", holder="intruder")
            txn.stage({"value": 1})
        assert txn.is_committed()
        assert native.read("txn").result == {"value": 1}
        assert not locks.is_locked("txn")

    def test_a_commit_after_the_lease_was_lost_is_fenced(
        self, storage: SQLResultStorage, locks: SQLLockManager, native: ResultStore
    ) -> None:
        """Prefect checks the holder, then writes: if the holder's lease runs out and another
        holder takes the key in between, the write is refused (LeaseLostError) instead of
        overwriting the new holder's work."""
        store = PrefectResultStore(result_storage=storage, lock_manager=locks)
        assert locks.acquire_lock("k", holder="slow", hold_timeout=0.2)
        envelope = store.create_result_record("stale", key="k").serialize()
        assert locks.is_lock_holder("k", "slow")  # what Prefect's store asks before writing
        assert locks.wait_for_lock("k", timeout=JOIN_TIMEOUT)
        assert locks.acquire_lock("k", holder="fast", acquire_timeout=0)

        with pytest.raises(LeaseLostError):
            storage.write_path("k", envelope)
        assert not native.exists("k")
        assert locks.lock_holder("k") == "fast"

    def test_the_holder_prefect_checked_writes_only_that_key(
        self, storage: SQLResultStorage, locks: SQLLockManager, native: ResultStore
    ) -> None:
        """A holder confirmed for one key is not borrowed by a write of another key: that one
        is made as the default holder, and refused while someone holds it."""
        assert locks.acquire_lock("a", holder="h")
        assert locks.acquire_lock("b", holder="h")
        assert locks.is_lock_holder("a", "h")
        with pytest.raises(LockHeldByOtherError):
            storage.write_path("b", b"bytes")
        storage.write_path("a", b"bytes")
        assert native.read("a", holder="h", lock_timeout=0).result == b"bytes"


class TestPrefectLocalStorageRoundTrip:
    """Records Prefect wrote into its local storage (``~/.prefect/storage``: one file per key)
    move into sqlresults and back out, for every serializer Prefect writes."""

    @staticmethod
    def write_prefect_files(directory: Path, serializer: str) -> dict[str, datetime | None]:
        """Let Prefect's own store write two records into ``directory``; return their keys and
        expirations."""
        prefect_store = PrefectResultStore(
            result_storage=LocalFileSystem(basepath=str(directory)),
            serializer=prefect_serializer(serializer),
        )
        expiration = later(3600)
        prefect_store.write(VALUE, key="run/step-1", expiration=expiration)
        prefect_store.write(VALUE, key="step-2")
        return {"run/step-1": expiration, "step-2": None}

    @staticmethod
    def read_with_prefect(directory: Path, key: str) -> PrefectResultRecord[Any]:
        store = PrefectResultStore(result_storage=LocalFileSystem(basepath=str(directory)))
        return store.read(key)

    @pytest.mark.parametrize("serializer", sorted(PREFECT_SERIALIZERS))
    def test_through_the_storage_block(
        self,
        serializer: str,
        tmp_path: Path,
        storage: SQLResultStorage,
        native: ResultStore,
    ) -> None:
        """Each file goes in with ``write_path`` (an import that decodes nothing) and becomes a
        sqlresults record with Prefect's serializer and expiration; ``read_path`` gives files
        that Prefect reads back with the same value, serializer and expiration."""
        source, target = tmp_path / "prefect-storage", tmp_path / "exported"
        keys = self.write_prefect_files(source, serializer)
        for key in keys:
            storage.write_path(key, (source / key).read_bytes())

        for key, expiration in keys.items():
            record = native.read(key)
            assert record.result == VALUE
            assert record.expiration == expiration
            (target / key).parent.mkdir(parents=True, exist_ok=True)
            (target / key).write_bytes(storage.read_path(key))
            original = self.read_with_prefect(source, key)
            exported = self.read_with_prefect(target, key)
            assert exported.result == VALUE
            assert exported.metadata.serializer == original.metadata.serializer
            assert exported.metadata.expiration == original.metadata.expiration

    @pytest.mark.parametrize("serializer", sorted(PREFECT_SERIALIZERS))
    def test_through_result_records(
        self, serializer: str, tmp_path: Path, native: ResultStore
    ) -> None:
        """Each file read with ``ResultRecord.deserialize`` is stored with sqlresults' own
        store; ``ResultRecord.serialize`` of what it reads back is a file Prefect reads, with
        the same value, serializer and expiration (the store, not Prefect's store, decodes
        here)."""
        source, target = tmp_path / "prefect-storage", tmp_path / "exported"
        keys = self.write_prefect_files(source, serializer)
        for key in keys:
            record = ResultRecord.deserialize((source / key).read_bytes())
            record.metadata.storage_key = key
            native.persist_result_record(record)

        for key, expiration in keys.items():
            record = native.read(key)
            assert record.result == VALUE
            assert record.expiration == expiration
            (target / key).parent.mkdir(parents=True, exist_ok=True)
            (target / key).write_bytes(record.serialize())
            original = self.read_with_prefect(source, key)
            exported = self.read_with_prefect(target, key)
            assert exported.result == VALUE
            assert exported.metadata.serializer == original.metadata.serializer
            assert exported.metadata.expiration == original.metadata.expiration

    @pytest.mark.parametrize("serializer", ["pickle", "json"])
    def test_a_flows_bare_result(
        self, serializer: str, tmp_path: Path, storage: SQLResultStorage
    ) -> None:
        """A flow's result, which Prefect writes bare (no envelope: its metadata goes to a
        ``NullFileSystem``), goes in and comes out byte for byte, and Prefect reads it back
        with the serializer it knows."""
        prefect_store = PrefectResultStore(
            result_storage=LocalFileSystem(basepath=str(tmp_path)),
            metadata_storage=NullFileSystem(),
            serializer=prefect_serializer(serializer),
        )
        # The flow engine persists through the async path (the sync one cannot call a
        # NullFileSystem in Prefect 3.9.1).
        run_async(lambda: prefect_store.awrite(VALUE, key="flow-result"))
        bare = (tmp_path / "flow-result").read_bytes()
        assert bare == prefect_serializer(serializer).dumps(VALUE)

        storage.write_path("flow-result", bare)
        assert storage.read_path("flow-result") == bare
        reader = PrefectResultStore(
            result_storage=storage, serializer=prefect_serializer(serializer)
        )
        assert reader.read("flow-result").result == VALUE


def test_an_async_release_stops_the_renewals(
    database_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock taken with ``aacquire_lock`` and no ``hold_timeout`` (renewed while held) and
    released the way async transactions release (``_arelease_lock``, awaited on PostgreSQL)
    stops renewing: no "lock was lost" warning follows, and the same holder taking the key
    again gets a renewed lease of its own that outlives several leases."""
    locks = SQLLockManager(database_url, namespace=namespace, default_hold_timeout=0.3)

    async def take_and_release() -> None:
        assert await locks.aacquire_lock("k", holder="h")
        await locks._arelease_lock("k", "h")

    run_async(take_and_release)
    time.sleep(0.6)  # two leases: a renewal still running would have found its lock gone
    assert locks.acquire_lock("k", holder="h")
    time.sleep(1.5)  # five leases

    assert locks.lock_holder("k") == "h"
    assert "was lost" not in caplog.text
    locks.release_lock("k", holder="h")
