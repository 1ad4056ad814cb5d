"""Measure the admin CLI on a database of 100,000 records (issue 9's targets).

Targets: ``sqlresults ls --limit 50``, ``stats`` and ``locks`` answer in under a second, and
``export`` of every record stays under 100 MB of memory. Each command runs as a real process,
as a person would run it: the times are wall-clock times of the whole process (Python start
and imports included; the ``--version`` line shows that floor), the memory is the export
process's peak resident set size (``ru_maxrss``, taken from a fresh launcher process).

Usage:
    .venv/bin/python scripts/measure_cli.py [--records N] [--url URL] [--rounds R]

Without ``--url`` a SQLite file in a temporary directory is filled; with a PostgreSQL URL the
records go to a namespace of their own (``measure-cli``), deleted at the end. Filling takes a
minute or so; the database is not kept.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlresults import ResultStore
from sqlresults.database import Database
from sqlresults.records import Provenance

NAMESPACE = "measure-cli"
SCRIPT = str(Path(sys.executable).parent / "sqlresults")


def fill(url: str, count: int) -> None:
    """Store ``count`` records: mostly small pickles and JSON documents, 1 in 10 written by a
    task (with provenance), 1 in 20 expired, 1 in 1,000 of 100 kB; and 200 locks."""
    database = Database(url, auto_migrate=True)
    stores = {
        name: ResultStore(result_storage=database, namespace=NAMESPACE, serializer=name)
        for name in ("pickle", "json", "compressed/json")
    }
    rng = random.Random(9)
    started = time.perf_counter()
    for index in range(count):
        store = stores[("pickle", "json", "compressed/json")[index % 3]]
        value: object = {"id": index, "rows": rng.randrange(10**6), "tags": ["a", "b"]}
        if index % 1000 == 0:
            value = "x" * 100_000
        provenance = None
        if index % 10 == 0:
            provenance = Provenance(
                task="pipeline.embed",
                cache_policy="INPUTS + TASK_SOURCE",
                components={"task_source": "a1b2c3", "inputs.doc": f"{index:08x}"},
            )
        expiration = timedelta(hours=-1) if index % 20 == 0 else timedelta(days=7)
        store.write(
            value,
            key=f"runs/{index // 1000:03d}/step-{index:06d}",
            expiration=expiration,
            provenance=provenance,
        )
    for index in range(200):
        stores["pickle"].acquire_lock(
            f"runs/lock-{index}", holder=f"worker-{index}", hold_timeout=3600
        )
    database.close()
    print(f"filled {count:,} records in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def timed(args: list[str], rounds: int) -> float:
    """Median wall time of running ``sqlresults ARGS`` as a process, in seconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        done = subprocess.run([SCRIPT, *args], capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"sqlresults {' '.join(args)} failed:\n{done.stderr.decode()}")
    return statistics.median(times)


# Runs a command and prints its peak resident memory (kB) and exit status. The command is
# started from this small, fresh process, not from the measuring one: a child's ru_maxrss
# includes the memory of the process it was forked from (Linux keeps the high-water mark
# across exec), and the measuring process holds the 100,000 records it wrote.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_memory(args: list[str]) -> tuple[float, float]:
    """Run ``sqlresults ARGS``; return (peak resident memory in MB, wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, SCRIPT, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    maxrss, status = done.stdout.split()
    if status != "0":
        raise SystemExit(f"sqlresults {' '.join(args)} failed:\n{done.stderr}")
    return int(maxrss) / 1024, elapsed  # ru_maxrss is in kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--url", default=None, help="a PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="measure-cli-"))
    url = options.url or f"sqlite:///{workdir / 'results.db'}"
    try:
        fill(url, options.records)
        common = ["--url", url, "--namespace", NAMESPACE]
        rows = [("sqlresults --version (start-up floor)", timed(["--version"], options.rounds))]
        for label, args in [
            ("ls --limit 50", ["ls", "--limit", "50"]),
            ("ls --limit 50 --sort size", ["ls", "--limit", "50", "--sort", "size"]),
            ("stats", ["stats"]),
            ("locks", ["locks"]),
        ]:
            rows.append((f"sqlresults {label}", timed([*args, *common], options.rounds)))
        memory, export_seconds = peak_memory(["export", str(workdir / "export"), *common])
        exported = sum(1 for path in (workdir / "export").rglob("*") if path.is_file())
        print(f"database: {url if options.url else 'SQLite file'}, {options.records:,} records")
        for label, seconds in rows:
            verdict = "" if "floor" in label else ("  ok (< 1 s)" if seconds < 1 else "  OVER 1 s")
            print(f"{label:<40} {seconds * 1000:7.0f} ms{verdict}")
        verdict = "ok (< 100 MB)" if memory < 100 else "OVER 100 MB"
        print(
            f"{'sqlresults export (all records)':<40} peak {memory:5.1f} MB  {verdict}; "
            f"{exported:,} files in {export_seconds:.1f} s"
        )
    finally:
        if options.url:
            database = Database(options.url)
            store = ResultStore(result_storage=database, namespace=NAMESPACE)
            subprocess.run(
                [
                    SCRIPT,
                    "rm",
                    "--prefix",
                    "",
                    "--yes",
                    "--url",
                    options.url,
                    "--namespace",
                    NAMESPACE,
                ],
                capture_output=True,
                check=False,
            )
            subprocess.run(
                [SCRIPT, "sweep", "--url", options.url, "--namespace", NAMESPACE],
                capture_output=True,
                check=False,
            )
            for index in range(200):
                store.release_lock(f"runs/lock-{index}", holder=f"worker-{index}")
            database.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
