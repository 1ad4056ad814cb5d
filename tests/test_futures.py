"""Tests for sqlresults.futures: TaskRunFuture, FutureList, wait, as_completed and the
resolve_futures_to_* functions.

Prefect's tests/test_futures.py (behaviours 79-80 of the reference) are ported where they
apply; their docstrings name them ("Prefect: TestX::test_y"). Futures here are built directly
on :class:`concurrent.futures.Future` objects the test completes, so no runner is involved.
A test that could hang if the code were wrong has a timeout (the module's hang guard, or a
bounded wait that fails instead).
"""

from __future__ import annotations

import logging
import pickle
import time
import uuid
from collections import OrderedDict, defaultdict, namedtuple
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import pytest
from threads import join, run_in_thread

from sqlresults.errors import (
    CancelledRun,
    InvalidArgumentError,
    UpstreamTaskError,
    WaitTimeoutError,
)
from sqlresults.futures import (
    DoneAndNotDoneFutures,
    FutureList,
    TaskRunFuture,
    as_completed,
    resolve_futures_to_data,
    resolve_futures_to_results,
    resolve_futures_to_states,
    wait,
)
from sqlresults.states import (
    Cached,
    Cancelled,
    Completed,
    Failed,
    Pending,
    State,
)

# A hang guard, not a measurement: a correct test never comes near it.
pytestmark = pytest.mark.timeout(60)

NEGATIVE_TIMEOUT = r"^'timeout' must be a non-negative number, got -1$"


def done(data: Any = 42) -> TaskRunFuture[Any]:
    """A future already completed with ``data`` (Prefect's MockFuture)."""
    return TaskRunFuture.completed(Completed(data))


def hanging() -> TaskRunFuture[Any]:
    """A future whose wrapped future the test completes (or never does)."""
    return TaskRunFuture(uuid.uuid4(), Future())


def finish(future: TaskRunFuture[Any], state: Any) -> None:
    """Complete ``future``'s wrapped future with ``state``."""
    future.wrapped_future.set_result(state)


class TestTaskRunFuture:
    def test_task_run_id_and_task_run(self) -> None:
        """task_run_id and task_run.id are the run's id; task_run.name is the given name, or
        one made from the id."""
        run_id = uuid.uuid4()
        named = TaskRunFuture(run_id, Future(), name="load")
        assert named.task_run_id == run_id
        assert named.task_run.id == run_id
        assert named.task_run.name == "load"
        unnamed = TaskRunFuture(run_id, Future())
        assert unnamed.task_run.name == f"task-run-{str(run_id)[:8]}"

    def test_state_follows_the_run(self) -> None:
        """state (and get_state) is Pending, then Running once a worker has the run, then the
        final state itself; it never waits."""
        future = hanging()
        assert future.state.is_pending()
        assert future.state.task_run_id == future.task_run_id
        future.wrapped_future.set_running_or_notify_cancel()
        assert future.get_state().is_running()
        final = Completed(1, task_run_id=future.task_run_id)
        finish(future, final)
        assert future.state is final
        assert future.get_state() is final
        assert future.done()

    def test_wait_with_timeout(self) -> None:
        """Prefect: TestPrefectConcurrentFuture, same name. wait(timeout) on an unfinished run
        returns None instead of raising, and the state stays Pending."""
        future = hanging()
        assert future.wait(timeout=0.01) is None
        assert future.state.is_pending()

    def test_wait_without_timeout(self) -> None:
        """Prefect: TestPrefectConcurrentFuture, same name. wait() returns the final state (seed
        003: "Wait for the run to finish and return the final state")."""
        future = hanging()
        final = Completed(task_run_id=future.task_run_id)
        finish(future, final)
        assert future.wait(timeout=0) is final
        assert future.wait() is final
        assert future.state.is_completed()

    def test_wait_for_a_run_finished_by_another_thread(self) -> None:
        """wait() returns once another thread finishes the run."""
        future = hanging()
        final = Completed("late", task_run_id=future.task_run_id)
        thread = run_in_thread(finish, future, final)
        assert future.wait(timeout=30) is final
        join(thread)

    def test_result_with_final_state(self) -> None:
        """Prefect: TestPrefectConcurrentFuture, same name."""
        future = hanging()
        finish(future, Completed(data=42))
        assert future.result() == 42

    def test_result_without_final_state(self) -> None:
        """Prefect: TestPrefectConcurrentFuture, same name. A wrapped result that is no state is the
        result, and the state is Completed with it."""
        future = hanging()
        finish(future, 42)
        assert future.result() == 42
        assert future.state.is_completed()
        assert future.state.data == 42

    def test_result_with_final_state_and_raise_on_failure(self) -> None:
        """Prefect: TestPrefectConcurrentFuture, same name. A failed run's result() raises its
        exception; with raise_on_failure=False it is returned."""
        error = ValueError("oops")
        future = hanging()
        finish(future, Failed(data=error))
        with pytest.raises(ValueError, match="oops") as info:
            future.result(raise_on_failure=True)
        assert info.value is error
        assert future.result(raise_on_failure=False) is error

    def test_result_timeout(self) -> None:
        """result(timeout) on an unfinished run raises a TimeoutError with Prefect's
        message."""
        future = hanging()
        with pytest.raises(TimeoutError) as info:
            future.result(timeout=0.01)
        assert isinstance(info.value, WaitTimeoutError)
        assert (
            str(info.value) == f"Task run {future.task_run_id} did not complete within 0.01 seconds"
        )

    @pytest.mark.parametrize("method", ["wait", "result"])
    def test_negative_timeout(self, method: str) -> None:
        """A negative timeout is a ValueError with Prefect's message."""
        with pytest.raises(InvalidArgumentError, match=NEGATIVE_TIMEOUT):
            getattr(done(), method)(timeout=-1)

    def test_wrapped_exception_is_a_failed_state(self) -> None:
        """A wrapped future that raised gives a Failed state holding the exception; result()
        raises that exception object."""
        error = RuntimeError("engine bug")
        future = hanging()
        future.wrapped_future.set_exception(error)
        state = future.wait()
        assert state is not None
        assert state.is_failed()
        assert state.data is error
        assert state.message == "Task run encountered an exception RuntimeError: engine bug"
        with pytest.raises(RuntimeError) as info:
            future.result()
        assert info.value is error

    def test_cancelled_wrapped_future(self) -> None:
        """A cancelled wrapped future gives a Cancelled state; result() raises
        CancelledRun."""
        future = hanging()
        assert future.wrapped_future.cancel()
        assert future.state.is_cancelled()
        with pytest.raises(CancelledRun, match="cancelled before it started"):
            future.result()

    def test_state_gets_the_run_id(self) -> None:
        """A final state without a task run id is given the future's."""
        future = hanging()
        finish(future, Completed(1))
        assert future.state.task_run_id == future.task_run_id

    def test_completed(self) -> None:
        """completed(state) is final at once, with the state's run id, a given one, or a new
        one."""
        run_id = uuid.uuid4()
        state = Cached(7, task_run_id=run_id)
        future = TaskRunFuture.completed(state, name="hit")
        assert future.done()
        assert future.state is state
        assert future.task_run_id == run_id
        assert future.task_run.name == "hit"
        assert future.result() == 7
        other = uuid.uuid4()
        assert TaskRunFuture.completed(Completed(), task_run_id=other).task_run_id == other
        assert isinstance(TaskRunFuture.completed(Completed()).task_run_id, uuid.UUID)

    def test_completed_needs_a_final_state(self) -> None:
        """completed() refuses a state that is not final."""
        with pytest.raises(InvalidArgumentError, match="final state"):
            TaskRunFuture.completed(Pending())

    def test_repr(self) -> None:
        """The repr names the run and its state."""
        future = TaskRunFuture.completed(Completed(1), name="load")
        assert repr(future) == (
            f"TaskRunFuture('load', task_run_id={future.task_run_id}, state=Completed)"
        )


class TestDoneCallbacks:
    def test_callback_runs_when_the_run_finishes(self) -> None:
        """A callback added before the run finishes is called once, with the future."""
        future = hanging()
        calls: list[TaskRunFuture[Any]] = []
        future.add_done_callback(calls.append)
        assert calls == []
        finish(future, Completed())
        assert calls == [future]

    def test_callback_on_a_finished_future_runs_at_once(self) -> None:
        """A callback added to a finished future (completed() too) is called at once."""
        for future in (done(), TaskRunFuture.completed(Failed(ValueError()))):
            calls: list[TaskRunFuture[Any]] = []
            future.add_done_callback(calls.append)
            assert calls == [future]

    def test_a_raising_callback_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """An Exception from a callback is logged; later callbacks still run."""
        future = hanging()
        calls: list[str] = []

        def broken(_: TaskRunFuture[Any]) -> None:
            raise ValueError("callback bug")

        future.add_done_callback(broken)
        future.add_done_callback(lambda _: calls.append("second"))
        with caplog.at_level(logging.ERROR, logger="sqlresults.futures"):
            finish(future, Completed())
        assert calls == ["second"]
        assert "A done callback of" in caplog.text

    @pytest.mark.parametrize("waiter", ["wait", "as_completed"])
    def test_waiters_are_told_before_user_callbacks(self, waiter: str) -> None:
        """Prefect: TestUtilityFunctions::test_wait_uses_private_completion_callback_for_
        prefect_concurrent_future, and its as_completed twin. A user callback that raises a
        BaseException (which propagates to the thread that finishes the run) cannot keep wait() or
        as_completed() waiting."""
        future = hanging()
        callback_errors: list[BaseException] = []

        def raising_callback(_: TaskRunFuture[Any]) -> None:
            raise KeyboardInterrupt("boom")

        future.add_done_callback(raising_callback)

        def resolve() -> None:
            try:
                finish(future, Completed(data=42))
            except BaseException as exc:
                callback_errors.append(exc)

        thread = run_in_thread(resolve)
        if waiter == "wait":
            finished, not_finished = wait([future], timeout=30)
            assert finished == {future}
            assert not not_finished
            assert future.result() == 42
        else:
            assert [f.result() for f in as_completed([future], timeout=30)] == [42]
        join(thread)
        assert len(callback_errors) == 1
        assert isinstance(callback_errors[0], KeyboardInterrupt)


class TestPickling:
    @pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloud"])
    def test_finished_future_pickles_as_finished(self, dumps: Any) -> None:
        """A finished future pickles as a finished future with its id, name and state, so a
        call sent to a worker process may carry the futures it depended on."""
        run_id = uuid.uuid4()
        future = TaskRunFuture.completed(Completed([1, 2]), task_run_id=run_id, name="load")
        copy = pickle.loads(dumps(future))
        assert isinstance(copy, TaskRunFuture)
        assert (copy.task_run_id, copy.task_run.name, copy.result()) == (run_id, "load", [1, 2])
        assert resolve_futures_to_results({"x": copy}) == {"x": [1, 2]}

    def test_failed_future_pickles(self) -> None:
        """A failed future's copy is failed with a copy of the exception."""
        copy = pickle.loads(cloudpickle.dumps(TaskRunFuture.completed(Failed(KeyError("k")))))
        assert copy.state.is_failed()
        with pytest.raises(KeyError):
            copy.result()

    def test_unfinished_future_refuses(self) -> None:
        """An unfinished future cannot be pickled; the error says what to do."""
        with pytest.raises(TypeError, match=r"it is not finished.*wait_for"):
            pickle.dumps(hanging())


class TestUtilityFunctions:
    def test_wait(self) -> None:
        """Prefect: TestUtilityFunctions, same name. wait() on finished futures: nothing is left
        undone."""
        futures = [done(i) for i in range(5)]
        result = wait(futures)
        assert isinstance(result, DoneAndNotDoneFutures)
        assert result.not_done == set()
        assert result.done == set(futures)
        for future in futures:
            assert future.state.is_completed()

    def test_wait_without_timeout_waits_for_all(self) -> None:
        """wait() without a timeout returns once every future is final."""
        futures = [hanging() for _ in range(3)]
        threads = [run_in_thread(finish, f, Completed(i)) for i, f in enumerate(futures)]
        finished, not_finished = wait(futures)
        assert finished == set(futures)
        assert not not_finished
        for thread in threads:
            join(thread)

    def test_wait_with_negative_timeout_raises_value_error(self) -> None:
        """Prefect: TestUtilityFunctions, same name."""
        with pytest.raises(ValueError, match=NEGATIVE_TIMEOUT):
            wait([done(i) for i in range(5)], timeout=-1)

    def test_as_completed_with_negative_timeout_raises_value_error(self) -> None:
        """Prefect: TestUtilityFunctions, same name. Here the call itself raises, before any
        iteration."""
        with pytest.raises(ValueError, match=NEGATIVE_TIMEOUT):
            as_completed([done(i) for i in range(5)], timeout=-1)

    def test_wait_with_timeout(self) -> None:
        """Prefect: TestUtilityFunctions, same name (behaviour 79). With one hanging future among
        six, wait(timeout) returns it as not done, and does not raise."""
        futures = [done(i) for i in range(5)]
        futures.append(hanging())
        result = wait(futures, timeout=0.01)
        assert result.not_done == {futures[-1]}
        assert result.done == set(futures[:-1])

    def test_wait_monitors_all_futures_concurrently_with_timeout(self) -> None:
        """Prefect: TestUtilityFunctions, same name. A slow first future does not hide the fast ones
        finishing during the wait."""
        slow = hanging()
        fast = [hanging() for _ in range(3)]
        threads = [run_in_thread(finish, f, Completed(i)) for i, f in enumerate(fast, 1)]
        finished, not_finished = wait([slow, *fast], timeout=0.2)
        for thread in threads:
            join(thread)
        assert not_finished == {slow}
        assert sorted(f.result() for f in finished) == [1, 2, 3]

    def test_wait_dedupes(self) -> None:
        """A future given twice counts once."""
        future, hung = done(), hanging()
        result = wait([future, future, hung, hung], timeout=0)
        assert result == ({future}, {hung})

    def test_as_completed(self) -> None:
        """Prefect: TestUtilityFunctions, same name."""
        futures = [done(i) for i in range(5)]
        yielded = list(as_completed(futures))
        assert sorted(f.result() for f in yielded) == list(range(5))
        for future in yielded:
            assert future.state.is_completed()

    def test_as_completed_with_timeout(self) -> None:
        """Prefect: TestUtilityFunctions, same name (behaviour 79). One hanging future among six:
        the five are yielded, then TimeoutError "1 (of 6) futures unfinished"."""
        futures = [done(i) for i in range(5)]
        futures.append(hanging())
        iterator = as_completed(futures, timeout=0.01)
        yielded = [next(iterator) for _ in range(5)]
        assert all(future.state.is_completed() for future in yielded)
        with pytest.raises(TimeoutError) as info:
            next(iterator)
        assert info.value.args[0] == "1 (of 6) futures unfinished"
        assert isinstance(info.value, WaitTimeoutError)

    def test_as_completed_with_timeout_from_worker_thread(self) -> None:
        """Prefect: TestUtilityFunctions, same name. The timeout holds when as_completed is consumed
        in another thread."""
        future = hanging()
        caught: list[BaseException] = []

        def consume() -> None:
            try:
                for _ in as_completed([future], timeout=0.05):
                    pass
            except BaseException as exc:
                caught.append(exc)

        join(run_in_thread(consume))
        assert len(caught) == 1
        assert isinstance(caught[0], TimeoutError)
        assert caught[0].args[0] == "1 (of 1) futures unfinished"

    def test_as_completed_with_zero_timeout_yields_completed_future(self) -> None:
        """Prefect: TestUtilityFunctions, same name. timeout=0 still yields a future whose wrapped
        future is done, though nothing has looked at it yet."""
        wrapped: Future[Any] = Future()
        wrapped.set_result(Completed(data=42))
        future = TaskRunFuture(uuid.uuid4(), wrapped)
        assert [f.result() for f in as_completed([future], timeout=0)] == [42]

    def test_as_completed_zero_timeout_then_raises(self) -> None:
        """timeout=0 yields the finished futures, then raises for the rest."""
        first, hung = done(1), hanging()
        iterator = as_completed([hung, first], timeout=0)
        assert next(iterator) is first
        with pytest.raises(TimeoutError, match=r"^1 \(of 2\) futures unfinished$"):
            next(iterator)

    def test_as_completed_yields_correct_order(self) -> None:
        """Prefect: TestUtilityFunctions, same name, without sleeps: finished futures first, then
        the rest in the order they finish, whatever the order they were given in."""
        first, second, third = hanging(), hanging(), hanging()
        finish(second, Completed("second"))
        iterator = as_completed([first, second, third])
        assert next(iterator) is second
        finish(third, Completed("third"))
        assert next(iterator) is third
        finish(first, Completed("first"))
        assert next(iterator) is first
        with pytest.raises(StopIteration):
            next(iterator)

    def test_as_completed_timeout(self) -> None:
        """Prefect: TestUtilityFunctions, same name. Two of three unfinished at the timeout: "2 (of
        3) futures unfinished"."""
        futures = [hanging(), hanging(), done(1)]
        iterator = as_completed(futures, timeout=0.05)
        assert next(iterator).result() == 1
        with pytest.raises(TimeoutError) as info:
            next(iterator)
        assert info.value.args[0] == "2 (of 3) futures unfinished"

    def test_as_completed_dedupes(self) -> None:
        """A future given twice is yielded once."""
        future, other = done(1), hanging()
        finish(other, Completed(2))
        assert len(list(as_completed([future, other, future, other]))) == 2


class TestFutureList:
    def test_is_a_list(self) -> None:
        """A FutureList is a list of futures."""
        futures = FutureList([done(1), done(2)])
        assert isinstance(futures, list)
        assert len(futures) == 2

    def test_wait(self) -> None:
        """Prefect: TestPrefectFutureList, same name."""
        futures = FutureList([done(i) for i in range(5)])
        futures.wait()
        for future in futures:
            assert future.state.is_completed()

    def test_result_with_negative_timeout_raises_value_error(self) -> None:
        """Prefect: TestPrefectFutureList, same name."""
        with pytest.raises(ValueError, match=NEGATIVE_TIMEOUT):
            FutureList([done(i) for i in range(5)]).result(timeout=-1)

    def test_wait_with_timeout(self) -> None:
        """Prefect: TestPrefectFutureList, same name. Neither raises nor hangs; the hanging future
        is reported as not done."""
        hung = hanging()
        futures = FutureList([*(done(i) for i in range(5)), hung])
        assert futures.wait(timeout=0.01).not_done == {hung}

    def test_results(self) -> None:
        """Prefect: TestPrefectFutureList, same name."""
        assert FutureList([done(i) for i in range(5)]).result() == [0, 1, 2, 3, 4]

    def test_results_with_failure(self) -> None:
        """Prefect: TestPrefectFutureList, same name."""
        failing = hanging()
        failing.wrapped_future.set_exception(ValueError("oops"))
        futures = FutureList([*(done(i) for i in range(5)), failing])
        with pytest.raises(ValueError, match="oops"):
            futures.result()

    def test_results_with_raise_on_failure_false(self) -> None:
        """Prefect: TestPrefectFutureList, same name (behaviour 80): the exception object takes the
        failed run's place."""
        failed = hanging()
        finish(failed, Failed(data=ValueError("oops")))
        results = FutureList([*(done(i) for i in range(5)), failed]).result(raise_on_failure=False)
        assert results[:5] == [0, 1, 2, 3, 4]
        assert isinstance(results[5], ValueError)

    def test_results_with_timeout(self) -> None:
        """Prefect: TestPrefectFutureList, same name."""
        failing = hanging()
        failing.wrapped_future.set_exception(TimeoutError("oops"))
        futures = FutureList([*(done(i) for i in range(5)), failing])
        with pytest.raises(TimeoutError):
            futures.result(timeout=0.01)

    def test_result_does_not_obscure_other_timeouts(self) -> None:
        """Prefect: TestPrefectFutureList, same name. A TimeoutError raised by a task passes through
        unchanged."""
        failed = hanging()
        finish(failed, Failed(data=TimeoutError("oops")))
        with pytest.raises(TimeoutError, match="oops") as info:
            FutureList([*(done(i) for i in range(5)), failed]).result(timeout=30)
        assert not isinstance(info.value, WaitTimeoutError)

    def test_result_timeout_covers_slow_result_retrieval(self) -> None:
        """Prefect: TestPrefectFutureList, same name. The timeout also bounds retrieving the
        results."""

        class SlowResultFuture(TaskRunFuture[Any]):
            def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
                time.sleep(0.2)
                return 42

        slow = SlowResultFuture(uuid.uuid4(), Future())
        finish(slow, Completed(42))
        with pytest.raises(
            TimeoutError,
            match=r"^Timed out waiting for all futures to complete within 0\.05 seconds$",
        ):
            FutureList([slow]).result(timeout=0.05)

    def test_result_timeout_raises_dedicated_message(self) -> None:
        """Prefect: TestPrefectFutureList, same name."""
        with pytest.raises(
            WaitTimeoutError,
            match=r"^Timed out waiting for all futures to complete within 0\.05 seconds$",
        ):
            FutureList([hanging()]).result(timeout=0.05)

    def test_result_fail_fast(self) -> None:
        """Prefect: TestPrefectFutureList, same name (behaviour 80). A failure is raised while an
        earlier future is still running (here: never finishes; without fail fast this would time out
        instead)."""
        slow, failing = hanging(), hanging()
        failing.wrapped_future.set_exception(ValueError("fast fail"))
        with pytest.raises(ValueError, match="fast fail"):
            FutureList([slow, failing]).result(timeout=30)

    def test_result_preserves_order(self) -> None:
        """Prefect: TestPrefectFutureList, same name (behaviour 80). Results come in the list's
        order, not the completion order."""
        first, second = hanging(), hanging()
        finish(second, Completed(data="second"))
        thread = run_in_thread(finish, first, Completed(data="first"))
        assert FutureList([first, second]).result(timeout=30) == ["first", "second"]
        join(thread)

    def test_result_with_duplicate_futures(self) -> None:
        """Prefect: TestPrefectFutureList, same name (behaviour 80). A future listed twice fills
        both places."""
        twice = done(42)
        assert FutureList([twice, done(1), twice]).result() == [42, 1, 42]

    def test_empty(self) -> None:
        """An empty list has no results and nothing to wait for."""
        assert FutureList([]).result(timeout=0) == []
        assert FutureList([]).wait(timeout=0) == (set(), set())


@dataclass
class Foo:
    a: int
    foo: Any
    b: int = 2


@dataclass
class Nested:
    foo: Any
    nested_list: list[Any]
    nested_dict: dict[str, Any]
    derived: int = field(init=False, default=0)


Point = namedtuple("Point", ["x", "y"])


class TestResolveFuturesToStates:
    def test_resolve_futures_transforms_future(self) -> None:
        """Prefect: TestResolveFuturesToStates, same name."""
        assert resolve_futures_to_states(done()).is_completed()

    def test_resolve_futures_to_states_with_no_futures(self) -> None:
        """Prefect: TestResolveFuturesToStates, same name. Without futures the very same object
        comes back."""
        expr = [1, 2, 3]
        assert resolve_futures_to_states(expr) is expr

    @pytest.mark.parametrize("kind", [list, tuple, set, frozenset])
    def test_resolve_futures_transforms_future_in_listlike_type(self, kind: type) -> None:
        """Prefect: TestResolveFuturesToStates, same name."""
        future = done("foo")
        result = resolve_futures_to_states(kind(["a", future, "b"]))
        assert result == kind(["a", future.state, "b"])
        assert type(result) is kind

    @pytest.mark.parametrize("kind", [dict, OrderedDict])
    def test_resolve_futures_transforms_future_in_dictlike_type(self, kind: type) -> None:
        """Prefect: TestResolveFuturesToStates, same name. Keys and values are resolved."""
        key_future, value_future = done("foo"), done("bar")
        result = resolve_futures_to_states(kind([("a", 1), (key_future, value_future), ("b", 2)]))
        assert result == kind([("a", 1), (key_future.state, value_future.state), ("b", 2)])
        assert type(result) is kind

    def test_resolve_futures_transforms_future_in_dataclass(self) -> None:
        """Prefect: TestResolveFuturesToStates, same name."""
        future = done("bar")
        assert resolve_futures_to_states(Foo(a=1, foo=future)) == Foo(a=1, foo=future.state, b=2)

    def test_resolves_futures_in_nested_collections(self) -> None:
        """Prefect: TestResolveFuturesToStates, same name."""
        future = done("bar")
        assert resolve_futures_to_states(
            Nested(foo=future, nested_list=[[future]], nested_dict={"key": [future]})
        ) == Nested(
            foo=future.state, nested_list=[[future.state]], nested_dict={"key": [future.state]}
        )

    def test_resolve_futures_to_states_downcasts_future_list(self) -> None:
        """Prefect: TestResolveFuturesToStates, same name with ``prefect_future_list``
        (PrefectHQ/prefect#21220). A FutureList comes back as a plain list."""
        future = done("foo")
        result = resolve_futures_to_states(FutureList([future, future]))
        assert type(result) is list
        assert result == [future.state, future.state]

    def test_waits_for_unfinished_futures(self) -> None:
        """Unfinished futures are waited for."""
        future = hanging()
        thread = run_in_thread(finish, future, Completed(1))
        states = resolve_futures_to_states([future])
        join(thread)
        assert states[0].is_completed()

    def test_failed_future_gives_its_state(self) -> None:
        """A failed future resolves to its Failed state; nothing is raised."""
        future = TaskRunFuture.completed(Failed(ValueError("x")))
        assert resolve_futures_to_states({"f": future})["f"].is_failed()


class TestResolveFuturesToResults:
    def test_resolve_futures_to_results_with_no_futures(self) -> None:
        """Prefect: TestResolveFuturesToResults, same name."""
        expr = [1, 2, 3]
        assert resolve_futures_to_results(expr) is expr

    @pytest.mark.parametrize("kind", [list, tuple, set, frozenset])
    def test_resolve_futures_transforms_future_in_listlike_type(self, kind: type) -> None:
        """Prefect: TestResolveFuturesToResults, same name."""
        assert resolve_futures_to_results(kind(["a", done("foo"), "b"])) == kind(["a", "foo", "b"])

    @pytest.mark.parametrize("kind", [dict, OrderedDict])
    def test_resolve_futures_transforms_future_in_dictlike_type(self, kind: type) -> None:
        """Prefect: TestResolveFuturesToResults, same name."""
        result = resolve_futures_to_results(kind([("a", 1), (done("foo"), done("bar")), ("b", 2)]))
        assert result == kind([("a", 1), ("foo", "bar"), ("b", 2)])

    def test_resolve_futures_transforms_future_in_dataclass(self) -> None:
        """Prefect: TestResolveFuturesToResults, same name."""
        assert resolve_futures_to_results(Foo(a=1, foo=done("bar"))) == Foo(a=1, foo="bar", b=2)

    def test_resolves_futures_in_nested_collections(self) -> None:
        """Prefect: TestResolveFuturesToResults, same name."""
        future = done("bar")
        assert resolve_futures_to_results(
            Nested(foo=future, nested_list=[[future]], nested_dict={"key": [future]})
        ) == Nested(foo="bar", nested_list=[["bar"]], nested_dict={"key": ["bar"]})

    def test_resolve_futures_to_results_downcasts_future_list(self) -> None:
        """Prefect: TestResolveFuturesToResults, same name with ``prefect_future_list``
        (PrefectHQ/prefect#21220)."""
        future = done("foo")
        result = resolve_futures_to_results(FutureList([future, future]))
        assert type(result) is list
        assert result == ["foo", "foo"]

    def test_more_containers(self) -> None:
        """Named tuples stay named tuples, a defaultdict keeps its factory, a dataclass field
        that is not an init argument keeps its value, and parts without futures are the same
        objects."""
        untouched = [1, [2]]
        nested = Nested(foo=done(1), nested_list=untouched, nested_dict={})
        object.__setattr__(nested, "derived", 5)
        counts: defaultdict[str, Any] = defaultdict(int, {"n": done(3)})
        result = resolve_futures_to_results(
            {"point": Point(done(1), 2), "counts": counts, "nested": nested}
        )
        assert result["point"] == Point(1, 2)
        assert type(result["point"]) is Point
        assert result["counts"] == {"n": 3}
        assert result["counts"]["missing"] == 0
        assert result["nested"].foo == 1
        assert result["nested"].nested_list is untouched

    def test_self_referencing_structure(self) -> None:
        """A structure that contains itself is not walked forever."""
        loop: list[Any] = [done(1)]
        loop.append(loop)
        result = resolve_futures_to_results(loop)
        assert result[0] == 1
        assert result[1] is loop

    def test_resolve_futures_to_data_is_an_alias(self) -> None:
        """resolve_futures_to_data (seed 003) is resolve_futures_to_results."""
        assert resolve_futures_to_data is resolve_futures_to_results
        assert resolve_futures_to_data({"x": done(5)}) == {"x": 5}

    def test_failed_upstream(self) -> None:
        """A failed future raises UpstreamTaskError naming the run and its state, chained to
        the run's exception."""
        error = ValueError("bad input")
        future = TaskRunFuture.completed(Failed(error), name="load")
        with pytest.raises(UpstreamTaskError) as info:
            resolve_futures_to_results([done(1), {"x": future}])
        message = str(info.value)
        assert message == (
            f"Upstream task run 'load' ({future.task_run_id}) did not reach a 'COMPLETED' "
            "state: it is Failed."
        )
        assert info.value.__cause__ is error
        assert info.value.upstream_state is future.state

    def test_cancelled_upstream(self) -> None:
        """A cancelled future raises UpstreamTaskError too."""
        future = TaskRunFuture.completed(Cancelled())
        with pytest.raises(UpstreamTaskError, match="it is Cancelled"):
            resolve_futures_to_results([future])

    def test_failed_upstream_is_reported_without_waiting_for_others(self) -> None:
        """A failure is raised while another future is still unfinished (here: never
        finishes, so waiting for it would hang into the hang guard)."""
        failed = TaskRunFuture.completed(Failed(ValueError()))
        with pytest.raises(UpstreamTaskError):
            resolve_futures_to_results([hanging(), failed])

    def test_state_objects_are_left_alone(self) -> None:
        """Only futures are resolved; a State in the structure stays a State."""
        state: State[Any] = Completed(1)
        assert resolve_futures_to_results([state, done(2)]) == [state, 2]
