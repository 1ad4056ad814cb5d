"""Tests for sqlresults.results: the ResultStore and the module functions of prefect.results.

Every store test runs on SQLite and on PostgreSQL (the ``backend`` fixture behind ``store``,
``clocked_store`` and ``database_url``). Tests that build their own SQLite file say so.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import pickle
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cachetools import LRUCache
from conftest import FakeClock, run_async
from helpers_processes import use_pickled_store
from sqlalchemy import event, insert, select, update
from sqlalchemy.engine import make_url

from sqlresults import queries
from sqlresults.context import RunContext, run_context
from sqlresults.database import Database
from sqlresults.errors import (
    ConfigurationError,
    IntegrityError,
    InvalidArgumentError,
    InvalidExpirationError,
    InvalidKeyError,
    LockHeldByOtherError,
    LockNotHeldError,
    ReadOnlyStorageError,
    RecordNotFoundError,
    SerializationError,
    StorageUnavailableError,
    UnknownSerializerError,
)
from sqlresults.integrity import record_checksum
from sqlresults.locking import IsolationLevel, SQLLockManager
from sqlresults.records import Provenance, ResultRecord
from sqlresults.results import (
    DEFAULT_STORAGE_KEY_FN,
    ResultStore,
    StoreStats,
    aget_default_result_storage,
    default_cache,
    get_default_persist_setting,
    get_default_persist_setting_for_tasks,
    get_default_result_serializer,
    get_default_result_storage,
    get_result_store,
    resolve_result_storage,
    resolve_serializer,
    result_storage_discriminator,
    should_persist_result,
)
from sqlresults.schema import locks, records
from sqlresults.serializers import (
    CompressedJSONSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
)
from sqlresults.settings import get_settings
from sqlresults.transactions import transaction

SERIALIZER_TYPES = ["pickle", "json", "compressed/pickle", "compressed/json"]

# Values every serializer gives back equal.
JSON_VALUES: list[Any] = [
    None,
    0,
    -(2**40),
    3.25,
    True,
    "",
    "text with ünïcödé and \N{SNOWMAN}",
    [1, "two", [3.0, None]],
    {"a": 1, "nested": {"list": [1, 2, 3], "flag": False}},
]
# Values only the pickle serializers are asked to keep exactly.
PICKLE_ONLY_VALUES: list[Any] = [
    b"\x00\x01binary\xff",
    (1, "tuple"),
    {1, 2, 3},
    datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC),
    complex(1, -2),
]

# Bytes passed to CountingSerializer.loads since the last reset; shared by every instance
# (serializers are frozen models, and the store rebuilds them from the stored spec).
LOADED: list[int] = []


class CountingSerializer(Serializer):
    """Stores bytes as they are and counts every byte handed to ``loads``."""

    type: str = "test-results-counting"

    def dumps(self, obj: Any) -> bytes:
        if not isinstance(obj, bytes):
            raise TypeError(f"CountingSerializer stores bytes, not {type(obj).__name__}")
        return obj

    def loads(self, blob: bytes) -> Any:
        LOADED.append(len(blob))
        return blob


@pytest.fixture
def loaded() -> Iterator[list[int]]:
    """The CountingSerializer's log, emptied before and after the test."""
    LOADED.clear()
    yield LOADED
    LOADED.clear()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a new SQLite file (created and migrated on first use), for SQLite-only tests."""
    return f"sqlite:///{tmp_path / 'sqlite-only.db'}"


def run_sql(database: Database, statement: Any) -> Any:
    """Run one Core statement in its own transaction on a connection of the database's engine
    (outside the store, as another program or an attacker would), returning all rows."""
    with database.engine.begin() as connection:
        result = connection.execute(statement)
        return result.fetchall() if result.returns_rows else result.rowcount


def lock_rows(database: Database, namespace: str) -> list[str]:
    """The keys of every lock row of the namespace, dead or alive, read from the table."""
    rows = run_sql(database, select(locks.c.key).where(locks.c.namespace == namespace))
    return sorted(row[0] for row in rows)


PROVENANCE = Provenance(
    task="pipeline.train",
    task_run_id="7d8c4f7e-3b1a-4d55-9a51-0f6f5c2c8e11",
    flow="nightly",
    flow_run_id="0b7f3f0e-9a7e-4a4b-8f1e-58b3c7f0a2d4",
    cache_policy="INPUTS + TASK_SOURCE",
    components={"task_source": "5e2a", "inputs.model": "9f1c"},
)


def set_columns(database: Database, namespace: str, key: str, **values: Any) -> None:
    """Change columns of one record row behind the store's back."""
    run_sql(
        database,
        update(records)
        .where(records.c.namespace == namespace, records.c.key == key)
        .values(**values),
    )


def snapshot(store: ResultStore, key: str) -> tuple[StoreStats, bool, Any]:
    """What a test compares before and after bad input: stats, and one record's state."""
    return store.stats(), store.exists(key), store.read(key).result


# -- write and read ------------------------------------------------------------------------------


class TestRoundTrip:
    @pytest.mark.parametrize("serializer", SERIALIZER_TYPES)
    def test_values_round_trip_with_each_serializer(
        self, database: Database, namespace: str, serializer: str
    ) -> None:
        """Values written with each built-in serializer read back equal, with that serializer
        recorded in the metadata."""
        store = ResultStore(result_storage=database, namespace=namespace, serializer=serializer)
        reader = ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )
        values = JSON_VALUES + (PICKLE_ONLY_VALUES if "pickle" in serializer else [])
        for index, value in enumerate(values):
            store.write(value, key=f"value-{index}")
        for index, value in enumerate(values):
            record = reader.read(f"value-{index}")
            assert record.result == value
            assert type(record.result) is type(value)
            assert record.metadata.serializer.type == serializer

    def test_read_returns_a_persisted_record_with_its_metadata(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """read() returns the result, the key verbatim, an aware UTC expiration and the
        serializer, marked persisted."""
        clocked_store.write({"x": 1}, key="dir/file.ext", expiration=timedelta(hours=1))
        record = clocked_store.read("dir/file.ext")
        assert record.result == {"x": 1}
        assert record.metadata.storage_key == "dir/file.ext"
        expiration = record.metadata.expiration
        assert expiration is not None
        assert expiration.utcoffset() == timedelta(0)
        assert expiration == datetime.fromtimestamp(clock.now + 3600, UTC)
        assert record.metadata.serializer.type == "pickle"
        assert record.is_persisted

    def test_record_without_expiration_never_expires(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A record written without expiration has expiration None and survives any wait."""
        clocked_store.write(1, key="k")
        clock.advance(100 * 365 * 24 * 3600)
        assert clocked_store.exists("k")
        assert clocked_store.read("k").metadata.expiration is None

    def test_write_without_key_uses_the_default_key_function(self, store: ResultStore) -> None:
        """write() without a key stores the record under a fresh 32-hex-character key."""
        store.write("anonymous")
        store.write("anonymous too")
        keys = list(store.keys())
        assert len(keys) == 2
        for key in keys:
            assert re.fullmatch(r"[0-9a-f]{32}", key)
        assert {store.read(key).result for key in keys} == {"anonymous", "anonymous too"}

    def test_write_without_key_uses_a_custom_key_function(
        self, database: Database, namespace: str
    ) -> None:
        """A store's storage_key_fn names records written without a key."""
        store = ResultStore(
            result_storage=database, namespace=namespace, storage_key_fn=lambda: "made-up"
        )
        store.write(42)
        assert store.exists("made-up")
        assert store.read("made-up").result == 42

    def test_create_result_record_stores_nothing(self, store: ResultStore) -> None:
        """create_result_record builds an unpersisted record and leaves the database alone;
        persist_result_record then stores it."""
        record = store.create_result_record([1, 2], key="later", expiration=timedelta(hours=1))
        assert record.result == [1, 2]
        assert record.metadata.storage_key == "later"
        assert not record.is_persisted
        assert not store.exists("later")
        assert store.stats().records == 0
        store.persist_result_record(record)
        assert record.is_persisted
        assert store.read("later").result == [1, 2]

    def test_create_result_record_without_key_makes_one(self, store: ResultStore) -> None:
        """create_result_record without a key names the record with storage_key_fn."""
        record = store.create_result_record("x")
        assert record.metadata.storage_key is not None
        assert re.fullmatch(r"[0-9a-f]{32}", record.metadata.storage_key)

    def test_none_is_persisted_like_any_value(self, store: ResultStore) -> None:
        """A None result is stored: exists() is True and read() returns None."""
        store.write(None, key="nothing")
        assert store.exists("nothing")
        record = store.read("nothing")
        assert record.result is None
        assert record.is_persisted


# -- exists and expiry ---------------------------------------------------------------------------


class TestExistsAndExpiry:
    def test_exists_after_write(self, store: ResultStore) -> None:
        """exists() is True once a record is written."""
        assert not store.exists("k")
        store.write(1, key="k")
        assert store.exists("k")

    def test_missing_key(self, store: ResultStore) -> None:
        """A missing key: exists() is False and read() raises RecordNotFoundError, a KeyError
        that is not marked expired."""
        assert not store.exists("missing")
        with pytest.raises(KeyError) as caught:
            store.read("missing")
        assert isinstance(caught.value, RecordNotFoundError)
        assert caught.value.key == "missing"
        assert not caught.value.expired

    def test_expired_record_is_absent(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        """Once its expiration passes, a record does not exist and read() raises
        RecordNotFoundError(expired=True), unless include_expired=True."""
        clocked_store.write("v", key="k", expiration=timedelta(seconds=10))
        clock.advance(9)
        assert clocked_store.exists("k")
        clock.advance(2)
        assert not clocked_store.exists("k")
        with pytest.raises(RecordNotFoundError) as caught:
            clocked_store.read("k")
        assert caught.value.expired
        assert "expired" in str(caught.value)
        record = clocked_store.read("k", include_expired=True)
        assert record.result == "v"
        assert record.is_persisted

    def test_overwrite_replaces_payload_and_expiration(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """Rewriting a key replaces its value and restarts its expiration (refreshing a cache
        entry must extend it; Prefect issue #10344)."""
        clocked_store.write("old", key="k", expiration=timedelta(seconds=10))
        clock.advance(8)
        clocked_store.write("new", key="k", expiration=timedelta(seconds=10))
        clock.advance(8)
        assert clocked_store.exists("k")
        record = clocked_store.read("k")
        assert record.result == "new"
        assert record.metadata.expiration == datetime.fromtimestamp(clock.now + 2, UTC)

    def test_overwrite_without_expiration_removes_it(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """Rewriting a key with no expiration makes it permanent."""
        clocked_store.write("old", key="k", expiration=timedelta(seconds=10))
        clocked_store.write("new", key="k")
        clock.advance(3600)
        assert clocked_store.read("k").result == "new"
        assert clocked_store.read("k").metadata.expiration is None

    def test_overwrite_can_shorten_expiration(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """Rewriting a permanent record with an expiration makes it expire."""
        clocked_store.write("old", key="k")
        clocked_store.write("new", key="k", expiration=timedelta(seconds=5))
        clock.advance(6)
        assert not clocked_store.exists("k")

    def test_negative_timedelta_is_already_expired(self, clocked_store: ResultStore) -> None:
        """A negative timedelta stores a record that has already expired."""
        clocked_store.write("v", key="k", expiration=timedelta(seconds=-1))
        assert not clocked_store.exists("k")
        with pytest.raises(RecordNotFoundError) as caught:
            clocked_store.read("k")
        assert caught.value.expired
        assert clocked_store.stats().expired == 1

    def test_aware_datetime_in_another_timezone_is_stored_as_utc(
        self, clocked_store: ResultStore
    ) -> None:
        """An aware expiration in UTC+05:00 reads back as the same instant in UTC."""
        plus_five = timezone(timedelta(hours=5))
        expiration = datetime(2099, 1, 1, 12, 30, tzinfo=plus_five)
        clocked_store.write("v", key="k", expiration=expiration)
        stored = clocked_store.read("k").metadata.expiration
        assert stored == expiration
        assert stored is not None
        assert stored.utcoffset() == timedelta(0)
        assert (stored.hour, stored.minute) == (7, 30)

    def test_aware_datetime_in_the_past_is_expired(self, clocked_store: ResultStore) -> None:
        """An aware expiration before now stores an expired record."""
        past = datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=-3)))
        clocked_store.write("v", key="k", expiration=past)
        assert not clocked_store.exists("k")


class TestExistsNeverReadsPayload:
    def test_exists_statement_does_not_select_the_payload(self, database: Database) -> None:
        """The SQL of exists() (and of stats()) names no payload column."""
        assert "payload" not in database.sql(queries.record_exists).lower()
        assert "payload" not in database.sql(queries.records_stats).lower()

    def test_exists_never_calls_the_deserializer(
        self, database: Database, namespace: str, loaded: list[int]
    ) -> None:
        """exists() on a stored record never hands bytes to the serializer's loads()."""
        store = ResultStore(
            result_storage=database,
            namespace=namespace,
            serializer=CountingSerializer(),
            cache_result_in_memory=False,
        )
        store.write(b"payload bytes", key="k")
        assert store.exists("k")
        assert loaded == []
        assert store.read("k", holder="reader").result == b"payload bytes"
        assert loaded == [len(b"payload bytes")]

    def test_sqlite_statements_run_by_exists_never_touch_the_payload(
        self, sqlite_url: str, namespace: str
    ) -> None:
        """The statements the driver actually runs for exists() do not mention the payload
        (traced with sqlite3's trace callback; SQLite-only: psycopg has no statement trace)."""
        database = Database(sqlite_url)
        traced: list[str] = []
        event.listen(
            database.engine,
            "connect",
            lambda dbapi_connection, _record: dbapi_connection.set_trace_callback(traced.append),
        )
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write(b"x" * 1000, key="k")
        traced.clear()
        assert store.exists("k")
        assert traced, "the trace callback saw no statement"
        assert not [sql for sql in traced if "payload" in sql.lower()]
        database.close()

    @pytest.mark.slow
    def test_exists_on_a_100_mb_record_reads_no_payload(
        self, backend: str, database_url: str, namespace: str, loaded: list[int]
    ) -> None:
        """exists() on a 100 MB record deserializes nothing and (on SQLite, traced) runs no
        statement that names the payload; read() then does hand all 100 MB to loads()."""
        database = Database(database_url)
        connections: list[Any] = []
        event.listen(
            database.engine,
            "connect",
            lambda dbapi_connection, _: connections.append(dbapi_connection),
        )
        store = ResultStore(
            result_storage=database,
            namespace=namespace,
            serializer=CountingSerializer(),
            cache_result_in_memory=False,
        )
        size = 100 * 1024 * 1024
        payload = bytes(size)
        store.write(payload, key="big")
        del payload
        # Traced only now: the trace of the write would spell out the 100 MB blob.
        traced: list[str] = []
        tracing = [c for c in connections if hasattr(c, "set_trace_callback")]
        assert bool(tracing) == (backend == "sqlite")
        for connection in tracing:
            connection.set_trace_callback(traced.append)
        assert store.exists("big")
        for connection in tracing:
            connection.set_trace_callback(None)
        assert loaded == []
        if tracing:
            assert traced
            assert not [sql for sql in traced if "payload" in sql.lower()]
        assert store.stats().payload_bytes == size
        assert len(store.read("big").result) == size
        assert loaded == [size]
        assert store.delete("big")
        database.close()


# -- namespaces and keys -------------------------------------------------------------------------


class TestNamespaces:
    @pytest.fixture
    def pair(self, clocked_database: Database, namespace: str) -> tuple[ResultStore, ResultStore]:
        """Two stores on one database, in different namespaces."""
        return (
            ResultStore(result_storage=clocked_database, namespace=namespace),
            ResultStore(result_storage=clocked_database, namespace=f"{namespace}-other"),
        )

    def test_same_key_holds_different_values(self, pair: tuple[ResultStore, ResultStore]) -> None:
        """The same key in two namespaces holds two independent records."""
        first, second = pair
        first.write("first", key="shared")
        second.write("second", key="shared")
        assert first.read("shared").result == "first"
        assert second.read("shared").result == "second"
        assert first.delete("shared")
        assert second.read("shared").result == "second"

    def test_namespaces_never_see_each_other(
        self, pair: tuple[ResultStore, ResultStore], clock: FakeClock
    ) -> None:
        """exists, read, keys, stats and sweep of one namespace ignore the other's records."""
        first, second = pair
        first.write(1, key="only-first")
        first.write(2, key="short-lived", expiration=timedelta(seconds=1))
        second.write(3, key="only-second", expiration=timedelta(seconds=1))
        assert not second.exists("only-first")
        with pytest.raises(RecordNotFoundError):
            second.read("only-first")
        assert list(first.keys()) == ["only-first", "short-lived"]
        assert list(second.keys()) == ["only-second"]
        assert first.stats().records == 2
        assert second.stats().records == 1
        clock.advance(2)
        assert first.sweep_expired() == 1
        assert second.stats().records == 1
        assert second.stats().expired == 1
        assert second.read("only-second", include_expired=True).result == 3

    def test_locks_are_per_namespace(self, pair: tuple[ResultStore, ResultStore]) -> None:
        """A lock in one namespace neither locks nor blocks writes in another."""
        first, second = pair
        assert first.acquire_lock("k", holder="someone", timeout=0)
        assert not second.is_locked("k")
        second.write("free", key="k")
        assert second.read("k").result == "free"


VERBATIM_KEYS = (
    "plain",
    "dir/sub/file.pkl",
    "/absolute/looking/path",
    "../dots/./..",
    "with spaces and\ttab",
    "ünïcödé-キー-\N{SNOWMAN}",
    "%_wildcards_%",
    "a" * 1024,
    "€" * 341 + "a",  # exactly 1,024 bytes in UTF-8
    "€" * 300,  # 300 characters, 900 bytes
)


class TestKeys:
    def test_keys_round_trip_verbatim(self, store: ResultStore) -> None:
        """Keys with slashes, dots, spaces, unicode and up to 1,024 UTF-8 bytes are stored and
        listed exactly as given, in order."""
        for index, key in enumerate(VERBATIM_KEYS):
            store.write(index, key=key)
        for index, key in enumerate(VERBATIM_KEYS):
            record = store.read(key)
            assert record.result == index
            assert record.metadata.storage_key == key
        assert list(store.keys()) == sorted(VERBATIM_KEYS)

    def test_prefix_filters_literally(self, store: ResultStore) -> None:
        """keys(prefix=...) matches the prefix literally: % and _ are not wildcards, and
        unicode prefixes work."""
        keys = ["a%b/1", "a%b/2", "axb/3", "a_c", "abc", "ünï/1", "ünï/2", "uni/3", "A%b"]
        for key in keys:
            store.write(key, key=key)
        assert list(store.keys(prefix="a%b")) == ["a%b/1", "a%b/2"]
        assert list(store.keys(prefix="a_")) == ["a_c"]
        assert list(store.keys(prefix="ünï")) == ["ünï/1", "ünï/2"]
        assert list(store.keys(prefix="ünï/2")) == ["ünï/2"]
        assert list(store.keys(prefix="zzz")) == []
        assert list(store.keys(prefix="")) == sorted(keys)
        assert list(store.keys()) == sorted(keys)

    def test_keys_excludes_expired(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        """keys() lists only unexpired records."""
        clocked_store.write(1, key="stays")
        clocked_store.write(2, key="goes", expiration=timedelta(seconds=1))
        assert list(clocked_store.keys()) == ["goes", "stays"]
        clock.advance(2)
        assert list(clocked_store.keys()) == ["stays"]
        assert list(clocked_store.keys(prefix="go")) == []

    @pytest.mark.parametrize("prefix", [5, b"k", 1.5, ["k"]], ids=repr)
    def test_prefix_of_another_type_is_refused_at_the_call(
        self, store: ResultStore, prefix: Any
    ) -> None:
        """keys(prefix=5) or keys(prefix=b"k") raises InvalidKeyError (an InvalidArgumentError)
        saying a prefix is a str, when keys() is called, not at the first next(), instead of
        silently listing nothing."""
        store.write(1, key="k1")
        with pytest.raises(InvalidKeyError, match="prefix must be a str"):
            store.keys(prefix=prefix)

    @pytest.mark.parametrize("prefix", ["k\x00", "\ud800"], ids=["nul", "lone-surrogate"])
    def test_prefix_no_key_can_hold_is_refused(self, store: ResultStore, prefix: str) -> None:
        """A prefix with NUL or a lone surrogate is refused on both backends, as such a key
        would be (PostgreSQL cannot store NUL; UTF-8 cannot hold a lone surrogate)."""
        store.write(1, key="k1")
        with pytest.raises(InvalidKeyError, match="prefix"):
            store.keys(prefix=prefix)
        assert list(store.keys()) == ["k1"]

    def test_keys_paginate_beyond_one_page(self, store: ResultStore) -> None:
        """keys() returns every key, in order, across several pages of 1,000, with and without
        a prefix (including a prefix matching exactly one page's worth)."""
        keys = [f"k{index:05d}" for index in range(2100)]
        for key in reversed(keys):
            store.write(0, key=key)
        assert list(store.keys()) == keys
        assert list(store.keys(prefix="k01")) == keys[1000:2000]
        assert list(store.keys(prefix="k020")) == keys[2000:2100]


# -- delete, sweep, stats ------------------------------------------------------------------------


class TestDelete:
    def test_delete_returns_whether_a_record_was_removed(self, store: ResultStore) -> None:
        """delete() is True for a stored record, then False; the record is gone."""
        store.write(1, key="k")
        assert store.delete("k") is True
        assert not store.exists("k")
        assert store.delete("k") is False
        assert store.delete("never-written") is False

    def test_delete_removes_an_expired_record(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """delete() removes an expired record too, and says so."""
        clocked_store.write(1, key="k", expiration=timedelta(seconds=1))
        clock.advance(2)
        assert clocked_store.delete("k") is True
        assert clocked_store.stats().records == 0

    def test_delete_evicts_the_memory_cache(self, store: ResultStore) -> None:
        """A deleted record is dropped from the in-memory cache and cannot be read."""
        store.write(1, key="k")
        store.read("k")
        assert "k" in store.cache
        store.delete("k")
        assert "k" not in store.cache
        with pytest.raises(RecordNotFoundError):
            store.read("k")

    def test_delete_of_a_key_locked_by_another_holder_is_refused(self, store: ResultStore) -> None:
        """delete() by a non-holder of a locked key raises LockHeldByOtherError and keeps the
        record."""
        store.write(1, key="k")
        assert store.acquire_lock("k", holder="owner", timeout=0)
        with pytest.raises(LockHeldByOtherError):
            store.delete("k", holder="intruder")
        assert store.read("k", holder="owner").result == 1
        assert store.delete("k", holder="owner")


class TestSweep:
    def test_sweep_deletes_only_expired_records_of_its_namespace(
        self, clocked_database: Database, namespace: str, clock: FakeClock
    ) -> None:
        """sweep_expired() deletes the namespace's expired records in batches and returns how
        many; unexpired records and other namespaces are left alone."""
        store = ResultStore(result_storage=clocked_database, namespace=namespace)
        other = ResultStore(result_storage=clocked_database, namespace=f"{namespace}-other")
        for index in range(10):
            store.write(index, key=f"expiring-{index}", expiration=timedelta(seconds=5))
        store.write("kept", key="permanent")
        store.write("kept", key="later", expiration=timedelta(seconds=100))
        for index in range(4):
            other.write(index, key=f"expiring-{index}", expiration=timedelta(seconds=5))
        clock.advance(10)
        assert store.sweep_expired(batch_size=3) == 10
        stats = store.stats()
        assert (stats.records, stats.expired) == (2, 0)
        assert sorted(store.keys()) == ["later", "permanent"]
        with pytest.raises(RecordNotFoundError):
            store.read("expiring-0", include_expired=True)
        assert other.stats().records == 4
        assert other.stats().expired == 4
        assert store.sweep_expired() == 0

    def test_sweep_removes_dead_locks_but_not_live_ones(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """sweep_expired() deletes lock rows whose lease ended (not counted) and keeps live
        locks."""
        database = clocked_store.result_storage
        namespace = clocked_store.namespace
        assert clocked_store.acquire_lock("dead", holder="h", timeout=0, hold_timeout=5)
        assert clocked_store.acquire_lock("live", holder="h", timeout=0, hold_timeout=1000)
        clock.advance(10)
        assert lock_rows(database, namespace) == ["dead", "live"]
        assert clocked_store.sweep_expired() == 0
        assert lock_rows(database, namespace) == ["live"]
        assert clocked_store.is_lock_holder("live", "h")

    @pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "10"])
    def test_bad_batch_size_is_refused(self, store: ResultStore, batch_size: Any) -> None:
        """A batch size that is not a positive int raises InvalidArgumentError."""
        with pytest.raises(InvalidArgumentError, match="batch_size"):
            store.sweep_expired(batch_size=batch_size)

    def test_sweep_drops_swept_records_from_memory(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A record swept away is not served from memory, even with include_expired."""
        clocked_store.write(1, key="k", expiration=timedelta(seconds=1))
        clocked_store.read("k")
        clock.advance(2)
        assert clocked_store.sweep_expired() == 1
        with pytest.raises(RecordNotFoundError):
            clocked_store.read("k", include_expired=True)


class TestStats:
    def test_stats_counts_records_bytes_expired_and_locks(
        self, clocked_database: Database, namespace: str, clock: FakeClock
    ) -> None:
        """stats() reports the namespace's record count, payload bytes, expired-but-unswept
        records and keys with an unexpired lock."""
        store = ResultStore(result_storage=clocked_database, namespace=namespace, serializer="json")
        assert store.stats() == StoreStats(records=0, payload_bytes=0, expired=0, locks_held=0)
        values = {"a": [1, 2, 3], "b": "text", "c": {"x": None}, "d": 1.5, "e": "é" * 10}
        for key, value in values.items():
            expiration = timedelta(seconds=5) if key in "de" else None
            store.write(value, key=key, expiration=expiration)
        assert store.acquire_lock("a", holder="h", timeout=0, hold_timeout=5)
        assert store.acquire_lock("b", holder="h", timeout=0, hold_timeout=500)
        assert store.acquire_lock("no-record", holder="h", timeout=0, hold_timeout=500)
        expected_bytes = sum(len(JSONSerializer().dumps(value)) for value in values.values())
        assert store.stats() == StoreStats(
            records=5, payload_bytes=expected_bytes, expired=0, locks_held=3
        )
        clock.advance(10)
        assert store.stats() == StoreStats(
            records=5, payload_bytes=expected_bytes, expired=2, locks_held=2
        )


# -- the in-memory cache -------------------------------------------------------------------------


class TestMemoryCache:
    def test_second_read_is_served_from_memory(self, store: ResultStore) -> None:
        """Reading a record twice returns the very same object (not deserialized again)."""
        store.write([1, 2, 3], key="k")
        first = store.read("k")
        second = store.read("k")
        assert second is first
        assert second.result is first.result

    def test_overwrite_by_another_database_object_is_seen(
        self, database_url: str, namespace: str
    ) -> None:
        """A value cached in memory is not served after another Database object (other
        connections, as another process would use) overwrote the key."""
        mine = ResultStore(result_storage=Database(database_url), namespace=namespace)
        theirs_database = Database(database_url)
        theirs = ResultStore(result_storage=theirs_database, namespace=namespace)
        mine.write("old", key="k")
        assert mine.read("k").result == "old"
        assert mine.read("k").result == "old"
        theirs.write("new", key="k")
        assert mine.read("k").result == "new"
        theirs.delete("k")
        with pytest.raises(RecordNotFoundError):
            mine.read("k")
        mine.result_storage.close()
        theirs_database.close()

    def test_cache_disabled_never_caches(self, database: Database, namespace: str) -> None:
        """With cache_result_in_memory=False every read deserializes a fresh object and the
        cache stays empty."""
        store = ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )
        store.write([1, 2, 3], key="k")
        first = store.read("k")
        second = store.read("k")
        assert first.result == second.result == [1, 2, 3]
        assert second.result is not first.result
        assert len(store.cache) == 0

    def test_expired_cached_record_is_not_served(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A record in memory that has since expired raises RecordNotFoundError(expired)."""
        clocked_store.write("v", key="k", expiration=timedelta(seconds=10))
        assert clocked_store.read("k").result == "v"
        clock.advance(11)
        with pytest.raises(RecordNotFoundError) as caught:
            clocked_store.read("k")
        assert caught.value.expired

    def test_stores_share_a_given_cache(self, database: Database, namespace: str) -> None:
        """A cache passed to the store is the one it uses."""
        cache: LRUCache[str, Any] = LRUCache(maxsize=10)
        store = ResultStore(result_storage=database, namespace=namespace, cache=cache)
        store.write(1, key="k")
        assert store.cache is cache
        assert "k" in cache


# -- provenance ----------------------------------------------------------------------------------


class TestProvenance:
    @pytest.fixture
    def reader(self, database: Database, namespace: str) -> ResultStore:
        """A second store on the same namespace that never serves from memory."""
        return ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )

    def test_round_trip_through_the_database(self, store: ResultStore, reader: ResultStore) -> None:
        """Provenance written with a record comes back from read(), through the database
        (another store, no memory cache), equal field by field."""
        store.write([1, 2], key="k", provenance=PROVENANCE)
        record = reader.read("k")
        assert record.result == [1, 2]
        assert record.metadata.provenance == PROVENANCE
        assert record.metadata.provenance is not PROVENANCE

    def test_stored_as_json_text(self, store: ResultStore, database: Database) -> None:
        """The provenance column holds the provenance's JSON; a record without one holds
        NULL."""
        store.write(1, key="task", provenance=PROVENANCE)
        store.write(2, key="plain")
        rows = dict(
            run_sql(
                database,
                select(records.c.key, records.c.provenance).where(
                    records.c.namespace == store.namespace
                ),
            )
        )
        assert Provenance.model_validate_json(rows["task"]) == PROVENANCE
        assert rows["plain"] is None

    def test_record_without_provenance_reads_none(
        self, store: ResultStore, reader: ResultStore
    ) -> None:
        """A record written without provenance (store.write, as before) reads with None."""
        store.write(1, key="k")
        assert reader.read("k").metadata.provenance is None

    def test_served_from_memory_with_its_provenance(self, store: ResultStore) -> None:
        """The memory cache still serves a current record (the very same object), provenance
        included, both after the write and after a first read."""
        store.write([1], key="k", provenance=PROVENANCE)
        first = store.read("k")
        assert first.metadata.provenance == PROVENANCE
        assert store.read("k") is first

    def test_overwrite_replaces_the_provenance(
        self, store: ResultStore, reader: ResultStore
    ) -> None:
        """Rewriting a key replaces its provenance: with another one, or with none."""
        store.write(1, key="k", provenance=PROVENANCE)
        rerun = PROVENANCE.model_copy(update={"components": {"inputs.model": "aaaa"}})
        store.write(2, key="k", provenance=rerun)
        assert reader.read("k").metadata.provenance == rerun
        store.write(3, key="k")
        assert reader.read("k").metadata.provenance is None

    def test_overwrite_by_another_process_is_seen(
        self, database_url: str, namespace: str, store: ResultStore
    ) -> None:
        """A record cached in memory is not served once another Database object (as another
        process would) rewrote it: the new provenance comes back."""
        store.write(1, key="k", provenance=PROVENANCE)
        assert store.read("k").metadata.provenance == PROVENANCE
        other_database = Database(database_url)
        try:
            rerun = PROVENANCE.model_copy(update={"task_run_id": "second"})
            ResultStore(result_storage=other_database, namespace=namespace).write(
                2, key="k", provenance=rerun
            )
        finally:
            other_database.close()
        record = store.read("k")
        assert (record.result, record.metadata.provenance) == (2, rerun)

    def test_attached_before_persist_result_record(
        self, store: ResultStore, reader: ResultStore
    ) -> None:
        """create_result_record(provenance=...) then persist_result_record stores it (the
        task layer's path), as does a record staged in a transaction."""
        record = store.create_result_record("v", key="direct", provenance=PROVENANCE)
        assert record.metadata.provenance is PROVENANCE
        store.persist_result_record(record)
        assert reader.read("direct").metadata.provenance == PROVENANCE

        with transaction(key="staged", store=store) as txn:
            txn.stage(store.create_result_record("w", key="staged", provenance=PROVENANCE))
        assert reader.read("staged").metadata.provenance == PROVENANCE

    def test_async_write_keeps_provenance(self, store: ResultStore, reader: ResultStore) -> None:
        """awrite() takes provenance as write() does."""
        run_async(lambda: store.awrite("v", key="k", provenance=PROVENANCE))
        assert reader.read("k").metadata.provenance == PROVENANCE

    def test_envelope_export_carries_it(self, store: ResultStore, reader: ResultStore) -> None:
        """A read record exported with serialize() carries its provenance, and reads back."""
        store.write({"a": 1}, key="k", provenance=PROVENANCE)
        exported = reader.read("k").serialize()
        assert ResultRecord.deserialize(exported).metadata.provenance == PROVENANCE


# -- integrity and signing -----------------------------------------------------------------------


class TestIntegrity:
    def test_corrupted_payload_is_refused_before_deserializing(
        self, database: Database, namespace: str, loaded: list[int]
    ) -> None:
        """A payload changed in the table fails its checksum: read() raises IntegrityError and
        loads() is never called."""
        store = ResultStore(
            result_storage=database,
            namespace=namespace,
            serializer=CountingSerializer(),
            cache_result_in_memory=False,
        )
        store.write(b"hello world", key="k")
        run_sql(
            database,
            update(records)
            .where(records.c.namespace == namespace, records.c.key == "k")
            .values(payload=b"jello world"),
        )
        with pytest.raises(IntegrityError, match="checksum"):
            store.read("k")
        assert loaded == []
        assert store.exists("k")

    @pytest.mark.parametrize(
        ("column", "damaged"),
        [
            ("serializer", '{"type": "json", "jsonlib": "orjson"'),  # truncated JSON
            ("serializer", '{"type": "pickle", "picklelib": "pickle"}'),  # another library
            ("expires", 1.0),  # expired long ago
            ("expires", 4102444800.0),  # a later expiry
            ("expires", None),  # never expires
        ],
        ids=[
            "serializer-truncated",
            "serializer-swapped",
            "expires-past",
            "expires-later",
            "expires-none",
        ],
    )
    def test_damage_outside_the_payload_is_an_integrity_error(
        self,
        database: Database,
        namespace: str,
        loaded: list[int],
        column: str,
        damaged: Any,
    ) -> None:
        """The checksum covers the whole record (key, serializer, expiry, payload): a damaged
        serializer or expires column raises IntegrityError before anything is deserialized,
        not a JSONDecodeError or TypeError, and not a silently different expiry."""
        store = ResultStore(
            result_storage=database,
            namespace=namespace,
            serializer=CountingSerializer(),
            cache_result_in_memory=False,
        )
        store.write(b"hello", key="k", expiration=timedelta(days=1))
        run_sql(
            database,
            update(records)
            .where(records.c.namespace == namespace, records.c.key == "k")
            .values({column: damaged}),
        )
        with pytest.raises(IntegrityError, match="damaged"):
            store.read("k", include_expired=True)
        assert loaded == []

    def test_text_in_the_expires_column_is_an_integrity_error(
        self, tmp_path: Path, namespace: str, request: pytest.FixtureRequest
    ) -> None:
        """SQLite keeps whatever is stored in a column: text in ``expires`` (no float at all)
        is damage too, reported as IntegrityError, not a TypeError."""
        import shutil
        import sqlite3

        path = tmp_path / "text.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        store = ResultStore(result_storage=f"sqlite:///{path}", namespace=namespace)
        store.write("v", key="k", expiration=timedelta(days=1))
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE sqlresults_records SET expires = 'tomorrow' WHERE key = 'k'")
        reader = ResultStore(
            result_storage=f"sqlite:///{path}", namespace=namespace, cache_result_in_memory=False
        )
        with pytest.raises(IntegrityError, match="damaged"):
            reader.read("k", include_expired=True)

    def test_a_record_moved_to_another_key_is_an_integrity_error(
        self, database: Database, namespace: str
    ) -> None:
        """The checksum binds the key and namespace: a row copied under another key, without a
        signing key, is refused as damaged."""
        store = ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )
        store.write("genuine", key="original")
        row = run_sql(
            database,
            select(records).where(records.c.namespace == namespace, records.c.key == "original"),
        )[0]
        run_sql(database, insert(records).values({**row._asdict(), "key": "moved"}))
        with pytest.raises(IntegrityError, match="damaged"):
            store.read("moved")
        assert store.read("original").result == "genuine"

    @pytest.mark.parametrize(
        "damage",
        ["edited", "removed", "added", "not-json"],
    )
    def test_damaged_provenance_is_an_integrity_error(
        self, database: Database, namespace: str, loaded: list[int], damage: str
    ) -> None:
        """The checksum covers the provenance column: a fingerprint edited, the provenance
        removed (NULL), provenance added to a record that had none, or text that is no JSON
        raises IntegrityError before anything is deserialized."""
        store = ResultStore(
            result_storage=database,
            namespace=namespace,
            serializer=CountingSerializer(),
            cache_result_in_memory=False,
        )
        original = PROVENANCE.model_dump_json()
        store.write(b"hello", key="k", provenance=None if damage == "added" else PROVENANCE)
        damaged = {
            "edited": original.replace("9f1c", "9f1d"),
            "removed": None,
            "added": original,
            "not-json": original[:-1],
        }[damage]
        set_columns(database, namespace, "k", provenance=damaged)
        with pytest.raises(IntegrityError, match="damaged"):
            store.read("k")
        assert loaded == []

    def test_provenance_with_a_matching_checksum_must_be_provenance(
        self, database: Database, namespace: str
    ) -> None:
        """Text written outside sqlresults with a checksum recomputed to match, but that is
        not a provenance, is refused as damage rather than raising a ValidationError."""
        store = ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )
        store.write("v", key="k")
        row = run_sql(
            database,
            select(records).where(records.c.namespace == namespace, records.c.key == "k"),
        )[0]
        bogus = '{"not": "a provenance"}'
        checksum = record_checksum(
            namespace, "k", row.serializer, row.expires, bytes(row.payload), bogus
        )
        set_columns(database, namespace, "k", provenance=bogus, checksum=checksum)
        with pytest.raises(IntegrityError, match="damaged"):
            store.read("k")

    def test_records_written_before_the_whole_record_checksum_still_read(
        self, database: Database, namespace: str
    ) -> None:
        """Rows written by sqlresults 0.1 carry a checksum of the payload alone: they still
        read (their payload is still checked)."""
        import zlib

        store = ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )
        store.write({"old": True}, key="k")
        (payload,) = run_sql(
            database,
            select(records.c.payload).where(records.c.namespace == namespace, records.c.key == "k"),
        )[0]
        crc = zlib.crc32(bytes(payload))
        legacy = crc - (1 << 32) if crc & 0x8000_0000 else crc
        run_sql(
            database,
            update(records)
            .where(records.c.namespace == namespace, records.c.key == "k")
            .values(checksum=legacy),
        )
        assert store.read("k").result == {"old": True}


SIGNING_KEY = "s3cret-signing-key-0123456789"
OTHER_SIGNING_KEY = "another-s3cret-signing-key-9876"


class TestSigning:
    @pytest.fixture
    def signed(
        self, database: Database, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> ResultStore:
        """A store built while SQLRESULTS_SIGNING_KEY is set (read at construction)."""
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        return ResultStore(result_storage=database, namespace=namespace)

    def test_signed_records_round_trip(self, signed: ResultStore, database: Database) -> None:
        """With a signing key, records are written signed and read back."""
        signed.write({"v": 1}, key="k")
        reader = ResultStore(
            result_storage=database, namespace=signed.namespace, cache_result_in_memory=False
        )
        assert reader.read("k").result == {"v": 1}
        rows = run_sql(
            database,
            select(records.c.signature).where(
                records.c.namespace == signed.namespace, records.c.key == "k"
            ),
        )
        assert rows[0][0] is not None

    def test_unsigned_record_is_refused(
        self, database: Database, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A record written without a key is refused by a store that has one."""
        unsigned = ResultStore(result_storage=database, namespace=namespace)
        unsigned.write("v", key="k")
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        signed = ResultStore(result_storage=database, namespace=namespace)
        with pytest.raises(IntegrityError, match="not signed") as caught:
            signed.read("k")
        assert SIGNING_KEY not in str(caught.value)

    def test_record_signed_with_another_key_is_refused(
        self, database: Database, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A signature made with another key does not verify."""
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", OTHER_SIGNING_KEY)
        ResultStore(result_storage=database, namespace=namespace).write("v", key="k")
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        signed = ResultStore(result_storage=database, namespace=namespace)
        with pytest.raises(IntegrityError, match="signature") as caught:
            signed.read("k")
        message = str(caught.value)
        assert SIGNING_KEY not in message
        assert OTHER_SIGNING_KEY not in message

    def test_signed_payload_moved_to_another_key_is_refused(
        self, signed: ResultStore, database: Database, loaded: list[int]
    ) -> None:
        """Copying a signed row under another key (a replay), with a checksum recomputed to
        match its new key, is refused unread: the signature binds the key."""
        store = ResultStore(
            result_storage=database, namespace=signed.namespace, serializer=CountingSerializer()
        )
        store.write(b"genuine", key="original")
        assert loaded == []
        row = run_sql(
            database,
            select(records).where(
                records.c.namespace == signed.namespace, records.c.key == "original"
            ),
        )[0]
        checksum = record_checksum(
            signed.namespace, "moved", row.serializer, row.expires, bytes(row.payload)
        )
        run_sql(
            database,
            insert(records).values({**row._asdict(), "key": "moved", "checksum": checksum}),
        )
        with pytest.raises(IntegrityError, match="signature"):
            signed.read("moved")
        assert loaded == []
        assert store.read("original").result == b"genuine"

    def test_signature_covers_the_expiry(
        self, signed: ResultStore, database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Someone who can write the table but has no signing key cannot extend a signed
        record's life: a changed expiry (with a checksum recomputed to match) breaks the
        signature."""
        signed.write("v", key="k", expiration=timedelta(hours=1))
        spec = signed.serializer.spec_json()
        (payload,) = run_sql(
            database,
            select(records.c.payload).where(
                records.c.namespace == signed.namespace, records.c.key == "k"
            ),
        )[0]
        later = 4102444800.0
        run_sql(
            database,
            update(records)
            .where(records.c.namespace == signed.namespace, records.c.key == "k")
            .values(
                expires=later,
                checksum=record_checksum(signed.namespace, "k", spec, later, bytes(payload)),
            ),
        )
        reader = ResultStore(
            result_storage=database, namespace=signed.namespace, cache_result_in_memory=False
        )
        with pytest.raises(IntegrityError, match="signature"):
            reader.read("k")

    def test_signed_provenance_round_trips(self, signed: ResultStore, database: Database) -> None:
        """With a signing key, a record with provenance is signed over it and reads back."""
        signed.write({"v": 1}, key="k", provenance=PROVENANCE)
        reader = ResultStore(
            result_storage=database, namespace=signed.namespace, cache_result_in_memory=False
        )
        record = reader.read("k")
        assert (record.result, record.metadata.provenance) == ({"v": 1}, PROVENANCE)

    def test_signature_covers_the_provenance(
        self, signed: ResultStore, database: Database, loaded: list[int]
    ) -> None:
        """Someone who can write the table but has no signing key cannot change a signed
        record's provenance: an edited fingerprint, with a checksum recomputed to match,
        breaks the signature and nothing is deserialized."""
        store = ResultStore(
            result_storage=database, namespace=signed.namespace, serializer=CountingSerializer()
        )
        store.write(b"genuine", key="k", provenance=PROVENANCE)
        row = run_sql(
            database,
            select(records).where(records.c.namespace == signed.namespace, records.c.key == "k"),
        )[0]
        forged = PROVENANCE.model_copy(update={"components": {"inputs.model": "forged"}})
        text = forged.model_dump_json()
        checksum = record_checksum(
            signed.namespace, "k", row.serializer, row.expires, bytes(row.payload), text
        )
        set_columns(database, signed.namespace, "k", provenance=text, checksum=checksum)
        reader = ResultStore(
            result_storage=database,
            namespace=signed.namespace,
            serializer=CountingSerializer(),
            cache_result_in_memory=False,
        )
        with pytest.raises(IntegrityError, match="signature"):
            reader.read("k")
        assert loaded == []

    def test_signing_key_never_shown(self, signed: ResultStore) -> None:
        """The signing key appears in no repr of the store or the settings."""
        assert SIGNING_KEY not in repr(signed)
        assert SIGNING_KEY not in repr(get_settings())
        assert SIGNING_KEY not in str(get_settings())
        assert SIGNING_KEY not in repr(signed.result_storage)


# -- bad input -----------------------------------------------------------------------------------


class TestBadInput:
    @pytest.fixture
    def seeded(self, store: ResultStore) -> ResultStore:
        """The store with one record under "existing"."""
        store.write("original", key="existing")
        return store

    def test_unpicklable_object(self, seeded: ResultStore) -> None:
        """Pickling a lock fails with SerializationError naming the type and another
        serializer; the database is unchanged, the existing record included."""
        before = snapshot(seeded, "existing")
        with pytest.raises(SerializationError) as caught:
            seeded.write(threading.Lock(), key="existing")
        message = str(caught.value)
        assert type(threading.Lock()).__name__ in message
        assert "json" in message
        assert snapshot(seeded, "existing") == before

    def test_object_json_cannot_encode(self, database: Database, namespace: str) -> None:
        """JSON-encoding a bare object fails with SerializationError naming the type and
        suggesting a serializer other than json; nothing is written."""
        store = ResultStore(result_storage=database, namespace=namespace, serializer="json")
        store.write("original", key="existing")
        before = snapshot(store, "existing")

        class Opaque:
            pass

        with pytest.raises(SerializationError) as caught:
            store.write(Opaque(), key="new")
        message = str(caught.value)
        assert "Opaque" in message
        assert "pickle" in message
        assert snapshot(store, "existing") == before
        assert not store.exists("new")

    @pytest.mark.parametrize(
        "key",
        [
            pytest.param("", id="empty"),
            pytest.param(0, id="zero"),
            pytest.param(123, id="int"),
            pytest.param(b"bytes", id="bytes"),
            pytest.param("€" * 400, id="1200-bytes"),
            pytest.param("a" * 1025, id="1025-bytes"),
            pytest.param("€" * 341 + "ab", id="1025-bytes-unicode"),
        ],
    )
    def test_invalid_key(self, seeded: ResultStore, key: Any) -> None:
        """Empty, non-string and over-1,024-byte keys raise InvalidKeyError (a ValueError) in
        write, create_result_record, persist_result_record, read, exists and delete (an empty
        or falsy key is not "no key"), and nothing changes."""
        before = snapshot(seeded, "existing")
        with pytest.raises(InvalidKeyError):
            seeded.write("value", key=key)
        with pytest.raises(InvalidKeyError):
            seeded.create_result_record("value", key=key)
        record = seeded.create_result_record("value", key="placeholder")
        record.metadata.storage_key = key
        with pytest.raises(InvalidKeyError):
            seeded.persist_result_record(record)
        for operation in (seeded.read, seeded.exists, seeded.delete):
            with pytest.raises(InvalidKeyError):
                operation(key)
        assert snapshot(seeded, "existing") == before

    def test_over_long_key_error_names_the_limit(self, store: ResultStore) -> None:
        """The error for a 1,200-byte key names the 1,024-byte limit."""
        with pytest.raises(InvalidKeyError, match="1024"):
            store.write(1, key="€" * 400)

    @pytest.mark.parametrize(
        "key",
        [pytest.param("\ud800", id="lone-surrogate"), pytest.param("a\x00b", id="nul")],
    )
    def test_key_no_backend_can_store_is_invalid(self, seeded: ResultStore, key: str) -> None:
        """A key with a lone surrogate (not encodable as UTF-8) or a NUL character (which
        PostgreSQL text cannot hold) is bad input: InvalidKeyError on every backend, not a driver
        error or an outage, and nothing is written."""
        before = snapshot(seeded, "existing")
        with pytest.raises(InvalidKeyError):
            seeded.write(1, key=key)
        with pytest.raises(InvalidKeyError):
            seeded.exists(key)
        assert snapshot(seeded, "existing") == before

    @pytest.mark.parametrize(
        "expiration",
        [
            pytest.param(datetime(2099, 1, 1), id="naive-datetime"),
            pytest.param(3600, id="int"),
            pytest.param(3600.0, id="float"),
            pytest.param("2099-01-01T00:00:00Z", id="string"),
        ],
    )
    def test_invalid_expiration(self, seeded: ResultStore, expiration: Any) -> None:
        """A naive datetime, a number or a string as expiration raises
        InvalidExpirationError, and nothing changes."""
        before = snapshot(seeded, "existing")
        with pytest.raises(InvalidExpirationError):
            seeded.write("value", key="existing", expiration=expiration)
        with pytest.raises(InvalidExpirationError):
            seeded.create_result_record("value", key="other", expiration=expiration)
        assert snapshot(seeded, "existing") == before

    def test_unknown_serializer(self, database: Database, namespace: str) -> None:
        """A store with an unregistered serializer type is refused at construction."""
        with pytest.raises(UnknownSerializerError, match="no-such-serializer"):
            ResultStore(
                result_storage=database, namespace=namespace, serializer="no-such-serializer"
            )

    @pytest.mark.parametrize("namespace_value", ["", "n" * 256, "ns\x00", "\ud800", 5], ids=repr)
    def test_invalid_namespace(
        self, database: Database, namespace: str, namespace_value: Any
    ) -> None:
        """A namespace outside 1..255 characters, not a string, or with NUL or a lone
        surrogate is refused at construction on both backends (SQLite would store NUL and
        PostgreSQL could not), and nothing is written."""
        existing = ResultStore(result_storage=database, namespace=namespace)
        existing.write("original", key="existing")
        before = snapshot(existing, "existing")
        with pytest.raises(InvalidArgumentError, match="namespace"):
            ResultStore(result_storage=database, namespace=namespace_value)
        assert snapshot(existing, "existing") == before

    @pytest.mark.parametrize("holder", ["h\x00", "\udfff"], ids=["nul", "lone-surrogate"])
    def test_holder_no_database_can_store(self, seeded: ResultStore, holder: str) -> None:
        """A lock holder with NUL or a lone surrogate is refused on both backends before
        anything is written (it used to be stored on SQLite and an outage on PostgreSQL)."""
        before = snapshot(seeded, "existing")
        with pytest.raises(InvalidArgumentError, match="holder"):
            seeded.acquire_lock("k", holder=holder, timeout=0)
        with pytest.raises(InvalidArgumentError, match="holder"):
            seeded.write("new", key="existing", holder=holder)
        assert snapshot(seeded, "existing") == before
        assert not seeded.is_locked("k")

    @pytest.mark.parametrize("lease", [0, -1, -0.5, math.nan], ids=repr)
    def test_lease_must_be_more_than_zero(self, seeded: ResultStore, lease: float) -> None:
        """acquire_lock and renew_lock refuse a lease of zero or less with one message,
        whatever the value, and take or extend no lock."""
        seeded.acquire_lock("held", holder="me", timeout=0)
        for call in (
            lambda: seeded.acquire_lock("k", holder="me", timeout=0, hold_timeout=lease),
            lambda: seeded.renew_lock("held", holder="me", hold_timeout=lease),
        ):
            with pytest.raises(InvalidArgumentError, match=r"^hold_timeout must be more than zero"):
                call()
        assert not seeded.is_locked("k")


class TestStorageConfiguration:
    @pytest.mark.parametrize(
        "url",
        [
            "postgresql+asyncpg://user@host/db",
            "sqlite+aiosqlite:///results.db",
            "postgresql+pg8000://user@host/db",
            "mysql://user@host/db",
            "oracle://h/db",
        ],
    )
    def test_unusable_database_url(self, url: str) -> None:
        """A URL for an asyncio driver (installed or not), a driver that is not installed, or a
        database sqlresults does not support, raises ConfigurationError."""
        with pytest.raises(ConfigurationError):
            ResultStore(result_storage=url)

    def test_file_that_is_not_sqlite(self, tmp_path: Path) -> None:
        """A store on a file that is not a SQLite database raises ConfigurationError on first
        use and leaves the file byte for byte as it was (a SQLite-only situation)."""
        path = tmp_path / "not-a-database.db"
        garbage = b"this is not a database " * 200
        path.write_bytes(garbage)
        store = ResultStore(result_storage=path)
        with pytest.raises(ConfigurationError, match="not a SQLite database"):
            store.exists("k")
        with pytest.raises(ConfigurationError):
            store.write(1, key="k")
        assert path.read_bytes() == garbage

    def test_read_only_sqlite_database(self, tmp_path: Path) -> None:
        """A SQLite file opened read-only (mode=ro) serves reads, and refuses writes with
        ReadOnlyStorageError, which is also a StorageUnavailableError and a PermissionError
        (SQLite-only: PostgreSQL has no read-only URL)."""
        path = tmp_path / "results.db"
        writable = Database(path)
        ResultStore(result_storage=writable, namespace="ns").write("stored", key="k")
        writable.close()
        store = ResultStore(
            result_storage=f"sqlite:///file:{path}?mode=ro&uri=true", namespace="ns"
        )
        assert store.exists("k")
        assert store.read("k").result == "stored"
        assert list(store.keys()) == ["k"]
        with pytest.raises(ReadOnlyStorageError) as caught:
            store.write("new", key="k")
        assert isinstance(caught.value, StorageUnavailableError)
        assert isinstance(caught.value, PermissionError)
        with pytest.raises(ReadOnlyStorageError):
            store.delete("k")
        assert store.read("k").result == "stored"

    def test_outage_is_not_a_miss(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """exists() on an unreachable PostgreSQL server raises StorageUnavailableError (never
        False) and the message hides the password. Port 1 refuses at once; no server needed."""
        monkeypatch.setenv("SQLRESULTS_BUSY_TIMEOUT", "0.5")
        store = ResultStore(result_storage="postgresql+psycopg://u:secret@127.0.0.1:1/db")
        with pytest.raises(StorageUnavailableError) as caught:
            store.exists("k")
        assert "secret" not in str(caught.value)
        assert "secret" not in repr(store)
        with pytest.raises(StorageUnavailableError) as caught:
            store.write(1, key="k")
        assert "secret" not in str(caught.value)

    @pytest.mark.postgres
    def test_wrong_credentials_are_a_clear_error(self, postgres_url: str) -> None:
        """Credentials the PostgreSQL server refuses (here a role that does not exist; the test
        server trusts every existing one) raise StorageUnavailableError on first use, saying
        why, without the password. PostgreSQL only: SQLite has no credentials."""
        url = make_url(postgres_url).set(username="no_such_role", password="s3cret")
        store = ResultStore(result_storage=url.render_as_string(hide_password=False))
        with pytest.raises(StorageUnavailableError) as caught:
            store.exists("k")
        assert 'role "no_such_role" does not exist' in str(caught.value)
        assert "s3cret" not in str(caught.value)
        assert "***" in str(caught.value)


# -- async twins ---------------------------------------------------------------------------------


class TestAsync:
    def test_async_twins(self, store: ResultStore) -> None:
        """awrite, aexists, aread, apersist_result_record and adelete do what their sync forms
        do."""

        async def scenario() -> None:
            await store.awrite({"a": 1}, key="k")
            assert await store.aexists("k")
            assert (await store.aread("k")).result == {"a": 1}
            record = store.create_result_record([2], key="k2")
            await store.apersist_result_record(record)
            assert record.is_persisted
            assert (await store.aread("k2")).result == [2]
            assert await store.adelete("k") is True
            assert await store.adelete("k") is False
            assert not await store.aexists("k")
            with pytest.raises(RecordNotFoundError):
                await store.aread("k")

        asyncio.run(scenario())

    def test_async_read_include_expired(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        """aread passes include_expired through."""
        clocked_store.write(1, key="k", expiration=timedelta(seconds=1))
        clock.advance(2)

        async def scenario() -> int:
            with pytest.raises(RecordNotFoundError):
                await clocked_store.aread("k")
            return (await clocked_store.aread("k", include_expired=True)).result  # type: ignore[no-any-return]

        assert asyncio.run(scenario()) == 1

    def test_async_locks(self, store: ResultStore) -> None:
        """aacquire_lock takes a lock and await_for_lock sees it free after release."""

        async def scenario() -> None:
            assert await store.aacquire_lock("k", holder="h", timeout=0)
            assert store.is_lock_holder("k", "h")
            assert not await store.await_for_lock("k", timeout=0)
            store.release_lock("k", holder="h")
            assert await store.await_for_lock("k", timeout=0)

        asyncio.run(scenario())


# -- locks through the store ---------------------------------------------------------------------


class TestLocks:
    def test_acquire_release_and_inspect(self, store: ResultStore) -> None:
        """acquire_lock, is_locked, is_lock_holder and release_lock, with explicit holders."""
        assert not store.is_locked("k")
        assert store.acquire_lock("k", holder="a", timeout=0)
        assert store.is_locked("k")
        assert store.is_lock_holder("k", "a")
        assert not store.is_lock_holder("k", "b")
        assert not store.acquire_lock("k", holder="b", timeout=0)
        with pytest.raises(LockNotHeldError) as caught:
            store.release_lock("k", holder="b")
        assert str(caught.value) == "No lock held by b for transaction with key k"
        assert store.is_lock_holder("k", "a")
        store.release_lock("k", holder="a")
        assert not store.is_locked("k")
        store.release_lock("k", holder="a")  # nobody holds it: a no-op
        assert store.acquire_lock("k", holder="b", timeout=0)

    def test_default_holder_is_this_thread(self, store: ResultStore) -> None:
        """Without a holder, the lock belongs to generate_default_holder()."""
        assert store.acquire_lock("k")
        assert store.is_lock_holder("k")
        assert store.is_lock_holder("k", store.generate_default_holder())
        store.release_lock("k")
        assert not store.is_locked("k")

    def test_lease_defaults_to_lock_hold_timeout(
        self, clocked_database: Database, namespace: str, clock: FakeClock, monkeypatch: Any
    ) -> None:
        """A lock taken without hold_timeout lasts SQLRESULTS_LOCK_HOLD_TIMEOUT seconds."""
        monkeypatch.setenv("SQLRESULTS_LOCK_HOLD_TIMEOUT", "30")
        store = ResultStore(result_storage=clocked_database, namespace=namespace)
        assert store.acquire_lock("k", holder="h")
        clock.advance(29)
        assert store.is_locked("k")
        clock.advance(2)
        assert not store.is_locked("k")
        assert store.acquire_lock("k", holder="other", timeout=0)

    def test_renew_lock(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        """renew_lock extends the holder's lease from now; a non-holder cannot renew."""
        assert clocked_store.acquire_lock("k", holder="h", hold_timeout=10)
        clock.advance(8)
        assert clocked_store.renew_lock("k", holder="h", hold_timeout=10)
        assert not clocked_store.renew_lock("k", holder="other", hold_timeout=10)
        clock.advance(8)
        assert clocked_store.is_lock_holder("k", "h")
        clock.advance(3)
        assert not clocked_store.is_locked("k")

    def test_wait_for_lock(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        """wait_for_lock is True for a free key, False when the timeout runs out on a held
        one, and True once the lease ends."""
        assert clocked_store.wait_for_lock("k", timeout=0)
        assert clocked_store.acquire_lock("k", holder="h", hold_timeout=5)
        assert not clocked_store.wait_for_lock("k", timeout=0.01)
        clock.advance(6)
        assert clocked_store.wait_for_lock("k", timeout=0)

    @pytest.mark.parametrize(
        "level",
        [IsolationLevel.READ_COMMITTED, IsolationLevel.SERIALIZABLE, "SERIALIZABLE"],
    )
    def test_supports_both_isolation_levels(self, store: ResultStore, level: Any) -> None:
        """Every store supports READ_COMMITTED and SERIALIZABLE (its locks are in the
        database)."""
        assert store.supports_isolation_level(level) is True

    def test_unknown_isolation_level(self, store: ResultStore) -> None:
        """An unknown level raises ValueError with Prefect's message."""
        with pytest.raises(ValueError, match=r"^Unsupported isolation level: BOGUS$"):
            store.supports_isolation_level("BOGUS")

    def test_default_holder_format(self) -> None:
        """generate_default_holder() is "host:pid:thread id:thread name", in any thread."""
        results: list[str] = []
        expected: list[str] = []

        def record() -> None:
            thread = threading.current_thread()
            expected.append(f"{socket.gethostname()}:{os.getpid()}:{thread.ident}:{thread.name}")
            results.append(ResultStore.generate_default_holder())

        record()
        worker = threading.Thread(target=record, name="worker-thread")
        worker.start()
        worker.join()
        assert results == expected
        assert results[0] != results[1]

    def test_default_holder_in_an_asyncio_task(self) -> None:
        """Inside an asyncio task the holder gets the task's id as a fifth part, so two tasks
        on one thread are different holders."""
        thread = threading.current_thread()
        base = f"{socket.gethostname()}:{os.getpid()}:{thread.ident}:{thread.name}"

        async def holder() -> tuple[str, int]:
            return ResultStore.generate_default_holder(), id(asyncio.current_task())

        async def scenario() -> list[tuple[str, int]]:
            return list(await asyncio.gather(holder(), holder()))

        pairs = asyncio.run(scenario())
        for holder_id, task_id in pairs:
            assert holder_id == f"{base}:{task_id}"
        assert pairs[0][0] != pairs[1][0]

    def test_write_to_a_key_locked_by_another_holder(self, store: ResultStore) -> None:
        """write() by a non-holder raises LockHeldByOtherError (a RuntimeError) with Prefect's
        message and leaves the record unchanged; the holder can write."""
        store.write("old", key="k")
        assert store.acquire_lock("k", holder="owner", timeout=0)
        with pytest.raises(RuntimeError) as caught:
            store.write("intruder", key="k")
        assert isinstance(caught.value, LockHeldByOtherError)
        assert str(caught.value) == (
            "Cannot write to result record with key k because it is locked by another holder."
        )
        assert store.read("k", holder="owner").result == "old"
        store.write("owner's", key="k", holder="owner")
        assert store.read("k", holder="owner").result == "owner's"

    def test_write_to_a_new_key_locked_by_another_holder(self, store: ResultStore) -> None:
        """A refused write to a locked key that has no record creates none."""
        assert store.acquire_lock("fresh", holder="owner", timeout=0)
        with pytest.raises(LockHeldByOtherError):
            store.write("intruder", key="fresh", holder="intruder")
        assert store.stats().records == 0

    def test_read_of_a_locked_key_waits_for_release(self, store: ResultStore) -> None:
        """read() by a non-holder of a locked key waits until the holder releases it, and
        returns what the holder wrote before releasing."""
        store.write("stale", key="k")
        assert store.acquire_lock("k", holder="computing", timeout=0)
        events: list[str] = []

        def holder() -> None:
            time.sleep(0.2)
            store.write("fresh", key="k", holder="computing")
            events.append("written")
            events.append("releasing")
            store.release_lock("k", holder="computing")

        worker = threading.Thread(target=holder)
        worker.start()
        try:
            assert store.read("k").result == "fresh"
            events.append("read")
        finally:
            worker.join()
        assert events == ["written", "releasing", "read"]


# -- module functions ----------------------------------------------------------------------------


class TestModuleFunctions:
    def test_default_storage_key_fn(self) -> None:
        """DEFAULT_STORAGE_KEY_FN returns a new 32-hex-character key each call."""
        keys = {DEFAULT_STORAGE_KEY_FN() for _ in range(100)}
        assert len(keys) == 100
        assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)

    def test_default_storage_is_in_sqlresults_home(self, tmp_path: Path) -> None:
        """The default database is results.db in SQLRESULTS_HOME, shared by every caller."""
        database = get_default_result_storage()
        assert database.dialect.sqlite_path == tmp_path / "home" / "results.db"
        assert get_default_result_storage() is database

    def test_default_storage_follows_database_url(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """SQLRESULTS_DATABASE_URL names the default database."""
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", f"sqlite:///{tmp_path / 'team.db'}")
        assert get_default_result_storage().dialect.sqlite_path == tmp_path / "team.db"

    def test_async_default_storage_is_the_shared_default(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """aget_default_result_storage (Prefect's async twin) returns the very Database
        get_default_result_storage does, following SQLRESULTS_DATABASE_URL."""
        database = asyncio.run(aget_default_result_storage())
        assert database is get_default_result_storage()
        assert database.dialect.sqlite_path == tmp_path / "home" / "results.db"
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", f"sqlite:///{tmp_path / 'team.db'}")
        assert asyncio.run(aget_default_result_storage()).dialect.sqlite_path == (
            tmp_path / "team.db"
        )

    def test_resolve_result_storage(self, tmp_path: Path) -> None:
        """A Database is returned as is; a URL string and a pathlib.Path give a Database on
        that SQLite file; None gives the default."""
        database = Database(f"sqlite:///{tmp_path / 'a.db'}")
        assert resolve_result_storage(database) is database
        from_url = resolve_result_storage(f"sqlite:///{tmp_path / 'b.db'}")
        assert isinstance(from_url, Database)
        assert from_url.dialect.sqlite_path == tmp_path / "b.db"
        from_path = resolve_result_storage(tmp_path / "c.db")
        assert from_path.dialect.sqlite_path == tmp_path / "c.db"
        assert resolve_result_storage(None) is get_default_result_storage()

    def test_resolve_result_storage_from_a_relative_path(self, tmp_path: Path) -> None:
        """A relative pathlib.Path names a file relative to the working directory."""
        store = ResultStore(result_storage=Path("relative.db"), namespace="ns")
        store.write(1, key="k")
        assert (tmp_path / "relative.db").is_file()

    @pytest.mark.parametrize("value", [123, 4.5, b"sqlite:///x.db", object()])
    def test_resolve_result_storage_refuses_other_types(self, value: Any) -> None:
        """Anything but a Database, URL or path raises TypeError."""
        with pytest.raises(TypeError):
            resolve_result_storage(value)

    def test_resolve_serializer(self) -> None:
        """resolve_serializer accepts a type string, a spec mapping or an instance."""
        assert isinstance(resolve_serializer("json"), JSONSerializer)
        assert isinstance(resolve_serializer("pickle"), PickleSerializer)
        assert isinstance(resolve_serializer({"type": "compressed/json"}), CompressedJSONSerializer)
        instance = JSONSerializer(jsonlib="json")
        assert resolve_serializer(instance) is instance
        with pytest.raises(UnknownSerializerError):
            resolve_serializer("no-such-serializer")
        with pytest.raises(TypeError):
            resolve_serializer(42)

    def test_default_result_serializer(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The default serializer is pickle; SQLRESULTS_RESULTS_DEFAULT_SERIALIZER changes it,
        for new stores too."""
        assert isinstance(get_default_result_serializer(), PickleSerializer)
        monkeypatch.setenv("SQLRESULTS_RESULTS_DEFAULT_SERIALIZER", "compressed/json")
        assert isinstance(get_default_result_serializer(), CompressedJSONSerializer)
        assert ResultStore().serializer.type == "compressed/json"

    def test_default_persist_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Results are not persisted by default; SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT turns
        it on."""
        assert get_default_persist_setting() is False
        monkeypatch.setenv("SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT", "true")
        assert get_default_persist_setting() is True

    def test_default_persist_setting_for_tasks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Tasks follow SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT when set, else the results
        default."""
        assert get_default_persist_setting_for_tasks() is False
        monkeypatch.setenv("SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT", "true")
        assert get_default_persist_setting_for_tasks() is True
        monkeypatch.setenv("SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT", "false")
        assert get_default_persist_setting_for_tasks() is False
        monkeypatch.setenv("SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT", "false")
        monkeypatch.setenv("SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT", "true")
        assert get_default_persist_setting_for_tasks() is True

    def test_should_persist_result(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Outside a run the setting decides; in a flow, the flow's choice; in a task within
        it, the task's."""
        assert should_persist_result() is False
        monkeypatch.setenv("SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT", "true")
        assert should_persist_result() is True
        with run_context(RunContext(kind="flow", persist_result=False)):
            assert should_persist_result() is False
            with run_context(RunContext(kind="task", persist_result=True)):
                assert should_persist_result() is True
            assert should_persist_result() is False
        with run_context(RunContext(kind="task", persist_result=False)):
            assert should_persist_result() is False
        assert should_persist_result() is True

    def test_default_cache(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """default_cache() is a new LRUCache of 1,000 entries, or SQLRESULTS_MEMORY_CACHE_SIZE."""
        cache = default_cache()
        assert isinstance(cache, LRUCache)
        assert cache.maxsize == 1000
        assert default_cache() is not cache
        monkeypatch.setenv("SQLRESULTS_MEMORY_CACHE_SIZE", "7")
        assert default_cache().maxsize == 7

    def test_result_storage_discriminator(self, backend: str, database: Database) -> None:
        """The discriminator names the dialect of a Database, a URL or a path, and refuses
        other types."""
        assert result_storage_discriminator(database) == backend
        assert result_storage_discriminator(database.url.render_as_string(False)) == backend

    def test_result_storage_discriminator_without_connecting(self, tmp_path: Path) -> None:
        """URLs and paths are classified without connecting; a bad type is a TypeError."""
        assert result_storage_discriminator(tmp_path / "x.db") == "sqlite"
        assert result_storage_discriminator("postgresql+psycopg://u@127.0.0.1:1/db") == (
            "postgresql"
        )
        assert result_storage_discriminator(None) == "sqlite"
        assert not (tmp_path / "x.db").exists()
        with pytest.raises(TypeError):
            result_storage_discriminator(42)
        with pytest.raises(ConfigurationError):
            result_storage_discriminator("mysql://u@h/db")

    def test_get_result_store_from_context(self, store: ResultStore) -> None:
        """Inside a run, get_result_store() returns the run's store: the task's over the
        flow's."""
        flow_store = ResultStore(result_storage=store.result_storage, namespace="flow-ns")
        with run_context(RunContext(kind="flow", persist_result=True, result_store=flow_store)):
            assert get_result_store() is flow_store
            with run_context(RunContext(kind="task", persist_result=True, result_store=store)):
                assert get_result_store() is store
            with run_context(RunContext(kind="task", persist_result=True)):
                assert get_result_store() is flow_store

    def test_get_result_store_outside_a_run(self, tmp_path: Path) -> None:
        """Outside a run, get_result_store() returns a new default store."""
        first = get_result_store()
        assert isinstance(first, ResultStore)
        assert get_result_store() is not first
        assert first.result_storage.dialect.sqlite_path == tmp_path / "home" / "results.db"

    def test_store_without_arguments_creates_the_default_file(self, tmp_path: Path) -> None:
        """ResultStore() creates and migrates $SQLRESULTS_HOME/results.db on first use."""
        path = tmp_path / "home" / "results.db"
        store = ResultStore()
        assert store.namespace == "default"
        store.write("hello", key="k")
        assert path.is_file()
        assert store.read("k").result == "hello"
        assert ResultStore().read("k").result == "hello"

    def test_result_storage_block_id_is_none(self, store: ResultStore) -> None:
        """Results live in a database, not a Prefect block."""
        assert store.result_storage_block_id is None

    def test_store_repr_hides_the_password(self) -> None:
        """repr(store) names its database without the password."""
        store = ResultStore(result_storage="postgresql+psycopg://u:s3cret@127.0.0.1:1/db")
        assert "s3cret" not in repr(store)
        assert "127.0.0.1" in repr(store)


class TestSerializerReassignment:
    def test_a_reassigned_serializer_is_recorded_with_its_own_spec(
        self, store: ResultStore
    ) -> None:
        """The store reuses the spec of the serializer it used last; after `store.serializer` is
        replaced, records are stored with the new serializer's spec and read back correctly."""
        store.write({"n": 1}, key="first")
        store.serializer = JSONSerializer()
        store.write({"n": 2}, key="second")
        store.cache.clear()
        assert store.read("first").metadata.serializer.type == "pickle"
        second = store.read("second")
        assert second.metadata.serializer.type == "json"
        assert second.result == {"n": 2}


class TestPickling:
    """Stores cross process boundaries (process pools, Dask workers): pickled as their
    database's URL and options, serializer, namespace, lock manager and signing key; the other
    side reconnects lazily (issue: "stores can't cross a process boundary")."""

    def test_round_trip_in_process(self, store: ResultStore) -> None:
        """A pickled store unpickles to a working store on the same database and namespace,
        with its serializer and lock manager, and an empty memory cache of the same size
        (before the fix: "cannot pickle '_thread._local'")."""
        store.write({"a": 1}, key="k")
        restored = pickle.loads(pickle.dumps(store))
        assert restored.namespace == store.namespace
        assert restored.serializer == store.serializer
        assert restored.result_storage.is_same_database(store.result_storage)
        assert isinstance(restored.lock_manager, SQLLockManager)
        assert restored.lock_manager.database is restored.result_storage
        assert restored.cache.maxsize == store.cache.maxsize
        assert len(restored.cache) == 0
        assert restored.read("k").result == {"a": 1}
        restored.write("from the copy", key="k2")
        assert store.read("k2").result == "from the copy"

    def test_a_spawned_worker_uses_the_store(self, store: ResultStore) -> None:
        """A store passed to a worker of a spawn-based process pool reads what the parent wrote
        and writes what the parent then reads, on both backends."""
        store.write("from the parent", key="k")
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            seen = pool.submit(use_pickled_store, store, "k", "from the child").result(timeout=120)
        assert seen["pid"] != os.getpid()
        assert seen["parent_value"] == "from the parent"
        assert seen["namespace"] == store.namespace
        assert seen["shares_database"] is True
        assert seen["repr"] == repr(store)
        assert store.read("k/child").result == "from the child"

    def test_the_signing_key_travels(
        self, database: Database, namespace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A worker signs with its sender's key even where SQLRESULTS_SIGNING_KEY is not set
        (a Dask worker on another machine): what it writes verifies under that key."""
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        signed = ResultStore(result_storage=database, namespace=namespace)
        signed.write("parent", key="k")
        monkeypatch.delenv("SQLRESULTS_SIGNING_KEY")
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            seen = pool.submit(use_pickled_store, signed, "k", "child").result(timeout=120)
        assert seen["parent_value"] == "parent"
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", SIGNING_KEY)
        checker = ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )
        assert checker.read("k/child").result == "child"
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", OTHER_SIGNING_KEY)
        other = ResultStore(
            result_storage=database, namespace=namespace, cache_result_in_memory=False
        )
        with pytest.raises(IntegrityError, match="signature"):
            other.read("k/child")

    def test_a_store_on_a_memory_database_refuses_to_travel(self) -> None:
        """A store on an in-memory database cannot cross processes: a clear
        ConfigurationError, not a TypeError about thread locals."""
        with pytest.raises(ConfigurationError, match="in-memory"):
            pickle.dumps(ResultStore(result_storage="sqlite://"))
