"""Benchmark of DaskTaskRunner against ThreadPoolTaskRunner, as ratios in one run.

Run it through ``scripts/bench --dask`` (which bootstraps the virtualenv; with ``--postgres``
it also starts a throwaway PostgreSQL server and measures there too).

Method
------
One ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` is started once (its
start-up time is reported on its own) and every Dask flow reaches it by address, as a team
reaches its cluster; each flow run still connects a client of its own, which is timed. The
thread runner has 2 threads, the same parallelism. Each round times, for both runners, in turns
whose order alternates between rounds:

- **500 tiny tasks**: a flow maps a task that returns ``x + 1``, uncached and unpersisted
  (``cache_policy=NO_CACHE, persist_result=False``): the pure cost of scheduling;
- **200 SERIALIZABLE keys, cold**: a flow maps a task with
  ``INPUTS.configure(isolation_level="SERIALIZABLE")`` over 200 new keys (a fresh namespace
  per round and runner): per key, a lease, the call, the commit;
- **the same 200 keys, cached**: the same flow again: every key is answered on the submitting
  side, so the Dask flow sends no task (the script checks this on the scheduler);
- **100 tasks of 20 ms CPU**: pure-Python work that holds the GIL, uncached: what two worker
  processes buy over two threads of one process.

A figure is the wall time of one flow call (median over rounds); a ratio is ``thread time /
dask time`` per round, median over rounds (>1: Dask is faster). The database is a SQLite file
with default settings, and PostgreSQL with ``--postgres`` (or when
``SQLRESULTS_TEST_POSTGRES_URL`` is set).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


class _SentCounter:
    """Counts, on the scheduler, the tasks it is sent (a scheduler plugin)."""

    def __init__(self) -> None:
        from distributed.diagnostics.plugin import SchedulerPlugin

        counter = self

        class Plugin(SchedulerPlugin):  # type: ignore[misc]
            name = "bench-sent-counter"

            def transition(self, key: Any, start: str, finish: str, *a: Any, **k: Any) -> None:
                if start == "released" and finish == "waiting":
                    with counter.lock:
                        counter.sent += 1

        self.lock = threading.Lock()
        self.sent = 0
        self.plugin = Plugin()


def _run(url: str, label: str, rounds: int) -> list[str]:
    """Measure on the database at ``url``; return the report's lines."""
    import distributed

    from sqlresults import flow, task
    from sqlresults.cache_policies import INPUTS, NO_CACHE
    from sqlresults.task_runners import DaskTaskRunner, ThreadPoolTaskRunner

    @task(cache_policy=NO_CACHE, persist_result=False)
    def tiny(x: int) -> int:
        return x + 1

    @task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE"))
    def keyed(x: int) -> int:
        return x * 2

    @task(cache_policy=NO_CACHE, persist_result=False)
    def busy(x: int) -> int:
        deadline = time.thread_time() + 0.020  # 20 ms of this thread's CPU
        while time.thread_time() < deadline:
            pass
        return x

    start, cluster = _timed(
        lambda: distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        )
    )
    counter = _SentCounter()
    cluster.scheduler.add_plugin(counter.plugin)
    runners = {
        "threads": ThreadPoolTaskRunner(max_workers=2),
        "dask": DaskTaskRunner(address=cluster.scheduler_address),
    }
    cases = (
        "500 tiny tasks",
        "200 SERIALIZABLE keys, cold",
        "200 keys, all cached",
        "100 tasks of 20 ms CPU",
    )
    times: dict[tuple[str, str], list[float]] = {}
    ratios: dict[str, list[float]] = {case: [] for case in cases}
    try:
        for round_number in range(rounds):
            order = list(runners) if round_number % 2 == 0 else list(runners)[::-1]
            walls: dict[tuple[str, str], float] = {}
            for name in order:
                runner = runners[name]
                os.environ["SQLRESULTS_NAMESPACE"] = f"bench-{name}-{uuid.uuid4().hex[:8]}"

                @flow(result_storage=url, task_runner=runner)
                def tiny_flow(xs: list[int]) -> list[int]:
                    return tiny.map(xs).result()  # type: ignore[no-any-return]

                @flow(result_storage=url, task_runner=runner)
                def keyed_flow(xs: list[int]) -> list[int]:
                    return keyed.map(xs).result()  # type: ignore[no-any-return]

                @flow(result_storage=url, task_runner=runner)
                def busy_flow(xs: list[int]) -> list[int]:
                    return busy.map(xs).result()  # type: ignore[no-any-return]

                wall, values = _timed(lambda f=tiny_flow: f(list(range(500))))
                assert values == [x + 1 for x in range(500)]
                walls[(name, cases[0])] = wall
                wall, values = _timed(lambda f=keyed_flow: f(list(range(200))))
                assert values == [x * 2 for x in range(200)]
                walls[(name, cases[1])] = wall
                sent = counter.sent
                wall, values = _timed(lambda f=keyed_flow: f(list(range(200))))
                assert values == [x * 2 for x in range(200)]
                if counter.sent != sent:
                    raise AssertionError(f"the cached re-run sent {counter.sent - sent} tasks")
                walls[(name, cases[2])] = wall
                wall, values = _timed(lambda f=busy_flow: f(list(range(100))))
                assert values == list(range(100))
                walls[(name, cases[3])] = wall
            for key, wall in walls.items():
                times.setdefault(key, []).append(wall)
            for case in cases:
                ratios[case].append(walls[("threads", case)] / walls[("dask", case)])
    finally:
        cluster.close()
        os.environ.pop("SQLRESULTS_NAMESPACE", None)

    out = [
        f"== DaskTaskRunner vs ThreadPoolTaskRunner ({label}; 2 workers x 1 thread vs 2 "
        f"threads; median of {rounds} rounds)",
        f"LocalCluster start-up (2 worker processes, once): {start:.2f} s",
        f"{'case':<30} {'threads':>10} {'dask':>10} {'threads/dask':>13}",
    ]
    for case in cases:
        thread_time = statistics.median(times[("threads", case)])
        dask_time = statistics.median(times[("dask", case)])
        ratio = statistics.median(ratios[case])
        out.append(
            f"{case:<30} {thread_time * 1000:>8.0f}ms {dask_time * 1000:>8.0f}ms {ratio:>12.2f}x"
        )
    per_task = statistics.median(times[("dask", cases[0])]) / 500 * 1e6
    out.append(f"Dask scheduling cost per tiny task: {per_task:.0f} us")
    out.append("The cached re-run sent no task to the scheduler (checked every round).")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; 0 when everything ran."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--postgres", action="store_true", help="also measure on PostgreSQL")
    parser.add_argument("--quick", action="store_true", help="one round: a smoke run")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sqlresults-bench-dask-") as tmp:
        lines += _run(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite file", rounds)
    postgres = os.environ.get("SQLRESULTS_TEST_POSTGRES_URL")
    if postgres:
        from sqlresults.database import Database

        database = Database(postgres, auto_migrate=True)
        database.ensure_schema()
        database.close()
        lines += ["", *_run(postgres, "PostgreSQL", rounds)]
    elif args.postgres:
        print("bench_dask: --postgres needs SQLRESULTS_TEST_POSTGRES_URL", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
