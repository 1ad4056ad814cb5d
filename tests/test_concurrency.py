"""Concurrency tests: several processes, threads and forks on one result database.

What must hold, on SQLite (one file) and PostgreSQL alike (DESIGN.md §3, §7):

- no error, no lost record and no torn record when processes and threads write and read the
  same database at once; every value carries a SHA-256 of its payload (see
  :mod:`helpers_processes`), so a reader can tell a complete value from a torn one;
- a store keeps working across ``fork()``: the child never reuses the parent's connections, and
  the parent's own connection survives the child;
- a sweep never deletes a record that is unexpired when the sweep runs.

Nothing here measures time: the machine that runs the suite may have two shared cores, so the
tests only wait (with generous bounds) for the work to be done and then check the outcome.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import random
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Any

import pytest
from helpers_processes import (
    check_value,
    make_value,
    read_big_value_until_stopped,
    work_in_forked_child,
    write_own_and_shared_keys,
)

from sqlresults.database import Database
from sqlresults.errors import RecordNotFoundError
from sqlresults.results import ResultStore

# Upper bound on how long a test waits for its processes; reached only when something hangs.
PROCESS_TIMEOUT = 240.0


def _collect(results: Any, count: int) -> dict[str, Any]:
    """Take ``count`` reports from a worker queue; fail with the workers' tracebacks if any
    worker raised."""
    reports: dict[str, Any] = {}
    errors: list[str] = []
    for _ in range(count):
        status, worker, detail = results.get(timeout=PROCESS_TIMEOUT)
        if status == "ok":
            reports[worker] = detail
        else:
            errors.append(f"--- {worker} ---\n{detail}")
    assert not errors, "\n".join(errors)
    return reports


def _join(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=PROCESS_TIMEOUT)
    alive = [process for process in processes if process.is_alive()]
    for process in alive:
        process.kill()
        process.join()
    assert not alive, f"{len(alive)} process(es) hung"
    assert [process.exitcode for process in processes] == [0] * len(processes)


def _run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` in ``count`` threads started together; re-raise the first failure
    with every thread's traceback."""
    barrier = threading.Barrier(count)
    failures: list[str] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException:
            failures.append(f"--- thread {i} ---\n{traceback.format_exc()}")
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,), name=f"worker-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=PROCESS_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not failures, "\n".join(failures)


@contextmanager
def _fork_allowed() -> Iterator[None]:
    """Let this block fork although the process may have threads.

    Python 3.12+ warns (DeprecationWarning) when ``fork()`` is called while other threads are
    alive, because a thread could hold a lock the child then inherits locked. The fork tests
    start no thread, and no thread this module started is still alive (checked below), but the
    test runner may have some (pytest-xdist's execnet I/O thread): those never touch the store
    under test, which is all the child uses. The warning is therefore about them, not about
    sqlresults, and only that one warning is silenced; any other warning still fails the test.
    """
    assert not [t for t in threading.enumerate() if t.name.startswith("worker-")]
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r".*use of fork\(\) may lead to deadlocks in the child",
            category=DeprecationWarning,
        )
        yield


class TestProcesses:
    """Separate processes (spawned, so each opens its own connections) share one database."""

    @pytest.mark.slow
    def test_four_processes_lose_and_tear_nothing(self, database_url: str, namespace: str) -> None:
        """Four processes each write 1,000 keys of their own, plus 16 shared keys that all of
        them write, with payloads of 0-64 KB, while reading shared keys back. No process gets an
        error; afterwards every own key holds its writer's value, and every shared key holds one
        writer's complete value, one that writer really wrote to that key."""
        writers, own_keys, shared_keys, shared_every, max_size = 4, 1000, 16, 10, 64 * 1024
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(writers)
        results = context.Queue()
        processes = [
            context.Process(
                target=write_own_and_shared_keys,
                args=(
                    database_url,
                    namespace,
                    f"w{w}",
                    own_keys,
                    shared_keys,
                    shared_every,
                    max_size,
                    barrier,
                    results,
                ),
            )
            for w in range(writers)
        ]
        for process in processes:
            process.start()
        reports = _collect(results, writers)
        _join(processes)

        database = Database(database_url)
        try:
            store = ResultStore(result_storage=database, namespace=namespace)
            for w in range(writers):
                for i in range(own_keys):
                    key = f"w{w}/own/{i}"
                    assert store.read(key).result == make_value(f"w{w}", i, max_size, key), key
            written = {
                (writer, key, n)
                for writer, report in reports.items()
                for key, ns in report["shared_writes"].items()
                for n in ns
            }
            shared = sorted({key for _, key, _ in written})
            for key in shared:
                writer, n, _, _ = check_value(store.read(key).result, max_size, key)
                assert (writer, key, n) in written, key
            listed = list(store.keys())
            own = [f"w{w}/own/{i}" for w in range(writers) for i in range(own_keys)]
            assert len(listed) == len(set(listed)) == writers * own_keys + len(shared)
            assert set(listed) == {*own, *shared}
            assert store.stats().records == writers * own_keys + len(shared)
        finally:
            database.close()


class TestThreads:
    """Threads share one store object (and, on SQLite, each uses a connection of its own)."""

    @pytest.mark.slow
    def test_mixed_operations_from_eight_threads(self, store: ResultStore) -> None:
        """Eight threads each run 300 random writes, reads, exists and deletes on keys of their
        own and on four shared keys. No operation fails; each thread always reads back what it
        last wrote to its own keys; shared keys always hold some thread's complete value; and
        the final state of every own key is that thread's last write (or absent after a
        delete)."""
        threads, operations, max_size = 8, 300, 2048
        shared_keys = [f"shared/{j}" for j in range(4)]
        models: list[dict[str, Any]] = [{} for _ in range(threads)]

        def work(t: int) -> None:
            rng = random.Random(t)
            model = models[t]
            for n in range(operations):
                own = f"t{t}/{rng.randrange(10)}"
                shared = rng.choice(shared_keys)
                operation = rng.randrange(7)
                if operation == 0:
                    value = make_value(f"t{t}", n, max_size, own)
                    store.write(value, own)
                    model[own] = value
                elif operation == 1:
                    if own in model:
                        assert store.read(own).result == model[own]
                    else:
                        with pytest.raises(RecordNotFoundError):
                            store.read(own)
                elif operation == 2:
                    assert store.exists(own) is (own in model)
                elif operation == 3:
                    assert store.delete(own) is (own in model)
                    model.pop(own, None)
                elif operation == 4:
                    store.write(make_value(f"t{t}", n, max_size, shared), shared)
                elif operation == 5:
                    with suppress(RecordNotFoundError):  # not written yet
                        check_value(store.read(shared).result, max_size, shared)
                else:
                    assert store.exists(shared) in (True, False)

        _run_threads(threads, work)

        expected_keys = {key for model in models for key in model}
        written_shared = {key for key in shared_keys if store.exists(key)}
        assert set(store.keys()) == expected_keys | written_shared
        for model in models:
            for key, value in model.items():
                assert store.read(key).result == value
        for key in written_shared:
            check_value(store.read(key).result, max_size, key)


class TestFork:
    """A store used before ``fork()`` keeps working in the child and in the parent."""

    def test_multiprocessing_fork_child_uses_the_parents_store(self, store: ResultStore) -> None:
        """A child started with the "fork" method reads the parent's record and writes its own
        with the very store object the parent was using; the parent then keeps writing and
        reading on its own connection and sees the child's records."""
        store.write("before fork", "fork/parent")
        assert store.read("fork/parent").result == "before fork"  # the connection is open

        context = multiprocessing.get_context("fork")
        results = context.Queue()
        with _fork_allowed():
            child = context.Process(target=work_in_forked_child, args=(store, "fork", 20, results))
            child.start()
        reports = _collect(results, 1)
        _join([child])

        (report,) = reports.values()
        assert report["parent_value"] == "before fork"
        assert report["pid"] == child.pid != os.getpid()
        self._parent_keeps_working(store, "fork", 20, child.pid)

    def test_raw_os_fork_child_uses_the_parents_store(self, store: ResultStore) -> None:
        """The same with a bare ``os.fork()``: the child works with the parent's store and ends
        with ``os._exit``; the parent keeps working and sees the child's records."""
        store.write("before fork", "rawfork/parent")
        assert store.read("rawfork/parent").result == "before fork"

        read_end, write_end = os.pipe()
        with _fork_allowed():
            pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            status = 1
            try:
                os.close(read_end)
                gc.collect()  # dropping inherited objects must not disturb the parent
                store.read("rawfork/parent")
                for i in range(20):
                    key = f"rawfork/child/{i}"
                    store.write({"pid": os.getpid(), "i": i}, key, expiration=timedelta(hours=1))
                    assert store.read(key).result == {"pid": os.getpid(), "i": i}
                status = 0
            except BaseException:
                os.write(write_end, traceback.format_exc().encode())
            finally:
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            child_traceback = pipe.read().decode()
        _, wait_status = os.waitpid(pid, 0)
        assert child_traceback == ""
        assert os.waitstatus_to_exitcode(wait_status) == 0
        self._parent_keeps_working(store, "rawfork", 20, pid)

    @staticmethod
    def _parent_keeps_working(store: ResultStore, prefix: str, count: int, child: int) -> None:
        store.write("after fork", f"{prefix}/parent")
        assert store.read(f"{prefix}/parent").result == "after fork"
        for i in range(count):
            assert store.read(f"{prefix}/child/{i}").result == {"pid": child, "i": i}
        assert sorted(store.keys(f"{prefix}/")) == sorted(
            [f"{prefix}/parent"] + [f"{prefix}/child/{i}" for i in range(count)]
        )


class TestLargeValues:
    """Readers never see a partially written record."""

    @pytest.mark.slow
    def test_readers_see_whole_values_while_a_large_value_is_rewritten(
        self, database_url: str, namespace: str
    ) -> None:
        """One thread rewrites a 2 MB value over and over while two reader threads (sharing the
        writer's store) and one reader process (with a database of its own) read it in a loop.
        Every value any reader gets is one complete version: its SHA-256 matches and it is
        byte for byte what the writer wrote for that version."""
        key, size = "big", 2 * 1024 * 1024
        # Once every reader is reading, the writer rewrites the value at least min_rewrites
        # times and goes on until each reader has read min_reads times meanwhile;
        # max_rewrites only ends a run whose readers died (their reports then say why).
        min_rewrites, min_reads, max_rewrites = 12, 3, 500
        database = Database(database_url)
        store = ResultStore(result_storage=database, namespace=namespace)
        store.write(make_value("writer", 0, size, key, size), key)

        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        process_reads = context.Value("q", 0)
        results = context.Queue()
        reader_process = context.Process(
            target=read_big_value_until_stopped,
            args=(database_url, namespace, key, size, stop, process_reads, results),
        )
        reader_process.start()

        thread_reads = [0, 0]
        writer_done = threading.Event()
        rewrites = [0]
        reads_while_rewriting = [0, 0, 0]  # by each reader thread and the reader process

        def reads() -> list[int]:
            return [*thread_reads, process_reads.value]

        def run(i: int) -> None:
            if i > 0:  # a reader thread
                try:
                    while not writer_done.is_set():
                        check_value(store.read(key).result, size, key, size)
                        thread_reads[i - 1] += 1
                finally:
                    writer_done.set()  # a failed reader stops the writer too
                return
            try:
                # The spawned reader needs a moment to import and connect.
                while min(reads()) == 0 and reader_process.is_alive():
                    if writer_done.wait(0.01):
                        return
                before = reads()
                while not writer_done.is_set() and reader_process.is_alive():
                    reads_while_rewriting[:] = [a - b for a, b in zip(reads(), before, strict=True)]
                    if rewrites[0] >= max_rewrites or (
                        rewrites[0] >= min_rewrites and min(reads_while_rewriting) >= min_reads
                    ):
                        break
                    rewrites[0] += 1
                    store.write(make_value("writer", rewrites[0], size, key, size), key)
            finally:
                writer_done.set()

        try:
            _run_threads(3, run)
        finally:
            stop.set()
            reports = _collect(results, 1)
            _join([reader_process])
            database.close()

        assert rewrites[0] >= min_rewrites
        assert min(reads_while_rewriting) >= min_reads
        assert reports["reader-process"]["reads"] == process_reads.value


class TestSweepWhileWriting:
    """A sweep deletes only what has expired when it runs."""

    @pytest.mark.slow
    def test_sweep_never_deletes_an_unexpired_record(self, store: ResultStore) -> None:
        """Two writer threads write each key first already expired and then again unexpired
        (the sweep's favourite race: a row that was expired a moment ago), plus keys that stay
        expired, while a third thread sweeps in small batches without pause. Afterwards every
        key whose last write was unexpired is still there with that value, and one more sweep
        removes exactly the records that stayed expired."""
        writers, keys_per_writer = 2, 300
        finished = threading.Semaphore(0)
        swept = [0]

        def run(i: int) -> None:
            if i == writers:  # the sweeper, until both writers are done
                done = 0
                while done < writers:
                    swept[0] += store.sweep_expired(batch_size=7)
                    done += finished.acquire(blocking=False)
                return
            try:
                for n in range(keys_per_writer):
                    key = f"w{i}/{n}"
                    store.write(("expired", n), key, expiration=timedelta(seconds=-1))
                    store.write(("live", n), key, expiration=timedelta(hours=1))
                    store.write(("dead", n), f"w{i}/dead/{n}", expiration=timedelta(0))
            finally:
                finished.release()

        _run_threads(writers + 1, run)

        live = sorted(f"w{i}/{n}" for i in range(writers) for n in range(keys_per_writer))
        for key in live:
            assert store.read(key).result == ("live", int(key.rsplit("/", 1)[1])), key
        remaining_dead = store.stats().expired
        assert store.sweep_expired() == remaining_dead
        # Every dead key was swept once, by the sweeper or just now; a live key may also have
        # been swept in the instant between its expired and its live write.
        dead = writers * keys_per_writer
        assert dead <= swept[0] + remaining_dead <= dead + len(live)
        assert sorted(store.keys()) == live
        assert store.stats().records == len(live)
