"""Worker functions that test_lock_properties.py runs in spawned processes.

A spawned child unpickles its target by module name, so this module must be importable there:
``multiprocessing`` gives the child the parent's ``sys.path``, which holds this directory (pytest
puts it there, since tests/ has no ``__init__.py``, and test_lock_properties.py makes sure of it).
Each worker opens its own :class:`~sqlresults.database.Database` from the URL: nothing is shared
with the parent but the database itself and files in a scratch directory.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from sqlresults.database import Database
from sqlresults.results import ResultStore
from sqlresults.transactions import IsolationLevel, transaction

__all__ = ["compute_once", "computed_file", "crash_holder", "seen_file", "stale_committer"]

# Hang guard for waiting on the parent's start signal; never a measurement.
START_TIMEOUT = 120.0


def computed_file(out_dir: Path, index: int) -> Path:
    """Where process ``index`` appends one line per computation: ``key<TAB>value``."""
    return out_dir / f"computed-{index}.tsv"


def seen_file(out_dir: Path, index: int) -> Path:
    """Where process ``index`` writes the value it ended up with for every key (JSON)."""
    return out_dir / f"seen-{index}.json"


def compute_once(
    url: str,
    namespace: str,
    keys: list[str],
    index: int,
    out_dir: str,
    start: Any,
) -> None:
    """Run the README's compute-once block over ``keys`` in a per-process order.

    Every computation appends a line to this process's computed file before it is staged, so a
    key computed twice anywhere shows up as two lines across the files.

    Args:
        url: The database URL; the process opens its own Database on it.
        namespace: The store namespace the test uses.
        keys: The keys every process goes through.
        index: This process's number (seeds its key order).
        out_dir: Scratch directory for the computed and seen files.
        start: A multiprocessing Event; all processes begin together once it is set.
    """
    directory = Path(out_dir)
    database = Database(url)
    store = ResultStore(result_storage=database, namespace=namespace)
    order = list(keys)
    random.Random(index).shuffle(order)
    seen: dict[str, str] = {}
    with computed_file(directory, index).open("a", encoding="utf-8") as computed:

        def compute(key: str) -> str:
            value = f"{key}|process-{index}|{uuid.uuid4().hex}"
            computed.write(f"{key}\t{value}\n")
            computed.flush()
            return value

        if not start.wait(START_TIMEOUT):
            raise RuntimeError("the test never gave the start signal")
        for key in order:
            with transaction(key, store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
                if txn.is_committed():
                    record = txn.read()
                    assert record is not None
                    value = record.result
                else:
                    value = compute(key)
                    txn.stage(value)
            seen[key] = value
    seen_file(directory, index).write_text(json.dumps(seen), encoding="utf-8")
    database.close()


def crash_holder(
    url: str,
    namespace: str,
    key: str,
    hold_timeout: float,
    holder_path: str,
    ready: Any,
) -> None:
    """Open a SERIALIZABLE transaction on ``key``, report its holder, then hang until killed.

    The transaction renews its lease while this process lives; once the test kills it with
    SIGKILL nothing releases the lock, and the key must free when the last lease runs out.

    Args:
        url: The database URL; the process opens its own Database on it.
        namespace: The store namespace the test uses.
        key: The key to hold.
        hold_timeout: The transaction's lease in seconds.
        holder_path: File that receives the transaction's holder id.
        ready: A multiprocessing Event set once the lock is held.
    """
    database = Database(url)
    store = ResultStore(result_storage=database, namespace=namespace)
    with transaction(
        key, store, isolation_level=IsolationLevel.SERIALIZABLE, hold_timeout=hold_timeout
    ) as txn:
        Path(holder_path).write_text(txn.holder, encoding="utf-8")
        ready.set()
        while True:  # until SIGKILL
            time.sleep(3600)


def stale_committer(
    url: str,
    namespace: str,
    key: str,
    hold_timeout: float,
    outcome_path: str,
    ready: Any,
    go: Any,
) -> None:
    """Open a SERIALIZABLE transaction on ``key``, stage ``"A"``, then commit once told to.

    The test stops this process (SIGSTOP) past its lease, lets another holder commit, resumes
    it and sets ``go``; what the commit did is written to ``outcome_path``: ``"committed"`` or
    the name of the exception it raised.

    Args:
        url: The database URL; the process opens its own Database on it.
        namespace: The store namespace the test uses.
        key: The key to compute.
        hold_timeout: The transaction's lease in seconds.
        outcome_path: File that receives the outcome.
        ready: A multiprocessing Event set once the lock is held and the value staged.
        go: A multiprocessing Event the test sets when the transaction should commit.
    """
    database = Database(url)
    store = ResultStore(result_storage=database, namespace=namespace)
    outcome = "committed"
    try:
        with transaction(
            key, store, isolation_level=IsolationLevel.SERIALIZABLE, hold_timeout=hold_timeout
        ) as txn:
            txn.stage("A")
            ready.set()
            if not go.wait(START_TIMEOUT):
                raise RuntimeError("the test never said go")
    except Exception as exc:
        outcome = type(exc).__name__
    Path(outcome_path).write_text(outcome, encoding="utf-8")
    database.close()
