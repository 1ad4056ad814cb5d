"""The same Prefect flow with Prefect's local storage and file locks, and with sqlresults.

Run it as ``scripts/bench --only prefect`` (which bootstraps the virtualenv, whose dev extra
installs Prefect 3.9.1, and with ``--postgres`` starts a throwaway PostgreSQL server), or
directly: ``.venv/bin/python scripts/bench_prefect_interop.py [--quick] [--json PATH]``.

Contenders, one configuration each of the same flow code (``@task`` with
``cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE", lock_manager=…)``, a flow with
``persist_result=True``):

- **prefect**: Prefect's defaults, results in its local storage (one file per key under
  ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``) and ``FileSystemLockManager`` lock files;
- **sqlresults**: ``SQLResultStorage`` on a SQLite file and ``SQLLockManager`` on the same file;
- **sqlresults-pg**: the same on PostgreSQL, when ``SQLRESULTS_TEST_POSTGRES_URL`` is set.

Every figure comes from Prefect processes in ephemeral mode (each starts Prefect's local API
server; that start-up is outside every timing):

- **cold** / **warm**: one process runs the flow over ``--tasks`` new keys (every task computes
  and persists), then again over the same keys (every task is a cache hit); the time per task
  run is the flow's wall time divided by the tasks, the median over ``--rounds`` rounds (new
  keys each round);
- **race**: 3 processes meet at a barrier, then each runs the flow over the same ``--race-keys``
  keys, in different orders, each computation taking 50 ms: wall time from the barrier to the
  last process's end, how many times keys were computed (a correct SERIALIZABLE run computes
  each key once) and how many task runs failed.

Contenders take turns within each round. The script exits non-zero only when a process fails
to run; a contender that computes a key twice or fails a task run is reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PROCESS_TIMEOUT = 900.0
RACE_PROCESSES = 3
RACE_WORK_SECONDS = 0.05


# -- worker side (a Prefect process) -------------------------------------------------------


def _worker(config: dict[str, Any]) -> dict[str, Any]:
    """Run the flow as ``config`` says, in this (Prefect) process; return the figures."""
    from prefect import flow, task
    from prefect.cache_policies import INPUTS

    kind = config["contender"]
    marks = Path(config["marks"])
    if kind == "prefect":
        from prefect.locking.filesystem import FileSystemLockManager

        lock_manager: Any = FileSystemLockManager(lock_files_directory=Path(config["locks"]))
        storage: Any = None  # Prefect's default: its local storage
    else:
        from sqlresults.prefect import SQLLockManager, SQLResultStorage

        lock_manager = SQLLockManager(config["url"], namespace=config["namespace"])
        storage = SQLResultStorage(url=config["url"], namespace=config["namespace"])

    policy = INPUTS.configure(isolation_level="SERIALIZABLE", lock_manager=lock_manager)

    @task(cache_policy=policy, persist_result=True)
    def step(key: str, work: float) -> dict[str, Any]:
        if work:
            (marks / f"{key}-{os.getpid()}-{uuid.uuid4().hex}").touch()
            time.sleep(work)
        return {"key": key, "pid": os.getpid()}

    @flow(result_storage=storage, persist_result=True)
    def run(keys: list[str], work: float, barrier: str | None = None) -> dict[str, Any]:
        if barrier is not None:
            meet(Path(barrier))
        # Timed inside the flow: a flow run's own start and end (about a second, the same for
        # every contender) would drown the tasks' cost.
        started = time.time()
        states = [step(key, work, return_state=True) for key in keys]
        return {
            "started": started,
            "ended": time.time(),
            "names": [state.name for state in states],
        }

    if config["mode"] == "cold-warm":
        run(["warm-up"], 0.0)  # the first flow run of a process pays for registrations
        out: dict[str, Any] = {"cold": [], "warm": []}
        for round_keys in config["rounds"]:
            for phase, expected in (("cold", "Completed"), ("warm", "Cached")):
                result = run(round_keys, 0.0)
                assert set(result["names"]) == {expected}, result["names"]
                out[phase].append((result["ended"] - result["started"]) / len(round_keys))
        return out

    result = run(config["keys"], RACE_WORK_SECONDS, config["barrier"])
    return {
        "started": result["started"],
        "ended": result["ended"],
        "failed": result["names"].count("Failed"),
    }


def meet(barrier: Path) -> None:
    """Wait until all the race's processes have reached ``barrier`` (a directory)."""
    barrier.mkdir(parents=True, exist_ok=True)
    (barrier / str(os.getpid())).touch()
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while len(list(barrier.iterdir())) < RACE_PROCESSES:
        if time.monotonic() > deadline:
            raise TimeoutError("the other processes never reached the barrier")
        time.sleep(0.005)


# -- driver side -----------------------------------------------------------------------------


class Bench:
    """Sets up each contender's storage and runs worker processes against it."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.home = tmp / "prefect-home"
        self.contenders = ["prefect", "sqlresults"]
        if args.postgres_url:
            self.contenders.append("sqlresults-pg")

    def env(self, home: Path, contender: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",
            PREFECT_LOGGING_LEVEL="WARNING",
            PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(self.tmp / f"{contender}-storage"),
        )
        return env

    def migrate_home(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
            env=self.env(self.home, "prefect"),
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"prefect server database upgrade failed:\n{done.stderr}")

    def config(self, contender: str, label: str) -> dict[str, Any]:
        """A fresh storage (and namespace) of ``contender`` for one measurement."""
        namespace = f"bench-{uuid.uuid4().hex[:12]}"
        url = (
            self.args.postgres_url
            if contender == "sqlresults-pg"
            else f"sqlite:///{self.tmp / f'{label}.db'}"
        )
        marks = self.tmp / f"{label}-marks"
        marks.mkdir()
        return {
            "contender": contender,
            "url": url,
            "namespace": namespace,
            "locks": str(self.tmp / f"{label}-locks"),
            "marks": str(marks),
            "barrier": str(self.tmp / f"{label}-barrier"),
        }

    def start(self, contender: str, config: dict[str, Any]) -> tuple[subprocess.Popen[str], Path]:
        home = self.tmp / f"home-{uuid.uuid4().hex[:8]}"
        shutil.copytree(self.home, home)
        log = home / "worker.log"
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(config)],
            env=self.env(home, contender),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        return process, log

    def finish(self, process: subprocess.Popen[str], log: Path) -> dict[str, Any]:
        out, _ = process.communicate(timeout=PROCESS_TIMEOUT)
        if process.returncode:
            raise RuntimeError(f"a worker failed:\n{log.read_text()[-4000:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    def cold_warm(self, contender: str) -> dict[str, float]:
        label = f"{contender}-cold-warm"
        config = self.config(contender, label)
        config["mode"] = "cold-warm"
        config["rounds"] = [
            [f"r{r}-k{i}" for i in range(self.args.tasks)] for r in range(self.args.rounds)
        ]
        result = self.finish(*self.start(contender, config))
        return {
            "cold_ms": statistics.median(result["cold"]) * 1000,
            "warm_ms": statistics.median(result["warm"]) * 1000,
        }

    def race(self, contender: str, round_number: int) -> dict[str, Any]:
        label = f"{contender}-race-{round_number}"
        config = self.config(contender, label)
        config["mode"] = "race"
        keys = [f"race-{i}" for i in range(self.args.race_keys)]
        processes = []
        for worker in range(RACE_PROCESSES):
            order = list(keys)
            random.Random(f"{round_number}-{worker}").shuffle(order)
            processes.append(self.start(contender, {**config, "keys": order}))
        results = [self.finish(*process) for process in processes]
        computed = len(list(Path(config["marks"]).iterdir()))
        return {
            "wall_s": max(r["ended"] for r in results) - min(r["started"] for r in results),
            "computed": computed,
            "failed": sum(r["failed"] for r in results),
        }

    def run(self) -> dict[str, Any]:
        self.migrate_home()
        if self.args.postgres_url:
            from sqlresults.database import Database

            database = Database(self.args.postgres_url, auto_migrate=True)
            database.ensure_schema()
            database.close()
        figures: dict[str, Any] = {name: {"races": []} for name in self.contenders}
        for name in self.contenders:
            figures[name].update(self.cold_warm(name))
        for round_number in range(self.args.race_rounds):
            order = (
                self.contenders[round_number % len(self.contenders) :]
                + self.contenders[: round_number % len(self.contenders)]
            )
            for name in order:
                figures[name]["races"].append(self.race(name, round_number))
        for name in self.contenders:
            races = figures[name]["races"]
            figures[name]["race_wall_s"] = statistics.median(r["wall_s"] for r in races)
            figures[name]["race_computed"] = max(r["computed"] for r in races)
            figures[name]["race_failed"] = sum(r["failed"] for r in races)
        return figures


def report(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    base = figures["prefect"]
    print(
        f"\nPrefect 3.9.1 flow, SERIALIZABLE INPUTS tasks: cold/warm over {args.tasks} tasks "
        f"(median of {args.rounds} rounds); race: {RACE_PROCESSES} processes x "
        f"{args.race_keys} keys, {RACE_WORK_SECONDS * 1000:.0f} ms of work per key "
        f"(median of {args.race_rounds})."
    )
    header = (
        f"{'contender':<14} {'cold ms/task':>13} {'warm ms/task':>13} {'race wall s':>12} "
        f"{'computed':>9} {'failed':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, f in figures.items():
        print(
            f"{name:<14} {f['cold_ms']:>13.2f} {f['warm_ms']:>13.2f} {f['race_wall_s']:>12.2f} "
            f"{f['race_computed']:>5}/{args.race_keys:<3} {f['race_failed']:>7}"
        )
    for name, f in figures.items():
        if name == "prefect":
            continue
        print(
            f"{name} vs prefect: cold {base['cold_ms'] / f['cold_ms']:.2f}x, warm "
            f"{base['warm_ms'] / f['warm_ms']:.2f}x, "
            f"race {base['race_wall_s'] / f['race_wall_s']:.2f}x (>1: sqlresults faster)"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench --only prefect",
        description="The same Prefect flow with Prefect's local storage and file locks, and "
        "with sqlresults (SQLite, and PostgreSQL when a URL is set), in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer tasks and rounds")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per cold/warm flow run")
    parser.add_argument("--rounds", type=int, default=None, help="cold/warm rounds")
    parser.add_argument("--race-keys", type=int, default=None, help="keys in the race")
    parser.add_argument("--race-rounds", type=int, default=None, help="race rounds")
    parser.add_argument("--postgres-url", default=os.environ.get("SQLRESULTS_TEST_POSTGRES_URL"))
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (20 if args.quick else 100)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.race_keys = args.race_keys or (10 if args.quick else 30)
    args.race_rounds = args.race_rounds or (1 if args.quick else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="sqlresults-bench-prefect-"))
    try:
        figures = Bench(args, tmp).run()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(args, figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
