"""Task runners: where submitted task runs execute.

A runner is a context manager. Entering it starts its workers; :meth:`TaskRunner.submit` hands
it a call, a function of no arguments that runs one task run and returns its final
:class:`~sqlresults.states.State`, and returns a :class:`~sqlresults.futures.TaskRunFuture`;
leaving it waits for everything submitted, then stops the workers::

    with ThreadPoolTaskRunner(max_workers=4) as runner:
        future = runner.submit(call, task_run_id=run_id, name="load")
        future.result()

- :class:`ThreadPoolTaskRunner` (the default) runs calls in worker threads, each inside a copy
  of the submitter's :mod:`contextvars` context, so the run context flows into the workers.
- ``DaskTaskRunner`` (the ``dask`` extra; :mod:`sqlresults.dask_runner`) runs calls on a
  dask.distributed cluster. It is loaded on first use of the name, so importing sqlresults
  never imports dask.
- :class:`ProcessPoolTaskRunner` runs calls in worker processes started with *spawn*. The call
  is cloudpickled (the engine makes it carry the task, its parameters, the picklable
  ``ResultStore`` and a snapshot of the run context) and so is the state it returns. Results
  and locks are shared through the database, so a SERIALIZABLE task computes once across the
  pool. A worker process that dies gives its runs a ``FAILED`` state named ``"Crashed"``
  (:class:`~sqlresults.states.CrashedRun`) and the pool is started afresh for later runs.

A call that raises instead of returning a state gives a ``Failed`` state holding the
exception; one that returns something else gives a ``Completed`` state holding it.

``submit(..., wait_for=[futures])`` starts the call only once those futures are final,
whatever their states (the call decides what an upstream failure means, e.g. through
:func:`~sqlresults.futures.resolve_futures_to_results`). Until then it holds no worker. For a
process pool this is also how a call may carry futures: a finished future pickles, an
unfinished one refuses (PrefectHQ/prefect#19113).

Nested submission never deadlocks:

- Thread pool: a worker thread that waits (``future.wait()``/``result()``, :func:`wait`,
  :func:`as_completed`, ``FutureList.result()``, ``resolve_futures_to_*``) for a call of its
  own runner that no worker has started takes it off the queue and runs it itself. A task that
  submits to its own runner and waits can therefore not starve the pool, even with
  ``max_workers=1`` or deep recursion, and no more than ``max_workers`` calls run at once
  (Prefect hangs: PrefectHQ/prefect#17060, #14194). Waiting for another runner's work blocks
  as usual; that runner's own workers run it.
- Process pool: a worker process cannot reach its parent's pool. A
  :class:`ProcessPoolTaskRunner` used inside one of its worker processes (a copy pickled along
  with a call, entered or not) runs each submitted call at once, inline, in the submitting
  thread, and returns a finished future.

Leaving a runner by an exception (the flow failed, Ctrl-C) cancels the calls that have not
started (their futures become ``Cancelled``) and waits only for the running ones, as Prefect's
``cancel_all`` does.
"""

from __future__ import annotations

import abc
import concurrent.futures
import contextvars
import os
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from sqlresults.errors import CrashedRun, InvalidArgumentError, SerializationError
from sqlresults.futures import TaskRunFuture
from sqlresults.states import Cancelled, Completed, Failed, State

if TYPE_CHECKING:  # imported when a process pool starts: multiprocessing costs import time
    from concurrent.futures import ProcessPoolExecutor

# DaskTaskRunner is defined in sqlresults.dask_runner and loaded by __getattr__ below.
__all__ = [
    "DaskTaskRunner",  # noqa: F822
    "ProcessPoolTaskRunner",
    "TaskRunner",
    "ThreadPoolTaskRunner",
]

Call = Callable[[], State[Any]]

# Which runner's worker the current thread is (set once per worker thread): a thread only runs
# inline the unstarted work of the runner it works for, so other runners keep their parallelism.
_worker = threading.local()

# True in a ProcessPoolTaskRunner worker process, once it has received its first call.
_in_process_worker = False


def _failed(exc: BaseException) -> State[Any]:
    """The ``Failed`` state of a run that raised ``exc`` (Prefect's message)."""
    return Failed(exc, message=f"Task run encountered an exception {type(exc).__name__}: {exc}")


def _run_call(call: Callable[[], Any]) -> State[Any]:
    """Run ``call`` and make its outcome a state (a call that raises gives ``Failed``)."""
    try:
        outcome = call()
    except BaseException as exc:  # the call's failure is the run's state, whatever it is
        return _failed(exc)
    return outcome if isinstance(outcome, State) else Completed(outcome)


def _check_max_workers(max_workers: int | None, default: int) -> int:
    if max_workers is None:
        return default
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise InvalidArgumentError(f"max_workers must be a positive integer, not {max_workers!r}.")
    return max_workers


class _Submission:
    """One submitted call: what to run, the future to complete, its upstream futures, and a
    claim that makes sure exactly one thread runs (or cancels) it."""

    def __init__(
        self,
        call: Call,
        future: concurrent.futures.Future[State[Any]],
        task_run_id: uuid.UUID,
        name: str | None,
        wait_for: tuple[TaskRunFuture[Any], ...],
        owner: object = None,
        context: contextvars.Context | None = None,
    ) -> None:
        self.call = call
        self.future = future
        self.task_run_id = task_run_id
        # For messages: the name and the id, or the id alone.
        self.label = f"{name!r} ({task_run_id})" if name else str(task_run_id)
        self.wait_for = wait_for
        self.owner = owner
        self.context = context
        self._claimed = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """Take the call for running or cancelling; False if someone already did."""
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def cancel(self) -> None:
        """Cancel the call if nobody has taken it."""
        if self.claim():
            self.future.cancel()

    def run_inline(self) -> bool:
        """:class:`~sqlresults.futures.InlineWork`: run here if this thread is a worker of the
        call's runner and nobody has taken the call."""
        if self.owner is None or getattr(_worker, "owner", None) is not self.owner:
            return False
        if not self.claim():
            return False
        self.execute()
        return True

    def execute(self) -> None:
        """Run the claimed call in this thread and complete its future."""
        for upstream in self.wait_for:
            upstream.wait()
        if not self.future.set_running_or_notify_cancel():
            return
        # (An empty Context is falsy, so test for None.)
        context = self.context if self.context is not None else contextvars.copy_context()
        self.future.set_result(_run_call(partial(context.run, self.call)))


class TaskRunner(abc.ABC):
    """Runs submitted calls and hands out futures for them; a context manager.

    Entering starts the workers; leaving waits for every submitted call (or, when leaving by
    an exception, cancels those not started and waits for the running ones), then stops the
    workers. A runner can be entered again after it was left. Runners compare equal when they
    are of the same type and configuration, and pickle as a fresh, unentered runner with that
    configuration.

    Args:
        max_workers: The most calls run at once.
    """

    #: Whether calls run in other processes: what they carry must then be picklable (the
    #: submitting flow's context travels without its task runner).
    crosses_processes: ClassVar[bool] = False

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._started = False
        self._condition = threading.Condition()
        self._pending: set[_Submission] = set()

    @property
    def name(self) -> str:
        """The runner's short name (Prefect's): ``"threadpool"``, ``"processpool"``."""
        return type(self).__name__.lower().replace("taskrunner", "")

    @property
    def max_workers(self) -> int:
        """The most calls run at once."""
        return self._max_workers

    def duplicate(self) -> Self:
        """A new, unentered runner with the same configuration (for a subflow)."""
        return type(self)(max_workers=self._max_workers)

    @abc.abstractmethod
    def submit(
        self,
        call: Call,
        *,
        task_run_id: uuid.UUID,
        name: str | None = None,
        wait_for: Iterable[TaskRunFuture[Any]] = (),
    ) -> TaskRunFuture[Any]:
        """Run ``call`` on a worker, once every future in ``wait_for`` is final.

        Args:
            call: Runs one task run and returns its final state. An exception it raises
                gives a ``Failed`` state, a value that is no state a ``Completed`` one. A
                call may also have a ``result_store()`` method returning the
                :class:`~sqlresults.results.ResultStore` its run persists to (the task
                engine's calls do); a runner that moves results between machines may then
                send a large persisted result as a reference to its record.
            task_run_id: The run's id (the future's ``task_run_id``).
            name: The run's name, for messages.
            wait_for: Futures that must be final (in any state) before the call starts.

        Returns:
            The run's future.

        Raises:
            RuntimeError: The runner is not entered (``Task runner is not started``).
        """

    def __enter__(self) -> Self:
        if self._started:
            raise RuntimeError("This task runner is already started")
        self._start()
        self._started = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._stop(cancel=exc_type is not None)
        finally:
            self._started = False

    @abc.abstractmethod
    def _start(self) -> None:
        """Start the workers."""

    @abc.abstractmethod
    def _stop(self, cancel: bool) -> None:
        """Wait for the submitted calls (cancelling the unstarted ones if ``cancel``), then
        stop the workers."""

    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError(
                f"Task runner is not started: enter it (`with {type(self).__name__}() as "
                "runner:`) before submitting work."
            )

    def _track(self, submission: _Submission, dispatch: Callable[[_Submission], None]) -> None:
        """Count ``submission`` as pending until its future is done, and ``dispatch`` it once
        its upstream futures are final."""
        with self._condition:
            self._pending.add(submission)
        submission.future.add_done_callback(lambda _: self._untrack(submission))
        upstreams = [future for future in dict.fromkeys(submission.wait_for) if not future.done()]
        if not upstreams:
            dispatch(submission)
            return
        remaining = [len(upstreams)]
        lock = threading.Lock()

        def upstream_done(_: TaskRunFuture[Any]) -> None:
            with lock:
                remaining[0] -= 1
                ready = remaining[0] == 0
            if ready:
                dispatch(submission)

        for upstream in upstreams:
            upstream.add_done_callback(upstream_done)

    def _untrack(self, submission: _Submission) -> None:
        with self._condition:
            self._pending.discard(submission)
            self._condition.notify_all()

    def _cancel_unstarted(self) -> None:
        with self._condition:
            pending = list(self._pending)
        for submission in pending:
            submission.cancel()

    def _wait_for_pending(self) -> None:
        with self._condition:
            while self._pending:
                self._condition.wait()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskRunner) or type(other) is not type(self):
            return NotImplemented
        return self._max_workers == other._max_workers

    def __hash__(self) -> int:
        return hash((type(self), self._max_workers))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self._max_workers,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_workers={self._max_workers})"


def _become_worker(owner: object) -> None:
    _worker.owner = owner


class ThreadPoolTaskRunner(TaskRunner):
    """Runs calls in a pool of worker threads (the default runner).

    Each call runs inside a copy of the submitter's :mod:`contextvars` context. A worker that
    waits for an unstarted call of this runner runs it itself (see the module docstring), so
    nested submission never deadlocks the pool and at most ``max_workers`` calls run at once.

    Args:
        max_workers: The number of worker threads; default ``min(32, cpu_count + 4)``, as
            :class:`concurrent.futures.ThreadPoolExecutor`. (Prefect's default is unbounded,
            to dodge the nested-submission deadlock this runner does not have.)

    Raises:
        InvalidArgumentError: ``max_workers`` is not a positive integer.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(_check_max_workers(max_workers, min(32, (os.cpu_count() or 1) + 4)))
        self._executor: ThreadPoolExecutor | None = None
        self._owner: object = None

    def submit(
        self,
        call: Call,
        *,
        task_run_id: uuid.UUID,
        name: str | None = None,
        wait_for: Iterable[TaskRunFuture[Any]] = (),
    ) -> TaskRunFuture[Any]:
        """Run ``call`` in a worker thread, in a copy of the calling thread's context, once
        every future in ``wait_for`` is final (see :meth:`TaskRunner.submit`)."""
        self._check_started()
        future: concurrent.futures.Future[State[Any]] = concurrent.futures.Future()
        submission = _Submission(
            call,
            future,
            task_run_id,
            name,
            tuple(wait_for),
            owner=self._owner,
            context=contextvars.copy_context(),
        )
        self._track(submission, self._dispatch)
        return TaskRunFuture(task_run_id, future, name=name, work=submission)

    def _dispatch(self, submission: _Submission) -> None:
        # The executor outlives every pending submission (_stop waits for them), so a missing
        # or shut down one means the runner was left by an error and cancelled the submission.
        executor = self._executor
        if executor is None:
            return
        try:
            executor.submit(self._execute, submission)
        except RuntimeError:
            submission.cancel()

    @staticmethod
    def _execute(submission: _Submission) -> None:
        # A call a waiting worker already ran (or the runner cancelled) leaves a stale entry
        # in the executor's queue; it costs one failed claim.
        if submission.claim():
            submission.execute()

    def _start(self) -> None:
        # A new owner per entry: worker threads of an earlier entry are gone, and a duplicate
        # (a subflow's runner) has workers of its own.
        self._owner = object()
        self._executor = ThreadPoolExecutor(
            max_workers=self._max_workers,
            thread_name_prefix="sqlresults-worker",
            initializer=_become_worker,
            initargs=(self._owner,),
        )

    def _stop(self, cancel: bool) -> None:
        if cancel:
            self._cancel_unstarted()
        self._wait_for_pending()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class _RemoteTraceback(Exception):  # noqa: N818 (concurrent.futures' name)
    """The traceback of an exception raised in a worker process, attached as its
    ``__cause__`` (what :mod:`concurrent.futures` does), since tracebacks do not pickle."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def _run_in_worker_process(payload: bytes) -> bytes:
    """Run a cloudpickled call in a worker process; return its state (and the formatted
    traceback of a failure) cloudpickled. Never raises: every failure becomes a state."""
    global _in_process_worker
    _in_process_worker = True
    import cloudpickle

    try:
        call = cloudpickle.loads(payload)
    except BaseException as exc:
        state = Failed(
            SerializationError(f"The worker process could not unpickle the call: {exc!r}"),
            message=f"The worker process could not unpickle the call: {exc!r}",
        )
    else:
        state = _run_call(call)
    error = state.data if isinstance(state.data, BaseException) else None
    remote = "".join(traceback.format_exception(error)) if error is not None else None
    try:
        result: bytes = cloudpickle.dumps((state, remote))
    except Exception as exc:
        message = (
            f"The state of the run ({state.name}) could not be pickled to send it back from "
            f"the worker process: {exc!r}"
        )
        result = cloudpickle.dumps((Failed(SerializationError(message), message=message), remote))
    return result


def _load_state(payload: bytes) -> State[Any]:
    import cloudpickle

    state, remote = cloudpickle.loads(payload)
    if remote is not None and isinstance(state.data, BaseException):
        state.data.__cause__ = _RemoteTraceback(remote)
    assert isinstance(state, State)
    return state


class ProcessPoolTaskRunner(TaskRunner):
    """Runs calls in a pool of worker processes, started with *spawn*.

    The call is cloudpickled on a dispatcher thread (so ``submit`` never blocks on it), run in a
    worker process, and its state comes back cloudpickled; a failed run's exception carries
    the worker's traceback as its ``__cause__``. A call that cannot be pickled, or whose state
    cannot, gives a ``Failed`` state holding a
    :class:`~sqlresults.errors.SerializationError`. A worker process that dies (killed,
    ``os._exit``, out of memory) fails every run queued or running in the pool at that moment
    with a ``Crashed`` state (:class:`~sqlresults.states.CrashedRun`), as
    :class:`concurrent.futures.ProcessPoolExecutor` cannot tell which run killed it; later
    runs get a fresh pool.

    Inside one of its worker processes, the runner (a pickled copy) runs each submitted call
    inline and returns a finished future (see the module docstring).

    Args:
        max_workers: The number of worker processes; default ``os.cpu_count()``.

    Raises:
        InvalidArgumentError: ``max_workers`` is not a positive integer.
    """

    crosses_processes: ClassVar[bool] = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(_check_max_workers(max_workers, os.cpu_count() or 1))
        self._executor: ProcessPoolExecutor | None = None
        self._broken: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []
        self._dispatcher: ThreadPoolExecutor | None = None

    def submit(
        self,
        call: Call,
        *,
        task_run_id: uuid.UUID,
        name: str | None = None,
        wait_for: Iterable[TaskRunFuture[Any]] = (),
    ) -> TaskRunFuture[Any]:
        """Run ``call`` in a worker process once every future in ``wait_for`` is final (see
        :meth:`TaskRunner.submit`); inside a worker process, run it now, inline.

        The call is pickled when it is sent, after ``wait_for`` is final, so it may carry
        those futures."""
        if _in_process_worker:
            return self._run_inline(call, task_run_id, name, tuple(wait_for))
        self._check_started()
        future: concurrent.futures.Future[State[Any]] = concurrent.futures.Future()
        submission = _Submission(call, future, task_run_id, name, tuple(wait_for))
        self._track(submission, self._dispatch)
        return TaskRunFuture(task_run_id, future, name=name)

    @staticmethod
    def _run_inline(
        call: Call,
        task_run_id: uuid.UUID,
        name: str | None,
        wait_for: tuple[TaskRunFuture[Any], ...],
    ) -> TaskRunFuture[Any]:
        future: concurrent.futures.Future[State[Any]] = concurrent.futures.Future()
        submission = _Submission(call, future, task_run_id, name, wait_for)
        submission.claim()
        submission.execute()
        return TaskRunFuture(task_run_id, future, name=name)

    def _dispatch(self, submission: _Submission) -> None:
        dispatcher = self._dispatcher
        if dispatcher is None:  # the runner was left by an error and cancelled the submission
            return
        try:
            dispatcher.submit(self._send, submission)
        except RuntimeError:  # shut down: the runner is being left by an error
            submission.cancel()

    def _send(self, submission: _Submission) -> None:
        """Pickle the call and hand it to the pool (on the dispatcher thread)."""
        if not submission.claim() or not submission.future.set_running_or_notify_cancel():
            return
        import cloudpickle

        try:
            payload = cloudpickle.dumps(submission.call)
        except Exception as exc:
            message = (
                f"Task run {submission.label} cannot be sent to a worker process: its call "
                f"could not be pickled with cloudpickle: {exc!r}"
            )
            failure = SerializationError(message)
            failure.__cause__ = exc
            submission.future.set_result(Failed(failure, message=message))
            return
        executor = self._live_executor()
        try:
            process_future = executor.submit(_run_in_worker_process, payload)
        except BrokenExecutor:  # the pool broke before a finished run told us
            self._broken = executor
            executor = self._live_executor()
            process_future = executor.submit(_run_in_worker_process, payload)
        process_future.add_done_callback(partial(self._receive, submission, executor))

    def _live_executor(self) -> ProcessPoolExecutor:
        """The pool, started afresh if the current one broke (dispatcher thread only)."""
        assert self._executor is not None
        if self._executor is self._broken:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._retired.append(self._executor)
            self._executor = self._new_pool()
        return self._executor

    def _receive(
        self,
        submission: _Submission,
        executor: ProcessPoolExecutor,
        process_future: concurrent.futures.Future[bytes],
    ) -> None:
        """Complete the run's future from the pool's (on the pool's result thread)."""
        state: State[Any]
        try:
            payload = process_future.result()
        except concurrent.futures.CancelledError:
            state = Cancelled(message="Task run was cancelled before it started.")
        except BrokenExecutor as exc:  # BrokenProcessPool
            self._broken = executor
            message = (
                f"Task run {submission.label} crashed: a worker process of the pool died "
                "abruptly (killed, os._exit, out of memory) while this run was queued or "
                f"running in the pool ({exc}). Later runs get a fresh pool."
            )
            crash = CrashedRun(message)
            crash.__cause__ = exc
            state = Failed(crash, name="Crashed", message=message)
        except BaseException as exc:
            state = _failed(exc)
        else:
            try:
                state = _load_state(payload)
            except Exception as exc:
                message = (
                    f"The state of task run {submission.label} could not be unpickled in "
                    f"the parent process: {exc!r}"
                )
                failure = SerializationError(message)
                failure.__cause__ = exc
                state = Failed(failure, message=message)
        submission.future.set_result(state)

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=self._max_workers, mp_context=multiprocessing.get_context("spawn")
        )

    def _start(self) -> None:
        self._broken = None
        self._retired = []
        self._executor = self._new_pool()
        self._dispatcher = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sqlresults-process-dispatch"
        )

    def _stop(self, cancel: bool) -> None:
        assert self._executor is not None
        assert self._dispatcher is not None
        if cancel:
            # Stop sending, drop what was not sent, then what the pool has not started.
            self._dispatcher.shutdown(wait=True, cancel_futures=True)
            self._cancel_unstarted()
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._wait_for_pending()
        self._dispatcher.shutdown(wait=True)
        for executor in [*self._retired, self._executor]:
            executor.shutdown(wait=True)
        self._executor = self._dispatcher = self._broken = None
        self._retired = []


def __getattr__(name: str) -> Any:
    """Load ``DaskTaskRunner`` (and dask) only when it is asked for."""
    if name == "DaskTaskRunner":
        from sqlresults.dask_runner import DaskTaskRunner

        return DaskTaskRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
