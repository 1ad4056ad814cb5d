"""Every statement the store and the lock manager run, built once with SQLAlchemy Core.

Each function takes the :class:`~sqlresults.dialects.Dialect` and the SQL expression for "now"
and returns a statement. :class:`~sqlresults.database.Database` compiles each one once into the
driver's own SQL string and executes it on the DBAPI connection directly, so the hot paths pay
neither for SQLAlchemy's execution layer nor for a second round trip: writes, lock acquires and
releases are single statements (upsert with RETURNING) that check and change in one step.

Parameters are always passed by name: ``ns`` (namespace), ``key``, ``now`` (seconds since the
epoch; on PostgreSQL the server clock replaces it in the expressions that decide expiry), and
per-statement ones documented on each function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Double,
    Integer,
    LargeBinary,
    String,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable

from sqlresults.dialects import Dialect
from sqlresults.schema import locks, records

__all__ = ["SORTS", "STATES", "Query"]

# Constants must be SQL literals, not Python values: SQLAlchemy would turn a Python value into an
# anonymous bind parameter, and these statements run on the driver with named parameters only.
_ZERO: ColumnElement[int] = literal_column("0")
_ONE: ColumnElement[int] = literal_column("1")

#: A statement factory: ``(dialect, now) -> statement``.
Query = Callable[[Dialect, ColumnElement[float]], Executable]

_ns = bindparam("ns", type_=String())
_key = bindparam("key", type_=String())
_holder = bindparam("holder", type_=String())
# The fence the caller's lock was granted with, or NULL when the caller holds no lock it knows
# of (see sqlresults.locking: fences are remembered per process for the locks it acquired).
_fence = bindparam("fence", type_=BigInteger())


def _record_is() -> Any:
    return and_(records.c.namespace == _ns, records.c.key == _key)


def _unexpired(expires: Any, now: ColumnElement[float]) -> Any:
    return or_(expires.is_(None), expires > now)


def _locked_by_other(now: ColumnElement[float]) -> Any:
    """An unexpired lock on (ns, key) whose holder is not ``holder``."""
    return exists().where(
        locks.c.namespace == _ns,
        locks.c.key == _key,
        locks.c.holder != _holder,
        locks.c.expires > now,
    )


def _is_our_lock() -> Any:
    """The lock row on (ns, key) is ``holder``'s and, when ``fence`` is given, still carries
    that fence (no acquire happened since, by anyone). Its lease may have run out: a lease that
    ended while nobody took the key or swept its row still guards the key."""
    return and_(
        locks.c.namespace == _ns,
        locks.c.key == _key,
        locks.c.holder == _holder,
        or_(_fence.is_(None), locks.c.fence == _fence),
    )


def _may_write(now: ColumnElement[float]) -> Any:
    """Whether ``holder`` may write (ns, key): without a fence, unless another holder has an
    unexpired lock (Prefect: no lock is needed to write); with a fence, only while the lock it
    was granted is still its own."""
    return or_(
        and_(_fence.is_(None), ~_locked_by_other(now)),
        and_(_fence.is_not(None), exists().where(_is_our_lock())),
    )


# -- records ---------------------------------------------------------------------------------


def record_exists(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """One row if an unexpired record exists. Reads the primary key index only."""
    return select(_ONE).where(_record_is(), _unexpired(records.c.expires, now))


def record_read(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Exactly one row: the record's columns (all NULL when there is no record), the payload
    only when the caller needs it, and the holder of the key's lock.

    Extra parameters: ``known_version`` (the version of a record the caller has deserialized in
    memory, or NULL) and ``include_expired`` (0 or 1). The payload and the provenance come back
    NULL when they would be wasted: the caller's copy is current, or the record has expired and
    will be refused. Columns: payload, serializer, checksum, signature, expires, version,
    expired (0 or 1), the holder of an unexpired lock on the key (NULL when free), provenance.

    Record and lock come from one statement, i.e. one snapshot: a reader can never see "no
    record" from before a holder's commit and "no lock" from after it, and give up on a key that
    was being written.
    """
    expired = and_(records.c.expires.is_not(None), records.c.expires <= now)
    skip_payload = or_(
        records.c.version == bindparam("known_version", type_=BigInteger()),
        and_(expired, bindparam("include_expired", type_=Integer()) == _ZERO),
    )
    one_row = select(_ONE.label("one")).subquery("one_row")
    return select(
        case((skip_payload, null()), else_=records.c.payload),
        records.c.serializer,
        records.c.checksum,
        records.c.signature,
        records.c.expires,
        records.c.version,
        case((expired, _ONE), else_=_ZERO),
        select(locks.c.holder)
        .where(locks.c.namespace == _ns, locks.c.key == _key, locks.c.expires > now)
        .scalar_subquery(),
        case((skip_payload, null()), else_=records.c.provenance),
    ).select_from(one_row.outerjoin(records, _record_is()))


def record_fetch(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """The record and the holder of the key's lock, in :func:`record_read`'s columns, or no row
    when there is no record: the read of a record the caller has not cached.

    The common case, a record that is there, costs one primary-key lookup that returns the
    columns as stored: no outer join, and no CASE around the payload, which would make SQLite
    copy it once more (2 ms of a 10 MB read). When there is no row, the caller asks
    :func:`record_read`, which reports record and lock from one snapshot.
    """
    expired = and_(records.c.expires.is_not(None), records.c.expires <= now)
    return select(
        records.c.payload,
        records.c.serializer,
        records.c.checksum,
        records.c.signature,
        records.c.expires,
        records.c.version,
        case((expired, _ONE), else_=_ZERO),
        select(locks.c.holder)
        .where(locks.c.namespace == _ns, locks.c.key == _key, locks.c.expires > now)
        .scalar_subquery(),
        records.c.provenance,
    ).where(_record_is())


def record_upsert(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Insert or replace a record unless another holder has an unexpired lock on its key, or,
    when ``fence`` is given, unless the caller's own lock with that fence is gone.

    Extra parameters: ``payload``, ``serializer``, ``checksum``, ``signature``, ``size``,
    ``expires``, ``version``, ``provenance`` (JSON text or NULL), ``holder``, ``fence``. It
    changes one row, or none when refused: callers read the driver's row count. No RETURNING:
    the version is the caller's own parameter, and SQLite materializes RETURNING rows at a cost
    that grows with the row (2.5 µs of a 100 B write, half of a 10 MB one).
    """
    insert = dialect.insert(records)
    values: Any = select(
        _ns,
        _key,
        bindparam("payload", type_=LargeBinary()),
        bindparam("serializer", type_=Text()),
        bindparam("checksum", type_=BigInteger()),
        bindparam("signature", type_=LargeBinary()),
        bindparam("size", type_=BigInteger()),
        now,
        now,
        bindparam("expires", type_=Double()),
        bindparam("version", type_=BigInteger()),
        bindparam("provenance", type_=Text()),
    ).where(_may_write(now))
    insert = insert.from_select(
        [
            "namespace",
            "key",
            "payload",
            "serializer",
            "checksum",
            "signature",
            "size",
            "created",
            "updated",
            "expires",
            "version",
            "provenance",
        ],
        values,
    )
    replaced = (
        "payload",
        "serializer",
        "checksum",
        "signature",
        "size",
        "updated",
        "expires",
        "provenance",
    )
    statement: Executable = insert.on_conflict_do_update(
        index_elements=[records.c.namespace, records.c.key],
        set_={
            **{name: getattr(insert.excluded, name) for name in replaced},
            "version": insert.excluded.version,
        },
    )
    return statement


def record_delete(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Delete a record unless another holder has an unexpired lock on its key, or, when
    ``fence`` is given, unless the caller's own lock with that fence is gone.

    Extra parameters: ``holder``, ``fence``. Returns the deleted key, or no row.
    """
    return delete(records).where(_record_is(), _may_write(now)).returning(records.c.key)


def record_keys(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """One page of unexpired keys in key order, after ``after`` and starting with ``prefix``.

    Extra parameters: ``after`` (a key, or '' for the first page), ``prefix`` (or ''), ``limit``.
    """
    prefix = bindparam("prefix", type_=String())
    return (
        select(records.c.key)
        .where(
            records.c.namespace == _ns,
            records.c.key > bindparam("after", type_=String()),
            func.substr(records.c.key, _ONE, func.length(prefix)) == prefix,
            _unexpired(records.c.expires, now),
        )
        .order_by(records.c.key)
        .limit(bindparam("limit", type_=Integer()))
        # SQLite's compiler adds an OFFSET parameter to an expression LIMIT; make it a literal.
        .offset(_ZERO)
    )


def records_sweep(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Delete up to ``limit`` expired records of the namespace. Extra parameter: ``limit``."""
    batch = (
        select(records.c.namespace, records.c.key)
        .where(
            records.c.namespace == _ns,
            records.c.expires.is_not(None),
            records.c.expires <= now,
        )
        .limit(bindparam("limit", type_=Integer()))
        .offset(_ZERO)
    )
    if not dialect.is_sqlite:
        batch = batch.with_for_update(skip_locked=True)
    return delete(records).where(tuple_(records.c.namespace, records.c.key).in_(batch))


def records_stats(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Record count, payload bytes, expired count and held locks of the namespace."""
    expired = and_(records.c.expires.is_not(None), records.c.expires <= now)
    held = (
        select(func.count())
        .select_from(locks)
        .where(locks.c.namespace == _ns, locks.c.expires > now)
        .scalar_subquery()
    )
    return select(
        func.count(),
        func.coalesce(func.sum(records.c.size), _ZERO),
        func.coalesce(func.sum(case((expired, _ONE), else_=_ZERO)), _ZERO),
        held,
    ).where(records.c.namespace == _ns)


# -- locks -----------------------------------------------------------------------------------


def lock_acquire(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Take the lock if it is free, expired, or already ours (then extend the lease).

    Extra parameters: ``holder``, ``hold`` (lease in seconds). Returns the new fence, or no row
    when another holder has an unexpired lease. Every acquire bumps the fence, so a write or a
    release carrying an older fence can be told apart from the current holder's.
    """
    insert = dialect.insert(locks)
    hold: Any = bindparam("hold", type_=Double())
    insert = insert.values(
        namespace=_ns,
        key=_key,
        holder=_holder,
        acquired=now,
        expires=now + hold,
        fence=_ONE,
    )
    statement: Executable = insert.on_conflict_do_update(
        index_elements=[locks.c.namespace, locks.c.key],
        set_={
            "holder": insert.excluded.holder,
            "acquired": case(
                (locks.c.holder == insert.excluded.holder, locks.c.acquired),
                else_=insert.excluded.acquired,
            ),
            "expires": insert.excluded.expires,
            "fence": locks.c.fence + _ONE,
        },
        where=or_(locks.c.expires <= now, locks.c.holder == insert.excluded.holder),
    ).returning(locks.c.fence)
    return statement


def lock_release(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Delete the lock row if ``holder`` holds it (with ``fence``, when given). Returns the
    fence, or no row.

    Where the database has notifications (PostgreSQL), the same statement announces the release
    on :attr:`~sqlresults.dialects.Dialect.release_channel`; it is delivered when the release
    commits, so waiters wake then instead of at their next poll.
    """
    released = delete(locks).where(_is_our_lock()).returning(locks.c.fence)
    notice = dialect.release_notice(_ns.concat(literal_column("'/'")).concat(_key))
    if notice is None:
        return released
    deleted = released.cte("released")
    return select(deleted.c.fence, notice).select_from(deleted)


def lock_renew(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Extend ``holder``'s lease (with ``fence``, when given) to now + ``hold`` seconds.
    Returns the fence, or no row."""
    return (
        update(locks)
        .where(_is_our_lock())
        .values(expires=now + bindparam("hold", type_=Double()))
        .returning(locks.c.fence)
    )


def lock_state(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """The holder of the unexpired lock on the key, its fence and the seconds left of its
    lease (no row when the key is free). A waiter wakes at the lease's end: expiry is announced
    by nobody."""
    return select(locks.c.holder, locks.c.fence, locks.c.expires - now).where(
        locks.c.namespace == _ns, locks.c.key == _key, locks.c.expires > now
    )


def lock_is_ours(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """One row if ``holder`` still has the lock row on the key with ``fence`` (or any fence,
    when NULL), whether or not its lease has run out."""
    return select(_ONE).where(_is_our_lock())


def locks_sweep(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Delete the namespace's lock rows whose lease has ended."""
    return delete(locks).where(locks.c.namespace == _ns, locks.c.expires <= now)


def clock(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """The clock that decides expiry, as the database sees it."""
    return select(now)


# -- administration (sqlresults.admin, for the CLI): metadata only, never a payload ------------
#
# Listing and counting statements come in variants (sort order, which records, one namespace
# or all); each variant is built by a cached factory, so it is one Query object, compiled once
# per database like every other statement.

#: Sorts :func:`record_listing` offers, by the name the CLI uses.
SORTS = ("key", "size", "created", "expires")
#: Which records a listing covers: unexpired ones, expired ones, or both.
STATES = ("live", "expired", "all")

# Never-expiring records sort after every expiry; any real time is far below this.
_FAR_FUTURE: ColumnElement[float] = literal_column("1e300", Double())


def _in_state(state: str, now: ColumnElement[float]) -> Any:
    if state == "live":
        return _unexpired(records.c.expires, now)
    if state == "expired":
        return and_(records.c.expires.is_not(None), records.c.expires <= now)
    if state == "all":
        return literal_column("1") == _ONE
    raise ValueError(f"unknown record state {state!r}; expected one of {STATES}")


def _has_prefix() -> Any:
    prefix = bindparam("prefix", type_=String())
    return func.substr(records.c.key, _ONE, func.length(prefix)) == prefix


def _in_namespace(all_namespaces: bool) -> Any:
    return literal_column("1") == _ONE if all_namespaces else records.c.namespace == _ns


def _sort_value(sort: str) -> Any:
    if sort == "size":
        return records.c.size
    if sort == "created":
        return records.c.created
    if sort == "expires":
        return func.coalesce(records.c.expires, _FAR_FUTURE)
    raise ValueError(f"unknown sort {sort!r}; expected one of {SORTS}")


@functools.cache
def record_listing(sort: str, state: str, all_namespaces: bool) -> Query:
    """The statement for one page of record metadata, in ``sort`` order.

    Pages follow each other by keyset (the last row's sort value, namespace and key), so a
    page costs the same wherever it starts and no read stays open between pages.

    Args:
        sort: One of :data:`SORTS`; ties are broken by namespace and key.
        state: One of :data:`STATES`.
        all_namespaces: List every namespace (``ns`` is then not used).

    Returns:
        A query with the parameters ``ns``, ``prefix`` (or ''), ``after_value`` (the last sort
        value; ignored for ``key``), ``after_ns``, ``after_key`` ('' for the first page) and
        ``limit``. Columns: namespace, key, size, serializer, created, updated, expires,
        expired (0 or 1), the holder of an unexpired lock on the key (or NULL), provenance,
        sort value.
    """
    _in_state(state, literal_column("0"))  # fail now, not at the first query
    if sort != "key":
        _sort_value(sort)

    def listing(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        after_ns = bindparam("after_ns", type_=String())
        after_key = bindparam("after_key", type_=String())
        if sort == "key":
            value: Any = records.c.key
            order = [records.c.namespace, records.c.key]
            # One namespace: a range of the primary key index, however far the page is.
            after = (
                tuple_(records.c.namespace, records.c.key) > tuple_(after_ns, after_key)
                if all_namespaces
                else records.c.key > after_key
            )
        else:
            value = _sort_value(sort)
            order = [value, records.c.namespace, records.c.key]
            after = tuple_(value, records.c.namespace, records.c.key) > tuple_(
                bindparam("after_value", type_=Double()), after_ns, after_key
            )
        expired = and_(records.c.expires.is_not(None), records.c.expires <= now)
        holder = (
            select(locks.c.holder)
            .where(
                locks.c.namespace == records.c.namespace,
                locks.c.key == records.c.key,
                locks.c.expires > now,
            )
            .scalar_subquery()
        )
        return (
            select(
                records.c.namespace,
                records.c.key,
                records.c.size,
                records.c.serializer,
                records.c.created,
                records.c.updated,
                records.c.expires,
                case((expired, _ONE), else_=_ZERO),
                holder,
                records.c.provenance,
                value,
            )
            .where(_in_namespace(all_namespaces), _has_prefix(), _in_state(state, now), after)
            .order_by(*order)
            .limit(bindparam("limit", type_=Integer()))
            .offset(_ZERO)
        )

    listing.__name__ = f"record_listing_{sort}_{state}_{'all' if all_namespaces else 'ns'}"
    return listing


@functools.cache
def record_count(state: str, all_namespaces: bool) -> Query:
    """The statement counting the records a :func:`record_listing` of ``state`` covers.

    Parameters: ``ns``, ``prefix``. One row: the count.
    """
    _in_state(state, literal_column("0"))

    def count(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        return select(func.count()).where(
            _in_namespace(all_namespaces), _has_prefix(), _in_state(state, now)
        )

    count.__name__ = f"record_count_{state}_{'all' if all_namespaces else 'ns'}"
    return count


def record_detail(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Everything stored for one record, payload included, and its lock (for ``show``).

    Columns: payload, serializer, checksum, signature, size, created, updated, expires,
    expired (0 or 1), version, provenance, then the lock row's holder, acquired, expires and
    fence (NULL without a lock row; a row whose lease ended is returned too). No row when the
    record does not exist.
    """
    expired = and_(records.c.expires.is_not(None), records.c.expires <= now)
    return (
        select(
            records.c.payload,
            records.c.serializer,
            records.c.checksum,
            records.c.signature,
            records.c.size,
            records.c.created,
            records.c.updated,
            records.c.expires,
            case((expired, _ONE), else_=_ZERO),
            records.c.version,
            records.c.provenance,
            locks.c.holder,
            locks.c.acquired,
            locks.c.expires,
            locks.c.fence,
        )
        .select_from(
            records.outerjoin(
                locks,
                and_(locks.c.namespace == records.c.namespace, locks.c.key == records.c.key),
            )
        )
        .where(_record_is())
    )


def record_present(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """One row if a record, expired or not, is stored under the key (index only)."""
    return select(_ONE).where(_record_is())


def task_records(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """One page of records with provenance whose provenance text matches ``pattern`` (a LIKE
    pattern; the caller checks each match exactly), after ``after`` in key order.

    Parameters: ``ns``, ``pattern``, ``after``, ``limit``. Columns: key, provenance, updated,
    expired (0 or 1).
    """
    expired = and_(records.c.expires.is_not(None), records.c.expires <= now)
    return (
        select(
            records.c.key,
            records.c.provenance,
            records.c.updated,
            case((expired, _ONE), else_=_ZERO),
        )
        .where(
            records.c.namespace == _ns,
            records.c.key > bindparam("after", type_=String()),
            records.c.provenance.is_not(None),
            records.c.provenance.like(bindparam("pattern", type_=Text())),
        )
        .order_by(records.c.key)
        .limit(bindparam("limit", type_=Integer()))
        .offset(_ZERO)
    )


@functools.cache
def export_plan(state: str) -> Query:
    """One page of (key, size) of the namespace's records in ``state``, after ``after`` in
    key order: what an export reads before fetching payloads in batches of bounded size.

    Parameters: ``ns``, ``prefix``, ``after``, ``limit``.
    """
    _in_state(state, literal_column("0"))

    def plan(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        return (
            select(records.c.key, records.c.size)
            .where(
                records.c.namespace == _ns,
                records.c.key > bindparam("after", type_=String()),
                _has_prefix(),
                _in_state(state, now),
            )
            .order_by(records.c.key)
            .limit(bindparam("limit", type_=Integer()))
            .offset(_ZERO)
        )

    plan.__name__ = f"export_plan_{state}"
    return plan


@functools.cache
def export_batch(state: str) -> Query:
    """The namespace's records in ``state`` with keys after ``after`` up to ``last``, payloads
    included, at most ``limit`` of them, in key order.

    Parameters: ``ns``, ``prefix``, ``after``, ``last``, ``limit``. Columns: key, payload,
    serializer, checksum, signature, expires, provenance.
    """
    _in_state(state, literal_column("0"))

    def batch(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        return (
            select(
                records.c.key,
                records.c.payload,
                records.c.serializer,
                records.c.checksum,
                records.c.signature,
                records.c.expires,
                records.c.provenance,
            )
            .where(
                records.c.namespace == _ns,
                records.c.key > bindparam("after", type_=String()),
                records.c.key <= bindparam("last", type_=String()),
                _has_prefix(),
                _in_state(state, now),
            )
            .order_by(records.c.key)
            .limit(bindparam("limit", type_=Integer()))
            .offset(_ZERO)
        )

    batch.__name__ = f"export_batch_{state}"
    return batch


@functools.cache
def records_delete_range(state: str) -> Query:
    """Delete the namespace's records in ``state`` with keys after ``after`` up to ``last``
    that start with ``prefix``, except those another holder has an unexpired lock on.

    Parameters: ``ns``, ``prefix``, ``after``, ``last``, ``holder``. Returns the deleted keys.
    """
    _in_state(state, literal_column("0"))

    def delete_range(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        locked = exists().where(
            locks.c.namespace == records.c.namespace,
            locks.c.key == records.c.key,
            locks.c.holder != _holder,
            locks.c.expires > now,
        )
        return (
            delete(records)
            .where(
                records.c.namespace == _ns,
                records.c.key > bindparam("after", type_=String()),
                records.c.key <= bindparam("last", type_=String()),
                _has_prefix(),
                _in_state(state, now),
                ~locked,
            )
            .returning(records.c.key)
        )

    delete_range.__name__ = f"records_delete_range_{state}"
    return delete_range


@functools.cache
def group_stats(all_namespaces: bool) -> Query:
    """Records, payload bytes and unswept expired records per namespace and serializer spec,
    in one pass that reads no payload. Parameter: ``ns`` (unless ``all_namespaces``)."""

    def stats(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        expired = and_(records.c.expires.is_not(None), records.c.expires <= now)
        return (
            select(
                records.c.namespace,
                records.c.serializer,
                func.count(),
                func.coalesce(func.sum(records.c.size), _ZERO),
                func.coalesce(func.sum(case((expired, _ONE), else_=_ZERO)), _ZERO),
            )
            .where(_in_namespace(all_namespaces))
            .group_by(records.c.namespace, records.c.serializer)
        )

    stats.__name__ = f"group_stats_{'all' if all_namespaces else 'ns'}"
    return stats


def _locks_in_namespace(all_namespaces: bool) -> Any:
    return literal_column("1") == _ONE if all_namespaces else locks.c.namespace == _ns


@functools.cache
def lock_stats(all_namespaces: bool) -> Query:
    """Per namespace: locks held (unexpired) and dead lock rows (lease ended, not swept).
    Parameter: ``ns`` (unless ``all_namespaces``)."""

    def stats(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        return (
            select(
                locks.c.namespace,
                func.coalesce(func.sum(case((locks.c.expires > now, _ONE), else_=_ZERO)), _ZERO),
                func.coalesce(func.sum(case((locks.c.expires <= now, _ONE), else_=_ZERO)), _ZERO),
            )
            .where(_locks_in_namespace(all_namespaces))
            .group_by(locks.c.namespace)
        )

    stats.__name__ = f"lock_stats_{'all' if all_namespaces else 'ns'}"
    return stats


@functools.cache
def lock_listing(all_namespaces: bool) -> Query:
    """One page of lock rows (held or dead), in namespace and key order, after
    (``after_ns``, ``after_key``).

    Parameters: ``ns`` (unless ``all_namespaces``), ``after_ns``, ``after_key``, ``limit``.
    Columns: namespace, key, holder, acquired, expires, fence, seconds of lease left (negative
    once it ended).
    """

    def listing(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        after = tuple_(locks.c.namespace, locks.c.key) > tuple_(
            bindparam("after_ns", type_=String()), bindparam("after_key", type_=String())
        )
        return (
            select(
                locks.c.namespace,
                locks.c.key,
                locks.c.holder,
                locks.c.acquired,
                locks.c.expires,
                locks.c.fence,
                locks.c.expires - now,
            )
            .where(_locks_in_namespace(all_namespaces), after)
            .order_by(locks.c.namespace, locks.c.key)
            .limit(bindparam("limit", type_=Integer()))
            .offset(_ZERO)
        )

    listing.__name__ = f"lock_listing_{'all' if all_namespaces else 'ns'}"
    return listing


def lock_force_release(dialect: Dialect, now: ColumnElement[float]) -> Executable:
    """Delete the lock row on the key whoever holds it (an administrator's unlock); announce
    the release where the database has notifications, as :func:`lock_release` does.

    Returns the removed row's holder, acquired, expires, fence and seconds of lease left, or
    no row.
    """
    removed = delete(locks).where(locks.c.namespace == _ns, locks.c.key == _key)
    columns = (
        locks.c.holder,
        locks.c.acquired,
        locks.c.expires,
        locks.c.fence,
        (locks.c.expires - now).label("lease_left"),
    )
    notice = dialect.release_notice(_ns.concat(literal_column("'/'")).concat(_key))
    if notice is None:
        return removed.returning(*columns)
    deleted = removed.returning(*columns).cte("removed")
    return select(*deleted.c, notice).select_from(deleted)


@functools.cache
def expired_sweep(all_namespaces: bool) -> Query:
    """Delete up to ``limit`` expired records of the namespace, or of every namespace.
    Parameters: ``ns`` (unless ``all_namespaces``), ``limit``."""
    if not all_namespaces:
        return records_sweep

    def sweep(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        batch = (
            select(records.c.namespace, records.c.key)
            .where(records.c.expires.is_not(None), records.c.expires <= now)
            .limit(bindparam("limit", type_=Integer()))
            .offset(_ZERO)
        )
        if not dialect.is_sqlite:
            batch = batch.with_for_update(skip_locked=True)
        return delete(records).where(tuple_(records.c.namespace, records.c.key).in_(batch))

    sweep.__name__ = "expired_sweep_all"
    return sweep


@functools.cache
def dead_locks_sweep(all_namespaces: bool) -> Query:
    """Delete up to ``limit`` lock rows whose lease has ended, of the namespace or of every
    namespace. Parameters: ``ns`` (unless ``all_namespaces``), ``limit``."""

    def sweep(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        batch = (
            select(locks.c.namespace, locks.c.key)
            .where(_locks_in_namespace(all_namespaces), locks.c.expires <= now)
            .limit(bindparam("limit", type_=Integer()))
            .offset(_ZERO)
        )
        if not dialect.is_sqlite:
            batch = batch.with_for_update(skip_locked=True)
        # Checked again on delete: a row re-acquired since the batch was chosen is kept.
        return delete(locks).where(
            tuple_(locks.c.namespace, locks.c.key).in_(batch), locks.c.expires <= now
        )

    sweep.__name__ = f"dead_locks_sweep_{'all' if all_namespaces else 'ns'}"
    return sweep


@functools.cache
def sweepable_count(all_namespaces: bool) -> Query:
    """How many expired records and dead lock rows a sweep would delete (for ``--dry-run`` and
    progress). Parameter: ``ns`` (unless ``all_namespaces``). One row: the two counts."""

    def count(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        dead = (
            select(func.count())
            .select_from(locks)
            .where(_locks_in_namespace(all_namespaces), locks.c.expires <= now)
            .scalar_subquery()
        )
        return select(func.count(), dead).where(
            _in_namespace(all_namespaces),
            records.c.expires.is_not(None),
            records.c.expires <= now,
        )

    count.__name__ = f"sweepable_count_{'all' if all_namespaces else 'ns'}"
    return count


@functools.cache
def dialect_statement(name: str) -> Query:
    """A statement the dialect writes itself (sizes, vacuum, privileges: see
    :meth:`~sqlresults.dialects.Dialect.admin_sql`), by its name there."""

    def statement(dialect: Dialect, now: ColumnElement[float]) -> Executable:
        return text(dialect.admin_sql(name))

    statement.__name__ = f"dialect_{name}"
    return statement
