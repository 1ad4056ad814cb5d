"""The async record operations of :class:`~sqlresults.results.ResultStore` on PostgreSQL:
awaited statements, no worker thread per call.

One job: ``aread``, ``awrite``/``apersist_result_record`` and ``adelete`` on the asyncio path
(:mod:`sqlresults.async_database`), with exactly the sync methods' rules, reusing the store's
own pieces for everything that is not a database round trip: the row is checked (checksum,
signature) and deserialized by ``ResultStore._record_from_row``, a write is sealed by
``ResultStore._sealed`` and refused by the database in the same statement when another holder
has the lock or the writer's fence is stale, a read waits for another holder's lock with
``await_for_lock`` (no thread either).

Checking and (de)serializing are CPU work on the event loop: fine for the small records this
path is for, not for a large payload, which would stall every coroutine of the loop. A payload
over :data:`OFFLOAD_BYTES` is checked and deserialized (read) or sealed (write) in a worker
thread instead. Serializing a write's value happens on the loop (its size is known only after).

Used only when the store's locks are rows of the same database (``_locks_in_database``); with a
foreign lock manager, and on SQLite, the store runs its sync methods in worker threads.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from sqlresults import queries
from sqlresults.async_database import AsyncDatabase, AsyncWriteTransaction, async_database
from sqlresults.errors import InvalidArgumentError, LeaseLostError, LockHeldByOtherError
from sqlresults.records import ResultRecord
from sqlresults.validation import check_holder, check_key, check_timeout

__all__ = ["OFFLOAD_BYTES", "adelete", "apersist", "aread"]

#: Payloads larger than this many bytes are checked and (de)serialized in a worker thread.
OFFLOAD_BYTES = 256 * 1024

# The store is typed loosely: sqlresults.results imports this module, not the other way round.
Store = Any


def _aio(store: Store) -> AsyncDatabase:
    aio = async_database(store.result_storage)
    assert aio is not None  # the store checks _has_async_path before calling here
    return aio


async def aread(
    store: Store,
    key: str,
    holder: str,
    include_expired: bool,
    lock_timeout: float | None,
) -> ResultRecord[Any]:
    """:meth:`ResultStore.read <sqlresults.results.ResultStore.read>`, awaited.

    Args:
        store: The store.
        key: The record's key.
        holder: The caller's lock holder id (a holder never waits for its own lock).
        include_expired: Return an expired record instead of raising.
        lock_timeout: Seconds to wait for another holder's lock; None waits as long as it
            takes, 0 does not wait.

    Raises:
        As ``ResultStore.read``.
    """
    check_key(key)
    timeout = check_timeout(lock_timeout, "lock_timeout")
    deadline = None if timeout is None else time.monotonic() + timeout
    aio = _aio(store)
    while True:
        cached = store.cache.get(key) if store.cache_result_in_memory else None
        params = {
            "ns": store.namespace,
            "key": key,
            "known_version": None if cached is None else cached.version,
            "include_expired": 1 if include_expired else 0,
        }
        # As the sync read: fetch an uncached record as stored; a miss (or a cached copy to
        # confirm) needs the statement that reports record and lock in one snapshot.
        row = None if cached is not None else await aio.fetchone(queries.record_fetch, params)
        if row is None:
            row = await aio.fetchone(queries.record_read, params)
        assert row is not None  # record_read always returns exactly one row
        if store._must_wait_for_lock(key, row[7], holder):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not await store.lock_manager.await_for_lock(key, remaining):
                raise store._lock_timeout_error(key, timeout)
            continue
        break
    payload = row[0]
    if payload is not None and len(payload) > OFFLOAD_BYTES:
        del payload
        record: ResultRecord[Any] = await asyncio.to_thread(
            store._record_from_row, key, row, cached, include_expired
        )
        return record
    del payload
    return store._record_from_row(key, row, cached, include_expired)  # type: ignore[no-any-return]


async def apersist(
    store: Store,
    result_record: ResultRecord[Any],
    holder: str,
    *,
    release_lock: bool = False,
) -> None:
    """:meth:`ResultStore.persist_result_record
    <sqlresults.results.ResultStore.persist_result_record>`, awaited: the lock check, the
    fence check and the upsert are one statement; with ``release_lock`` the holder's lock is
    released in the same database transaction as the write (both or neither).

    Raises:
        As ``ResultStore.persist_result_record``.
    """
    metadata = result_record.metadata
    if metadata.storage_key is None:
        raise InvalidArgumentError("Storage key is required on result record")
    key = check_key(metadata.storage_key)
    holder = check_holder(holder)
    payload = result_record.serialize_result()
    seal = functools.partial(
        store._sealed,
        key,
        payload,
        metadata.serializer,
        metadata.expiration,
        metadata.provenance,
        holder,
        True,
    )
    if len(payload) > OFFLOAD_BYTES:
        params = await asyncio.to_thread(seal)
    else:
        params = seal()
    del payload, seal
    aio = _aio(store)
    if release_lock:
        version = await _release_and_write(store, aio, key, holder, params)
    else:
        if not await aio.execute(queries.record_upsert, params):
            raise store._refusal(key, holder, params["fence"])
        version = int(params["version"])
    result_record.mark_persisted(version)
    store._remember(key, result_record)


async def _release_and_write(
    store: Store, aio: AsyncDatabase, key: str, holder: str, params: dict[str, Any]
) -> int:
    """``ResultStore._release_and_write``, awaited: release first, then write, in one
    transaction (the order matters on PostgreSQL; see the sync method)."""
    fence = params["fence"]

    async def release_then_write(transaction: AsyncWriteTransaction) -> int | None:
        if await transaction.fetchone(queries.lock_release, params) is None:
            return None  # not our lock any more: write nothing
        if not await transaction.execute(queries.record_upsert, {**params, "fence": None}):
            raise LockHeldByOtherError(key)  # rolls back: our lock row is restored
        return int(params["version"])

    version = await aio.transaction(release_then_write)
    store.lock_manager.forget_lock(key, holder)
    if version is None:
        # As ResultStore._refusal: a holder that never held the lock meets another's.
        if fence is None and await _held_by_other(store, aio, key, holder):
            raise LockHeldByOtherError(key)
        raise LeaseLostError(key, holder)
    return version


async def _held_by_other(store: Store, aio: AsyncDatabase, key: str, holder: str) -> bool:
    row = await aio.fetchone(queries.lock_state, {"ns": store.namespace, "key": key})
    return row is not None and row[0] != holder


async def adelete(store: Store, key: str, holder: str) -> bool:
    """:meth:`ResultStore.delete <sqlresults.results.ResultStore.delete>`, awaited.

    Raises:
        As ``ResultStore.delete``.
    """
    key = check_key(key)
    holder = check_holder(holder)
    aio = _aio(store)
    fence = store._held_fence(key, holder)
    params = {"ns": store.namespace, "key": key, "holder": holder, "fence": fence}
    deleted = await aio.fetchone(queries.record_delete, params) is not None
    store._forget(key)
    if deleted:
        return True
    if fence is not None:
        if await aio.fetchone(queries.lock_is_ours, params) is None:
            raise store._refusal(key, holder, fence)
    elif await _held_by_other(store, aio, key, holder):
        raise LockHeldByOtherError(key)
    return False
