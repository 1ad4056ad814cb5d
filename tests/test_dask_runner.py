"""Tests for sqlresults.dask_runner: DaskTaskRunner on real dask.distributed clusters.

Most tests share one module-scoped ``LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)`` (about 2 s to start) and reach it by address, as a team reaches its
cluster; its scheduler runs in this process, so :class:`dask_workers.TaskLog` counts, on the
scheduler, every task the cluster was sent. Tests that start or kill a cluster of their own
use small ones. Waits are bounded (HANG) and the module has a hang guard; nothing is timed.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pickle
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import distributed
import pytest
from dask_workers import RecordingLocalCluster, TaskLog, die_once, log_line, worker_name
from sqlalchemy.engine import make_url
from threads import join, run_in_thread, wait_until

from sqlresults import dask_runner, flow, task
from sqlresults.cache_policies import INPUTS
from sqlresults.errors import (
    ClusterUnavailableError,
    ConfigurationError,
    InvalidArgumentError,
    UpstreamTaskError,
)
from sqlresults.futures import TaskRunFuture, as_completed
from sqlresults.results import ResultStore
from sqlresults.settings import get_settings
from sqlresults.states import Completed, State
from sqlresults.task_runners import DaskTaskRunner, ThreadPoolTaskRunner

# A hang guard, not a measurement: a correct test never comes near it.
pytestmark = pytest.mark.timeout(240)
HANG = 120.0

SERIALIZABLE_INPUTS = INPUTS.configure(isolation_level="SERIALIZABLE")


class Cluster:
    """The shared cluster: its scheduler's address and the scheduler's task log."""

    def __init__(self, cluster: distributed.LocalCluster, log: TaskLog) -> None:
        self.cluster = cluster
        self.address: str = cluster.scheduler_address
        self.log = log

    def runner(self, **options: Any) -> DaskTaskRunner:
        return DaskTaskRunner(address=self.address, **options)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One 2-worker LocalCluster (worker processes) for the module, with a task log on its
    scheduler."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as local:
        log = TaskLog()
        log._scheduler = local.scheduler
        local.scheduler.add_plugin(log)
        yield Cluster(local, log)


def dask_key(future: TaskRunFuture[Any]) -> str:
    """The Dask key a run of the runner gets (``<run name>-<run id>``)."""
    return f"{future.task_run.name}-{future.task_run_id.hex}"


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


class TestImport:
    def test_importing_sqlresults_never_imports_dask(self) -> None:
        """``import sqlresults`` (and its task layer) leaves dask unimported; asking
        ``sqlresults.task_runners`` for DaskTaskRunner imports it."""
        code = (
            "import sys, sqlresults, sqlresults.task_runners, sqlresults.tasks, "
            "sqlresults.flows\n"
            "assert not {'dask', 'distributed'} & set(sys.modules), 'dask imported'\n"
            "from sqlresults.task_runners import DaskTaskRunner\n"
            "assert 'distributed' in sys.modules\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=HANG)

    def test_the_name_comes_from_its_own_module(self) -> None:
        """task_runners.DaskTaskRunner is dask_runner's class; other missing names still
        raise AttributeError."""
        import sqlresults.task_runners as task_runners

        assert task_runners.DaskTaskRunner is dask_runner.DaskTaskRunner
        with pytest.raises(AttributeError, match="NoSuchRunner"):
            task_runners.NoSuchRunner  # noqa: B018


class TestConfiguration:
    def test_prefect_dask_option_names(self) -> None:
        """The runner takes prefect-dask's options; a duplicate or a pickled copy is an equal,
        unentered runner."""
        runner = DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={"n_workers": 1},
            client_kwargs={"timeout": 5},
            adapt_kwargs={"maximum": 2},
        )
        assert runner.cluster_class == "distributed.LocalCluster"
        assert runner.cluster_kwargs == {"n_workers": 1}
        assert runner.client_kwargs == {"timeout": 5, "set_as_default": False}
        assert runner.adapt_kwargs == {"maximum": 2}
        assert runner.duplicate() == runner
        assert pickle.loads(pickle.dumps(runner)) == runner
        assert runner != DaskTaskRunner(address="tcp://127.0.0.1:8786")
        assert runner.max_workers == 0
        assert runner.name == "dask"

    @pytest.mark.parametrize(
        "options",
        [
            {"address": "tcp://h:8786", "cluster_class": "distributed.LocalCluster"},
            {"address": "tcp://h:8786", "cluster_kwargs": {"n_workers": 1}},
            {"address": "tcp://h:8786", "adapt_kwargs": {"maximum": 1}},
            {"client_kwargs": {"asynchronous": True}},
            {"cluster_kwargs": {"asynchronous": True}},
            {"large_result_bytes": -1},
        ],
    )
    def test_bad_options(self, options: dict[str, Any]) -> None:
        """Conflicting or unusable options are refused at construction."""
        with pytest.raises(InvalidArgumentError):
            DaskTaskRunner(**options)

    def test_must_be_entered(self) -> None:
        """Submitting to a runner that is not entered raises, as for every runner."""
        with pytest.raises(RuntimeError, match="Task runner is not started"):
            DaskTaskRunner().submit(lambda: Completed(1), task_run_id=uuid.uuid4())

    def test_addresses_on_this_machine(self) -> None:
        """Loopback and in-process addresses are this machine; a documentation address
        (TEST-NET-1) is not."""
        assert dask_runner._on_this_machine("tcp://127.0.0.1:8786")
        assert dask_runner._on_this_machine("tcp://[::1]:8786")
        assert dask_runner._on_this_machine("inproc://10.0.0.1/42/1")
        assert not dask_runner._on_this_machine("tcp://192.0.2.1:8786")


class TestOwnCluster:
    def test_without_an_address_a_cluster_lives_as_long_as_the_flow_run(
        self, pipeline: ResultStore
    ) -> None:
        """With no address, each flow run starts a cluster of ``cluster_class`` (made adaptive
        by ``adapt_kwargs``), runs its tasks there, and closes it when the run ends."""
        RecordingLocalCluster.started.clear()

        @task
        def where() -> str:
            return worker_name()

        @flow(
            task_runner=DaskTaskRunner(
                cluster_class=RecordingLocalCluster,
                cluster_kwargs={
                    "n_workers": 1,
                    "processes": False,
                    "dashboard_address": "127.0.0.1:0",
                },
                adapt_kwargs={"minimum": 1, "maximum": 1},
            )
        )
        def run() -> tuple[str, str]:
            (cluster,) = RecordingLocalCluster.started
            return where.submit().result(timeout=HANG), str(cluster.status.name)

        worker, status_during = run()
        assert worker.startswith("inproc://")
        assert status_during == "running"
        (cluster,) = RecordingLocalCluster.started
        assert cluster.status.name == "closed"

    def test_a_dotted_cluster_class_name_is_imported(self, pipeline: ResultStore) -> None:
        """``cluster_class`` may be a dotted name, prefect-dask style."""

        @task
        def answer() -> int:
            return 42

        @flow(
            task_runner=DaskTaskRunner(
                cluster_class="distributed.LocalCluster",
                cluster_kwargs={
                    "n_workers": 1,
                    "processes": False,
                    "dashboard_address": "127.0.0.1:0",
                },
            )
        )
        def run() -> int:
            return answer.submit().result(timeout=HANG)  # type: ignore[no-any-return]

        assert run() == 42


class TestFutures:
    def test_the_future_contract(self, cluster: Cluster) -> None:
        """Futures of the runner have the thread runner's contract: ``wait`` returns the
        final state, ``result`` the value, ``state`` is final once done, ``as_completed``
        yields each once, done callbacks run once; a failure keeps the worker's traceback."""
        called: list[TaskRunFuture[Any]] = []
        with cluster.runner() as runner:
            futures = [
                runner.submit(lambda i=i: Completed(i * 10), task_run_id=uuid.uuid4(), name="x")
                for i in range(4)
            ]
            futures[0].add_done_callback(called.append)
            failing = runner.submit(
                lambda: (_ for _ in ()).throw(ValueError("bad input")),
                task_run_id=uuid.uuid4(),
                name="fails",
            )
            state = futures[1].wait(HANG)
            assert state is not None
            assert state.is_completed()
            assert [f.result(timeout=HANG) for f in futures] == [0, 10, 20, 30]
            assert set(as_completed([*futures, failing], timeout=HANG)) == {*futures, failing}
            assert all(f.state.is_completed() for f in futures)
            with pytest.raises(ValueError, match="bad input") as raised:
                failing.result(timeout=HANG)
            assert "ValueError: bad input" in str(raised.value.__cause__)
            assert failing.state.is_failed()
        assert called == [futures[0]]
        assert runner.max_workers == 0  # left: no client any more

    def test_foreign_futures_are_waited_for_before_sending(self, cluster: Cluster) -> None:
        """A future of another runner in ``wait_for`` holds the call back until it is final;
        the call then runs on the cluster."""
        gate: concurrent.futures.Future[State[Any]] = concurrent.futures.Future()
        foreign: TaskRunFuture[Any] = TaskRunFuture(uuid.uuid4(), gate)
        with cluster.runner() as runner:
            future = runner.submit(
                lambda: Completed(worker_name()), task_run_id=uuid.uuid4(), wait_for=[foreign]
            )
            assert future.wait(0.2) is None
            gate.set_result(Completed(1))
            assert future.result(timeout=HANG).startswith("tcp://127.0.0.1")

    def test_futures_as_arguments_become_dask_dependencies(
        self, cluster: Cluster, pipeline: ResultStore
    ) -> None:
        """Futures passed to a task, alone or inside lists and dicts, are the Dask
        dependencies of its run, so their results go worker to worker; the values arrive."""

        @task(persist_result=False)
        def blob(n: int) -> bytes:
            return b"x" * n

        @task
        def size(data: bytes) -> int:
            return len(data)

        @task
        def total(sizes: list[int], extra: dict[str, int]) -> int:
            return sum(sizes) + extra["k"]

        @flow(task_runner=cluster.runner())
        def run() -> tuple[int, list[str]]:
            big = blob.submit(2_000_000)
            length = size.submit(big)
            other = size.submit(blob.submit(5))
            result = total.submit([length, other], {"k": length})
            keys = [dask_key(f) for f in (big, length, other, result)]
            return result.result(timeout=HANG), keys

        value, (big_key, length_key, other_key, total_key) = run()
        assert value == 2_000_000 + 5 + 2_000_000
        assert cluster.log.dependencies[length_key] == {big_key}
        assert cluster.log.dependencies[total_key] == {length_key, other_key}
        # The 2 MB blob was kept by the workers (not persisted, so it travels by Dask).
        assert cluster.log.nbytes[big_key] >= 2_000_000

    def test_a_failed_upstream_fails_its_dependants_without_running_them(
        self, cluster: Cluster, pipeline: ResultStore, tmp_path: Path
    ) -> None:
        """A run whose upstream failed gets a Failed state holding UpstreamTaskError and its
        function never runs."""
        ran = tmp_path / "ran.txt"

        @task
        def boom() -> int:
            raise ValueError("upstream broke")

        @task
        def after(x: int) -> int:
            log_line(ran, str(x))
            return x

        @flow(task_runner=cluster.runner())
        def run() -> tuple[str, str]:
            state = after.submit(boom.submit()).wait(HANG)
            assert state is not None
            return state.name, type(state.exception()).__name__

        assert run() == ("Failed", UpstreamTaskError.__name__)
        assert lines(ran) == []


class TestCache:
    @pytest.mark.postgres
    def test_200_serializable_keys_are_computed_once_and_a_rerun_sends_nothing(
        self,
        cluster: Cluster,
        postgres_url: str,
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """Two flows (two Dask clients) map a SERIALIZABLE task over the same 200 keys at
        once, in opposite orders, on 2 workers and PostgreSQL: each key is computed exactly
        once and both get every value. A third run is answered on the submitting side: the
        scheduler is sent no task. The same flow on the thread runner, in a fresh namespace,
        computes the same values."""
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", postgres_url)
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", namespace)
        computed = tmp_path / "computed.txt"

        @task(cache_policy=SERIALIZABLE_INPUTS)
        def featurize(day: int) -> str:
            log_line(computed, str(day))
            return f"features of day {day}"

        @flow(task_runner=cluster.runner())
        def backfill(days: list[int]) -> list[str]:
            return featurize.map(days).result(timeout=HANG)  # type: ignore[no-any-return]

        days = list(range(200))
        expected = [f"features of day {day}" for day in days]
        outcomes: dict[str, list[str]] = {}
        sent_at_start = len(cluster.log.sent())
        threads = [
            run_in_thread(lambda: outcomes.__setitem__("forward", backfill(days))),
            run_in_thread(lambda: outcomes.__setitem__("backward", backfill(days[::-1]))),
        ]
        for thread in threads:
            join(thread)
        assert outcomes == {"forward": expected, "backward": expected[::-1]}
        assert sorted(lines(computed), key=int) == [str(day) for day in days]

        sent_before = len(cluster.log.sent())
        # Every key went to the cluster at least once (the task log sees what is sent).
        assert sent_before - sent_at_start >= 200
        assert backfill(days) == expected
        assert cluster.log.sent()[sent_before:] == []
        assert len(lines(computed)) == 200

        monkeypatch.setenv("SQLRESULTS_NAMESPACE", f"{namespace}-threads")
        on_threads = backfill.with_options(task_runner=ThreadPoolTaskRunner(max_workers=4))
        assert on_threads(days) == expected
        assert len(lines(computed)) == 400


class TestSettingsTravel:
    def test_workers_run_inside_the_submitters_settings(
        self, cluster: Cluster, pipeline: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The namespace, signing key, lease length and persistence defaults the flow's
        process has are those its runs see on the workers, whose own environment has none
        of them; a persisted record is signed with that key."""
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", "k" * 32)
        monkeypatch.setenv("SQLRESULTS_LOCK_HOLD_TIMEOUT", "7.5")
        monkeypatch.setenv("SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT", "true")

        @task
        def seen() -> tuple[str, float, bool, str | None, str]:
            settings = get_settings()
            return (
                settings.namespace,
                settings.lock_hold_timeout,
                settings.signing_key is not None,
                os.environ.get("SQLRESULTS_SIGNING_KEY"),
                worker_name(),
            )

        @flow(task_runner=cluster.runner())
        def run() -> tuple[Any, str | None]:
            future = seen.submit()
            state = future.wait(HANG)
            assert state is not None
            return state.result(), state.data.metadata.storage_key

        (namespace, lease, signed, worker_env, worker), key = run()
        assert (namespace, lease, signed, worker_env) == (pipeline.namespace, 7.5, True, None)
        assert worker.startswith("tcp://")
        assert key is not None
        signed_store = ResultStore(result_storage=pipeline.result_storage, namespace=namespace)
        assert signed_store.read(key).result[0] == namespace
        monkeypatch.setenv("SQLRESULTS_SIGNING_KEY", "another key, 32 bytes long......")
        from sqlresults.errors import IntegrityError

        other = ResultStore(result_storage=pipeline.result_storage, namespace=namespace)
        with pytest.raises(IntegrityError):
            other.read(key)

    @pytest.mark.postgres
    def test_the_password_never_reaches_a_key_or_a_log(
        self,
        cluster: Cluster,
        postgres_url: str,
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """With a password in the database URL (the test server ignores it), no Dask key, no
        scheduler or worker log and no log of this process shows it, failures included."""
        password = f"pw-{uuid.uuid4().hex}"
        url = make_url(postgres_url).set(password=password).render_as_string(hide_password=False)
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", namespace)
        caplog.set_level(logging.DEBUG)

        @task(cache_policy=INPUTS)
        def double(x: int) -> int:
            if x == 3:
                raise ValueError(f"cannot double {x}")
            return 2 * x

        @flow(result_storage=url, task_runner=cluster.runner())
        def run() -> list[str]:
            futures = double.map(range(5))
            return [f.wait(HANG).name for f in futures]  # type: ignore[union-attr]

        assert run() == ["Completed", "Completed", "Completed", "Failed", "Completed"]
        with distributed.Client(cluster.address, set_as_default=False) as client:
            worker_logs = repr(client.get_worker_logs())
            scheduler_logs = repr(client.get_scheduler_logs())
        for text in (repr(cluster.log.sent()), worker_logs, scheduler_logs, caplog.text):
            assert password not in text

    def test_sqlite_is_refused_on_a_cluster_that_spans_machines(
        self,
        cluster: Cluster,
        pipeline: ResultStore,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """When the cluster's scheduler or workers are on other machines, submitting a run
        that carries a SQLite database raises ConfigurationError saying why; nothing is
        sent. (Here every address is made to look remote.)"""
        monkeypatch.setattr(dask_runner, "_on_this_machine", lambda address: False)
        sent_before = len(cluster.log.sent())

        @task(persist_result=True)
        def one() -> int:
            return 1

        @flow(result_storage=tmp_path / "team.db", task_runner=cluster.runner())
        def run() -> int:
            return one.submit().result(timeout=HANG)  # type: ignore[no-any-return]

        with pytest.raises(ConfigurationError) as raised:
            run()
        message = str(raised.value)
        assert "is a SQLite file, which cannot be shared between machines" in message
        assert cluster.address in message
        assert "PostgreSQL" in message
        assert cluster.log.sent()[sent_before:] == []

    def test_sqlite_is_allowed_on_a_local_cluster_of_the_runner(
        self, pipeline: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A LocalCluster the runner starts is one machine whatever its addresses look like:
        SQLite works there."""
        monkeypatch.setattr(dask_runner, "_on_this_machine", lambda address: False)

        @task(persist_result=True)
        def one() -> int:
            return 1

        @flow(
            task_runner=DaskTaskRunner(
                cluster_kwargs={
                    "n_workers": 1,
                    "processes": False,
                    "dashboard_address": "127.0.0.1:0",
                }
            )
        )
        def run() -> int:
            return one.submit().result(timeout=HANG)  # type: ignore[no-any-return]

        assert run() == 1

    def test_a_relative_sqlite_path_means_the_submitters_directory(
        self, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``sqlite:///relative.db`` is the file in the flow's working directory, also for
        workers started elsewhere."""
        assert Path.cwd() == tmp_path

        @task(cache_policy=INPUTS)
        def square(x: int) -> int:
            return x * x

        @flow(result_storage="sqlite:///relative.db", task_runner=cluster.runner())
        def run() -> str | None:
            state = square.submit(7).wait(HANG)
            assert state is not None
            assert state.result() == 49
            return state.data.metadata.storage_key  # type: ignore[no-any-return]

        key = run()
        assert key is not None
        here = ResultStore(result_storage=tmp_path / "relative.db")
        assert here.read(key).result == 49


class TestFaults:
    @pytest.mark.postgres
    def test_a_worker_killed_mid_task_loses_nothing_and_writes_nothing_twice(
        self,
        cluster: Cluster,
        postgres_url: str,
        namespace: str,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """A worker process dies (SIGKILL) while it holds a SERIALIZABLE key's lock. Dask runs
        the task again on the other worker, which waits for the dead holder's lease (2 s) to
        run out and computes it; the flow gets every value, each key's function finished
        once, and results the dead worker held are served from the database, not
        recomputed."""
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", postgres_url)
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", namespace)
        monkeypatch.setenv("SQLRESULTS_LOCK_HOLD_TIMEOUT", "2")
        events = tmp_path / "events.txt"
        marker = tmp_path / "killed-once"

        @task(cache_policy=SERIALIZABLE_INPUTS)
        def step(x: int) -> str:
            log_line(events, f"start {x}")
            if x == 0:
                die_once(marker)
            log_line(events, f"end {x}")
            return f"value {x}"

        @flow(task_runner=cluster.runner())
        def run(xs: list[int]) -> list[tuple[str, str]]:
            futures = step.map(xs)
            values = futures.result(timeout=HANG)
            return [(f.state.name, value) for f, value in zip(futures, values, strict=True)]

        xs = list(range(6))
        outcome = run(xs)
        assert marker.exists()
        assert outcome == [("Completed", f"value {x}") for x in xs]
        seen = lines(events)
        assert seen.count("start 0") == 2  # the killed attempt and the one that finished
        assert sorted(line for line in seen if line.startswith("end")) == [f"end {x}" for x in xs]
        assert all(seen.count(f"start {x}") == 1 for x in xs[1:])
        store = ResultStore(result_storage=postgres_url, namespace=namespace)
        stored = list(store.keys())
        assert sorted(store.read(key).result for key in stored) == [f"value {x}" for x in xs]
        # The cluster heals (the nanny restarts the worker) for the tests after this one.
        with distributed.Client(cluster.address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=HANG)

    def test_an_unreachable_scheduler_fails_the_flow_naming_its_address(
        self, pipeline: ResultStore
    ) -> None:
        """A scheduler that cannot be reached when the flow starts fails it with
        ClusterUnavailableError naming the address."""
        address = "tcp://127.0.0.1:9"

        @flow(task_runner=DaskTaskRunner(address=address, client_kwargs={"timeout": 1}))
        def run() -> int:
            return 1

        with pytest.raises(ClusterUnavailableError, match=r"tcp://127\.0\.0\.1:9\b"):
            run()

    def test_asking_a_gone_scheduler_is_cluster_unavailable(self) -> None:
        """``max_workers``, and the remote-host check made before a call carrying a SQLite
        database is sent, ask the scheduler; once it is gone dask raises an ``OSError``
        (``CommClosedError``), which becomes ClusterUnavailableError naming its address."""
        from distributed.comm.core import CommClosedError

        from sqlresults.dask_runner import _ClusterLink

        class GoneClient:
            def scheduler_info(self) -> dict[str, Any]:
                raise CommClosedError("in <TCP (closed)>: Stream is closed")

        runner = DaskTaskRunner(address="tcp://10.0.0.9:8786")
        link = _ClusterLink.__new__(_ClusterLink)  # entered, without a real cluster
        link.address, link.cluster, link._hosts_seen = runner.address, None, None
        link.client = GoneClient()  # type: ignore[assignment]
        runner._link = link

        with pytest.raises(ClusterUnavailableError, match=r"tcp://10\.0\.0\.9:8786"):
            _ = runner.max_workers
        with pytest.raises(ClusterUnavailableError, match=r"tcp://10\.0\.0\.9:8786"):
            link.remote_hosts()

    def test_a_scheduler_that_goes_away_fails_the_flow_naming_its_address(
        self, pipeline: ResultStore, tmp_path: Path
    ) -> None:
        """The scheduler goes away while a run is on its worker: the run gets a Failed state
        holding ClusterUnavailableError naming the scheduler's address, and the flow fails
        with it instead of hanging."""
        started = tmp_path / "started"
        release = tmp_path / "release"
        local = distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            dashboard_address="127.0.0.1:0",
        )
        address = local.scheduler_address
        assert address.startswith("tcp://")

        @task
        def slow() -> int:
            import time

            started.touch()
            deadline = time.monotonic() + HANG
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return 1

        @flow(task_runner=DaskTaskRunner(address=address))
        def run() -> int:
            return slow.submit().result(timeout=HANG)  # type: ignore[no-any-return]

        errors: list[BaseException] = []

        def target() -> None:
            try:
                run()
            except BaseException as exc:
                errors.append(exc)

        thread = run_in_thread(target)
        try:
            wait_until(started.exists, thread)
            local.sync(local.scheduler.close)  # the scheduler alone goes away
            join(thread)
        finally:
            release.touch()
            # Closing asks the (gone) scheduler first: don't let it try for the default 30 s.
            with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
                local.close()
        (error,) = errors
        assert isinstance(error, ClusterUnavailableError)
        assert address in str(error)

    def test_a_large_persisted_result_comes_back_through_the_database(
        self, cluster: Cluster, pipeline: ResultStore
    ) -> None:
        """A persisted result larger than ``large_result_bytes`` is not kept by Dask: the
        worker's reply names its record (the scheduler sees a few hundred bytes), and the
        flow and a downstream worker read the value from the database."""

        @task(cache_policy=INPUTS)
        def big(n: int) -> bytes:
            return b"y" * n

        @task
        def size(data: bytes) -> int:
            return len(data)

        @flow(task_runner=cluster.runner(large_result_bytes=100_000))
        def run() -> tuple[int, int, str]:
            data = big.submit(3_000_000)
            length = size.submit(data)
            return len(data.result(timeout=HANG)), length.result(timeout=HANG), dask_key(data)

        value_length, downstream_length, key = run()
        assert value_length == downstream_length == 3_000_000
        assert cluster.log.nbytes[key] < 100_000
