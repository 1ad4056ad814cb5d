"""The Prefect side of the "tasks" group of ``scripts/bench``, and what both sides share.

``scripts/bench.py`` imports this module for the shared definitions (the task's function, the
inputs of each call, the data whose keys are computed), and runs it as a script with a Python
that has Prefect (the project's ``.venv``, whose dev extra installs it, or ``.venv-prefect``),
in a process of its own. The script stays up for the whole group, serving requests inside one
flow run (as the sqlresults side makes its calls inside one flow run of its own), so Prefect's
ephemeral API server and the flow run start once; it answers one request per round: the harness
sends the Prefect contender's round between the rounds of the other contenders, as it alternates
contenders everywhere.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout (the real fd 1;
everything else the process writes, Prefect's logs included, goes to stderr). Requests:

- ``{"op": "hello"}``: versions, where results go, and a description of the data. It is the
  first request, answered once the flow run has started (and with it the ephemeral API server),
  so a Prefect that cannot run shows up here rather than in the middle of a measurement.
- ``{"op": "calls", "bench": "hit" | "miss" | "unpersisted", "round": R, "base": B,
  "warmup": W, "ops": N}``: one round of task calls (warm-up, then N timed calls); replies
  ``{"latencies": [ns, ...], "total_ns": T, "quiet_s": S, "cpu_s": C}``. After the warm-up and
  after the timed loop the script waits until it and its children have gone quiet: the API
  server records each task run from its events in the background, ~20 ms of CPU per call that
  lags the calls by up to a second or more, and that work must not land in the timed loop (of
  this round or of the next contender's). ``cpu_s`` is the CPU time the process tree used from
  the start of the timed loop until it went quiet (client and server; None without /proc).
- ``{"op": "keys", "data": "array" | "frame", "fn": "hash_objects" | "compute_key",
  "warmup": W, "ops": N}``: one round of key computations.
- ``{"op": "quit"}``: the flow run ends, and Prefect stops its API server.

Every reply carries ``"ok": true``, or ``"ok": false`` with ``"error"`` (a traceback).

Run with ``--store`` instead, the script serves the store benchmarks of the other groups
(no flow run, no API server: Prefect's ``ResultStore`` needs neither), with the same protocol:

- ``{"op": "hello"}``: versions and what the store is.
- ``{"op": "store", "bench": "write" | "read" | "exists" | "lock", "keys": K, "size": B,
  "warmup": W, "ops": N}``: one round on a fresh ``ResultStore(result_storage=
  LocalFileSystem(...), lock_manager=FileSystemLockManager(...), cache_result_in_memory=False)``
  in a new scratch directory: operation i uses key ``i % K`` of ``K`` keys, payloads of ``B``
  random bytes (three variants, as the harness's workload); reads and ``exists`` run over keys
  written beforehand; "lock" is ``acquire_lock(key, holder, timeout=0)`` then
  ``release_lock``. Replies ``{"latencies": [...], "total_ns": T}``.
- ``{"op": "compute_once", "processes": P, "keys": K, "compute_ms": M, "round": R}``: P
  spawned processes (of this venv) race over the same K keys in different orders, each key in a
  SERIALIZABLE ``transaction()`` on such a store: read it if committed, else compute and stage
  it. Replies ``{"wall_ns": T, "computed": C, "distinct": D, "stored": S, "failed": F}``: a
  correct run computed each key once (C == D == S == K, F == 0); Prefect's file locks do not
  always manage that (reference/peers.md §4: a transaction may fail reading a lock file that
  is still empty), and the harness reports it rather than failing.

This file runs under the Prefect venv's interpreter with numpy and pandas: nothing at module
level may import anything else that is not in the standard library.
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

PREFECT_VERSION = "3.9.1"
SEED = 20_261_121  # both processes generate the data from this seed
ARRAY_ITEMS = 1_000_000  # float64: 8 MB
FRAME_ROWS = 100_000
HIT_INPUT = 7  # the input every cache-hit call passes
BENCHES = ("hit", "miss", "unpersisted")
QUIET_WINDOW = 0.1  # seconds per CPU sample while waiting for Prefect's background work
QUIET_SHARE = 0.2  # "quiet": less than this share of one CPU over a window (busy: ~100 %)
QUIET_LIMIT = 15.0  # seconds to wait at most
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # per CPU second


# -- shared with scripts/bench.py -------------------------------------------------------------


def work(x: int) -> int:
    """The function behind every task: trivial, so a call measures the library's overhead."""
    return x * 2


def call_input(bench: str, round_no: int, base: int, i: int) -> int:
    """The input of call ``i`` of a round: the same for every cache hit, never seen before for
    the uncached persisted calls (``base`` is random per run), the call's number otherwise."""
    if bench == "hit":
        return HIT_INPUT
    if bench == "miss":
        return base + round_no * 10_000_000 + i
    return i


def make_data(kind: str) -> Any:
    """An 8 MB float64 array ("array") or a 100,000-row DataFrame with three numeric columns and
    one string column ("frame"), from a fixed seed."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    if kind == "array":
        return rng.standard_normal(ARRAY_ITEMS)
    import pandas as pd

    rows = FRAME_ROWS
    return pd.DataFrame(
        {
            "id": rng.integers(0, 1 << 40, rows),
            "x": rng.standard_normal(rows),
            "y": rng.random(rows),
            "label": [f"item-{n}" for n in rng.integers(0, 1_000_000, rows)],
        }
    )


def describe_data(value: Any) -> dict[str, Any]:
    """What the data is (types, dtypes, storage, a digest of the contents): both processes must
    hash the very same thing."""
    import numpy as np
    import pandas as pd

    if isinstance(value, np.ndarray):
        return {
            "type": "numpy.ndarray",
            "dtype": str(value.dtype),
            "shape": list(value.shape),
            "nbytes": int(value.nbytes),
            "sha256": hashlib.sha256(value.tobytes()).hexdigest(),
        }
    frame: pd.DataFrame = value
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return {
        "type": "pandas.DataFrame",
        "shape": list(frame.shape),
        "columns": [str(c) for c in frame.columns],
        "dtypes": [repr(d) for d in frame.dtypes],
        "arrays": [type(frame[c].array).__name__ for c in frame.columns],
        "nbytes": int(frame.memory_usage(deep=True).sum()),
        "sha256": digest.hexdigest(),
    }


# -- the Prefect process ----------------------------------------------------------------------
# time_loop and settle are scripts/bench.py's, repeated here (this process cannot import it).


def time_loop(op: Callable[[int], object], start: int, count: int) -> tuple[list[int], int]:
    clock = time.perf_counter_ns
    latencies = [0] * count
    begin = clock()
    for n in range(count):
        t0 = clock()
        op(start + n)
        latencies[n] = clock() - t0
    return latencies, clock() - begin


def settle() -> None:
    if hasattr(os, "sync"):
        os.sync()
    gc.collect()


def tree_cpu_ticks() -> int | None:
    """CPU time (clock ticks) used so far by this process and its descendants, from /proc;
    None where there is no /proc."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    try:
        entries = [e for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone already
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    tree = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(ticks.get(pid, 0) for pid in tree)


def wait_until_quiet() -> float:
    """Wait until this process tree uses less than QUIET_SHARE of a CPU over QUIET_WINDOW;
    return the seconds waited."""
    started = time.monotonic()
    before = tree_cpu_ticks()
    if before is None:
        time.sleep(1.0)
        return time.monotonic() - started
    while time.monotonic() - started < QUIET_LIMIT:
        time.sleep(QUIET_WINDOW)
        after = tree_cpu_ticks() or 0
        if (after - before) / CLOCK_TICKS < QUIET_SHARE * QUIET_WINDOW:
            break
        before = after
    return time.monotonic() - started


class PrefectSide:
    """Prefect's tasks, built once: the same three tasks as the sqlresults side."""

    def __init__(self) -> None:
        import prefect
        from prefect import task
        from prefect.cache_policies import INPUTS
        from prefect.utilities.hashing import hash_objects

        if prefect.__version__ != PREFECT_VERSION:
            raise RuntimeError(f"expected prefect {PREFECT_VERSION}, found {prefect.__version__}")
        self.prefect = prefect
        self.inputs = INPUTS
        self.hash_objects = hash_objects
        self.tasks = {
            "hit": task(work, name="bench-hit", cache_policy=INPUTS, persist_result=True),
            "miss": task(work, name="bench-miss", cache_policy=INPUTS, persist_result=True),
            "unpersisted": task(work, name="bench-unpersisted", persist_result=False),
        }
        self.data = {kind: make_data(kind) for kind in ("array", "frame")}

    def hello(self) -> dict[str, Any]:
        import numpy
        import pandas
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        wait_until_quiet()  # the flow run's start-up work
        return {
            "prefect": self.prefect.__version__,
            "python": sys.version.split()[0],
            "numpy": numpy.__version__,
            "pandas": pandas.__version__,
            "storage": str(settings.results.local_storage_path),
            "serializer": str(settings.results.default_serializer),
            "api": str(settings.api.url or "ephemeral"),
            "data": {kind: describe_data(value) for kind, value in self.data.items()},
        }

    def calls(self, request: dict[str, Any]) -> dict[str, Any]:
        call = self.tasks[request["bench"]]
        bench, round_no, base = request["bench"], request["round"], request["base"]

        def op(i: int) -> object:
            return call(call_input(bench, round_no, base, i))

        time_loop(op, 0, request["warmup"])
        wait_until_quiet()  # the API server records the warm-up calls before the clock starts
        settle()
        before = tree_cpu_ticks()
        latencies, total = time_loop(op, request["warmup"], request["ops"])
        quiet = wait_until_quiet()
        after = tree_cpu_ticks()
        cpu = None if before is None or after is None else (after - before) / CLOCK_TICKS
        return {"latencies": latencies, "total_ns": total, "quiet_s": quiet, "cpu_s": cpu}

    def keys(self, request: dict[str, Any]) -> dict[str, Any]:
        data = self.data[request["data"]]
        if request["fn"] == "hash_objects":
            hash_objects = self.hash_objects

            def op(i: int) -> object:
                return hash_objects(data)

        else:
            compute_key = self.inputs.compute_key

            def op(i: int) -> object:
                return compute_key(None, {"data": data}, {})

        time_loop(op, 0, request["warmup"])
        settle()
        latencies, total = time_loop(op, request["warmup"], request["ops"])
        return {"latencies": latencies, "total_ns": total}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "hello":
            return self.hello()
        if op == "calls":
            return self.calls(request)
        if op == "keys":
            return self.keys(request)
        raise ValueError(f"unknown request {op!r}")


class StoreSide:
    """Prefect's local result store: ``LocalFileSystem`` storage, ``FileSystemLockManager``
    locks, one fresh scratch directory per round."""

    def __init__(self) -> None:
        import prefect

        if prefect.__version__ != PREFECT_VERSION:
            raise RuntimeError(f"expected prefect {PREFECT_VERSION}, found {prefect.__version__}")
        self.prefect = prefect
        self.scratch = Path(tempfile.mkdtemp(prefix="sqlresults-bench-prefect-store-"))

    def hello(self) -> dict[str, Any]:
        return {
            "prefect": self.prefect.__version__,
            "python": sys.version.split()[0],
            "store": "ResultStore(LocalFileSystem, FileSystemLockManager), "
            "cache_result_in_memory=False, its default serializer (cloudpickle)",
        }

    def store(self, request: dict[str, Any]) -> dict[str, Any]:
        directory = Path(tempfile.mkdtemp(dir=self.scratch))
        try:
            store = prefect_store(directory)
            count, bench = request["keys"], request["bench"]
            keys = [f"key-{i:05d}" for i in range(count)]
            values = [os.urandom(request["size"]) for _ in range(3)]
            if bench != "write" and bench != "lock":
                for key in keys:
                    store.write(values[0], key=key)
            if bench == "write":

                def op(i: int) -> object:
                    return store.write(values[(i // count) % 3], key=keys[i % count])

            elif bench == "read":

                def op(i: int) -> object:
                    return store.read(keys[i % count]).result

            elif bench == "exists":

                def op(i: int) -> object:
                    return store.exists(keys[i % count])

            else:

                def op(i: int) -> object:
                    key = keys[i % count]
                    if not store.acquire_lock(key, holder="bench-holder", timeout=0):
                        raise RuntimeError(f"uncontended acquire of {key!r} failed")
                    return store.release_lock(key, holder="bench-holder")

            time_loop(op, 0, request["warmup"])
            settle()
            latencies, total = time_loop(op, request["warmup"], request["ops"])
            return {"latencies": latencies, "total_ns": total}
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def compute_once(self, request: dict[str, Any]) -> dict[str, Any]:
        directory = Path(tempfile.mkdtemp(dir=self.scratch))
        try:
            count, processes = request["keys"], request["processes"]
            keys = [f"key-{i:05d}" for i in range(count)]
            context = mp.get_context("spawn")
            barrier = context.Barrier(processes)
            orders = []
            for worker in range(processes):
                order = list(keys)
                random.Random(f"{request['round']}-{worker}").shuffle(order)
                orders.append(order)
            replies = context.Queue()
            workers = [
                context.Process(
                    target=_compute_once_worker,
                    args=(replies, barrier, str(directory), order, request["compute_ms"]),
                    daemon=True,
                )
                for order in orders
            ]
            for worker in workers:
                worker.start()
            results = [replies.get(timeout=600) for _ in workers]
            for worker in workers:
                worker.join(60)
            errors = [r["error"] for r in results if "error" in r]
            if errors:
                raise RuntimeError("a compute-once worker failed:\n" + "\n".join(errors))
            computed = [key for result in results for key in result["computed"]]
            failed = sum(len(result["failed"]) for result in results)
            stored = sum(1 for path in (directory / "store").iterdir() if path.is_file())
            return {
                "wall_ns": max(r["end"] for r in results) - min(r["start"] for r in results),
                "computed": len(computed),
                "distinct": len(set(computed)),
                "stored": stored,
                "failed": failed,
            }
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "hello":
            return self.hello()
        if op == "store":
            return self.store(request)
        if op == "compute_once":
            return self.compute_once(request)
        raise ValueError(f"unknown request {op!r}")

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def prefect_store(directory: Path) -> Any:
    """Prefect's local ResultStore with file locks, all under ``directory``."""
    from prefect.filesystems import LocalFileSystem
    from prefect.locking.filesystem import FileSystemLockManager
    from prefect.results import ResultStore

    return ResultStore(
        result_storage=LocalFileSystem(basepath=str(directory / "store")),
        lock_manager=FileSystemLockManager(lock_files_directory=directory / "locks"),
        cache_result_in_memory=False,
    )


def _compute_once_worker(
    replies: Any, barrier: Any, directory: str, keys: list[str], compute_ms: float
) -> None:
    """One racer of a compute-once round: a SERIALIZABLE transaction per key; puts
    ``{"start", "end", "computed"}`` (or ``{"error"}``) on ``replies``."""
    try:
        from prefect.transactions import IsolationLevel, transaction

        store = prefect_store(Path(directory))
        computed = []
        failed = []
        barrier.wait(120)
        start = time.perf_counter_ns()
        for key in keys:
            try:
                with transaction(
                    key=key, store=store, isolation_level=IsolationLevel.SERIALIZABLE
                ) as txn:
                    if txn.is_committed():
                        txn.read()
                    else:
                        computed.append(key)
                        if compute_ms:
                            time.sleep(compute_ms / 1000)
                        txn.stage(f"value of {key}")
            except Exception:
                # Prefect's file locks race (an empty lock file read between its touch and its
                # write): the key's transaction failed, which the round reports as wrong.
                failed.append(key)
        end = time.perf_counter_ns()
        replies.put({"start": start, "end": end, "computed": computed, "failed": failed})
    except BaseException:
        barrier.abort()
        replies.put({"error": traceback.format_exc()})


def serve_store(channel: TextIO) -> None:
    """Answer store requests until "quit" (``--store``)."""

    def reply(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    try:
        side = StoreSide()
    except BaseException:
        reply({"ok": False, "error": traceback.format_exc()})
        return
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("op") == "quit":
                return
            try:
                answer = side.handle(request)
            except Exception:
                reply({"ok": False, "error": traceback.format_exc()})
            else:
                reply({"ok": True, **answer})
    finally:
        side.close()


def serve(channel: TextIO) -> None:
    """Answer requests until "quit", inside one flow run (its own result is not persisted)."""

    def reply(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    try:
        from prefect import flow

        side = PrefectSide()

        @flow(name="bench-tasks", persist_result=False)
        def bench_tasks() -> None:
            for line in sys.stdin:
                request = json.loads(line)
                if request.get("op") == "quit":
                    return
                try:
                    answer = side.handle(request)
                except Exception:
                    reply({"ok": False, "error": traceback.format_exc()})
                else:
                    reply({"ok": True, **answer})

        bench_tasks()
    except BaseException:
        # Prefect failed to start, or the flow run failed: the pending request gets the error.
        reply({"ok": False, "error": traceback.format_exc()})


def main() -> int:
    # Replies go to the real stdout; anything Prefect prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    if "--store" in sys.argv[1:]:
        serve_store(channel)
    else:
        serve(channel)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
