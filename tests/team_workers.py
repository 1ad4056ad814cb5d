"""Worker functions for tests/test_team.py, run in spawned processes.

Each worker builds its own :class:`~sqlresults.database.Database` from a URL, i.e. its own engine
and connection pool, as a process on another machine would. Results go back through JSON files.
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import timedelta
from pathlib import Path

from sqlresults import IsolationLevel, ResultStore, transaction
from sqlresults.database import Database


def _store(url: str, namespace: str) -> ResultStore:
    return ResultStore(result_storage=Database(url), namespace=namespace, serializer="json")


def compute_once(url: str, namespace: str, keys: list[str], seed: int, out: str) -> None:
    """Run the SERIALIZABLE compute-once block over ``keys`` in a shuffled order; record which
    keys this process computed and the value it saw for every key."""
    store = _store(url, namespace)
    order = list(keys)
    random.Random(seed).shuffle(order)
    computed: list[str] = []
    seen: dict[str, str] = {}
    for key in order:
        with transaction(key=key, store=store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
            if txn.is_committed():
                record = txn.read()
                assert record is not None
                seen[key] = record.result
            else:
                value = f"{key} by {os.getpid()}"
                computed.append(key)
                seen[key] = value
                txn.stage(value)
    Path(out).write_text(json.dumps({"computed": computed, "seen": seen}))


def hold_and_hang(url: str, namespace: str, key: str, lease: float, ready: str) -> None:
    """Open a SERIALIZABLE transaction on ``key`` with a ``lease``-second lock, say so, and hang
    (the test kills this process with SIGKILL)."""
    store = _store(url, namespace)
    with transaction(
        key=key, store=store, isolation_level=IsolationLevel.SERIALIZABLE, hold_timeout=lease
    ):
        Path(ready).write_text(str(os.getpid()))
        time.sleep(600)


def write_mixed(url: str, namespace: str, prefix: str, count: int, out: str) -> None:
    """Write ``count`` records that stay valid for an hour and ``count`` already expired ones,
    interleaved; report the keys of both kinds."""
    store = _store(url, namespace)
    kept, expired = [], []
    for n in range(count):
        key = f"{prefix}/kept/{n}"
        store.write({"key": key}, key=key, expiration=timedelta(hours=1))
        kept.append(key)
        key = f"{prefix}/expired/{n}"
        store.write({"key": key}, key=key, expiration=timedelta(seconds=-1))
        expired.append(key)
    Path(out).write_text(json.dumps({"kept": kept, "expired": expired}))


def sweep_until(url: str, namespace: str, stop: str, out: str) -> None:
    """Sweep expired records in small batches until the ``stop`` file appears; report how many
    records this process deleted."""
    store = _store(url, namespace)
    deleted = 0
    while not Path(stop).exists():
        deleted += store.sweep_expired(batch_size=7)
        time.sleep(0.005)
    Path(out).write_text(json.dumps({"deleted": deleted}))
