"""Benchmark of 200 concurrent ``aread`` calls against 200 threads calling ``read``, as ratios in
one run.

Run it through ``scripts/bench --async`` (which bootstraps the virtualenv; with ``--postgres`` it
also starts a throwaway PostgreSQL server if ``SQLRESULTS_TEST_POSTGRES_URL`` is not set).

Method
------
200 small records (about 100 B pickled) are written once per database. A *batch* reads all 200
at once, with the store's in-memory LRU off so every read reaches the database (and checks the
lock holder and the checksum), in one of three ways:

- **aread**: 200 coroutines ``await store.aread(key)`` on one event loop (``asyncio.gather``).
  On PostgreSQL they await psycopg ``AsyncConnection``s (sqlresults.async_database); on SQLite
  ``aread`` runs ``read`` in the loop's default executor;
- **to_thread(read)**: what ``aread`` did before the asyncio path, on both databases: 200
  coroutines ``await asyncio.to_thread(store.read, key)`` (the default executor: at most
  min(32, cores + 4) threads);
- **200 threads**: 200 ``threading.Thread``s, each calling ``store.read`` once after all 200
  have started (a barrier; thread start-up included: that is what a thread per waiting call
  costs).

Each way runs in a fresh process of its own (so its thread count and peak RSS are its own):
one batch to warm up (connections, the schema check, statement preparation), then 5 measured
batches, whose median wall time is the process's figure. A sampler thread reads
``/proc/self/status`` every millisecond: *peak threads* is the most OS threads seen during the
measured batches (the sampler and the main thread included), *peak RSS* the process's high-water
mark (``VmHWM``) at the end, and *RSS growth* that mark minus the RSS before the first batch.
Each round runs the three ways in turns whose order alternates between rounds; every figure is
the median over rounds, and the ratios are taken per round (``other wall time / aread wall
time``, >1: aread is faster) before the median. The machine is shared and noisy: read ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["main"]

READS = 200
BATCHES = 5
WAYS = ("aread", "to_thread", "threads")
LABELS = {
    "aread": "200 concurrent aread",
    "to_thread": "200 x to_thread(read) (before)",
    "threads": "200 threads doing read",
}


def _status() -> dict[str, int]:
    """Threads, VmRSS and VmHWM (kB) of this process, from /proc/self/status."""
    figures: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("Threads", "VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0])
    return figures


class _Sampler:
    """Samples the OS thread count every millisecond while ``active``."""

    def __init__(self) -> None:
        self.peak = 0
        self.active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            if self.active:
                self.peak = max(self.peak, _status()["Threads"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _child(way: str, url: str, namespace: str) -> dict[str, float]:
    """Measure one way in this process; return its figures."""
    import asyncio

    from sqlresults.database import Database
    from sqlresults.results import ResultStore

    store = ResultStore(
        result_storage=Database(url), namespace=namespace, cache_result_in_memory=False
    )
    keys = [f"k{i}" for i in range(READS)]
    holder = "bench-reader"

    def check(results: list[Any]) -> None:
        if results != list(range(READS)):
            raise SystemExit(f"bench_async: wrong values read ({way})")

    loop = asyncio.new_event_loop()

    def batch_aread() -> None:
        async def reads() -> list[Any]:
            records = await asyncio.gather(*(store.aread(key, holder) for key in keys))
            return [record.result for record in records]

        check(loop.run_until_complete(reads()))

    def batch_to_thread() -> None:
        async def reads() -> list[Any]:
            records = await asyncio.gather(
                *(asyncio.to_thread(store.read, key, holder) for key in keys)
            )
            return [record.result for record in records]

        check(loop.run_until_complete(reads()))

    def batch_threads() -> None:
        results: list[Any] = [None] * READS
        # All 200 are alive at once, as 200 waiting calls would be, before any reads.
        started = threading.Barrier(READS)

        def read(i: int) -> None:
            started.wait()
            results[i] = store.read(keys[i], holder).result

        threads = [threading.Thread(target=read, args=(i,)) for i in range(READS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        check(results)

    batch = {"aread": batch_aread, "to_thread": batch_to_thread, "threads": batch_threads}[way]
    batch()  # warm-up
    sampler = _Sampler()
    rss_before = _status()["VmRSS"]
    times = []
    sampler.active = True
    for _ in range(BATCHES):
        start = time.perf_counter()
        batch()
        times.append(time.perf_counter() - start)
    sampler.active = False
    sampler.stop()
    status = _status()
    loop.close()
    return {
        "wall": statistics.median(times),
        "threads": sampler.peak,
        "rss": status["VmHWM"] / 1024,
        "growth": (status["VmHWM"] - rss_before) / 1024,
    }


def _measure(way: str, url: str, namespace: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", way, url, namespace],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench_async: the {way} run failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _run(url: str, label: str, rounds: int) -> list[str]:
    """Measure on the database at ``url``; return the report's lines."""
    from sqlresults.database import Database
    from sqlresults.results import ResultStore

    namespace = f"bench-async-{uuid.uuid4().hex[:8]}"
    database = Database(url, auto_migrate=True)
    store = ResultStore(result_storage=database, namespace=namespace)
    for i in range(READS):
        store.write(i, key=f"k{i}")
    database.close()
    figures: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
    for round_ in range(rounds):
        order = WAYS if round_ % 2 == 0 else tuple(reversed(WAYS))
        for way in order:
            figures[way].append(_measure(way, url, namespace))
    store.sweep_expired()

    def median(way: str, name: str) -> float:
        return statistics.median(run[name] for run in figures[way])

    def ratio(way: str) -> float:
        return statistics.median(
            other["wall"] / mine["wall"]
            for other, mine in zip(figures[way], figures["aread"], strict=True)
        )

    out = [
        f"{label}: {READS} reads at once, batches of {READS}, median of {rounds} rounds "
        f"(each the median of {BATCHES} batches)",
        f"{'way':<32} {'wall':>9} {'reads/s':>9} {'peak threads':>13} {'peak RSS':>9} "
        f"{'RSS growth':>11} {'aread faster':>13}",
    ]
    for way in WAYS:
        wall = median(way, "wall")
        speed = "" if way == "aread" else f"{ratio(way):.2f}x"
        out.append(
            f"{LABELS[way]:<32} {wall * 1000:>7.1f}ms {READS / wall:>9.0f} "
            f"{median(way, 'threads'):>13.0f} {median(way, 'rss'):>7.1f}MB "
            f"{median(way, 'growth'):>9.1f}MB {speed:>13}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; 0 when everything ran."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--postgres", action="store_true", help="require PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="one round: a smoke run")
    parser.add_argument("--child", nargs=3, metavar=("WAY", "URL", "NAMESPACE"), help="internal")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    rounds = 1 if args.quick else args.rounds
    lines: list[str] = []
    postgres = os.environ.get("SQLRESULTS_TEST_POSTGRES_URL")
    if postgres:
        lines += [*_run(postgres, "PostgreSQL", rounds), ""]
    elif args.postgres:
        print("bench_async: --postgres needs SQLRESULTS_TEST_POSTGRES_URL", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="sqlresults-bench-async-") as tmp:
        lines += _run(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite file (reference)", rounds)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
