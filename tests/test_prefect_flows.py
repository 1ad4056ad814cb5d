"""Real Prefect 3.9.1 flows whose results and locks live in sqlresults (``sqlresults.prefect``).

The flows are in ``tests/prefect_flows.py`` and run in subprocesses, in Prefect's ephemeral
mode: each process starts its own local API server (no server of ours, no network) on a copy
of one Prefect home migrated once per test session, which keeps a process to a few seconds.
Every scenario runs on SQLite and on PostgreSQL; what the flows wrote is then checked from here
with sqlresults' own API.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.results import ResultRecord as PrefectResultRecord
from prefect.serializers import PickleSerializer

from sqlresults.locking import SQLLockManager as NativeLockManager
from sqlresults.prefect import SQLResultStorage
from sqlresults.results import ResultStore

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("prefect_flows.py")
# Hang guards, not measurements: a Prefect process takes seconds (mostly its API server's
# start), and a correct test never comes near these.
PROCESS_TIMEOUT = 300.0
WAIT_TIMEOUT = 180.0
# The lease of the dead-holder scenario, in seconds: short, so that its key frees soon after
# the holder is killed; renewed every third of it while the holder lives.
SHORT_LEASE = 2.0
# As in prefect_flows.py (which cannot be imported here: it is configured by its environment).
REPORT_DAY = "2026-11-21"
HELD_KEY = "held-by-a-process-that-dies"


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (one pytest-xdist worker at a time)."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prefect_env() -> dict[str, str]:
    """The environment of a Prefect process: this one's (conftest removed every PREFECT_*
    variable of the calling shell), with telemetry off and a patient server start."""
    env = dict(os.environ)
    env.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=str(int(WAIT_TIMEOUT)),
    )
    return env


@pytest.fixture(scope="session")
def prefect_home_template(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A Prefect home whose database is migrated, built once per test run (shared by the
    pytest-xdist workers) and copied for each test: migrating a fresh home is most of the
    cost of a first Prefect process."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # shared by the workers of this run
    template = root / "prefect-home"
    with _exclusive(root / "prefect-home.lock"):
        if not (template / "prefect.db").exists():
            staging = root / f"prefect-home-{uuid.uuid4().hex}"
            staging.mkdir()
            done = subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env={**_prefect_env(), "PREFECT_HOME": str(staging)},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=PROCESS_TIMEOUT,
                check=False,
            )
            assert done.returncode == 0, f"prefect server database upgrade:\n{done.stderr}"
            staging.rename(template)
    return template


class PrefectProcesses:
    """Runs ``tests/prefect_flows.py`` scenarios in Prefect processes sharing one Prefect home,
    one sqlresults database and namespace, and one directory of computation marks.

    Args:
        tmp_path: The test's directory.
        template: A migrated Prefect home to copy.
        url: The sqlresults database of the flows.
        namespace: Their namespace in it.
    """

    def __init__(self, tmp_path: Path, template: Path, url: str, namespace: str) -> None:
        self.directory = tmp_path
        self.url = url
        self.namespace = namespace
        home = tmp_path / "prefect-home"
        shutil.copytree(template, home)
        self.marks = tmp_path / "marks"
        self.env = {
            **_prefect_env(),
            "PREFECT_HOME": str(home),
            "INTEROP_URL": url,
            "INTEROP_NAMESPACE": namespace,
            "INTEROP_MARKS": str(self.marks),
        }
        self._logs: dict[int, Path] = {}

    def start(self, scenario: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """Start a process running ``scenario``, in a session of its own (so that it and its
        API server can be killed together)."""
        log = self.directory / f"{scenario}-{uuid.uuid4().hex[:8]}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, str(WORKER), scenario, *args],
                env={**self.env, **env},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._logs[process.pid] = log
        return process

    def finish(self, process: subprocess.Popen[bytes]) -> Any:
        """Wait for ``process`` and return what its scenario printed; fail with its output if
        it failed or outlived the hang guard."""
        try:
            process.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill(process)
            pytest.fail(f"hang guard: the Prefect process never finished:\n{self.log(process)}")
        output = self.log(process)
        assert process.returncode == 0, f"the Prefect process failed:\n{output}"
        results = [line for line in output.splitlines() if line.startswith("RESULT: ")]
        assert results, f"the Prefect process printed no result:\n{output}"
        return json.loads(results[-1].removeprefix("RESULT: "))

    def run(self, scenario: str, *args: str) -> Any:
        """Run ``scenario`` to the end and return what it printed."""
        return self.finish(self.start(scenario, *args))

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL ``process`` and everything it started (its API server), as a crash would."""
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(WAIT_TIMEOUT)

    def log(self, process: subprocess.Popen[bytes]) -> str:
        """The output of ``process`` so far."""
        return self._logs[process.pid].read_text(errors="replace")

    def computed(self, task: str) -> list[int]:
        """The pids of the processes in which ``task``'s body ran, once per run, sorted."""
        if not self.marks.is_dir():
            return []
        pids = [
            int(mark.name.split("-")[1])
            for mark in self.marks.iterdir()
            if mark.is_file() and mark.name.split("-")[0] == task
        ]
        return sorted(pids)


@pytest.fixture
def prefect(
    tmp_path: Path, prefect_home_template: Path, database_url: str, namespace: str
) -> PrefectProcesses:
    """Prefect processes on the backend under test, in this test's own namespace."""
    return PrefectProcesses(tmp_path, prefect_home_template, database_url, namespace)


def _wait_for(condition: Any, process: subprocess.Popen[bytes], what: str) -> Any:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not (result := condition()):
        assert process.poll() is None, f"the Prefect process ended before {what}"
        assert time.monotonic() < deadline, f"hang guard: never {what}"
        time.sleep(0.05)
    return result


class TestCachingAcrossRuns:
    def test_two_flow_runs_in_two_processes(self, prefect: PrefectProcesses) -> None:
        """The same flow run twice, by two processes one after the other, with its results in
        sqlresults (``SQLResultStorage``, unsaved):

        - ``cache_policy=INPUTS``: the second run's task is Cached, with the first run's value,
          and its body ran once in all;
        - ``cache_expiration``: a result that expires in an hour is Cached and carries its
          expiration as a column; one already expired is computed again;
        - ``refresh_cache=True``: computed again, and the record holds the new value;
        - ``result_storage_key``: the record is stored under exactly the formatted key, and the
          key is the cache key (Prefect turns the cache policy off for such a task);
        - every task result is a sqlresults record that ``ResultStore.read`` decodes; the flow's
          own result is kept as the blob Prefect wrote, which Prefect reads back;
        - a saved ``SQLResultStorage``, named by slug, serves a result Prefect reads back
          through its API (metadata only, then the block) in the other process.
        """
        first = prefect.run("first")
        second = prefect.run("second", first["saved_flow_run_id"])
        one, two = first["flow"]["value"], second["flow"]["value"]

        assert {name: run["state"] for name, run in one.items()} == dict.fromkeys(
            ("square", "lasting", "expired", "refreshed", "report"), "Completed"
        )
        assert {name: run["state"] for name, run in two.items()} == {
            "square": "Cached",
            "lasting": "Cached",
            "expired": "Completed",
            "refreshed": "Completed",
            "report": "Cached",
        }
        for cached in ("square", "lasting", "report"):
            assert two[cached]["value"] == one[cached]["value"], cached
        first_pid = one["square"]["value"]["pid"]
        second_pid = two["expired"]["value"]["pid"]
        assert first_pid != second_pid
        assert prefect.computed("square") == [first_pid]
        assert prefect.computed("lasting") == [first_pid]
        assert prefect.computed("report") == [first_pid]
        assert prefect.computed("expired") == sorted([first_pid, second_pid])
        assert prefect.computed("refreshed") == sorted([first_pid, second_pid])

        store = ResultStore(result_storage=prefect.url, namespace=prefect.namespace)
        records = {key: store.read(key) for key in list(store.keys())}
        by_task = {
            record.result["task"]: record
            for record in records.values()
            if isinstance(record.result, dict)
        }
        assert by_task["square"].result == one["square"]["value"]
        assert by_task["refreshed"].result == two["refreshed"]["value"]
        report_key = f"report-{REPORT_DAY}.json"
        assert records[report_key].result == one["report"]["value"]
        lasting = by_task["lasting"].expiration
        assert lasting is not None
        assert datetime.now(UTC) < lasting <= datetime.now(UTC) + timedelta(hours=1)
        assert "expired" not in by_task  # expired records are absent
        assert store.stats().expired == 1

        storage = SQLResultStorage(url=prefect.url, namespace=prefect.namespace)
        blob = storage.read_path(first["flow_result_key"])
        assert store.read(first["flow_result_key"]).result == blob
        flow_record = PrefectResultRecord.deserialize(blob, backup_serializer=PickleSerializer())
        assert flow_record.result == first["flow"]["value"]

        assert first["provisional_id"] == str(storage._block_document_id)
        assert first["saved_block_id_in_metadata"] == first["saved_id"]
        assert first["saved_id"] != first["provisional_id"]
        assert second["api_state_data"] == "ResultRecordMetadata"
        assert second["api_value"] == first["saved_value"]


class TestComputeOnce:
    def test_serializable_key_is_computed_once_across_three_processes(
        self, prefect: PrefectProcesses
    ) -> None:
        """Three processes call one SERIALIZABLE task (``SQLLockManager`` as the cache policy's
        lock manager) on one key at the same moment, after meeting at a barrier: its body runs
        once, the other two runs are Cached with that value, and no lock is left behind."""
        processes = [prefect.start("once", INTEROP_PROCESSES="3") for _ in range(3)]
        results = [prefect.finish(process) for process in processes]

        assert sorted(result["state"] for result in results) == ["Cached", "Cached", "Completed"]
        values = [result["value"] for result in results]
        assert values[0] == values[1] == values[2]
        assert prefect.computed("once") == [values[0]["pid"]]
        store = ResultStore(result_storage=prefect.url, namespace=prefect.namespace)
        assert store.stats().locks_held == 0


class TestDeadHolder:
    def test_killed_holders_key_frees_after_its_lease(self, prefect: PrefectProcesses) -> None:
        """A process holds a SERIALIZABLE key (its task sleeps) past several leases, its lease
        renewed while it lives; SIGKILLed (with its API server), it never releases, and another
        process then takes the key and computes it, its lease having run out."""
        lease = str(SHORT_LEASE)
        holder = prefect.start("hold", SQLRESULTS_LOCK_HOLD_TIMEOUT=lease)
        locks = NativeLockManager(prefect.url, namespace=prefect.namespace)
        try:
            _wait_for(lambda: prefect.computed("held"), holder, "computing")
            lock_holder = _wait_for(lambda: locks.lock_holder(HELD_KEY), holder, "locking")
            time.sleep(3 * SHORT_LEASE)  # three leases: without renewals the lock would be gone
            assert locks.lock_holder(HELD_KEY) == lock_holder
        finally:
            prefect.kill(holder)

        result = prefect.finish(prefect.start("after-kill", SQLRESULTS_LOCK_HOLD_TIMEOUT=lease))

        assert result["state"] == "Completed"
        assert prefect.computed("held") == sorted([holder.pid, result["value"]["pid"]])
        store = ResultStore(result_storage=prefect.url, namespace=prefect.namespace)
        assert store.read(HELD_KEY).result == result["value"]
        assert not locks.is_locked(HELD_KEY)
