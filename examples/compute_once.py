"""Compute every key exactly once, across processes that share one database.

Usage::

    .venv/bin/python examples/compute_once.py [--processes 4] [--keys 500] [--url URL]

The script starts several processes. Each one opens its own connection to the same database (by
default a SQLite file in a temporary directory; ``--url`` names another, e.g. a PostgreSQL
database) and goes through the same keys, each process in its own order, running the block
from the README for every key::

    with transaction(key, store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
        if txn.is_committed():          # another process already computed it
            value = txn.read().result
        else:
            value = compute(key)        # only one process at a time gets here for a key
            txn.stage(value)            # commit writes it and releases the lock, atomically

A SERIALIZABLE transaction takes the key's lock before it looks for a stored result, so of the
processes that reach a key together, one computes it and the others wait for the lock, then
find the result and read it. ``compute`` is deliberately slow (1 to 2 ms) so that processes really
do meet on the same keys.

The script prints how many keys each process computed, the total (it must equal the number of
keys), and the wall time. It exits with status 1 if any key was computed more than once or if two
processes ended up with different values for a key.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlresults import Database, IsolationLevel, ResultStore, transaction


def compute(key: str, process: int) -> str:
    """Stand-in for an expensive task: slow-ish, and its result names who computed it."""
    time.sleep(random.uniform(0.001, 0.002))
    return f"{key} computed by process {process}"


def worker(
    process: int,
    url: str,
    namespace: str,
    keys: list[str],
    ready: Any,
    results: Any,
) -> None:
    """One process: run the compute-once block over every key, in this process's own order.

    Reports back (through the ``results`` queue) which keys this process computed and the value
    it ended up with for every key.
    """
    store = ResultStore(result_storage=Database(url), namespace=namespace)
    order = list(keys)
    random.Random(process).shuffle(order)
    computed: list[str] = []
    values: dict[str, str] = {}
    ready.wait()  # all processes begin together, so they contend for the same keys
    for key in order:
        with transaction(key, store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
            if txn.is_committed():
                record = txn.read()
                assert record is not None
                value = record.result
            else:
                value = compute(key, process)
                computed.append(key)
                txn.stage(value)
        values[key] = value
    store.result_storage.close()
    results.put((process, computed, values))


def collect(results: Any, workers: list[Any]) -> list[tuple[int, list[str], dict[str, str]]] | None:
    """Wait for every worker's report; None (after saying so) if a worker died without one."""
    reports = []
    while len(reports) < len(workers):
        try:  # read before join: a child exits only once its report has left the queue
            reports.append(results.get(timeout=1))
        except queue.Empty:
            dead = [p for p in workers if p.exitcode not in (None, 0)]
            if dead:
                codes = ", ".join(f"{p.name} exit code {p.exitcode}" for p in dead)
                print(f"FAILED: a worker process died ({codes}); see its traceback above")
                for process in workers:
                    process.terminate()
                return None
    return sorted(reports)


def run(processes: int, n_keys: int, url: str) -> bool:
    """Run the workers against ``url``, print the report, and say whether every key was
    computed exactly once with one value seen by all."""
    namespace = f"compute-once-{uuid.uuid4().hex[:12]}"  # a fresh run, even on a shared database
    keys = [f"key-{i:05d}" for i in range(n_keys)]
    database = Database(url)
    print(f"{processes} processes, {n_keys} keys, database {database.display_url}")

    # "spawn" starts every process from scratch, as separate programs on separate machines
    # would be; nothing but the database is shared.
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(processes + 1), context.Queue()
    workers = [
        context.Process(target=worker, args=(i, url, namespace, keys, ready, results))
        for i in range(processes)
    ]
    for process in workers:
        process.start()
    ready.wait(timeout=120)  # every process is up: start the clock and the race
    began = time.perf_counter()
    reports = collect(results, workers)
    wall = time.perf_counter() - began
    for process in workers:
        process.join()
    if reports is None:
        return False

    computed_by: dict[str, list[int]] = {}
    for process, computed, _ in reports:
        print(f"process {process}: computed {len(computed)} keys")
        for key in computed:
            computed_by.setdefault(key, []).append(process)
    total = sum(len(computed) for _, computed, _ in reports)
    twice = sorted(key for key, by in computed_by.items() if len(by) > 1)
    never = sorted(set(keys) - set(computed_by))
    disagreements = sorted(key for key in keys if len({r[2][key] for r in reports}) > 1)

    print(f"total computations: {total} (keys: {n_keys})")
    print(f"keys computed more than once: {len(twice)}" + (f" {twice[:10]}" if twice else ""))
    print(f"keys never computed: {len(never)}" + (f" {never[:10]}" if never else ""))
    print(f"all processes read the same value for every key: {'no' if disagreements else 'yes'}")
    print(f"wall time: {wall:.2f} s")

    # Leave a shared database as we found it.
    store = ResultStore(result_storage=database, namespace=namespace)
    for key in keys:
        store.delete(key)
    database.close()
    ok = total == n_keys and not twice and not never and not disagreements
    print("OK: each key was computed exactly once" if ok else "FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4, help="worker processes (4)")
    parser.add_argument("--keys", type=int, default=500, help="keys to compute (500)")
    parser.add_argument(
        "--url", help="database URL (default: a SQLite file in a temporary directory)"
    )
    args = parser.parse_args(argv)
    if args.processes < 1 or args.keys < 1:
        parser.error("--processes and --keys must be at least 1")
    if args.url is not None:
        return 0 if run(args.processes, args.keys, args.url) else 1
    with tempfile.TemporaryDirectory(prefix="sqlresults-compute-once-") as directory:
        url = f"sqlite:///{Path(directory) / 'results.db'}"
        return 0 if run(args.processes, args.keys, url) else 1


if __name__ == "__main__":
    sys.exit(main())
