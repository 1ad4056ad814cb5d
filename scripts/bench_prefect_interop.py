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
  last process's last task, how many times keys were computed (a correct SERIALIZABLE run
  computes each key once) and how many task runs failed;
- **stampede**: the same, but every process takes the keys in the same order and computing
  takes no time, so the processes collide on every key at once (where lock files show their
  races: a reader can find a lock file created but not yet written).

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
# The races: (each process's key order differs, seconds of work per computation).
RACES = {"race": (True, 0.05), "stampede": (False, 0.0)}


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
    def step(key: str, work: float, count: bool) -> dict[str, Any]:
        if count:
            (marks / f"{key}-{os.getpid()}-{uuid.uuid4().hex}").touch()
        if work:
            time.sleep(work)
        return {"key": key, "pid": os.getpid()}

    @flow(result_storage=storage, persist_result=True)
    def run(keys: list[str], work: float, barrier: str | None = None) -> dict[str, Any]:
        if barrier is not None:
            meet(Path(barrier))
        # Timed inside the flow: a flow run's own start and end (about a second, the same for
        # every contender) would drown the tasks' cost.
        started = time.time()
        count = barrier is not None  # races count computations; cold/warm runs do not
        states = [step(key, work, count, return_state=True) for key in keys]
        return {
            "started": started,
            "ended": time.time(),
            "names": [state.name for state in states],
            "errors": [str(state.message) for state in states if state.is_failed()],
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

    # Open the contender's storage before the race (off the clock): sqlresults connects, and
    # creates and migrates a new database file, on first use, which a deployed store did once.
    lock_manager.is_locked("warm-up")
    result = run(config["keys"], config["work"], config["barrier"])
    return {
        "started": result["started"],
        "ended": result["ended"],
        "failed": result["names"].count("Failed"),
        "errors": result["errors"],
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

    def env(self, home: Path, storage: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",
            PREFECT_LOGGING_LEVEL="WARNING",
            PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(storage),
        )
        return env

    def migrate_home(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
            env=self.env(self.home, self.tmp / "migration-storage"),
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"prefect server database upgrade failed:\n{done.stderr}")

    def config(self, contender: str, label: str) -> dict[str, Any]:
        """A fresh storage of ``contender`` for one measurement: a new SQLite file or
        PostgreSQL namespace, new lock and local-storage directories (so that no round finds
        another round's results)."""
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
            "storage": str(self.tmp / f"{label}-storage"),
            "marks": str(marks),
            "barrier": str(self.tmp / f"{label}-barrier"),
        }

    def start(self, contender: str, config: dict[str, Any]) -> tuple[subprocess.Popen[str], Path]:
        home = self.tmp / f"home-{uuid.uuid4().hex[:8]}"
        shutil.copytree(self.home, home)
        log = home / "worker.log"
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(config)],
            env=self.env(home, Path(config["storage"])),
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

    def race(self, contender: str, variant: str, round_number: int) -> dict[str, Any]:
        shuffled, work = RACES[variant]
        label = f"{contender}-{variant}-{round_number}"
        config = {**self.config(contender, label), "mode": "race", "work": work}
        keys = [f"{variant}-{i}" for i in range(self.args.race_keys)]
        processes = []
        for worker in range(RACE_PROCESSES):
            order = list(keys)
            if shuffled:
                random.Random(f"{round_number}-{worker}").shuffle(order)
            processes.append(self.start(contender, {**config, "keys": order}))
        results = [self.finish(*process) for process in processes]
        computed = len(list(Path(config["marks"]).iterdir()))
        if not computed:
            raise RuntimeError(f"{contender}: the race computed nothing (a stale storage?)")
        return {
            "wall_s": max(r["ended"] for r in results) - min(r["started"] for r in results),
            "computed": computed,
            "failed": sum(r["failed"] for r in results),
            "errors": [error for r in results for error in r["errors"]],
        }

    def run(self) -> dict[str, Any]:
        self.migrate_home()
        if self.args.postgres_url:
            from sqlresults.database import Database

            database = Database(self.args.postgres_url, auto_migrate=True)
            database.ensure_schema()
            database.close()
        figures: dict[str, Any] = {name: {} for name in self.contenders}
        for name in self.contenders:
            figures[name].update(self.cold_warm(name))
        for variant in RACES:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in self.contenders}
            for round_number in range(self.args.race_rounds):
                turn = round_number % len(self.contenders)
                for name in self.contenders[turn:] + self.contenders[:turn]:
                    runs[name].append(self.race(name, variant, round_number))
            for name, races in runs.items():
                figures[name][variant] = {
                    "wall_s": statistics.median(r["wall_s"] for r in races),
                    "computed": max(r["computed"] for r in races),
                    "failed": sum(r["failed"] for r in races),
                    "errors": sorted({e for r in races for e in r["errors"]}),
                    "rounds": races,
                }
        return figures


def report(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    base = figures["prefect"]
    print(
        f"\nPrefect 3.9.1 flow, SERIALIZABLE INPUTS tasks. cold/warm: {args.tasks} tasks in one "
        f"process (median of {args.rounds} rounds). race: {RACE_PROCESSES} processes x "
        f"{args.race_keys} keys in different orders, {RACES['race'][1] * 1000:.0f} ms of work "
        f"per key; stampede: the same keys in the same order, no work (median of "
        f"{args.race_rounds} rounds; computed = most computations of the {args.race_keys} keys "
        "in a round, failed = failed task runs in all rounds)."
    )
    header = (
        f"{'contender':<14} {'cold ms/task':>12} {'warm ms/task':>12} "
        f"{'race s':>7} {'computed':>8} {'failed':>6} {'stampede s':>10} {'computed':>8} "
        f"{'failed':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, f in figures.items():
        race, stampede = f["race"], f["stampede"]
        print(
            f"{name:<14} {f['cold_ms']:>12.2f} {f['warm_ms']:>12.2f} {race['wall_s']:>7.2f} "
            f"{race['computed']:>8} {race['failed']:>6} {stampede['wall_s']:>10.2f} "
            f"{stampede['computed']:>8} {stampede['failed']:>6}"
        )
    for name, f in figures.items():
        for variant in RACES:
            for error in f[variant]["errors"]:
                print(f"{name}, {variant}: a task run failed: {error}")
    for name, f in figures.items():
        if name == "prefect":
            continue
        ratios = ", ".join(
            [
                f"cold {base['cold_ms'] / f['cold_ms']:.2f}x",
                f"warm {base['warm_ms'] / f['warm_ms']:.2f}x",
                *(f"{v} {base[v]['wall_s'] / f[v]['wall_s']:.2f}x" for v in RACES),
            ]
        )
        print(f"{name} vs prefect: {ratios} (>1: sqlresults faster)")


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
