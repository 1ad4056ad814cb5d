"""The result store, and the module functions of ``prefect.results`` with the same names.

A :class:`ResultStore` persists results in a :class:`~sqlresults.database.Database` ("result
storage" here is a database, not a file system). Where Prefect's store is known to be wrong, this
one differs on purpose (DESIGN.md §2):

- ``exists()`` is one indexed query that never touches the payload; expired records are absent
  everywhere, ``read()`` included;
- a record, its metadata and its lock check change in one statement: a write another holder's
  lock forbids is refused atomically, and no reader ever sees half a record;
- keys are stored verbatim, scoped by a namespace; payloads are raw bytes with a checksum, and
  HMAC-signed when ``SQLRESULTS_SIGNING_KEY`` is set (an unsigned or altered payload is refused
  before it is deserialized);
- the in-memory LRU saves deserialization, never correctness: every read confirms the row's
  version, so a value another process overwrote is never served;
- database failures raise :class:`~sqlresults.errors.StorageUnavailableError`; an outage is never
  reported as a cache miss.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cachetools import LRUCache

from sqlresults import async_results, queries
from sqlresults.async_database import async_database
from sqlresults.context import current_flow_run, current_task_run
from sqlresults.database import Database, WriteTransaction, parse_url, resolve_database
from sqlresults.dialects import Dialect
from sqlresults.errors import (
    InvalidArgumentError,
    LeaseLostError,
    LockError,
    LockHeldByOtherError,
    LockTimeoutError,
    RecordNotFoundError,
    SerializationError,
    UnknownSerializerError,
)
from sqlresults.integrity import Signer, damaged_record_error, record_checksum, verify_record
from sqlresults.locking import IsolationLevel, LockManager, SQLLockManager
from sqlresults.records import (
    Provenance,
    ResultRecord,
    ResultRecordMetadata,
    serialize_result,
)
from sqlresults.serializers import Serializer
from sqlresults.settings import get_settings
from sqlresults.validation import (
    check_holder,
    check_key,
    check_lease,
    check_namespace,
    check_prefix,
    check_timeout,
    to_expiration,
)

__all__ = [
    "DEFAULT_STORAGE_KEY_FN",
    "ResultStore",
    "StoreStats",
    "aget_default_result_storage",
    "default_cache",
    "derive_result_store",
    "get_default_persist_setting",
    "get_default_persist_setting_for_tasks",
    "get_default_result_serializer",
    "get_default_result_storage",
    "get_result_store",
    "resolve_result_storage",
    "resolve_serializer",
    "result_storage_discriminator",
    "should_persist_result",
]

# Keys pages and sweep batches, in rows: small enough to keep each statement short (other
# writers interleave between them), large enough that round trips don't dominate.
_PAGE_SIZE = 1000


def DEFAULT_STORAGE_KEY_FN() -> str:  # noqa: N802 - Prefect's name, part of the API contract
    """Return a fresh random storage key: 32 hex characters (a uuid4 without dashes)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class StoreStats:
    """What :meth:`ResultStore.stats` reports about one namespace.

    Attributes:
        records: Records stored, expired ones included.
        payload_bytes: Total size of their payloads, in bytes.
        expired: Records that have expired but were not swept yet.
        locks_held: Keys with an unexpired lock.
    """

    records: int
    payload_bytes: int
    expired: int
    locks_held: int


class ResultStore:
    """Stores results, their metadata and their locks in one database.

    Args:
        result_storage: Where results live: a :class:`~sqlresults.database.Database`, a URL
            (``sqlite:///team.db``, ``postgresql+psycopg://…``) or a ``pathlib.Path`` to a SQLite
            file. None uses ``SQLRESULTS_DATABASE_URL`` (default ``~/.sqlresults/results.db``,
            created and migrated on first use).
        serializer: A :class:`~sqlresults.serializers.Serializer` or a type string (``"pickle"``,
            ``"json"``, ``"compressed/pickle"``, ``"compressed/json"``); default from
            ``SQLRESULTS_RESULTS_DEFAULT_SERIALIZER``.
        namespace: Records and locks are scoped by namespace; default ``SQLRESULTS_NAMESPACE``.
        cache_result_in_memory: Keep deserialized records in an in-memory LRU.
        storage_key_fn: Makes a key for records written without one.
        lock_manager: Where locks live; default a :class:`~sqlresults.locking.SQLLockManager` on
            the same database and namespace, so writes check locks atomically.
        cache: The LRU to use (stores may share one); default :func:`default_cache`.

    Raises:
        ConfigurationError: The storage or serializer cannot be used.
    """

    def __init__(
        self,
        *,
        result_storage: Any = None,
        serializer: Serializer | str | None = None,
        namespace: str | None = None,
        cache_result_in_memory: bool = True,
        storage_key_fn: Callable[[], str] = DEFAULT_STORAGE_KEY_FN,
        lock_manager: LockManager | None = None,
        cache: LRUCache[str, ResultRecord[Any]] | None = None,
    ) -> None:
        settings = get_settings()
        self.result_storage: Database = resolve_result_storage(result_storage)
        self.serializer: Serializer = (
            resolve_serializer(serializer)
            if serializer is not None
            else get_default_result_serializer()
        )
        self.namespace: str = check_namespace(
            namespace if namespace is not None else settings.namespace
        )
        self.cache_result_in_memory = cache_result_in_memory
        self.storage_key_fn = storage_key_fn
        self.lock_manager: LockManager = (
            lock_manager
            if lock_manager is not None
            else SQLLockManager(self.result_storage, namespace=self.namespace)
        )
        self._last_spec: tuple[Serializer | None, str] = (None, "")
        self.cache: LRUCache[str, ResultRecord[Any]] = (
            cache if cache is not None else default_cache()
        )
        self._cache_lock = threading.Lock()
        signing_key = settings.signing_key
        self._signer = (
            None if signing_key is None else Signer(signing_key.get_secret_value().encode())
        )

    def __repr__(self) -> str:
        return (
            f"ResultStore(result_storage={self.result_storage!r}, namespace={self.namespace!r}, "
            f"serializer={self.serializer.type!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        """What a pickled store carries to another process: its database (URL and options),
        serializer, namespace, lock manager, key function and signing key, but not the records
        cached in memory (only the cache's size) and no lock or connection.

        The signing key travels, so a worker signs and checks what its sender would, even where
        ``SQLRESULTS_SIGNING_KEY`` is not set; a pickle is as private as process memory.
        """
        state = self.__dict__.copy()
        del state["_cache_lock"]
        state["_last_spec"] = (None, "")
        state["cache"] = self.cache.maxsize
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["cache"] = LRUCache(maxsize=state["cache"])
        self.__dict__.update(state)
        self._cache_lock = threading.Lock()

    @property
    def _locks_in_database(self) -> bool:
        """Whether this store's locks are rows next to its records, so that writes and reads
        check them in the same statement. A foreign lock manager (Prefect's protocol) keeps its
        locks elsewhere and is asked separately, as Prefect does."""
        manager = self.lock_manager
        return (
            isinstance(manager, SQLLockManager)
            and manager.namespace == self.namespace
            and manager.database.is_same_database(self.result_storage)
        )

    @property
    def result_storage_block_id(self) -> uuid.UUID | None:
        """Always None: results live in a database, not in a Prefect storage block."""
        return None

    # -- exists ----------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        """Whether an unexpired record is stored under ``key``.

        One indexed query; the payload is neither read nor deserialized.

        Raises:
            InvalidKeyError: ``key`` is not a valid key.
            StorageUnavailableError: The database cannot be reached (never reported as False).
        """
        database = self.result_storage
        params = {"ns": self.namespace, "key": check_key(key)}
        return database.fetchone(queries.record_exists, params) is not None

    async def aexists(self, key: str) -> bool:
        """Async form of :meth:`exists`: awaited on PostgreSQL, in a worker thread on
        SQLite."""
        aio = async_database(self.result_storage)
        if aio is None:
            return await asyncio.to_thread(self.exists, key)
        params = {"ns": self.namespace, "key": check_key(key)}
        return await aio.fetchone(queries.record_exists, params) is not None

    # -- read ------------------------------------------------------------------------------

    def read(
        self,
        key: str,
        holder: str | None = None,
        *,
        include_expired: bool = False,
        lock_timeout: float | None = None,
    ) -> ResultRecord[Any]:
        """Read the record stored under ``key``.

        If another holder has the key's lock, waits until it is released (a computation is in
        progress), like Prefect. A record kept in memory is returned without deserializing when
        the database confirms it is still the current version.

        Args:
            key: The record's key.
            holder: The caller's lock holder id; a holder never waits for its own lock. Default:
                :meth:`generate_default_holder`.
            include_expired: Return an expired record instead of raising.
            lock_timeout: Seconds to wait for another holder's lock on the key; None (default)
                waits as long as it takes, like Prefect; 0 does not wait.

        Returns:
            The record, marked persisted; ``metadata.provenance`` is the
            :class:`~sqlresults.records.Provenance` a task stored with it, or None.

        Raises:
            RecordNotFoundError: No record, or only an expired one (a ``KeyError``).
            LockTimeoutError: Another holder kept the key locked for ``lock_timeout`` seconds.
            IntegrityError: The record (payload, metadata or provenance) fails its checksum, or
                its signature when ``SQLRESULTS_SIGNING_KEY`` is set; it is not deserialized.
            SerializationError: The payload cannot be deserialized.
            StorageUnavailableError: The database cannot be reached.
        """
        check_key(key)
        timeout = check_timeout(lock_timeout, "lock_timeout")
        deadline = None if timeout is None else time.monotonic() + timeout
        database = self.result_storage
        while True:
            cached = self.cache.get(key) if self.cache_result_in_memory else None
            params = {
                "ns": self.namespace,
                "key": key,
                "known_version": None if cached is None else cached.version,
                "include_expired": 1 if include_expired else 0,
            }
            # A record not in memory is fetched as stored; only a miss (or a cached copy to
            # confirm) needs the statement that reports record and lock in one snapshot.
            row = None if cached is not None else database.fetchone(queries.record_fetch, params)
            if row is None:
                row = database.fetchone(queries.record_read, params)
            assert row is not None  # record_read always returns exactly one row
            if self._must_wait_for_lock(key, row[7], holder):
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not self.lock_manager.wait_for_lock(key, remaining):
                    raise self._lock_timeout_error(key, timeout)
                continue
            break
        return self._record_from_row(key, row, cached, include_expired)

    @staticmethod
    def _lock_timeout_error(key: str, timeout: float | None) -> LockTimeoutError:
        return LockTimeoutError(
            f"Result record {key!r} is locked by another holder (a computation is in "
            f"progress) and was not released within {timeout:g} s."
        )

    @property
    def _has_async_path(self) -> bool:
        """Whether the async methods await the database (PostgreSQL) rather than run the sync
        ones in worker threads (SQLite, or locks kept by a foreign lock manager, whose sync
        methods the sync path calls)."""
        return self._locks_in_database and async_database(self.result_storage) is not None

    def _record_from_row(
        self,
        key: str,
        row: tuple[Any, ...],
        cached: ResultRecord[Any] | None,
        include_expired: bool,
    ) -> ResultRecord[Any]:
        """The record a ``record_fetch`` or ``record_read`` row holds: checked (checksum,
        signature) before it is deserialized, or ``cached`` when the row confirms its version.

        Raises:
            RecordNotFoundError: No record, or only an expired one.
            IntegrityError: The record fails its checksum or signature.
            SerializationError: The payload cannot be deserialized.
        """
        payload, spec, checksum, signature, expires, version, expired, _, provenance_json = row
        del row  # the payload may be large: hold one reference, dropped before deserializing
        if version is None:
            self._forget(key)
            raise RecordNotFoundError(key, self.namespace)
        if expired and not include_expired:
            self._forget(key)
            raise RecordNotFoundError(key, self.namespace, expired=True)
        if payload is None and cached is not None and cached.version == version:
            return cached
        namespace = self.namespace
        verify_record(
            namespace,
            key,
            spec,
            expires,
            payload,
            checksum,
            signature,
            self._signer,
            provenance=provenance_json,
        )
        provenance = None
        if provenance_json is not None:
            try:
                provenance = Provenance.model_validate_json(provenance_json)
            except ValueError as exc:
                # It passed the checksum, so it was written outside sqlresults.
                raise damaged_record_error(key, namespace) from exc
        try:
            serializer = Serializer.from_spec_json(spec)
        except UnknownSerializerError:
            raise
        except ValueError as exc:
            # Only a row written before the checksum covered the spec gets here damaged.
            raise damaged_record_error(key, namespace) from exc
        try:
            result = serializer.loads(payload)
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(
                f"Failed to deserialize result record {key!r} with serializer "
                f"{serializer.type!r}: {type(exc).__name__}: {exc}"
            ) from exc
        del payload
        expiration = None if expires is None else datetime.fromtimestamp(expires, UTC)
        record = ResultRecord.from_storage(key, result, serializer, expiration, version, provenance)
        self._remember(key, record)
        return record

    async def aread(
        self,
        key: str,
        holder: str | None = None,
        *,
        include_expired: bool = False,
        lock_timeout: float | None = None,
    ) -> ResultRecord[Any]:
        """Async form of :meth:`read`; waiting for a lock does not block the event loop.

        On PostgreSQL it holds no thread (:mod:`sqlresults.async_results`); a payload over
        :data:`~sqlresults.async_results.OFFLOAD_BYTES` is checked and deserialized in a
        worker thread, so the loop is not stalled by it. On SQLite (no asyncio driver)
        :meth:`read` runs in a worker thread.
        """
        holder = holder or self.generate_default_holder()
        if self._has_async_path:
            return await async_results.aread(self, key, holder, include_expired, lock_timeout)
        return await asyncio.to_thread(
            self.read, key, holder, include_expired=include_expired, lock_timeout=lock_timeout
        )

    def _must_wait_for_lock(self, key: str, lock_holder: str | None, holder: str | None) -> bool:
        """Whether a reader must wait: someone other than ``holder`` has the key locked.

        ``lock_holder`` came with the record, from the same snapshot; a foreign lock manager
        (Prefect's protocol) is asked separately, as Prefect does.
        """
        if self._locks_in_database:
            return lock_holder is not None and lock_holder != (
                holder or self.generate_default_holder()
            )
        return self._held_by_other(key, holder or self.generate_default_holder())

    def _lock_holder(self, key: str) -> str | None:
        if isinstance(self.lock_manager, SQLLockManager):
            return self.lock_manager.lock_holder(key)
        return None

    # -- write -----------------------------------------------------------------------------

    def create_result_record(
        self,
        obj: Any,
        key: str | None = None,
        expiration: datetime | timedelta | None = None,
        *,
        provenance: Provenance | None = None,
    ) -> ResultRecord[Any]:
        """Build a record for ``obj`` without storing it.

        Args:
            obj: The result.
            key: Its key; None makes one with ``storage_key_fn``.
            expiration: None (never), a ``timedelta`` from now, or an aware ``datetime``.
            provenance: Where the result comes from, for a record a task writes; stored with
                it by :meth:`persist_result_record`.

        Raises:
            InvalidKeyError: The key is not valid.
            InvalidExpirationError: The expiration is naive or not a time.
        """
        key = check_key(key if key is not None else self.storage_key_fn())
        expires = to_expiration(expiration, self.result_storage.clock())
        return ResultRecord.from_storage(key, obj, self.serializer, expires, None, provenance)

    def write(
        self,
        obj: Any,
        key: str | None = None,
        expiration: datetime | timedelta | None = None,
        holder: str | None = None,
        *,
        provenance: Provenance | None = None,
    ) -> None:
        """Serialize ``obj`` and store it under ``key``, replacing any previous record.

        Args:
            obj: The result.
            key: Its key; None makes one with ``storage_key_fn``.
            expiration: None (never), a ``timedelta`` from now, or an aware ``datetime``.
            holder: The caller's lock holder id (default :meth:`generate_default_holder`).
            provenance: Where the result comes from, for a record a task writes.

        Raises:
            SerializationError: ``obj`` cannot be serialized (nothing is written).
            LockHeldByOtherError: Another holder has an unexpired lock on the key (a
                ``RuntimeError``; nothing is written).
            InvalidArgumentError: A bad key or expiration (nothing is written).
            StorageUnavailableError: The database cannot be reached.
        """
        key = check_key(key if key is not None else self.storage_key_fn())
        expires = to_expiration(expiration, self.result_storage.clock())
        holder = check_holder(holder or self.generate_default_holder())
        serializer = self.serializer
        # The record object is built only to be kept in memory, and then with its version:
        # a write that keeps nothing stores the payload alone.
        version = self._store(
            key, serialize_result(serializer, obj), serializer, expires, provenance, holder, False
        )
        if self.cache_result_in_memory and self.cache.maxsize > 0:
            self._remember(
                key, ResultRecord.from_storage(key, obj, serializer, expires, version, provenance)
            )

    async def awrite(
        self,
        obj: Any,
        key: str | None = None,
        expiration: datetime | timedelta | None = None,
        holder: str | None = None,
        *,
        provenance: Provenance | None = None,
    ) -> None:
        """Async form of :meth:`write`: awaited on PostgreSQL (a payload over
        :data:`~sqlresults.async_results.OFFLOAD_BYTES` is sealed in a worker thread), in a
        worker thread on SQLite."""
        holder = holder or self.generate_default_holder()
        if not self._has_async_path:
            await asyncio.to_thread(self.write, obj, key, expiration, holder, provenance=provenance)
            return
        record = self.create_result_record(obj, key, expiration, provenance=provenance)
        await async_results.apersist(self, record, holder)

    def persist_result_record(
        self,
        result_record: ResultRecord[Any],
        holder: str | None = None,
        *,
        release_lock: bool = False,
    ) -> None:
        """Store a record built by :meth:`create_result_record` (or imported).

        The lock check and the upsert are one statement: if another holder has an unexpired lock
        on the key, nothing is written. Payload, metadata, expiration, provenance and version
        change together.

        Args:
            result_record: The record; its ``metadata.storage_key`` is the key, and its
                ``metadata.provenance`` (if any) is stored with it.
            holder: The caller's lock holder id (default :meth:`generate_default_holder`).
            release_lock: Also release ``holder``'s lock on the key, in the same database
                transaction as the write (how a SERIALIZABLE transaction commits): either both
                happen or neither does.

        Raises:
            SerializationError: The result cannot be serialized (nothing is written).
            LockHeldByOtherError: Another holder has an unexpired lock on the key.
            InvalidArgumentError: The record has no storage key, or an invalid one.
            StorageUnavailableError: The database cannot be reached.
        """
        metadata = result_record.metadata
        if metadata.storage_key is None:
            raise InvalidArgumentError("Storage key is required on result record")
        key = check_key(metadata.storage_key)
        holder = check_holder(holder or self.generate_default_holder())
        version = self._store(
            key,
            result_record.serialize_result(),
            metadata.serializer,
            metadata.expiration,
            metadata.provenance,
            holder,
            release_lock,
        )
        result_record.mark_persisted(version)
        self._remember(key, result_record)

    def write_payload(
        self, payload: bytes, metadata: ResultRecordMetadata, holder: str | None = None
    ) -> None:
        """Store a payload that is already serialized, as it is: an imported record.

        Nothing is deserialized (an import runs no code from what it reads); the payload is
        sealed (checksum, and signature when ``SQLRESULTS_SIGNING_KEY`` is set) like any
        write, so it is checked when it is read.

        Args:
            payload: The serializer's raw bytes (not Prefect's text: see
                :func:`~sqlresults.records.payload_from_envelope`).
            metadata: Its key (``storage_key``), serializer, expiration and provenance.
            holder: The caller's lock holder id (default :meth:`generate_default_holder`).

        Raises:
            LockHeldByOtherError: Another holder has an unexpired lock on the key.
            InvalidArgumentError: The metadata has no storage key, or an invalid one.
            StorageUnavailableError: The database cannot be reached.
        """
        if metadata.storage_key is None:
            raise InvalidArgumentError("Storage key is required on result record")
        key = check_key(metadata.storage_key)
        holder = check_holder(holder or self.generate_default_holder())
        self._store(
            key,
            payload,
            metadata.serializer,
            metadata.expiration,
            metadata.provenance,
            holder,
            release_lock=False,
        )
        self._forget(key)

    def _store(
        self,
        key: str,
        payload: bytes,
        serializer: Serializer,
        expiration: datetime | None,
        provenance_model: Provenance | None,
        holder: str,
        release_lock: bool,
    ) -> int:
        """Seal and upsert a payload under ``key``; return the new version (see
        :meth:`persist_result_record` for the lock rules)."""
        locks_in_database = self._locks_in_database
        if not locks_in_database and self._held_by_other(key, holder):
            raise LockHeldByOtherError(key)
        params = self._sealed(
            key, payload, serializer, expiration, provenance_model, holder, locks_in_database
        )
        del payload
        version: int = params["version"]
        if release_lock and locks_in_database:
            return self._release_and_write(key, holder, params)
        if not self.result_storage.execute(queries.record_upsert, params):
            raise self._refusal(key, holder, params["fence"])
        if release_lock:
            self.lock_manager.release_lock(key, holder)
        return version

    def _sealed(
        self,
        key: str,
        payload: bytes,
        serializer: Serializer,
        expiration: datetime | None,
        provenance_model: Provenance | None,
        holder: str,
        locks_in_database: bool,
    ) -> dict[str, Any]:
        """The parameters of the upsert of ``payload`` under ``key``: sealed (checksum, and
        signature when a signing key is set), with a new version and the holder's fence."""
        spec = self._spec_json(serializer)
        expires = None if expiration is None else expiration.timestamp()
        provenance = None if provenance_model is None else provenance_model.model_dump_json()
        # The fence of the lock this holder took here, if any: the write is then allowed only
        # while that lock is still the holder's (a lease that ran out and was re-taken, or
        # swept, must not let a stale holder overwrite newer work).
        fence = self._held_fence(key, holder) if locks_in_database else None
        # Unique, not secret: the random module is reseeded in forked children.
        version = random.getrandbits(63)
        params = {
            "ns": self.namespace,
            "key": key,
            "payload": payload,
            "serializer": spec,
            "checksum": record_checksum(self.namespace, key, spec, expires, payload, provenance),
            "signature": None
            if self._signer is None
            else self._signer.sign(self.namespace, key, spec, expires, payload, provenance),
            "size": len(payload),
            "expires": expires,
            "provenance": provenance,
            "version": version,
            "holder": holder,
            "fence": fence,
        }
        return params

    def _release_and_write(self, key: str, holder: str, params: dict[str, Any]) -> int:
        """Release ``holder``'s lock and write the record in one database transaction; return
        the new version. Nothing happens unless the holder still has its lock row (with the
        fence it was granted, when this process acquired it).

        Raises:
            LeaseLostError: The holder's lock is gone: taken by another holder after its lease
                ran out, swept, or never taken.
            LockHeldByOtherError: Another holder has the key locked and this one never held it.
        """
        fence = params["fence"]

        def release_then_write(transaction: WriteTransaction) -> int | None:
            # Release first. On PostgreSQL (READ COMMITTED) the DELETE locks the lock row, so a
            # holder that took the key after our lease ran out has either committed (and the
            # upsert, a new snapshot, sees its lock and refuses) or waits for our commit (and
            # then finds the record). The other order would let it slip in between the upsert's
            # snapshot and the release, and both would compute.
            if transaction.fetchone(queries.lock_release, params) is None:
                return None  # not our lock any more: write nothing
            if not transaction.execute(queries.record_upsert, {**params, "fence": None}):
                raise LockHeldByOtherError(key)  # rolls back: our lock row is restored
            return int(params["version"])

        version = self.result_storage.transaction(release_then_write)
        manager = self.lock_manager
        assert isinstance(manager, SQLLockManager)  # _locks_in_database
        manager.forget_lock(key, holder)
        if version is None:
            raise self._refusal(key, holder, fence, released=True)
        return version

    def _refusal(
        self, key: str, holder: str, fence: int | None, *, released: bool = False
    ) -> LockError:
        """The error for a write the database refused: the holder lost the lock it was
        granted (``fence`` known, or it asked to release one), or another holder has it."""
        if fence is None and (not released or self._lock_holder(key) not in (None, holder)):
            return LockHeldByOtherError(key)
        if isinstance(self.lock_manager, SQLLockManager):
            self.lock_manager.forget_lock(key, holder)
        return LeaseLostError(key, holder)

    def _held_fence(self, key: str, holder: str) -> int | None:
        manager = self.lock_manager
        return manager.held_fence(key, holder) if isinstance(manager, SQLLockManager) else None

    async def apersist_result_record(
        self,
        result_record: ResultRecord[Any],
        holder: str | None = None,
        *,
        release_lock: bool = False,
    ) -> None:
        """Async form of :meth:`persist_result_record`: awaited on PostgreSQL (a payload over
        :data:`~sqlresults.async_results.OFFLOAD_BYTES` is sealed in a worker thread), in a
        worker thread on SQLite."""
        holder = holder or self.generate_default_holder()
        if not self._has_async_path:
            await asyncio.to_thread(
                self.persist_result_record, result_record, holder, release_lock=release_lock
            )
            return
        await async_results.apersist(self, result_record, holder, release_lock=release_lock)

    def _spec_json(self, serializer: Serializer) -> str:
        # Serializers are frozen, so the spec of the one used last can be reused as is.
        last, spec = self._last_spec
        if serializer is not last:
            spec = serializer.spec_json()
            self._last_spec = (serializer, spec)
        return spec

    def _held_by_other(self, key: str, holder: str) -> bool:
        manager = self.lock_manager
        return manager.is_locked(key) and not manager.is_lock_holder(key, holder)

    # -- delete, keys, sweep, stats --------------------------------------------------------

    def delete(self, key: str, holder: str | None = None) -> bool:
        """Delete the record stored under ``key``.

        Args:
            key: The record's key.
            holder: The caller's lock holder id (default :meth:`generate_default_holder`).

        Returns:
            Whether a record (expired or not) was removed; a missing key is not an error.

        Raises:
            LockHeldByOtherError: Another holder has an unexpired lock on the key.
            LeaseLostError: ``holder`` took the key's lock here and lost it since (its lease
                ran out and the lock was re-taken or swept): nothing is deleted.
            StorageUnavailableError: The database cannot be reached.
        """
        key = check_key(key)
        holder = check_holder(holder or self.generate_default_holder())
        locks_in_database = self._locks_in_database
        if not locks_in_database and self._held_by_other(key, holder):
            raise LockHeldByOtherError(key)
        database = self.result_storage
        fence = self._held_fence(key, holder) if locks_in_database else None
        params = {"ns": self.namespace, "key": key, "holder": holder, "fence": fence}
        deleted = database.fetchone(queries.record_delete, params) is not None
        self._forget(key)
        if deleted:
            return True
        if fence is not None:
            if database.fetchone(queries.lock_is_ours, params) is None:
                raise self._refusal(key, holder, fence)
        elif self._lock_holder(key) not in (None, holder):
            raise LockHeldByOtherError(key)
        return False

    async def adelete(self, key: str, holder: str | None = None) -> bool:
        """Async form of :meth:`delete`: awaited on PostgreSQL, in a worker thread on
        SQLite."""
        holder = holder or self.generate_default_holder()
        if not self._has_async_path:
            return await asyncio.to_thread(self.delete, key, holder)
        return await async_results.adelete(self, key, holder)

    def keys(self, prefix: str | None = None) -> Iterator[str]:
        """Yield the keys of unexpired records in key order, optionally only those starting
        with ``prefix``.

        Keys are fetched in pages, so no read transaction stays open while the caller works;
        records written or deleted meanwhile may or may not appear.

        Raises:
            InvalidKeyError: ``prefix`` is not a string, or holds NUL or a lone surrogate;
                raised by the call itself, not at the first ``next()``.
        """
        return self._keys(check_prefix(prefix))

    def _keys(self, prefix: str) -> Iterator[str]:
        database = self.result_storage
        after = ""
        while True:
            params = {
                "ns": self.namespace,
                "after": after,
                "prefix": prefix,
                "limit": _PAGE_SIZE,
            }
            page = database.fetchall(queries.record_keys, params)
            for (key,) in page:
                yield key
            if len(page) < _PAGE_SIZE:
                return
            after = page[-1][0]

    def sweep_expired(self, batch_size: int = _PAGE_SIZE) -> int:
        """Delete expired records (and lock rows whose lease ended) in batches.

        Each batch is its own short statement, so writers are never blocked for long.

        Args:
            batch_size: Records deleted per statement.

        Returns:
            How many expired records were deleted (dead lock rows are not counted).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be a positive int, not {batch_size!r}.")
        database = self.result_storage
        params = {"ns": self.namespace, "limit": batch_size}
        total = 0
        while True:
            deleted = database.execute(queries.records_sweep, params)
            total += deleted
            if deleted < batch_size:
                break
        database.execute(queries.locks_sweep, params)
        if total:
            with self._cache_lock:
                self.cache.clear()
        return total

    def stats(self) -> StoreStats:
        """Count the namespace's records, payload bytes, unswept expired records and held
        locks, in one query that reads no payload."""
        database = self.result_storage
        row = database.fetchone(queries.records_stats, {"ns": self.namespace})
        assert row is not None  # an aggregate always returns one row
        records, size, expired, locks_held = row
        return StoreStats(int(records), int(size), int(expired), int(locks_held))

    # -- locks -----------------------------------------------------------------------------

    def supports_isolation_level(self, level: IsolationLevel | str) -> bool:
        """Whether transactions on this store may use ``level``.

        Both levels are supported by every store: its locks live in the database (Prefect
        supports SERIALIZABLE only with a lock manager configured).

        Raises:
            ValueError: ``level`` is not an isolation level.
        """
        if isinstance(level, IsolationLevel):
            return True  # asked on every transaction: no enum lookup for a member
        try:
            IsolationLevel(level)
        except ValueError:
            raise ValueError(f"Unsupported isolation level: {level}") from None
        return True

    def acquire_lock(
        self,
        key: str,
        holder: str | None = None,
        timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Acquire the lock on ``key``.

        Args:
            key: The key to lock.
            holder: Who holds it (default :meth:`generate_default_holder`).
            timeout: Seconds to wait for another holder; None waits forever, 0 tries once.
            hold_timeout: Lease in seconds (default ``SQLRESULTS_LOCK_HOLD_TIMEOUT``); a holder
                that dies frees the key after at most this long.

        Returns:
            True if acquired, False if ``timeout`` ran out.

        Raises:
            InvalidArgumentError: A bad key, holder or timeout, or a lease of zero or less.
        """
        check_lease(hold_timeout)
        return self.lock_manager.acquire_lock(
            key,
            holder or self.generate_default_holder(),
            acquire_timeout=timeout,
            hold_timeout=hold_timeout,
        )

    async def aacquire_lock(
        self,
        key: str,
        holder: str | None = None,
        timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Async form of :meth:`acquire_lock`."""
        check_lease(hold_timeout)
        return await self.lock_manager.aacquire_lock(
            key,
            holder or self.generate_default_holder(),
            acquire_timeout=timeout,
            hold_timeout=hold_timeout,
        )

    async def _arelease_lock(self, key: str, holder: str | None = None) -> None:
        """Async form of :meth:`release_lock` (for async transactions): awaited on PostgreSQL,
        in a worker thread elsewhere."""
        holder = holder or self.generate_default_holder()
        manager = self.lock_manager
        if isinstance(manager, SQLLockManager):
            await manager._arelease_lock(key, holder)
        else:
            await asyncio.to_thread(manager.release_lock, key, holder)

    def release_lock(self, key: str, holder: str | None = None) -> None:
        """Release ``holder``'s lock on ``key``; a key nobody holds is a no-op.

        Raises:
            LockNotHeldError: Another holder holds the lock (a ``ValueError``, Prefect's message).
        """
        self.lock_manager.release_lock(key, holder or self.generate_default_holder())

    def renew_lock(
        self, key: str, holder: str | None = None, hold_timeout: float | None = None
    ) -> bool:
        """Extend ``holder``'s lease on ``key`` by ``hold_timeout`` seconds from now.

        Returns:
            True if the lease was extended, False if ``holder`` no longer holds the lock.

        Raises:
            InvalidArgumentError: A lease of zero or less, or a bad key or holder.
        """
        check_lease(hold_timeout)
        holder = holder or self.generate_default_holder()
        renew = getattr(self.lock_manager, "renew_lock", None)
        if renew is not None:
            return bool(renew(key, holder, hold_timeout))
        if not self.lock_manager.is_lock_holder(key, holder):
            return False
        return self.lock_manager.acquire_lock(key, holder, 0, hold_timeout)

    def is_locked(self, key: str) -> bool:
        """Whether anyone holds an unexpired lock on ``key``."""
        return self.lock_manager.is_locked(key)

    def is_lock_holder(self, key: str, holder: str | None = None) -> bool:
        """Whether ``holder`` (default :meth:`generate_default_holder`) holds the lock."""
        return self.lock_manager.is_lock_holder(key, holder or self.generate_default_holder())

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is unlocked; True if it is, False if ``timeout`` seconds ran out."""
        return self.lock_manager.wait_for_lock(key, timeout)

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Async form of :meth:`wait_for_lock`."""
        return await self.lock_manager.await_for_lock(key, timeout)

    @staticmethod
    def generate_default_holder() -> str:
        """Return ``"{hostname}:{pid}:{thread id}:{thread name}"``, plus ``":{task id}"``
        inside a running asyncio task (Prefect's format)."""
        thread = threading.current_thread()
        holder = f"{_HOSTNAME}:{os.getpid()}:{thread.ident}:{thread.name}"
        # _get_running_loop() returns None outside a loop, where current_task() would raise:
        # exceptions cost more than the rest of this function, which runs on every write.
        loop = asyncio._get_running_loop()
        task = None if loop is None else asyncio.current_task(loop)
        return holder if task is None else f"{holder}:{id(task)}"

    # -- memory cache ----------------------------------------------------------------------

    def _remember(self, key: str, record: ResultRecord[Any]) -> None:
        if self.cache_result_in_memory and self.cache.maxsize > 0:
            with self._cache_lock:
                self.cache[key] = record

    def _forget(self, key: str) -> None:
        with self._cache_lock:
            self.cache.pop(key, None)


_HOSTNAME = socket.gethostname()


# -- module functions (prefect.results) ------------------------------------------------------


def get_default_result_storage() -> Database:
    """Return the default result database (``SQLRESULTS_DATABASE_URL``, else
    ``~/.sqlresults/results.db``), shared by every store in the process."""
    return resolve_database(None)


async def aget_default_result_storage() -> Database:
    """Async form of :func:`get_default_result_storage` (Prefect's name).

    The first call builds the Database (and its engine) in a worker thread, so it never holds
    up the event loop; later calls return the same shared Database.
    """
    return await asyncio.to_thread(get_default_result_storage)


def resolve_result_storage(result_storage: Any) -> Database:
    """Resolve a :class:`~sqlresults.database.Database`, a URL string or a ``pathlib.Path`` (a
    SQLite file) into a Database; None gives the default.

    Raises:
        ConfigurationError: The value names no database sqlresults can use.
        TypeError: The value is of another type.
    """
    return resolve_database(result_storage)


def resolve_serializer(serializer: Any) -> Serializer:
    """Resolve a :class:`~sqlresults.serializers.Serializer`, a type string or a spec mapping
    into a serializer instance.

    Raises:
        UnknownSerializerError: No serializer has that type.
        TypeError: The value is of another type.
    """
    return Serializer.from_spec(serializer)


def get_default_result_serializer() -> Serializer:
    """Return the serializer named by ``SQLRESULTS_RESULTS_DEFAULT_SERIALIZER`` (pickle)."""
    return Serializer.from_spec(get_settings().results_default_serializer)


def get_default_persist_setting() -> bool:
    """Return ``SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT``."""
    return get_settings().results_persist_by_default


def get_default_persist_setting_for_tasks() -> bool:
    """Return ``SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT``, falling back to
    ``SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT``."""
    settings = get_settings()
    if settings.tasks_default_persist_result is not None:
        return settings.tasks_default_persist_result
    return settings.results_persist_by_default


def should_persist_result() -> bool:
    """Whether the current run persists results: the running task's setting, else the running
    flow's, else ``SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT``."""
    for variable in (current_task_run, current_flow_run):
        run = variable.get()
        if run is not None:
            return run.persist_result
    return get_default_persist_setting()


def default_cache() -> LRUCache[str, ResultRecord[Any]]:
    """Return a new in-memory LRU for records (``SQLRESULTS_MEMORY_CACHE_SIZE`` entries, 1000
    by default)."""
    return LRUCache(maxsize=get_settings().memory_cache_size)


def result_storage_discriminator(x: Any) -> str:
    """Name the kind of result storage ``x`` describes: the database dialect (``"sqlite"`` or
    ``"postgresql"``) of a Database, URL or path, without connecting.

    Raises:
        ConfigurationError: ``x`` names no database sqlresults can use.
        TypeError: ``x`` is of another type.
    """
    if isinstance(x, Database):
        return x.dialect.name
    if x is None or isinstance(x, str | os.PathLike):
        return Dialect(parse_url(x if x is not None else get_settings().url)).name
    raise TypeError(f"Not a result storage: {type(x).__name__}")


_derived_lock = threading.Lock()
_derived_stores: dict[tuple[Any, ...], ResultStore] = {}


def derive_result_store(
    parent: ResultStore | None = None,
    *,
    result_storage: Any = None,
    serializer: Serializer | str | None = None,
    cache_result_in_memory: bool = True,
    lock_manager: LockManager | None = None,
) -> ResultStore:
    """The store of a flow or task run: ``parent``'s (a flow's store), with the run's own
    storage and serializer where it has them, else the defaults (Prefect's
    ``update_for_flow``/``update_for_task``).

    Derived stores are shared per configuration, and stores on one database and namespace
    share one in-memory LRU, so cached records serve every run alike.

    Args:
        parent: The enclosing run's store, or None.
        result_storage: The run's own storage (anything :func:`resolve_result_storage`
            accepts), or None to inherit.
        serializer: The run's own serializer, or None to inherit.
        cache_result_in_memory: Keep the run's records in the in-memory LRU.
        lock_manager: A lock manager of the run's own (a cache policy's), or None.

    Raises:
        ConfigurationError: The storage or serializer cannot be used.
    """
    settings = get_settings()
    # A task calls this on every run: answer repeated questions without resolving the
    # storage, the serializer and the default URL again. The entry keeps the objects it was
    # asked about, so an id reused after one is collected cannot match.
    asked = (parent, result_storage, serializer, lock_manager, settings)
    fast_key = (*map(id, asked), cache_result_in_memory)
    entry = _recent_stores.get(fast_key)
    if entry is not None and all(a is b for a, b in zip(entry[0], asked, strict=True)):
        return entry[1]
    store = _derive(parent, result_storage, serializer, cache_result_in_memory, lock_manager)
    with _derived_lock:
        if len(_recent_stores) >= _RECENT_STORES_MAX:
            _recent_stores.clear()
        _recent_stores[fast_key] = (asked, store)
    return store


_RECENT_STORES_MAX = 256
_recent_stores: dict[tuple[Any, ...], tuple[tuple[Any, ...], ResultStore]] = {}


def _derive(
    parent: ResultStore | None,
    result_storage: Any,
    serializer: Serializer | str | None,
    cache_result_in_memory: bool,
    lock_manager: LockManager | None,
) -> ResultStore:
    if result_storage is not None:
        database = resolve_result_storage(result_storage)
    elif parent is not None:
        database = parent.result_storage
    else:
        database = get_default_result_storage()
    if serializer is not None:
        chosen = resolve_serializer(serializer)
    elif parent is not None:
        chosen = parent.serializer
    else:
        chosen = get_default_result_serializer()
    settings = get_settings()
    namespace = parent.namespace if parent is not None else settings.namespace
    signing = None if settings.signing_key is None else settings.signing_key.get_secret_value()
    identity = (
        database.identity,
        namespace,
        chosen.spec_json(),
        cache_result_in_memory,
        id(lock_manager),
        signing,
    )
    with _derived_lock:
        store = _derived_stores.get(identity)
        if store is not None and store.result_storage is database:
            return store
        shared = next(
            (
                other.cache
                for other in _derived_stores.values()
                if other.namespace == namespace and other.result_storage is database
            ),
            None,
        )
        store = _derived_stores[identity] = ResultStore(
            result_storage=database,
            serializer=chosen,
            namespace=namespace,
            cache_result_in_memory=cache_result_in_memory,
            lock_manager=lock_manager,
            cache=shared,
        )
        return store


def get_result_store() -> ResultStore:
    """Return the running task's or flow's store, or a new default :class:`ResultStore`
    outside any run."""
    for variable in (current_task_run, current_flow_run):
        run = variable.get()
        if run is not None and run.result_store is not None:
            store: ResultStore = run.result_store
            return store
    return ResultStore()
