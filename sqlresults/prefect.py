"""Prefect 3 interop: real Prefect flows keep their code and put results and locks in sqlresults.

Two classes, both usable where Prefect expects its own (needs the ``prefect`` extra,
``pip install "sqlresults[prefect]"``, which pins ``prefect==3.9.1``)::

    from prefect import flow, task
    from prefect.cache_policies import INPUTS
    from sqlresults.prefect import SQLLockManager, SQLResultStorage

    store = "postgresql+psycopg://ci@db/results"

    @task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE",
                                        lock_manager=SQLLockManager(store)))
    def expensive(x): ...

    @flow(result_storage=SQLResultStorage(url=store), persist_result=True)
    def pipeline(): ...

- :class:`SQLResultStorage` is a Prefect ``WritableFileSystem`` block whose ``read_path`` and
  ``write_path`` map to sqlresults records, keys kept verbatim: the JSON envelope Prefect writes
  for a task result becomes a record (raw payload, serializer, expiration as a column), which
  sqlresults itself reads, lists, expires and sweeps; anything else Prefect writes (a flow's
  bare result) is kept as an opaque blob. It works unsaved (Prefect refuses unsaved storage
  blocks: this one carries a stable provisional document id, see the class) and as a saved block.
- :class:`SQLLockManager` is :class:`sqlresults.locking.SQLLockManager` (leased, holder-checked,
  fenced lock rows) plus what Prefect's engine needs: it passes no ``hold_timeout``, so such a
  lock's lease (``SQLRESULTS_LOCK_HOLD_TIMEOUT``) is renewed while its holder's process lives,
  and the write that commits a key carries the holder Prefect checked, so a holder whose lease
  ran out and whose key was taken since cannot overwrite the new holder's work.

Importing :mod:`sqlresults` never imports this module, nor Prefect.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import WritableFileSystem
from pydantic import Field, PrivateAttr, SecretStr

from sqlresults import queries
from sqlresults.database import Database, resolve_database
from sqlresults.errors import ConfigurationError, RecordNotFoundError, SerializationError
from sqlresults.integrity import damaged_record_error, verify_record
from sqlresults.leases import Lease
from sqlresults.locking import SQLLockManager as _SQLLockManager
from sqlresults.records import ResultRecord, _read_envelope
from sqlresults.results import ResultStore
from sqlresults.serializers import Serializer
from sqlresults.settings import get_settings
from sqlresults.validation import check_key, check_namespace

__all__ = ["PrefectBlobSerializer", "SQLLockManager", "SQLResultStorage"]

_logger = logging.getLogger("sqlresults.prefect")

# Provisional block document ids are uuid5s in this namespace, so they are the same in every
# process (and every release: changing it would change every unsaved block's id).
_PROVISIONAL_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "sqlresults:prefect:SQLResultStorage")


# -- the holder Prefect checked ----------------------------------------------------------------

# (database identity, namespace, key, holder) of the last lock SQLLockManager.is_lock_holder
# confirmed in this context. Prefect's ResultStore asks is_lock_holder(key, holder) right before
# it calls its storage's write_path(key, …), in the same thread or asyncio task, and never tells
# the storage who writes; this is how the write learns it (see SQLResultStorage._writer).
_CONFIRMED_HOLDER: contextvars.ContextVar[tuple[str, str, str, str] | None] = (
    contextvars.ContextVar("sqlresults_prefect_confirmed_holder", default=None)
)


# -- lock manager ------------------------------------------------------------------------------


class SQLLockManager(_SQLLockManager):
    """Prefect's ``LockManager`` on sqlresults lock rows, for Prefect's own engine.

    Everything :class:`sqlresults.locking.SQLLockManager` does (leases, holder checks in the
    same statement, fencing, ``acquire_timeout=0`` tries once, a wait that rides out an outage),
    plus two things Prefect's engine needs:

    - **Renewed leases.** Prefect's transactions acquire with no ``hold_timeout``, which its
      protocol documents as "holds the lock indefinitely". Here such a lock is leased for
      ``default_hold_timeout`` seconds (``SQLRESULTS_LOCK_HOLD_TIMEOUT``, 60 by default) and the
      lease is renewed every third of it, from one thread per process, until the lock is
      released: a computation may take as long as it takes, while a holder whose process dies
      (killed, crashed, its machine gone) frees the key within one lease instead of blocking it
      forever, as Prefect's file and Redis managers do. An explicit ``hold_timeout`` is a plain
      lease, never renewed.
    - **Fenced commits.** When :meth:`is_lock_holder` confirms a holder, the next
      :class:`SQLResultStorage` write of that key in the same thread or asyncio task (what
      Prefect's ``ResultStore`` does right after asking) is made as that holder, with the fence
      of its lock: if the lease ran out and another holder took the key meanwhile, the write is
      refused (:class:`~sqlresults.errors.LeaseLostError`) instead of overwriting the new
      holder's work.

    Args:
        database: Anything :func:`~sqlresults.results.resolve_result_storage` accepts: a
            :class:`~sqlresults.database.Database`, a URL or a path to a SQLite file; None for
            the default database (``SQLRESULTS_DATABASE_URL``).
        namespace: The namespace whose keys it locks (``SQLRESULTS_NAMESPACE`` by default).
            Use the namespace of the :class:`SQLResultStorage` it guards, so that each record's
            lock is checked in the very statement that writes it.
        default_hold_timeout: Lease in seconds of a lock acquired without a ``hold_timeout``
            (``SQLRESULTS_LOCK_HOLD_TIMEOUT`` by default); more than zero.

    Raises:
        ConfigurationError: The database cannot be used.
        InvalidArgumentError: A bad namespace or default lease.

    Pickles (and deep-copies, as Prefect's ``CachePolicy.configure`` does) as its database URL,
    namespace and lease; renewals belong to the process that acquired the lock.
    """

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
            holder: Who holds it; the same holder acquiring again succeeds.
            acquire_timeout: Seconds to wait for another holder's lock; None waits forever, 0
                tries exactly once.
            hold_timeout: Lease in seconds, not renewed; None leases ``default_hold_timeout``
                seconds and renews the lease until the lock is released.

        Returns:
            True if acquired, False if ``acquire_timeout`` ran out first.

        Raises:
            InvalidArgumentError: A bad key, holder or timeout.
            StorageUnavailableError: The database could not be reached (see the base class).
        """
        acquired = super().acquire_lock(key, holder, acquire_timeout, hold_timeout)
        if acquired:
            self._renew_while_held(key, holder, hold_timeout)
        return acquired

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Async form of :meth:`acquire_lock`; waiting does not block the event loop."""
        acquired = await super().aacquire_lock(key, holder, acquire_timeout, hold_timeout)
        if acquired:
            self._renew_while_held(key, holder, hold_timeout)
        return acquired

    def release_lock(self, key: str, holder: str) -> None:
        """Stop renewing ``holder``'s lease on ``key`` and release the lock.

        Releasing a key that nobody holds is a no-op.

        Raises:
            LockNotHeldError: Another holder holds an unexpired lock on ``key`` (a
                ``ValueError`` with Prefect's message); the lock is left untouched.
        """
        _RENEWALS.stop(self._lease_key(key, holder))
        super().release_lock(key, holder)

    async def _arelease_lock(self, key: str, holder: str) -> None:
        """Async form of :meth:`release_lock` (what async transactions call): stops the
        renewals too, which the base class's asyncio path would otherwise leave running."""
        _RENEWALS.stop(self._lease_key(key, holder))
        await super()._arelease_lock(key, holder)

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """Whether ``holder`` holds an unexpired lock on ``key``.

        A True answer also tells the next :class:`SQLResultStorage` write of ``key`` in this
        thread or asyncio task that ``holder`` is writing (see the class docstring).
        """
        held = super().is_lock_holder(key, holder)
        if held:
            _CONFIRMED_HOLDER.set((self.database.identity, self.namespace, key, holder))
        return held

    def _renew_while_held(self, key: str, holder: str, hold_timeout: float | None) -> None:
        lease_key = self._lease_key(key, holder)
        if hold_timeout is not None:
            _RENEWALS.stop(lease_key)  # a plain lease from now on
            return
        lease = self.default_hold_timeout
        _RENEWALS.start(lease_key, lambda: Lease(self, key, holder, lease, _logger))

    def _lease_key(self, key: str, holder: str) -> tuple[str, str, str, str]:
        return (self.database.identity, self.namespace, key, holder)


class _Renewals:
    """The renewed leases of this process, per (database, namespace, key, holder).

    Process-wide rather than per manager, so that a lock acquired through one copy of a manager
    (Prefect deep-copies cache policies) and released through another stops renewing.
    """

    def __init__(self) -> None:
        self._leases: dict[tuple[str, str, str, str], Lease] = {}
        self._lock = threading.Lock()

    def start(self, lease_key: tuple[str, str, str, str], make: Any) -> None:
        with self._lock:
            lease = self._leases.get(lease_key)
            if lease is not None and not lease.stopped and not lease.lost:
                return
            self._leases[lease_key] = make()

    def stop(self, lease_key: tuple[str, str, str, str]) -> None:
        with self._lock:
            lease = self._leases.pop(lease_key, None)
        if lease is not None:
            lease.stop()


_RENEWALS = _Renewals()


# -- bare blobs --------------------------------------------------------------------------------


class PrefectBlobSerializer(Serializer):
    """The serializer of a record :class:`SQLResultStorage` stored from bytes that are not a
    result record envelope (a flow's result, which Prefect writes bare, or metadata written to a
    ``key_storage``): the bytes themselves, kept verbatim. ``loads`` gives them back as
    ``bytes``; what they encode is known only to the Prefect code that wrote them.
    """

    type: str = "prefect/blob"

    def dumps(self, obj: Any) -> bytes:
        """Return ``obj``, which must be bytes.

        Raises:
            SerializationError: ``obj`` is not bytes.
        """
        if not isinstance(obj, bytes | bytearray | memoryview):
            raise SerializationError(
                f"The 'prefect/blob' serializer stores bytes, not {type(obj).__name__}."
            )
        return bytes(obj)

    def loads(self, blob: bytes) -> bytes:
        """Return the stored bytes."""
        return bytes(blob)


_BLOB = PrefectBlobSerializer()


class _EncodedRecord(ResultRecord[None]):
    """A record whose payload is already encoded (taken from an envelope, or read from a row),
    so that it is stored, or turned into an envelope, without decoding the result."""

    _payload: bytes = PrivateAttr(default=b"")

    def serialize_result(self) -> bytes:
        """Return the encoded payload as it is."""
        return self._payload


def _encoded(
    key: str, payload: bytes, serializer: Serializer, expiration: datetime | None
) -> _EncodedRecord:
    record = _EncodedRecord.from_storage(key, None, serializer, expiration, None)
    assert isinstance(record, _EncodedRecord)
    record._payload = payload
    return record


# -- result storage ----------------------------------------------------------------------------


class SQLResultStorage(WritableFileSystem):
    """Prefect result storage in a sqlresults database: one record per key.

    Pass it as a flow's or task's ``result_storage`` (unsaved or saved), or as a cache policy's
    ``key_storage`` (then with a namespace of its own: metadata and results are stored under the
    same keys).

    ``write_path(key, content)`` stores ``content`` under ``key``, verbatim, in ``namespace``:

    - a result record envelope (what Prefect writes for a task result) becomes a sqlresults
      record: the payload as raw bytes, its serializer, and its expiration as a column, so
      ``ResultStore(result_storage=url, namespace=…).read(key)`` gives the result, ``exists`` is
      one indexed query, and expired records are swept by ``sqlresults sweep``;
    - any other bytes (the bare result of a flow) become a :class:`PrefectBlobSerializer` record.

    The write is refused (:class:`~sqlresults.errors.LockHeldByOtherError`, a ``RuntimeError``
    like Prefect's own refusal) while another holder has the key locked in ``namespace``, or
    (:class:`~sqlresults.errors.LeaseLostError`) when the writer's lock was lost; see
    :class:`SQLLockManager`.

    ``read_path(key)`` gives back an envelope with the same metadata and the same result text
    (byte for byte what Prefect wrote, for the serializers sqlresults knows), or the blob as it
    was written. An expired or missing record raises
    :class:`~sqlresults.errors.RecordNotFoundError` (a ``KeyError``): expired records are absent
    everywhere, which Prefect's ``exists`` and cache lookups treat as a miss. Reads never wait
    for locks (Prefect's ``ResultStore`` waits on its lock manager itself) and check the
    record's checksum and signature before returning it.

    Unsaved blocks: Prefect refuses a storage block without a block document id ("Result
    storage configuration must be persisted server-side"). An unsaved ``SQLResultStorage``
    carries a provisional id instead, a uuid5 of its database (URL without password) and
    namespace, equal in every process; ``save()`` replaces it with the server's, ``load()``
    gives the server's. Prefect writes the id into each result's metadata and needs it only to
    read a result back *through its API* (a state fetched from the server, e.g. a deployment's
    run viewed from another process): that needs a saved block. In-process results, caching
    and transactions do not.

    Attributes:
        url: The database URL (kept as a secret: never shown in reprs or the UI); None for the
            default (``SQLRESULTS_DATABASE_URL``, else ``~/.sqlresults/results.db``).
        namespace: The namespace of the records; None for ``SQLRESULTS_NAMESPACE``.

    Raises:
        ConfigurationError: The URL names no database sqlresults can use, or an in-memory one.
        InvalidArgumentError: The namespace is not valid.
    """

    _block_type_name: ClassVar[str | None] = "sqlresults Storage"
    _block_type_slug: ClassVar[str | None] = "sqlresults-storage"
    _description: ClassVar[str | None] = (
        "Results in a sqlresults database (SQLite or PostgreSQL): one record per key, "
        "with its expiration and lock in the same database."
    )

    url: SecretStr | None = Field(
        default=None,
        description="Database URL (sqlite:///… or postgresql+psycopg://…); "
        "default: SQLRESULTS_DATABASE_URL.",
    )
    namespace: str | None = Field(
        default=None, description="Namespace of the records; default: SQLRESULTS_NAMESPACE."
    )

    _provisional_id: uuid.UUID | None = PrivateAttr(default=None)
    _resolved: tuple[tuple[str | None, str | None], Database, str] | None = PrivateAttr(
        default=None
    )

    if TYPE_CHECKING:
        # Prefect's Block declares it (a private attribute); said again for type checkers
        # that run without Prefect installed.
        _block_document_id: uuid.UUID | None

    def block_initialization(self) -> None:
        """Check the URL and namespace, and give an unsaved block its provisional id."""
        database, namespace = self._target()
        provisional = uuid.uuid5(_PROVISIONAL_ID_NAMESPACE, f"{database.identity}\n{namespace}")
        self._provisional_id = provisional
        if self._block_document_id is None:
            self._block_document_id = provisional

    @property
    def is_saved(self) -> bool:
        """Whether the block has a document on a Prefect server (saved or loaded)."""
        return self._block_document_id not in (None, self._provisional_id)

    async def _save(
        self,
        name: str | None = None,
        is_anonymous: bool = False,
        overwrite: bool = False,
        client: Any = None,
    ) -> uuid.UUID:
        # Prefect's save updates the document of `_block_document_id` when the name is taken
        # (overwrite=True): that must be the server's id, never the provisional one.
        self._drop_provisional_id()
        try:
            document_id: uuid.UUID = await super()._save(
                name=name, is_anonymous=is_anonymous, overwrite=overwrite, client=client
            )
        finally:
            self._restore_provisional_id()
        return document_id

    def _save_sync(
        self,
        name: str | None = None,
        is_anonymous: bool = False,
        overwrite: bool = False,
    ) -> uuid.UUID:
        self._drop_provisional_id()
        try:
            document_id: uuid.UUID = super()._save_sync(
                name=name, is_anonymous=is_anonymous, overwrite=overwrite
            )
        finally:
            self._restore_provisional_id()
        return document_id

    def _drop_provisional_id(self) -> None:
        if self._block_document_id == self._provisional_id:
            self._block_document_id = None

    def _restore_provisional_id(self) -> None:
        if self._block_document_id is None:
            self._block_document_id = self._provisional_id

    def _resolve_path(self, path: str) -> None:
        """Prefect asks a storage to resolve keys only while it has no document id, and keeps
        a key as given when this returns None: keys are always stored verbatim."""

    # -- reading and writing ---------------------------------------------------------------

    async def aread_path(self, path: str) -> bytes:
        """Async form of :meth:`read_path`; the database is read in a worker thread."""
        return await asyncio.to_thread(self._read, path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:  # type: ignore[override]
        """Read what was written under ``path`` (a key, verbatim).

        Called from async code (or with ``_sync=False``) it returns a coroutine, like Prefect's
        own blocks.

        Args:
            path: The key.

        Returns:
            The record as a result record envelope, or the blob as written.

        Raises:
            RecordNotFoundError: Nothing unexpired is stored under the key (a ``KeyError``).
            IntegrityError: The stored record fails its checksum or signature.
            InvalidKeyError: ``path`` is not a valid key (1 to 1,024 UTF-8 bytes).
            StorageUnavailableError: The database cannot be reached.
        """
        return self._read(path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        """Async form of :meth:`write_path`; the database is written in a worker thread."""
        holder = self._writer(path)
        return await asyncio.to_thread(self._write, path, content, holder)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:  # type: ignore[override]
        """Store ``content`` under ``path`` (a key, verbatim), replacing what was there.

        Called from async code (or with ``_sync=False``) it returns a coroutine, like Prefect's
        own blocks.

        Args:
            path: The key.
            content: A result record envelope (stored as a record) or any other bytes (stored
                as a blob).

        Returns:
            The key.

        Raises:
            LockHeldByOtherError: Another holder has an unexpired lock on the key (a
                ``RuntimeError``); nothing is written.
            LeaseLostError: The writer's lock on the key was taken by another holder after its
                lease ran out; nothing is written.
            InvalidKeyError: ``path`` is not a valid key.
            StorageUnavailableError: The database cannot be reached.
        """
        return self._write(path, content, self._writer(path))

    def _writer(self, path: str) -> str:
        """The holder a write of ``path`` is made as: the holder :class:`SQLLockManager` just
        confirmed for this key in this thread or asyncio task (Prefect checks it right before
        writing), else Prefect's default holder (host, process, thread, asyncio task), which is
        also the holder Prefect's ``ResultStore`` uses when it is given none."""
        confirmed = _CONFIRMED_HOLDER.get()
        if confirmed is not None:
            database, namespace = self._target()
            if confirmed[:3] == (database.identity, namespace, path):
                _CONFIRMED_HOLDER.set(None)
                return confirmed[3]
        return ResultStore.generate_default_holder()

    def _write(self, path: str, content: bytes, holder: str) -> str:
        key = check_key(path)
        content = bytes(content)
        try:
            metadata, text = _read_envelope(content)
            serializer = metadata.serializer
            record = _encoded(
                key,
                serializer.from_prefect_bytes(text.encode()),
                serializer,
                metadata.expiration,
            )
        except Exception:
            # Not an envelope, or one whose result is not what its serializer writes: keep the
            # bytes exactly as they came (Prefect reads them back with the serializer it knows).
            record = _encoded(key, content, _BLOB, None)
        self._store().persist_result_record(record, holder)
        return key

    def _read(self, path: str) -> bytes:
        key = check_key(path)
        payload, serializer, expiration = _read_payload(self._store(), key)
        if isinstance(serializer, PrefectBlobSerializer):
            return payload
        record = _encoded(key, payload, serializer, expiration)
        record.metadata.storage_block_id = self._block_document_id
        return record.serialize()

    # -- the stores underneath -------------------------------------------------------------

    def _target(self) -> tuple[Database, str]:
        """The database and namespace of the records, resolved once per configuration (the
        defaults are read when the block is made, like a ``ResultStore``'s)."""
        url = None if self.url is None else self.url.get_secret_value()
        configuration = (url, self.namespace)
        resolved = self._resolved
        if resolved is not None and resolved[0] == configuration:
            return resolved[1], resolved[2]
        database = resolve_database(url)
        if database.dialect.is_memory:
            raise ConfigurationError(
                "SQLResultStorage needs a database that outlives one connection: an in-memory "
                "SQLite database would be a new, empty one at every use. Give a file "
                "(sqlite:///path/to/results.db) or a PostgreSQL URL."
            )
        namespace = check_namespace(
            self.namespace if self.namespace is not None else get_settings().namespace
        )
        self._resolved = (configuration, database, namespace)
        return database, namespace

    def _store(self) -> ResultStore:
        database, namespace = self._target()
        return _store_for(database, namespace)


_stores_lock = threading.Lock()
_stores_cache: dict[tuple[int, str], ResultStore] = {}


def _store_for(database: Database, namespace: str) -> ResultStore:
    """The sqlresults store a :class:`SQLResultStorage` writes and reads through: the lock
    manager of the records' own namespace, so that each write checks the key's lock (and the
    writer's fence) in the statement that writes it, and no records kept in memory (the
    payloads it handles are encoded, not results). Reads use its statement directly and never
    wait for a lock: Prefect's store does that itself, and a read that waited here could wait
    for its own transaction's lock, which it has no holder id for."""
    # Keyed by the Database object: resolve_database shares one per URL and process.
    cache_key = (id(database), namespace)
    with _stores_lock:
        store = _stores_cache.get(cache_key)
        if store is None or store.result_storage is not database:
            store = _stores_cache[cache_key] = ResultStore(
                result_storage=database,
                namespace=namespace,
                cache_result_in_memory=False,
                lock_manager=_SQLLockManager(database, namespace=namespace),
            )
        return store


def _read_payload(store: ResultStore, key: str) -> tuple[bytes, Serializer, datetime | None]:
    """Read a record's encoded payload, serializer and expiration without decoding the result:
    the twin of :meth:`ResultStore.read` (same statement, same checks) for a storage that hands
    encoded bytes to Prefect.

    Raises:
        RecordNotFoundError: No record, or only an expired one.
        IntegrityError: The record fails its checksum, or its signature when
            ``SQLRESULTS_SIGNING_KEY`` is set.
        StorageUnavailableError: The database cannot be reached.
    """
    namespace = store.namespace
    params = {"ns": namespace, "key": key, "known_version": None, "include_expired": 0}
    row = store.result_storage.fetchone(queries.record_read, params)
    assert row is not None  # the statement always returns exactly one row
    payload, spec, checksum, signature, expires, version, expired, _, provenance = row
    if version is None:
        raise RecordNotFoundError(key, namespace)
    if expired:
        raise RecordNotFoundError(key, namespace, expired=True)
    verify_record(
        namespace,
        key,
        spec,
        expires,
        payload,
        checksum,
        signature,
        store._signer,
        provenance=provenance,
    )
    try:
        serializer = Serializer.from_spec_json(spec)
    except ValueError as exc:
        raise damaged_record_error(key, namespace) from exc
    expiration = None if expires is None else datetime.fromtimestamp(expires, UTC)
    return bytes(payload), serializer, expiration
