"""Worker functions for the multi-process tests in ``test_concurrency.py``.

They live at module level in their own module so that ``multiprocessing``'s *spawn* start method
can import them in a fresh interpreter: a spawned child receives the parent's ``sys.path`` (which
holds ``tests/``, put there by pytest), imports this module by name and calls the function. A
test module itself would be a poor home: importing it in the child would import pytest fixtures
and everything else the module needs.

Every worker reports through a queue instead of raising, so the parent can assert on what each
child saw: ``("ok", worker_id, details)`` or ``("error", worker_id, traceback_text)``.

Values carry their own proof of integrity. :func:`make_value` builds
``(writer, n, sha256(payload), payload)`` from a seed, so a reader can tell a complete value
(the digest matches, and the payload is exactly what that writer wrote for that ``n``) from a
torn one (parts of two writes) or a lost one.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import sys
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlresults.database import Database
from sqlresults.errors import RecordNotFoundError
from sqlresults.results import ResultStore

__all__ = [
    "check_value",
    "make_value",
    "read_big_value_until_stopped",
    "use_pickled_lock_manager",
    "use_pickled_store",
    "work_in_forked_child",
    "write_own_and_shared_keys",
]

Value = tuple[str, int, str, bytes]


def make_value(writer: str, n: int, max_size: int, key: str = "", min_size: int = 0) -> Value:
    """The value ``writer`` writes the ``n``-th time (for ``key``): a payload of a seeded
    random size from ``min_size`` to ``max_size`` bytes, and its SHA-256."""
    rng = random.Random(f"{writer}|{key}|{n}")
    payload = rng.randbytes(rng.randint(min_size, max_size))
    return (writer, n, hashlib.sha256(payload).hexdigest(), payload)


def check_value(value: Any, max_size: int, key: str = "", min_size: int = 0) -> Value:
    """Return ``value`` if it is a complete value as :func:`make_value` builds it.

    Raises:
        AssertionError: ``value`` is torn, truncated, or not what its writer wrote.
    """
    assert isinstance(value, tuple), f"{key!r}: not a tuple: {type(value).__name__}"
    assert len(value) == 4, f"{key!r}: {len(value)} fields"
    writer, n, digest, payload = value
    assert hashlib.sha256(payload).hexdigest() == digest, f"{key!r}: torn payload ({writer}, {n})"
    expected = make_value(writer, n, max_size, key, min_size)
    assert value == expected, f"{key!r}: not ({writer}, {n})'s value"
    return value


def _report(queue: Any, worker: str, work: Callable[[], Any]) -> None:
    try:
        queue.put(("ok", worker, work()))
    except BaseException:
        queue.put(("error", worker, traceback.format_exc()))


def write_own_and_shared_keys(
    url: str,
    namespace: str,
    writer: str,
    own_keys: int,
    shared_keys: int,
    shared_every: int,
    max_size: int,
    barrier: Any,
    queue: Any,
) -> None:
    """Write ``own_keys`` keys of this writer's own, and every ``shared_every``-th step one of
    ``shared_keys`` keys that every writer writes, reading a shared key back after each shared
    write (it may hold another writer's value, but always a complete one); then read everything
    back. Opens a :class:`Database` of its own, as a separate machine would.

    Reports ``{"shared_writes": {key: [n, ...]}, "shared_reads": int}``.
    """

    def work() -> dict[str, Any]:
        database = Database(url)
        try:
            store = ResultStore(result_storage=database, namespace=namespace)
            rng = random.Random(writer)
            shared_writes: dict[str, list[int]] = {}
            shared_reads = 0
            barrier.wait()
            for i in range(own_keys):
                key = f"{writer}/own/{i}"
                store.write(make_value(writer, i, max_size, key), key)
                if i % shared_every == 0:
                    shared = f"shared/{rng.randrange(shared_keys)}"
                    store.write(make_value(writer, i, max_size, shared), shared)
                    shared_writes.setdefault(shared, []).append(i)
                    other = f"shared/{rng.randrange(shared_keys)}"
                    try:
                        check_value(store.read(other).result, max_size, other)
                        shared_reads += 1
                    except RecordNotFoundError:
                        pass  # nobody has written this shared key yet
            for i in range(own_keys):
                key = f"{writer}/own/{i}"
                assert store.read(key).result == make_value(writer, i, max_size, key), key
            for j in range(shared_keys):
                key = f"shared/{j}"
                if store.exists(key):
                    check_value(store.read(key).result, max_size, key)
                    shared_reads += 1
            return {"shared_writes": shared_writes, "shared_reads": shared_reads}
        finally:
            database.close()

    _report(queue, writer, work)


def read_big_value_until_stopped(
    url: str,
    namespace: str,
    key: str,
    size: int,
    stop: Any,
    reads: Any,
    queue: Any,
) -> None:
    """Read ``key`` over and over until ``stop`` is set, checking every value read (values of
    exactly ``size`` bytes; the memory cache is off, so every read fetches and decodes the
    row); count reads in ``reads``.

    Reports ``{"reads": int, "versions": sorted list of the n's seen}``.
    """

    def work() -> dict[str, Any]:
        database = Database(url)
        try:
            store = ResultStore(
                result_storage=database, namespace=namespace, cache_result_in_memory=False
            )
            seen: set[int] = set()
            count = 0
            while not stop.is_set():
                _, n, _, _ = check_value(store.read(key).result, size, key, size)
                seen.add(n)
                count += 1
                with reads.get_lock():
                    reads.value += 1
            return {"reads": count, "versions": sorted(seen)}
        finally:
            database.close()

    _report(queue, "reader-process", work)


def work_in_forked_child(store: ResultStore, prefix: str, count: int, queue: Any) -> None:
    """In a forked child, with the parent's store object: collect garbage, read what the parent
    wrote before the fork (``{prefix}/parent``), then write and read back ``count`` records of
    the child's own.

    Reports ``{"pid": child's pid, "parent_value": what the child read}``.
    """

    def work() -> dict[str, Any]:
        # Whatever the child inherited and no longer references goes now, before the child
        # works: collecting the parent's connections must not close or disturb them.
        gc.collect()
        parent_value = store.read(f"{prefix}/parent").result
        for i in range(count):
            key = f"{prefix}/child/{i}"
            store.write({"pid": os.getpid(), "i": i}, key, expiration=timedelta(hours=1))
            assert store.read(key).result == {"pid": os.getpid(), "i": i}
            assert store.exists(key)
        return {"pid": os.getpid(), "parent_value": parent_value}

    _report(queue, f"child-{os.getpid()}", work)
    sys.stdout.flush()


def use_pickled_store(store: ResultStore, key: str, value: Any) -> dict[str, Any]:
    """In a spawned worker, with a store that came over as a pickle: read ``key`` (written by
    the parent), then write ``value`` under ``key + "/child"``.

    Returns what the worker saw: the parent's value, the store's repr, its namespace and
    serializer type, whether its lock manager shares its database, and the pid.
    """
    parent_value = store.read(key).result
    store.write(value, f"{key}/child")
    return {
        "parent_value": parent_value,
        "repr": repr(store),
        "namespace": store.namespace,
        "serializer": store.serializer.type,
        "shares_database": store.lock_manager.database is store.result_storage,  # type: ignore[attr-defined]
        "cache_size": store.cache.maxsize,
        "cached": len(store.cache),
        "pid": os.getpid(),
    }


def use_pickled_lock_manager(manager: Any, key: str, holder: str) -> bool:
    """In a spawned worker, with a lock manager that came over as a pickle: take ``key``'s
    lock for ``holder`` without waiting, and say whether it was taken."""
    return bool(manager.acquire_lock(key, holder, acquire_timeout=0, hold_timeout=600))
