"""Looking after a result database: list, inspect, count, sweep, vacuum, export and import.

What the ``sqlresults`` command shows and does, as functions on a
:class:`~sqlresults.database.Database`, so that they can be tested and reused without a
terminal. Listings and statistics read metadata columns only, never a payload, and page through
the table by keyset, so they cost the same on a database of a hundred records or a million.
Exports fetch payloads in batches of bounded size and never deserialize them; imports never
deserialize either (no code from a file runs, and the result's classes need not be installed).

Every statement lives in :mod:`sqlresults.queries` (dialect specifics in
:mod:`sqlresults.dialects`), and every database error arrives translated by the
:class:`~sqlresults.database.Database`.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlresults import queries
from sqlresults.database import Database
from sqlresults.errors import (
    IntegrityError,
    InvalidArgumentError,
    RecordNotFoundError,
    SerializationError,
)
from sqlresults.integrity import Signer, verify_record
from sqlresults.records import (
    Provenance,
    ResultRecordMetadata,
    envelope_from_payload,
    payload_from_envelope,
)
from sqlresults.results import ResultStore
from sqlresults.serializers import Serializer
from sqlresults.settings import get_settings
from sqlresults.validation import check_key, check_namespace, check_prefix

__all__ = [
    "DatabaseStats",
    "ExportItem",
    "GroupStats",
    "LockInfo",
    "RecordDetail",
    "RecordInfo",
    "SweepCounts",
    "clock_skew",
    "count_records",
    "count_sweepable",
    "database_stats",
    "dialect_facts",
    "export_records",
    "force_unlock",
    "get_record",
    "import_envelope",
    "list_locks",
    "list_records",
    "nearest_record",
    "record_present",
    "records_of_task",
    "remove_prefix",
    "signer_from_settings",
    "sweep",
    "vacuum",
]

# Rows per page of a listing; an export's payload batches stop at _EXPORT_BATCH_BYTES (one
# record larger than that is fetched alone).
_PAGE = 1000
_EXPORT_BATCH_BYTES = 2 * 1024 * 1024


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def _maybe_time(seconds: float | None) -> datetime | None:
    return None if seconds is None else _time(seconds)


@functools.lru_cache(maxsize=256)
def serializer_name(spec: str) -> str:
    """A short name for the serializer a record's spec column describes, read as plain JSON
    (nothing is imported or built): its type, and for a generic ``compressed`` one the
    serializer inside, e.g. ``compressed(json)``."""
    try:
        document = json.loads(spec)
    except ValueError:
        return "(damaged spec)"
    if isinstance(document, str):
        return document
    if not isinstance(document, dict):
        return "(damaged spec)"
    kind = str(document.get("type", "?"))
    inner = document.get("serializer")
    if kind == "compressed" and isinstance(inner, dict | str):
        inner_name = inner if isinstance(inner, str) else str(inner.get("type", "?"))
        return f"compressed({inner_name})"
    return kind


def _task_name(provenance: str | None) -> str | None:
    if provenance is None:
        return None
    try:
        task = json.loads(provenance).get("task")
    except (ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None


@dataclass(frozen=True)
class RecordInfo:
    """What a listing shows of one record (its metadata; the payload is never read).

    Attributes:
        namespace: Its namespace.
        key: Its key.
        size: Payload bytes.
        serializer: The serializer's short name (:func:`serializer_name`).
        created: When it was first written (UTC).
        updated: When it was last written (UTC).
        expires: When it expires (UTC), or None for never.
        expired: Whether it has expired (by the database's clock) and waits for a sweep.
        locked_by: The holder of an unexpired lock on its key, or None.
        task: The task that wrote it (from its provenance), or None.
    """

    namespace: str
    key: str
    size: int
    serializer: str
    created: datetime
    updated: datetime
    expires: datetime | None
    expired: bool
    locked_by: str | None
    task: str | None

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (times in ISO 8601, UTC)."""
        return {
            "namespace": self.namespace,
            "key": self.key,
            "size": self.size,
            "serializer": self.serializer,
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
            "expires": None if self.expires is None else self.expires.isoformat(),
            "expired": self.expired,
            "locked_by": self.locked_by,
            "task": self.task,
        }


def list_records(
    database: Database,
    namespace: str | None,
    *,
    prefix: str = "",
    state: str = "live",
    sort: str = "key",
    limit: int | None = None,
) -> Iterator[RecordInfo]:
    """Yield the metadata of records, in ``sort`` order, fetched a page at a time.

    Args:
        database: The database.
        namespace: The namespace, or None for every namespace.
        prefix: Only keys that start with it.
        state: ``"live"`` (unexpired), ``"expired"`` or ``"all"``.
        sort: ``"key"``, ``"size"``, ``"created"`` or ``"expires"`` (never-expiring last);
            ties in namespace and key order.
        limit: Stop after this many; None for all.

    Raises:
        InvalidArgumentError: A bad namespace, prefix, state, sort or limit (raised by the
            call, before anything is read).
    """
    if sort not in queries.SORTS:
        raise InvalidArgumentError(f"sort must be one of {', '.join(queries.SORTS)}, not {sort!r}.")
    if state not in queries.STATES:
        raise InvalidArgumentError(
            f"state must be one of {', '.join(queries.STATES)}, not {state!r}."
        )
    if limit is not None and limit < 0:
        raise InvalidArgumentError(f"limit must be 0 or more, not {limit}.")
    params: dict[str, Any] = {
        "ns": "" if namespace is None else check_namespace(namespace),
        "prefix": check_prefix(prefix or None),
        "after_value": -1e300,
        "after_ns": "",
        "after_key": "",
    }
    query = queries.record_listing(sort, state, namespace is None)
    return _listing(database, query, params, limit)


def _listing(
    database: Database, query: queries.Query, params: dict[str, Any], limit: int | None
) -> Iterator[RecordInfo]:
    remaining = limit
    while remaining is None or remaining > 0:
        page_size = _PAGE if remaining is None else min(_PAGE, remaining)
        page = database.fetchall(query, {**params, "limit": page_size})
        for ns, key, size, spec, created, updated, expires, expired, holder, prov, _ in page:
            yield RecordInfo(
                namespace=ns,
                key=key,
                size=int(size),
                serializer=serializer_name(spec),
                created=_time(created),
                updated=_time(updated),
                expires=_maybe_time(expires),
                expired=bool(expired),
                locked_by=holder,
                task=_task_name(prov),
            )
        if remaining is not None:
            remaining -= len(page)
        if len(page) < page_size:
            return
        last = page[-1]
        params.update(after_ns=last[0], after_key=last[1], after_value=last[10])
        if isinstance(last[10], str):  # sorted by key: the value is the key itself
            params["after_value"] = -1e300


def count_records(
    database: Database, namespace: str | None, *, prefix: str = "", state: str = "live"
) -> int:
    """How many records :func:`list_records` would yield without a limit."""
    if state not in queries.STATES:
        raise InvalidArgumentError(
            f"state must be one of {', '.join(queries.STATES)}, not {state!r}."
        )
    params = {
        "ns": "" if namespace is None else check_namespace(namespace),
        "prefix": check_prefix(prefix or None),
    }
    row = database.fetchone(queries.record_count(state, namespace is None), params)
    assert row is not None  # an aggregate always returns a row
    return int(row[0])


# -- one record ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockInfo:
    """One lock row.

    Attributes:
        namespace: Its namespace.
        key: The locked key.
        holder: Who holds (or held) it.
        acquired: When the holder took it (UTC).
        expires: When its lease ends or ended (UTC).
        lease_left: Seconds of lease left, by the database's clock; zero or less once it
            ended (a dead row: the key is free, and a sweep deletes the row).
        fence: The fencing counter, bumped by every acquire.
    """

    namespace: str
    key: str
    holder: str
    acquired: datetime
    expires: datetime
    lease_left: float
    fence: int

    @property
    def held(self) -> bool:
        """Whether the lease is still running."""
        return self.lease_left > 0

    def to_json(self) -> dict[str, Any]:
        """The lock as a JSON object (times in ISO 8601, UTC)."""
        return {
            "namespace": self.namespace,
            "key": self.key,
            "holder": self.holder,
            "acquired": self.acquired.isoformat(),
            "expires": self.expires.isoformat(),
            "lease_left": round(self.lease_left, 3),
            "held": self.held,
            "fence": self.fence,
        }


@dataclass(frozen=True)
class RecordDetail:
    """Everything stored for one record, with the result of checking its seals.

    Attributes:
        info: Its metadata, as a listing shows it.
        spec: The serializer column, as stored (JSON).
        version: The row's version.
        payload: The payload, raw bytes as the serializer wrote them.
        checksum_ok: Whether the record passes its checksum.
        signed: Whether it carries a signature.
        signature: ``"valid"``, ``"invalid"``, ``"unsigned"``, or ``"not checked"`` (no
            ``SQLRESULTS_SIGNING_KEY`` here).
        provenance: Its provenance, or None (a record no task wrote).
        lock: Its lock row, held or dead, or None.
    """

    info: RecordInfo
    spec: str
    version: int
    payload: bytes = field(repr=False)
    checksum_ok: bool
    signed: bool
    signature: str
    provenance: Provenance | None
    lock: LockInfo | None


def signer_from_settings() -> Signer | None:
    """The signer for ``SQLRESULTS_SIGNING_KEY``, or None when it is not set."""
    key = get_settings().signing_key
    return None if key is None else Signer(key.get_secret_value().encode())


def get_record(
    database: Database, namespace: str, key: str, signer: Signer | None = None
) -> RecordDetail:
    """Read one record as stored, expired or not, and check its seals (without raising for a
    failed check: the result says so).

    Args:
        database: The database.
        namespace: Its namespace.
        key: Its key.
        signer: Checks signatures; None reports them as not checked.

    Raises:
        RecordNotFoundError: No record has that key (expired ones are found).
        InvalidKeyError: ``key`` is not a valid key.
    """
    params = {"ns": check_namespace(namespace), "key": check_key(key)}
    row = database.fetchone(queries.record_detail, params)
    if row is None:
        raise RecordNotFoundError(key, namespace)
    (payload, spec, checksum, signature, size, created, updated, expires, expired, version) = row[
        :10
    ]
    provenance_json, holder, acquired, lock_expires, fence = row[10:]
    checksum_ok = _passes(namespace, key, spec, expires, payload, checksum, None, None, row)
    if signature is None:
        signature_state = "unsigned"
    elif signer is None:
        signature_state = "not checked"
    else:
        valid = _passes(namespace, key, spec, expires, payload, checksum, signature, signer, row)
        signature_state = "valid" if valid else "invalid"
    provenance = None
    if provenance_json is not None:
        try:
            provenance = Provenance.model_validate_json(provenance_json)
        except ValueError:
            checksum_ok = False
    lock = None
    if holder is not None:
        lease_left = float(lock_expires) - database.now()
        lock = LockInfo(
            namespace, key, holder, _time(acquired), _time(lock_expires), lease_left, int(fence)
        )
    info = RecordInfo(
        namespace=namespace,
        key=key,
        size=int(size),
        serializer=serializer_name(spec) if isinstance(spec, str) else "(damaged spec)",
        created=_time(created),
        updated=_time(updated),
        expires=_maybe_time(expires),
        expired=bool(expired),
        locked_by=holder if lock is not None and lock.held else None,
        task=None if provenance is None else provenance.task,
    )
    return RecordDetail(
        info=info,
        spec=spec,
        version=int(version),
        payload=bytes(payload),
        checksum_ok=checksum_ok,
        signed=signature is not None,
        signature=signature_state,
        provenance=provenance,
        lock=lock,
    )


def _passes(
    namespace: str,
    key: str,
    spec: Any,
    expires: Any,
    payload: bytes,
    checksum: Any,
    signature: bytes | None,
    signer: Signer | None,
    row: tuple[Any, ...],
) -> bool:
    try:
        verify_record(
            namespace, key, spec, expires, payload, checksum, signature, signer, provenance=row[10]
        )
    except IntegrityError:
        return False
    return True


def record_present(database: Database, namespace: str, key: str) -> bool:
    """Whether a record, expired or not, is stored under ``key`` (its payload is not read)."""
    params = {"ns": check_namespace(namespace), "key": check_key(key)}
    return database.fetchone(queries.record_present, params) is not None


@dataclass(frozen=True)
class TaskMatch:
    """Another record of a task, and how its provenance differs from the one asked about.

    Attributes:
        key: The other record's key.
        provenance: Its provenance.
        differences: :meth:`Provenance.diff` from it to the record asked about.
        updated: When it was last written (UTC).
        expired: Whether it has expired.
    """

    key: str
    provenance: Provenance
    differences: list[str]
    updated: datetime
    expired: bool


def records_of_task(
    database: Database, namespace: str, task: str, *, exclude: str | None = None
) -> Iterator[tuple[str, Provenance, datetime, bool]]:
    """Yield (key, provenance, updated, expired) of every record of ``task`` in the namespace,
    in key order, a page at a time (only provenance columns are read).

    Args:
        database: The database.
        namespace: The namespace.
        task: The task's qualified name, as provenance records it.
        exclude: A key to leave out.
    """
    # A LIKE on the JSON text finds candidates without a JSON function (the two dialects'
    # differ); each is then parsed and compared exactly. Wildcards in the name only widen it.
    pattern = '%"task":' + json.dumps(task) + "%"
    params: dict[str, Any] = {
        "ns": check_namespace(namespace),
        "pattern": pattern,
        "after": "",
        "limit": _PAGE,
    }
    while True:
        page = database.fetchall(queries.task_records, params)
        for key, provenance_json, updated, expired in page:
            if key == exclude:
                continue
            try:
                provenance = Provenance.model_validate_json(provenance_json)
            except ValueError:
                continue  # damaged: `show` reports it; it cannot explain anything
            if provenance.task == task:
                yield key, provenance, _time(updated), bool(expired)
        if len(page) < _PAGE:
            return
        params["after"] = page[-1][0]


def nearest_record(
    database: Database, namespace: str, provenance: Provenance, *, task: str, exclude: str
) -> TaskMatch | None:
    """The record of ``task`` whose provenance is nearest to ``provenance``: the fewest
    differences (:meth:`Provenance.diff`), then the most recently written.

    Returns:
        The match, or None when the task has no other record.
    """
    best: TaskMatch | None = None
    for key, other, updated, expired in records_of_task(database, namespace, task, exclude=exclude):
        differences = other.diff(provenance)
        candidate = TaskMatch(key, other, differences, updated, expired)
        if best is None or (len(differences), -updated.timestamp()) < (
            len(best.differences),
            -best.updated.timestamp(),
        ):
            best = candidate
    return best


# -- removing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoveCounts:
    """What :func:`remove_prefix` did.

    Attributes:
        deleted: Records deleted.
        locked: Records kept because another holder has their key locked.
    """

    deleted: int
    locked: int


def remove_prefix(
    store: ResultStore,
    *,
    prefix: str,
    state: str = "all",
    progress: Callable[[int], None] | None = None,
) -> RemoveCounts:
    """Delete the store's records whose key starts with ``prefix``, a key range at a time,
    keeping those another holder has locked.

    Args:
        store: The store (its database and namespace; its holder id is the caller's).
        prefix: Key prefix ('' for every record).
        state: ``"all"``, or ``"expired"`` for expired records only.
        progress: Called with the number of records handled after each range.
    """
    database = store.result_storage
    base = {"ns": store.namespace, "prefix": check_prefix(prefix or None)}
    holder = store.generate_default_holder()
    deleted = locked = 0
    after = ""
    plan = queries.export_plan(state)
    remove = queries.records_delete_range(state)
    while True:
        page = database.fetchall(plan, {**base, "after": after, "limit": _PAGE})
        if not page:
            break
        last = page[-1][0]
        gone = database.fetchall(remove, {**base, "after": after, "last": last, "holder": holder})
        deleted += len(gone)
        locked += len(page) - len(gone)
        if progress is not None:
            progress(len(page))
        if len(page) < _PAGE:
            break
        after = last
    store.cache.clear()
    return RemoveCounts(deleted, max(0, locked))


# -- locks --------------------------------------------------------------------------------------


def list_locks(
    database: Database, namespace: str | None, *, limit: int | None = None
) -> Iterator[LockInfo]:
    """Yield lock rows, held and dead, in namespace and key order, a page at a time.

    Args:
        database: The database.
        namespace: The namespace, or None for every namespace.
        limit: Stop after this many; None for all.
    """
    params: dict[str, Any] = {
        "ns": "" if namespace is None else check_namespace(namespace),
        "after_ns": "",
        "after_key": "",
    }
    query = queries.lock_listing(namespace is None)
    remaining = limit
    while remaining is None or remaining > 0:
        page_size = _PAGE if remaining is None else min(_PAGE, remaining)
        page = database.fetchall(query, {**params, "limit": page_size})
        for ns, key, holder, acquired, expires, fence, left in page:
            yield LockInfo(
                ns, key, holder, _time(acquired), _time(expires), float(left), int(fence)
            )
        if remaining is not None:
            remaining -= len(page)
        if len(page) < page_size:
            return
        params.update(after_ns=page[-1][0], after_key=page[-1][1])


def force_unlock(database: Database, namespace: str, key: str) -> LockInfo | None:
    """Remove the lock row on ``key``, whoever holds it: an administrator's way out when a
    holder is known to be gone but its lease is long. The holder, if it is still running,
    finds its lock lost (its commit is fenced off: :class:`~sqlresults.errors.LeaseLostError`).

    Returns:
        The removed lock, or None if the key had no lock row.
    """
    params = {"ns": check_namespace(namespace), "key": check_key(key)}
    row = database.fetchone(queries.lock_force_release, params)
    if row is None:
        return None
    holder, acquired, expires, fence, left = row[:5]
    return LockInfo(
        namespace, key, holder, _time(acquired), _time(expires), float(left), int(fence)
    )


# -- sweeping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepCounts:
    """Expired records and dead lock rows (whose lease ended), deleted or to delete."""

    records: int
    locks: int


def count_sweepable(database: Database, namespace: str | None) -> SweepCounts:
    """How many expired records and dead lock rows a sweep would delete now.

    Args:
        database: The database.
        namespace: The namespace, or None for every namespace.
    """
    params = {"ns": "" if namespace is None else check_namespace(namespace)}
    row = database.fetchone(queries.sweepable_count(namespace is None), params)
    assert row is not None  # an aggregate always returns a row
    return SweepCounts(int(row[0]), int(row[1]))


def sweep(
    database: Database,
    namespace: str | None,
    *,
    batch: int = _PAGE,
    progress: Callable[[int], None] | None = None,
) -> SweepCounts:
    """Delete expired records, then dead lock rows, ``batch`` rows per statement (each its own
    short transaction, so writers are never held up for long).

    Args:
        database: The database.
        namespace: The namespace, or None for every namespace.
        batch: Rows per statement, at least 1.
        progress: Called with the rows each statement deleted.

    Returns:
        How many of each were deleted.

    Raises:
        InvalidArgumentError: ``batch`` is not a positive int.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidArgumentError(f"batch must be a positive int, not {batch!r}.")
    params = {"ns": "" if namespace is None else check_namespace(namespace), "limit": batch}
    counts = []
    for query in (
        queries.expired_sweep(namespace is None),
        queries.dead_locks_sweep(namespace is None),
    ):
        total = 0
        while True:
            deleted = database.execute(query, params)
            total += deleted
            if progress is not None and deleted:
                progress(deleted)
            if deleted < batch:
                break
        counts.append(total)
    return SweepCounts(*counts)


# -- statistics and vacuum ----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupStats:
    """Records, payload bytes and unswept expired records of one namespace or serializer."""

    records: int = 0
    payload_bytes: int = 0
    expired: int = 0

    def __add__(self, other: GroupStats) -> GroupStats:
        return GroupStats(
            self.records + other.records,
            self.payload_bytes + other.payload_bytes,
            self.expired + other.expired,
        )


@dataclass(frozen=True)
class DatabaseStats:
    """What ``sqlresults stats`` reports.

    Attributes:
        totals: Over the namespace (or every namespace).
        by_serializer: Per serializer short name.
        by_namespace: Per namespace.
        locks_held: Unexpired locks.
        dead_locks: Lock rows whose lease ended, waiting for a sweep.
        schema_revision: The schema's revision.
        storage: Size figures (:meth:`~sqlresults.dialects.Dialect.storage_figures`).
    """

    totals: GroupStats
    by_serializer: dict[str, GroupStats]
    by_namespace: dict[str, GroupStats]
    locks_held: int
    dead_locks: int
    schema_revision: str | None
    storage: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The statistics as a JSON object."""

        def group(stats: GroupStats) -> dict[str, int]:
            return {
                "records": stats.records,
                "payload_bytes": stats.payload_bytes,
                "expired": stats.expired,
            }

        return {
            **group(self.totals),
            "locks_held": self.locks_held,
            "dead_locks": self.dead_locks,
            "by_serializer": {name: group(s) for name, s in self.by_serializer.items()},
            "by_namespace": {name: group(s) for name, s in self.by_namespace.items()},
            "schema_revision": self.schema_revision,
            "storage": self.storage,
        }


def database_stats(database: Database, namespace: str | None) -> DatabaseStats:
    """Gather :class:`DatabaseStats` in four statements that read no payload.

    Args:
        database: The database.
        namespace: The namespace, or None for every namespace (sizes are the whole
            database's either way).
    """
    params = {"ns": "" if namespace is None else check_namespace(namespace)}
    every = namespace is None
    by_serializer: dict[str, GroupStats] = {}
    by_namespace: dict[str, GroupStats] = {}
    totals = GroupStats()
    for ns, spec, records, size, expired in database.fetchall(queries.group_stats(every), params):
        stats = GroupStats(int(records), int(size), int(expired))
        name = serializer_name(spec)
        by_serializer[name] = by_serializer.get(name, GroupStats()) + stats
        by_namespace[ns] = by_namespace.get(ns, GroupStats()) + stats
        totals += stats
    held = dead = 0
    for _ns, ns_held, ns_dead in database.fetchall(queries.lock_stats(every), params):
        held += int(ns_held)
        dead += int(ns_dead)
    return DatabaseStats(
        totals=totals,
        by_serializer=dict(sorted(by_serializer.items())),
        by_namespace=dict(sorted(by_namespace.items())),
        locks_held=held,
        dead_locks=dead,
        schema_revision=database.schema_revision(),
        storage=storage_figures(database),
    )


def storage_figures(database: Database) -> dict[str, int]:
    """The database's size figures (:meth:`~sqlresults.dialects.Dialect.storage_figures`)."""
    row = database.fetchone(queries.dialect_statement("storage_size"), {})
    assert row is not None  # the statement always returns one row
    return database.dialect.storage_figures(tuple(row))


def dialect_facts(database: Database, name: str) -> tuple[Any, ...]:
    """The row of one of the dialect's administrative statements (see
    :meth:`~sqlresults.dialects.Dialect.admin_sql`), e.g. ``"journal_mode"``.

    Raises:
        ValueError: The dialect has no such statement.
    """
    row = database.fetchone(queries.dialect_statement(name), {})
    return () if row is None else tuple(row)


def clock_skew(database: Database) -> float:
    """Seconds by which the database's clock runs ahead of this machine's (negative: behind),
    measured against the middle of the round trip; 0 where this machine's clock is the
    database's (SQLite)."""
    before = time.time()
    server = database.now()
    after = time.time()
    return server - (before + after) / 2


def vacuum(database: Database) -> tuple[int, int]:
    """Give freed space back: SQLite rebuilds the file (``VACUUM``) and truncates its
    write-ahead log; PostgreSQL vacuums sqlresults' tables (``VACUUM (ANALYZE)``: the space
    is reused, and handed back to the system where it lies at the end of a table).

    Returns:
        The bytes before and after: the SQLite file and its log, or sqlresults' tables on
        PostgreSQL.
    """
    dialect = database.dialect
    before = dialect.footprint(storage_figures(database))
    steps = ["checkpoint", "vacuum", "checkpoint"]
    for step in steps:
        if dialect.has_admin_sql(step):
            database.execute(queries.dialect_statement(step), {})
    after = dialect.footprint(storage_figures(database))
    return before, after


# -- export and import --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportItem:
    """One record on its way out: its Prefect envelope, or why it cannot be exported.

    Attributes:
        key: The record's key.
        envelope: Prefect's JSON envelope, or None on error.
        error: What is wrong with the record, or None.
    """

    key: str
    envelope: bytes | None
    error: str | None


def export_records(
    database: Database,
    namespace: str,
    *,
    prefix: str = "",
    include_expired: bool = False,
    signer: Signer | None = None,
) -> Iterator[ExportItem]:
    """Yield each record of the namespace as Prefect's JSON envelope, in key order.

    Payloads are fetched in batches of at most about 2 MB (a larger record alone), and
    converted without being deserialized, so memory stays flat however many records there
    are. A record that fails its checksum (or its signature, with ``signer``), or whose
    serializer cannot write Prefect's format, is yielded with an error; the rest go on.

    Args:
        database: The database.
        namespace: The namespace.
        prefix: Only keys that start with it.
        include_expired: Also export expired records (their envelope keeps their expiration).
        signer: Checks signatures; None checks checksums only.
    """
    state = "all" if include_expired else "live"
    base: dict[str, Any] = {
        "ns": check_namespace(namespace),
        "prefix": check_prefix(prefix or None),
    }
    plan = queries.export_plan(state)
    fetch = queries.export_batch(state)
    after = ""
    while True:
        page = database.fetchall(plan, {**base, "after": after, "limit": _PAGE})
        start = 0
        while start < len(page):
            # Records up to ~2 MB of payload at a time (at least one).
            end, total = start + 1, int(page[start][1])
            while end < len(page) and total + int(page[end][1]) <= _EXPORT_BATCH_BYTES:
                total += int(page[end][1])
                end += 1
            last, planned = page[end - 1][0], end - start
            rows = database.fetchall(
                fetch, {**base, "after": after, "last": last, "limit": planned}
            )
            for row in rows:
                yield _export_item(namespace, row, signer)
            if len(rows) == planned and rows[-1][0] != last:
                # Records written into the range meanwhile pushed planned ones out of the
                # batch: plan again after the last record actually read.
                after = rows[-1][0]
                break
            del rows
            start, after = end, last
        else:
            if len(page) < _PAGE:
                return


def _export_item(namespace: str, row: tuple[Any, ...], signer: Signer | None) -> ExportItem:
    key, payload, spec, checksum, signature, expires, provenance_json = row
    try:
        verify_record(
            namespace,
            key,
            spec,
            expires,
            payload,
            checksum,
            signature,
            signer,
            provenance=provenance_json,
        )
        provenance = (
            None if provenance_json is None else Provenance.model_validate_json(provenance_json)
        )
        metadata = ResultRecordMetadata(
            storage_key=key,
            expiration=_maybe_time(expires),
            serializer=Serializer.from_spec_json(spec),
            provenance=provenance,
        )
        return ExportItem(key, envelope_from_payload(metadata, bytes(payload)), None)
    except (IntegrityError, SerializationError) as exc:
        return ExportItem(key, None, str(exc))
    except ValueError as exc:  # a spec or provenance that passed the checksum yet is invalid
        return ExportItem(key, None, f"its metadata cannot be read: {exc}")


def import_envelope(store: ResultStore, key: str, data: bytes, *, now: float) -> bool:
    """Store a record read from Prefect's JSON envelope under ``key``, without deserializing
    its result.

    Args:
        store: Where to store it (database and namespace).
        key: Its key (the file's path under the exported directory).
        data: The envelope.
        now: The current time (seconds since the epoch), which decides whether it expired.

    Returns:
        True if stored; False if it had expired already (skipped).

    Raises:
        InvalidEnvelopeError: ``data`` is no envelope.
        SerializationError: The result text does not decode with its serializer.
        LockHeldByOtherError: Another holder has the key locked.
        InvalidKeyError: ``key`` is not a valid key.
    """
    metadata, payload = payload_from_envelope(data)
    if metadata.expiration is not None and metadata.expiration.timestamp() <= now:
        return False
    # Prefect writes an absolute path as the storage key; the file's place is the key here.
    store.write_payload(payload, metadata.model_copy(update={"storage_key": check_key(key)}))
    return True
