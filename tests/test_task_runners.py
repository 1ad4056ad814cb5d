"""Tests for sqlresults.task_runners: ThreadPoolTaskRunner and ProcessPoolTaskRunner.

Calls are plain callables returning states (the task engine builds the real ones). Where a
test shows that work runs in parallel it uses barriers, never timing. Prefect's
tests/test_task_runners.py is ported where it applies ("Prefect: TestX, same name"). Every
wait has a bound (HANG) and the module a hang guard, so a deadlock fails instead of hanging.
Process pools start with spawn, which costs about a second, so most process tests share one
module-scoped runner.
"""

from __future__ import annotations

import contextvars
import os
import pickle
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import runner_workers
from threads import join, run_in_thread

from sqlresults.errors import (
    CrashedRun,
    InvalidArgumentError,
    SerializationError,
    UpstreamTaskError,
)
from sqlresults.futures import (
    FutureList,
    TaskRunFuture,
    as_completed,
    resolve_futures_to_results,
    wait,
)
from sqlresults.results import ResultStore
from sqlresults.states import Completed, State
from sqlresults.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

# A hang guard, not a measurement: a correct test never comes near it.
pytestmark = pytest.mark.timeout(120)
HANG = 60.0

RUNNERS = [ThreadPoolTaskRunner, ProcessPoolTaskRunner]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def run_id() -> uuid.UUID:
    return uuid.uuid4()


def hanging() -> TaskRunFuture[Any]:
    """A future no runner completes; the test does, or nobody."""
    return TaskRunFuture(uuid.uuid4(), Future())


class TestTaskRunner:
    @pytest.mark.parametrize("runner_type", RUNNERS)
    def test_duplicate(self, runner_type: type[TaskRunner]) -> None:
        """Prefect: TestThreadPoolTaskRunner and TestProcessPoolTaskRunner, same name. A
        duplicate is a new, unentered runner equal to the original."""
        runner = runner_type(max_workers=3)
        with runner:  # entering a process runner starts no process before a submission
            duplicate = runner.duplicate()
        assert type(duplicate) is runner_type
        assert duplicate is not runner
        assert duplicate == runner
        assert duplicate.max_workers == 3
        with pytest.raises(RuntimeError, match="Task runner is not started"):
            duplicate.submit(lambda: Completed(), task_run_id=run_id())

    @pytest.mark.parametrize("runner_type", RUNNERS)
    def test_runner_must_be_started(self, runner_type: type[TaskRunner]) -> None:
        """Prefect: TestThreadPoolTaskRunner and TestProcessPoolTaskRunner, same name.
        Submitting to a runner that is not entered raises a RuntimeError saying how to start
        it."""
        with pytest.raises(RuntimeError, match=r"^Task runner is not started: enter it"):
            runner_type().submit(lambda: Completed(), task_run_id=run_id())

    @pytest.mark.parametrize("runner_type", RUNNERS)
    def test_set_max_workers(self, runner_type: type[TaskRunner]) -> None:
        """Prefect: TestThreadPoolTaskRunner and TestProcessPoolTaskRunner, same name."""
        assert runner_type(max_workers=2).max_workers == 2

    def test_default_max_workers(self) -> None:
        """Defaults: min(32, cpu + 4) threads (ThreadPoolExecutor's), cpu_count processes
        (Prefect: test_default_max_workers_uses_cpu_count)."""
        cpus = os.cpu_count() or 1
        assert ThreadPoolTaskRunner().max_workers == min(32, cpus + 4)
        assert ProcessPoolTaskRunner().max_workers == cpus

    @pytest.mark.parametrize("runner_type", RUNNERS)
    @pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
    def test_bad_max_workers(self, runner_type: type[TaskRunner], bad: Any) -> None:
        """max_workers must be a positive integer."""
        with pytest.raises(InvalidArgumentError, match="max_workers must be a positive integer"):
            runner_type(max_workers=bad)

    def test_equality(self) -> None:
        """Prefect: TestProcessPoolTaskRunner, same name. Runners of one type and
        configuration are equal (and hash alike); other types and configurations are not."""
        assert ProcessPoolTaskRunner(max_workers=4) == ProcessPoolTaskRunner(max_workers=4)
        assert ProcessPoolTaskRunner(max_workers=4) != ProcessPoolTaskRunner(max_workers=2)
        assert ProcessPoolTaskRunner(max_workers=4) != ThreadPoolTaskRunner(max_workers=4)
        assert ProcessPoolTaskRunner(max_workers=4) != "not a runner"
        assert hash(ThreadPoolTaskRunner(max_workers=4)) == hash(ThreadPoolTaskRunner(4))

    def test_name_and_repr(self) -> None:
        """The name is Prefect's short name; the repr shows the configuration."""
        assert ThreadPoolTaskRunner().name == "threadpool"
        assert ProcessPoolTaskRunner().name == "processpool"
        assert repr(ThreadPoolTaskRunner(max_workers=3)) == "ThreadPoolTaskRunner(max_workers=3)"

    @pytest.mark.parametrize("runner_type", RUNNERS)
    @pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloud"])
    def test_pickles_as_a_fresh_runner(
        self, runner_type: type[TaskRunner], dumps: Callable[[Any], bytes]
    ) -> None:
        """A runner, entered or not, pickles as an unentered runner with its configuration
        (it may travel inside a flow sent to another process)."""
        runner = runner_type(max_workers=2)
        with runner:
            copy = pickle.loads(dumps(runner))
        assert copy == runner
        with pytest.raises(RuntimeError, match="not started"):
            copy.submit(lambda: Completed(), task_run_id=run_id())

    def test_entered_twice(self) -> None:
        """A runner cannot be entered while it is entered; it can after it was left."""
        runner = ThreadPoolTaskRunner(max_workers=1)
        with runner, pytest.raises(RuntimeError, match="already started"):
            runner.__enter__()
        with runner:
            assert runner.submit(lambda: Completed(1), task_run_id=run_id()).result(HANG) == 1


class TestThreadPoolTaskRunner:
    def test_submit_returns_a_future_of_the_state(self) -> None:
        """Prefect: same class, test_submit_sync_task. The future has the run's id and name,
        and the call's state."""
        the_id = run_id()
        with ThreadPoolTaskRunner() as runner:
            future = runner.submit(lambda: Completed(2), task_run_id=the_id, name="double")
            assert future.result(timeout=HANG) == 2
        assert future.task_run_id == the_id
        assert future.task_run.name == "double"
        assert future.state.is_completed()
        assert future.state.task_run_id == the_id

    def test_a_raising_call_fails_its_run(self) -> None:
        """A call that raises gives a Failed state holding the exception with its
        traceback; result() raises it."""
        error = ValueError("bad input")

        def call() -> State[Any]:
            raise error

        with ThreadPoolTaskRunner() as runner:
            future = runner.submit(call, task_run_id=run_id())
            state = future.wait(HANG)
        assert state is not None
        assert state.is_failed()
        assert state.data is error
        assert state.message == "Task run encountered an exception ValueError: bad input"
        with pytest.raises(ValueError, match="bad input") as info:
            future.result()
        assert info.value is error
        assert info.traceback[-1].name == "call"
        assert future.result(raise_on_failure=False) is error

    def test_a_value_that_is_no_state_completes(self) -> None:
        """A call that returns a plain value gives a Completed state holding it."""
        with ThreadPoolTaskRunner() as runner:
            future = runner.submit(lambda: 42, task_run_id=run_id())
            assert future.result(HANG) == 42

    def test_calls_run_in_worker_threads_in_parallel(self) -> None:
        """Three calls on three workers meet at a barrier: they run at once, none in the
        submitting thread."""
        barrier = threading.Barrier(3, timeout=HANG)
        threads: list[int] = []

        def call() -> State[Any]:
            threads.append(threading.get_ident())
            barrier.wait()
            return Completed(threading.current_thread().name)

        with ThreadPoolTaskRunner(max_workers=3) as runner:
            futures = FutureList(runner.submit(call, task_run_id=run_id()) for _ in range(3))
            names = futures.result(timeout=HANG)
        assert len(set(threads)) == 3
        assert threading.get_ident() not in threads
        assert all(name.startswith("sqlresults-worker") for name in names)

    def test_context_flows_into_workers(self) -> None:
        """Prefect: same class, test_submit_sync_task_receives_context. Each call runs in a
        copy of its submitter's context: it sees the values set when it was submitted, and
        what it sets stays in the call."""

        def call() -> State[Any]:
            seen = request_id.get()
            request_id.set("changed in the call")
            return Completed(seen)

        with ThreadPoolTaskRunner(max_workers=2) as runner:
            token = request_id.set("first")
            first = runner.submit(call, task_run_id=run_id())
            request_id.set("second")
            second = runner.submit(call, task_run_id=run_id())
            assert FutureList([first, second]).result(timeout=HANG) == ["first", "second"]
            assert request_id.get() == "second"
            request_id.reset(token)

    def test_work_run_by_a_waiting_worker_keeps_its_own_context(self) -> None:
        """A call run inline by a waiting worker runs in its submitter's context, even an
        empty one, not in the waiting call's."""
        submitted = threading.Event()
        children: list[TaskRunFuture[Any]] = []

        with ThreadPoolTaskRunner(max_workers=1) as runner:

            def parent() -> State[Any]:
                request_id.set("parent's")
                assert submitted.wait(HANG)
                return Completed(children[0].result())

            def submit_from_a_fresh_thread() -> None:  # a new thread has an empty context
                children.append(
                    runner.submit(lambda: Completed(request_id.get()), task_run_id=run_id())
                )
                submitted.set()

            future = runner.submit(parent, task_run_id=run_id())
            join(run_in_thread(submit_from_a_fresh_thread))
            assert future.result(timeout=HANG) == "unset"

    def test_exiting_waits_for_submitted_work(self) -> None:
        """Leaving the runner returns only after the submitted calls finished."""
        release, started = threading.Event(), threading.Event()
        events: list[str] = []
        futures: list[TaskRunFuture[Any]] = []

        def call() -> State[Any]:
            started.set()
            assert release.wait(HANG)
            events.append("call finished")
            return Completed()

        def body() -> None:
            with ThreadPoolTaskRunner(max_workers=1) as runner:
                futures.append(runner.submit(call, task_run_id=run_id()))
            events.append("runner left")

        thread = run_in_thread(body)
        assert started.wait(HANG)
        thread.join(0.05)
        assert thread.is_alive(), "the runner was left while its call was still running"
        release.set()
        join(thread)
        assert events == ["call finished", "runner left"]
        assert futures[0].state.is_completed()

    def test_exiting_by_an_exception_cancels_unstarted_work(self) -> None:
        """Leaving by an exception cancels the calls no worker started (their futures are
        Cancelled) and waits for the running one."""
        release, started, submitted = threading.Event(), threading.Event(), threading.Event()
        futures: list[TaskRunFuture[Any]] = []

        def blocker() -> State[Any]:
            started.set()
            assert release.wait(HANG)
            return Completed("finished")

        errors: list[BaseException] = []

        def body() -> None:
            try:
                with ThreadPoolTaskRunner(max_workers=1) as runner:
                    futures.append(runner.submit(blocker, task_run_id=run_id()))
                    futures.append(runner.submit(lambda: Completed("never"), task_run_id=run_id()))
                    submitted.set()
                    assert started.wait(HANG)
                    raise RuntimeError("flow failed")
            except RuntimeError as exc:
                errors.append(exc)

        thread = run_in_thread(body)
        assert submitted.wait(HANG)
        # The second call is cancelled while the blocker still holds the only worker.
        assert futures[1].wait(HANG) is not None
        release.set()
        join(thread)
        assert [str(error) for error in errors] == ["flow failed"]
        assert futures[0].result() == "finished"
        assert futures[1].state.is_cancelled()

    def test_submit_after_exit_raises(self) -> None:
        """A runner that was left refuses work."""
        with ThreadPoolTaskRunner() as runner:
            pass
        with pytest.raises(RuntimeError, match="Task runner is not started"):
            runner.submit(lambda: Completed(), task_run_id=run_id())


class TestNestedSubmission:
    """A call that submits to its own runner and waits never deadlocks it: a waiting worker
    runs its runner's unstarted work itself (PrefectHQ/prefect#17060, #14194)."""

    def test_handles_recursively_submitted_tasks(self) -> None:
        """Prefect: TestThreadPoolTaskRunner, same name (PrefectHQ/prefect#14194), with one
        worker instead of an unbounded pool and more levels: each level submits the next and
        waits for it."""
        with ThreadPoolTaskRunner(max_workers=1) as runner:

            def recursive(n: int) -> State[Any]:
                if n == 0:
                    return Completed(0)
                child = runner.submit(partial(recursive, n - 1), task_run_id=run_id())
                return Completed(child.result() + 1)

            future = runner.submit(partial(recursive, 40), task_run_id=run_id())
            assert future.result(timeout=HANG) == 40

    @pytest.mark.parametrize(
        "waiting",
        ["future.result", "future.wait", "FutureList.result", "wait", "as_completed", "resolve"],
    )
    def test_waiting_inside_a_worker(self, waiting: str) -> None:
        """With a single worker, a call that fans out to its own runner and waits in any of
        the ways futures offer gets every child's result."""
        with ThreadPoolTaskRunner(max_workers=1) as runner:

            def child(i: int) -> State[Any]:
                return Completed(i * 10)

            def parent() -> State[Any]:
                children = FutureList(
                    runner.submit(partial(child, i), task_run_id=run_id()) for i in range(4)
                )
                if waiting == "future.result":
                    values = [f.result() for f in children]
                elif waiting == "future.wait":
                    values = [f.wait().data for f in children]  # type: ignore[union-attr]
                elif waiting == "FutureList.result":
                    values = children.result()
                elif waiting == "wait":
                    assert wait(children).not_done == set()
                    values = [f.result(timeout=0) for f in children]
                elif waiting == "as_completed":
                    values = sorted(f.result() for f in as_completed(children))
                else:
                    values = resolve_futures_to_results({"values": children})["values"]
                return Completed(values)

            future = runner.submit(parent, task_run_id=run_id())
            assert future.result(timeout=HANG) == [0, 10, 20, 30]

    def test_waiting_with_a_timeout_inside_a_worker(self) -> None:
        """wait(timeout) and as_completed(timeout) in a worker also run unstarted work."""
        with ThreadPoolTaskRunner(max_workers=1) as runner:

            def parent() -> State[Any]:
                children = [runner.submit(lambda: Completed(1), task_run_id=run_id())]
                children.append(runner.submit(lambda: Completed(2), task_run_id=run_id()))
                finished = wait(children[:1], timeout=HANG).done
                in_order = [f.result() for f in as_completed(children, timeout=HANG)]
                return Completed((len(finished), sorted(in_order)))

            assert runner.submit(parent, task_run_id=run_id()).result(HANG) == (1, [1, 2])

    def test_never_more_threads_than_workers(self) -> None:
        """Work run by waiting workers takes no extra thread: with two workers and parents
        that fan out and wait, every call runs on one of two threads."""
        threads: set[int] = set()
        lock = threading.Lock()

        def note() -> None:
            with lock:
                threads.add(threading.get_ident())

        with ThreadPoolTaskRunner(max_workers=2) as runner:

            def child() -> State[Any]:
                note()
                return Completed()

            def parent() -> State[Any]:
                note()
                children = FutureList(runner.submit(child, task_run_id=run_id()) for _ in range(5))
                children.result()
                return Completed()

            parents = FutureList(runner.submit(parent, task_run_id=run_id()) for _ in range(4))
            parents.result(timeout=HANG)
        assert 1 <= len(threads) <= 2

    def test_another_runners_work_runs_on_its_own_workers(self) -> None:
        """A worker waiting for another runner's work (a subflow's duplicate runner) does not
        run it itself: that runner's workers do, in parallel."""
        with ThreadPoolTaskRunner(max_workers=2) as outer:

            def subflow() -> State[Any]:
                barrier = threading.Barrier(2, timeout=HANG)
                with outer.duplicate() as inner:

                    def meet() -> State[Any]:
                        barrier.wait()
                        return Completed(threading.get_ident())

                    idents = FutureList(inner.submit(meet, task_run_id=run_id()) for _ in range(2))
                    values = idents.result()
                return Completed((threading.get_ident(), values))

            parent_ident, child_idents = outer.submit(subflow, task_run_id=run_id()).result(HANG)
        assert parent_ident not in child_idents
        assert len(set(child_idents)) == 2


class TestWaitFor:
    def test_submit_with_wait_for(self) -> None:
        """Prefect: TestProcessPoolTaskRunner, same name (PrefectHQ/prefect#19113), on threads
        with one worker: a chain of calls each waiting for the previous one."""
        with ThreadPoolTaskRunner(max_workers=1) as runner:
            a = runner.submit(lambda: Completed(2), task_run_id=run_id())
            b = runner.submit(
                lambda: Completed(resolve_futures_to_results(a) + 1),
                task_run_id=run_id(),
                wait_for=[a],
            )
            c = runner.submit(
                lambda: Completed(resolve_futures_to_results(b) + 1),
                task_run_id=run_id(),
                wait_for=[b, a, b],
            )
            assert [f.result(HANG) for f in (a, b, c)] == [2, 3, 4]

    def test_a_waiting_call_holds_no_worker(self) -> None:
        """A call waiting for its upstream does not start before the upstream is final, and
        meanwhile leaves the only worker to other calls."""
        upstream = hanging()
        with ThreadPoolTaskRunner(max_workers=1) as runner:
            downstream = runner.submit(
                lambda: Completed("down"), task_run_id=run_id(), wait_for=[upstream]
            )
            other = runner.submit(lambda: Completed("other"), task_run_id=run_id())
            assert other.result(timeout=HANG) == "other"
            assert downstream.state.is_pending()
            upstream.wrapped_future.set_result(Completed("up"))
            assert downstream.result(timeout=HANG) == "down"

    def test_submit_with_wait_for_upstream_failure(self) -> None:
        """Prefect: TestProcessPoolTaskRunner, same name (PrefectHQ/prefect#21117), on threads:
        the downstream call still runs once the upstream failed, and resolving the upstream
        there raises UpstreamTaskError (the engine turns that into "did not run")."""

        def failing() -> State[Any]:
            raise RuntimeError("I failed!")

        with ThreadPoolTaskRunner(max_workers=2) as runner:
            upstream = runner.submit(failing, task_run_id=run_id(), name="failing")
            downstream = runner.submit(
                lambda: Completed(resolve_futures_to_results([upstream])),
                task_run_id=run_id(),
                wait_for=[upstream],
            )
            state = downstream.wait(HANG)
        assert upstream.state.is_failed()
        assert state is not None
        assert state.is_failed()
        assert isinstance(state.data, UpstreamTaskError)
        assert "Upstream task run 'failing'" in str(state.data)

    def test_exiting_by_an_exception_cancels_waiting_calls(self) -> None:
        """A call still waiting for its upstream when the runner is left by an exception is
        cancelled, for both runners (no process is started for it)."""
        futures: list[TaskRunFuture[Any]] = []

        def leave_by_an_error(runner: TaskRunner, upstream: TaskRunFuture[Any]) -> None:
            with runner:
                futures.append(
                    runner.submit(lambda: Completed(), task_run_id=run_id(), wait_for=[upstream])
                )
                raise KeyError("flow failed")

        for runner_type in RUNNERS:
            upstream = hanging()
            with pytest.raises(KeyError):
                leave_by_an_error(runner_type(max_workers=1), upstream)
            future = futures.pop()
            assert future.state.is_cancelled()
            upstream.wrapped_future.set_result(Completed())  # nothing is dispatched any more
            assert future.state.is_cancelled()


@pytest.fixture(scope="module")
def process_runner() -> Iterator[ProcessPoolTaskRunner]:
    """One pool of two spawned workers for the module (spawning costs about a second)."""
    # A forked worker would inherit this; a spawned one must not (test_workers_are_spawned).
    runner_workers.SET_IN_PARENT = True
    with ProcessPoolTaskRunner(max_workers=2) as runner:
        yield runner


class TestProcessPoolTaskRunner:
    def test_submit_sync_task(self, process_runner: ProcessPoolTaskRunner) -> None:
        """Prefect: same class, same name. The call runs in a worker process and its state
        comes back."""
        future = process_runner.submit(runner_workers.pid, task_run_id=run_id(), name="pid")
        worker_pid = future.result(timeout=HANG)
        assert worker_pid != os.getpid()
        assert future.state.is_completed()
        assert future.task_run.name == "pid"

    def test_workers_are_spawned(self, process_runner: ProcessPoolTaskRunner) -> None:
        """Workers start with spawn: they do not inherit the parent's memory (a module
        variable the parent changed has its import value there)."""
        assert runner_workers.SET_IN_PARENT
        future = process_runner.submit(runner_workers.sees_parent_flag, task_run_id=run_id())
        assert future.result(timeout=HANG) is False

    def test_closures_and_lambdas_are_cloudpickled(
        self, process_runner: ProcessPoolTaskRunner
    ) -> None:
        """A lambda and a closure over local values travel to the worker by value."""
        factor = 3

        def closure() -> State[Any]:
            return Completed([factor * i for i in range(3)])

        lam = process_runner.submit(lambda: Completed({"pid": os.getpid()}), task_run_id=run_id())
        clo = process_runner.submit(closure, task_run_id=run_id())
        assert clo.result(timeout=HANG) == [0, 3, 6]
        assert lam.result(timeout=HANG)["pid"] != os.getpid()

    def test_task_raises_exception(self, process_runner: ProcessPoolTaskRunner) -> None:
        """Prefect: same class, same name. A call raising in the worker fails the run; the
        exception comes back with the worker's traceback as its cause."""
        future = process_runner.submit(
            partial(runner_workers.fail_in_worker, "bad row"), task_run_id=run_id()
        )
        with pytest.raises(ValueError, match="bad row") as info:
            future.result(timeout=HANG)
        assert future.state.is_failed()
        assert "fail_in_worker" in str(info.value.__cause__)

    def test_unpicklable_call(self, process_runner: ProcessPoolTaskRunner) -> None:
        """A call that cannot be pickled fails its run with a SerializationError; submit
        itself does not raise."""
        lock = threading.Lock()
        future = process_runner.submit(
            lambda: Completed(lock.locked()), task_run_id=run_id(), name="locked"
        )
        with pytest.raises(SerializationError, match=r"Task run 'locked'.*could not be pickled"):
            future.result(timeout=HANG)

    def test_a_call_carrying_an_unfinished_future(
        self, process_runner: ProcessPoolTaskRunner
    ) -> None:
        """A call that carries a future not given in wait_for (so unfinished when it is sent)
        fails its run with a SerializationError that says to use wait_for."""
        upstream = hanging()
        future = process_runner.submit(
            lambda: Completed(resolve_futures_to_results(upstream)), task_run_id=run_id()
        )
        with pytest.raises(SerializationError, match=r"not finished.*wait_for"):
            future.result(timeout=HANG)

    def test_unpicklable_state(self, process_runner: ProcessPoolTaskRunner) -> None:
        """A state that cannot be pickled back fails the run with a SerializationError."""
        future = process_runner.submit(lambda: Completed(threading.Lock()), task_run_id=run_id())
        with pytest.raises(SerializationError, match="could not be pickled to send it back"):
            future.result(timeout=HANG)

    def test_submit_with_future_as_parameter(self, process_runner: ProcessPoolTaskRunner) -> None:
        """Prefect: same class, same name (PrefectHQ/prefect#19113), plus upstream failure
        (#21117). With wait_for, a call may carry its upstream futures: they are finished
        when it is pickled, and resolve in the worker."""
        a = process_runner.submit(lambda: Completed(5), task_run_id=run_id())
        b = process_runner.submit(lambda: Completed(6), task_run_id=run_id())
        total = process_runner.submit(
            lambda: Completed(sum(resolve_futures_to_results([a, b]))),
            task_run_id=run_id(),
            wait_for=[a, b],
        )
        failing = process_runner.submit(
            partial(runner_workers.fail_in_worker, "upstream broke"), task_run_id=run_id()
        )
        downstream = process_runner.submit(
            lambda: Completed(resolve_futures_to_results(failing)),
            task_run_id=run_id(),
            wait_for=[failing],
        )
        assert total.result(timeout=HANG) == 11
        with pytest.raises(UpstreamTaskError, match="it is Failed"):
            downstream.result(timeout=HANG)

    def test_nested_submission_runs_inline_in_the_worker(
        self, process_runner: ProcessPoolTaskRunner
    ) -> None:
        """Prefect: same class, test_handles_recursively_submitted_tasks. Inside a worker
        process, the runner (a copy that travelled with the call) runs submitted calls at once
        in that process; recursion works."""

        def recursive(n: int) -> State[Any]:
            if n == 0:
                return Completed([os.getpid()])
            # uuid, not this module's run_id: a call must not make the worker import the tests.
            child = process_runner.submit(partial(recursive, n - 1), task_run_id=uuid.uuid4())
            assert child.done()
            return Completed([os.getpid(), *child.result()])

        pids = process_runner.submit(partial(recursive, 5), task_run_id=run_id()).result(HANG)
        assert len(pids) == 6
        assert len(set(pids)) == 1
        assert pids[0] != os.getpid()

    def test_serializable_computes_once_across_the_pool(
        self, process_runner: ProcessPoolTaskRunner, tmp_path: Path
    ) -> None:
        """Results and locks are shared through the database: four SERIALIZABLE compute-once
        calls on one key, across the pool's processes, compute once and agree."""
        store = ResultStore(result_storage=tmp_path / "results.db")
        out = tmp_path / "computed"
        out.mkdir()
        futures = FutureList(
            process_runner.submit(
                partial(runner_workers.compute_once, store, "shared-key", str(out)),
                task_run_id=run_id(),
            )
            for _ in range(4)
        )
        values = futures.result(timeout=HANG)
        assert len(list(out.iterdir())) == 1
        assert len(set(values)) == 1
        assert store.read("shared-key").result == values[0]

    def test_a_killed_worker_fails_its_run_and_the_runner_recovers(self) -> None:
        """A worker that dies (os._exit) gives a Failed state named Crashed whose result
        raises CrashedRun, not a hang nor a BrokenProcessPool; the next run gets a fresh
        pool."""
        with ProcessPoolTaskRunner(max_workers=1) as runner:
            crashed = runner.submit(lambda: os._exit(3), task_run_id=run_id(), name="exits")
            state = crashed.wait(HANG)
            assert state is not None
            assert state.is_failed()
            assert state.name == "Crashed"
            with pytest.raises(CrashedRun, match=r"Task run 'exits'.*crashed: a worker process"):
                crashed.result()
            after = runner.submit(runner_workers.pid, task_run_id=run_id())
            assert after.result(timeout=HANG) != os.getpid()

    def test_exiting_waits_and_shuts_down(self) -> None:
        """Leaving the runner waits for its runs; it then refuses work."""
        with ProcessPoolTaskRunner(max_workers=1) as runner:
            future = runner.submit(lambda: Completed("done"), task_run_id=run_id())
        assert future.done()
        assert future.result() == "done"
        with pytest.raises(RuntimeError, match="not started"):
            runner.submit(lambda: Completed(), task_run_id=run_id())
