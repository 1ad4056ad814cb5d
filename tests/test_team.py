"""Team mode: several processes, each with its own engine, share one PostgreSQL database.

PostgreSQL only: team mode *is* the shared server (a SQLite file cannot be shared between
machines, and its multi-process behaviour is covered by tests/test_concurrency.py and
tests/test_lock_properties.py).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import team_workers

from sqlresults import IsolationLevel, ResultStore, transaction
from sqlresults.database import Database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def team_url(request: pytest.FixtureRequest) -> str:
    """The shared PostgreSQL database (namespaces keep tests apart)."""
    return str(request.getfixturevalue("_postgres_migrated"))


@pytest.fixture
def processes() -> Iterator[Callable[..., Any]]:
    """Start spawned processes; any still alive at the end of the test are killed."""
    started: list[Any] = []

    def start(target: Callable[..., None], *args: Any) -> Any:
        process = SPAWN.Process(target=target, args=args, daemon=True)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.is_alive():
            process.kill()
        process.join(timeout=10)


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def _join_all(started: list[Any], timeout: float = 240.0) -> None:
    for process in started:
        process.join(timeout=timeout)
        assert process.exitcode == 0, f"worker {process.pid} exited with {process.exitcode}"


class TestTeamMode:
    def test_three_machines_compute_each_key_once(
        self, team_url: str, namespace: str, processes: Callable[..., Any], tmp_path: Path
    ) -> None:
        """Three processes, each with its own engine, run the SERIALIZABLE compute-once block
        over the same 60 keys in different orders: every key is computed exactly once in total,
        and all three see the same value for every key."""
        keys = [f"report/{n}" for n in range(60)]
        outs = [tmp_path / f"worker{n}.json" for n in range(3)]
        started = [
            processes(team_workers.compute_once, team_url, namespace, keys, n, str(out))
            for n, out in enumerate(outs)
        ]
        _join_all(started)
        reports = [json.loads(out.read_text()) for out in outs]
        computed = [key for report in reports for key in report["computed"]]
        assert sorted(computed) == sorted(keys)
        assert reports[0]["seen"] == reports[1]["seen"] == reports[2]["seen"]
        store = ResultStore(result_storage=Database(team_url), namespace=namespace)
        assert {key: store.read(key).result for key in keys} == reports[0]["seen"]

    def test_killed_holder_frees_its_key_after_its_lease(
        self, team_url: str, namespace: str, processes: Callable[..., Any], tmp_path: Path
    ) -> None:
        """A process that dies (SIGKILL) inside a SERIALIZABLE transaction keeps its key locked
        only until its lease runs out on the server's clock; then another machine's transaction
        takes the key and computes it."""
        lease = 3.0
        ready = tmp_path / "ready"
        holder = processes(team_workers.hold_and_hang, team_url, namespace, "k", lease, str(ready))
        _wait_for(ready)
        database = Database(team_url)
        store = ResultStore(result_storage=database, namespace=namespace)
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=10)
        killed_at = database.now()
        assert store.is_locked("k"), "the dead holder's lease outlives it"
        assert not store.acquire_lock("k", holder="rescuer", timeout=0)
        with transaction(
            key="k", store=store, isolation_level=IsolationLevel.SERIALIZABLE, lock_timeout=30
        ) as txn:
            took_over_at = database.now()
            assert not txn.is_committed()
            txn.stage("recomputed")
        assert took_over_at - killed_at <= lease + 1.0
        assert store.read("k").result == "recomputed"
        assert not store.is_locked("k")

    def test_sweeping_while_others_write_loses_nothing(
        self, team_url: str, namespace: str, processes: Callable[..., Any], tmp_path: Path
    ) -> None:
        """Two processes write records (half valid, half already expired) while a third sweeps
        expired records in small batches: no valid record is ever deleted, and every expired one
        is deleted exactly once (by the sweeper or the final sweep)."""
        stop = tmp_path / "stop"
        sweeper_out = tmp_path / "sweeper.json"
        sweeper = processes(
            team_workers.sweep_until, team_url, namespace, str(stop), str(sweeper_out)
        )
        outs = [tmp_path / f"writer{n}.json" for n in range(2)]
        writers = [
            processes(team_workers.write_mixed, team_url, namespace, f"w{n}", 150, str(out))
            for n, out in enumerate(outs)
        ]
        _join_all(writers)
        stop.write_text("stop")
        _join_all([sweeper])
        store = ResultStore(result_storage=Database(team_url), namespace=namespace)
        final_sweep = store.sweep_expired()
        written = [json.loads(out.read_text()) for out in outs]
        kept = [key for report in written for key in report["kept"]]
        expired = [key for report in written for key in report["expired"]]
        assert json.loads(sweeper_out.read_text())["deleted"] + final_sweep == len(expired)
        assert sorted(store.keys()) == sorted(kept)
        assert all(store.read(key).result == {"key": key} for key in kept)
        assert store.stats().records == len(kept)
