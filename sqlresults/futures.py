"""Futures: handles on submitted task runs, and ways to wait for many of them.

``task.submit()`` (and a task runner's ``submit``) returns a :class:`TaskRunFuture`. It wraps a
:class:`concurrent.futures.Future` whose result is the run's final
:class:`~sqlresults.states.State`::

    future = runner.submit(call, task_run_id=run_id)
    future.state                  # Pending / Running until final, then the final state
    future.wait(0.1)              # the final state, or None if 0.1 s passed first
    future.result()               # the value; a failed run's exception is raised
    future.result(raise_on_failure=False)    # ... or returned

Many at once, with Prefect's semantics and messages (reference §8): :func:`wait` gives
``(done, not_done)``; :func:`as_completed` yields futures as they finish; :class:`FutureList`
(what ``.map()`` returns) has ``.wait()`` and ``.result()`` (fail fast, original order);
:func:`resolve_futures_to_results` replaces the futures inside nested lists, tuples, sets,
dicts and dataclasses by their results.

Nested waiting does not deadlock. A runner's worker thread that waits here for work of its own
runner that no worker has started yet runs that work itself, in its own thread, instead of
blocking (work stealing; the runner says how through :class:`InlineWork`). So a task that
submits to its own runner and waits never starves it, even with ``max_workers=1`` (Prefect
hangs there: PrefectHQ/prefect#17060). Such inline work cannot be interrupted, so for a worker
thread a timeout bounds the waiting for work that other threads run, not work it runs itself.

Where sqlresults differs from Prefect: ``TaskRunFuture.wait(timeout)`` returns the final state
or None (seed 003) where Prefect's returns None; ``resolve_futures_to_results`` raises
:class:`~sqlresults.errors.UpstreamTaskError` (Prefect: a bare ``Exception``) and checks the
futures in completion order, so a failure is reported without waiting for slower ones;
``resolve_futures_to_data`` (seed 003, Prefect 2) is its alias; a finished future pickles as a
finished future (an unfinished one refuses), so a task sent to a worker process may carry the
futures it depends on once they are done.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from sqlresults.errors import InvalidArgumentError, UpstreamTaskError, WaitTimeoutError
from sqlresults.states import (
    Cancelled,
    Completed,
    Failed,
    Pending,
    Running,
    State,
)

__all__ = [
    "DoneAndNotDoneFutures",
    "FutureList",
    "InlineWork",
    "TaskRun",
    "TaskRunFuture",
    "as_completed",
    "collect_futures",
    "resolve_futures_to_data",
    "resolve_futures_to_results",
    "resolve_futures_to_states",
    "wait",
]

R = TypeVar("R")
logger = logging.getLogger("sqlresults.futures")


class InlineWork(Protocol):
    """What a task runner attaches to a future so that waiting may run the work instead.

    Runners implement it; users never call it.
    """

    def run_inline(self) -> bool:
        """Run the work in the calling thread if that thread is a worker of the work's runner
        and nobody has started the work; return whether it ran (it is then finished)."""
        ...


def _check_timeout(timeout: float | None) -> float | None:
    """Prefect's check and message for a ``timeout`` in seconds."""
    if timeout is not None and timeout < 0:
        raise InvalidArgumentError(f"'timeout' must be a non-negative number, got {timeout}")
    return timeout


@dataclasses.dataclass(frozen=True)
class TaskRun:
    """What a future knows of its run (``future.task_run``).

    Attributes:
        id: The task run id.
        name: The run's name, for messages and reprs.
    """

    id: uuid.UUID
    name: str


class TaskRunFuture(Generic[R]):
    """A handle on a submitted task run.

    It wraps a :class:`concurrent.futures.Future` whose result is the run's final
    :class:`~sqlresults.states.State`. A wrapped future that raises gives a ``Failed`` state
    holding the exception, one that was cancelled a ``Cancelled`` state, and one whose result
    is not a state a ``Completed`` state holding it. Futures compare by identity.

    Args:
        task_run_id: The run's id.
        wrapped_future: The future the runner completes with the final state.
        name: The run's name, for messages (default: from the id).
        work: Given by a runner whose worker threads may run this work themselves when they
            wait for it (see the module docstring); None otherwise.
    """

    def __init__(
        self,
        task_run_id: uuid.UUID,
        wrapped_future: concurrent.futures.Future[Any],
        *,
        name: str | None = None,
        work: InlineWork | None = None,
    ) -> None:
        self._task_run = TaskRun(task_run_id, name or f"task-run-{str(task_run_id)[:8]}")
        self._wrapped = wrapped_future
        self._work = work
        self._final_state: State[R] | None = None
        self._lock = threading.Lock()
        self._notified = False
        # Waiters (wait, as_completed) are told before user callbacks run, so a callback that
        # raises cannot keep them waiting (PrefectHQ/prefect's "private completion callback").
        self._internal_callbacks: list[Callable[[TaskRunFuture[R]], None]] = []
        self._callbacks: list[Callable[[TaskRunFuture[R]], object]] = []
        wrapped_future.add_done_callback(self._on_wrapped_done)

    @classmethod
    def completed(
        cls,
        state: State[R],
        *,
        task_run_id: uuid.UUID | None = None,
        name: str | None = None,
    ) -> TaskRunFuture[R]:
        """A future that is already final, for a run decided without a runner (a cache hit
        found before submission, or work run inline).

        Args:
            state: The final state.
            task_run_id: The run's id (default: the state's, else a new one).
            name: The run's name.

        Raises:
            InvalidArgumentError: ``state`` is not final.
        """
        if not state.is_final():
            raise InvalidArgumentError(f"A completed future needs a final state, not {state!r}.")
        wrapped: concurrent.futures.Future[State[R]] = concurrent.futures.Future()
        wrapped.set_result(state)
        run_id = task_run_id or state.task_run_id or uuid.uuid4()
        return cls(run_id, wrapped, name=name)

    @property
    def task_run_id(self) -> uuid.UUID:
        """The id of the run."""
        return self._task_run.id

    @property
    def task_run(self) -> TaskRun:
        """The run: ``.id`` and ``.name``."""
        return self._task_run

    @property
    def wrapped_future(self) -> concurrent.futures.Future[Any]:
        """The :class:`concurrent.futures.Future` this future wraps."""
        return self._wrapped

    @property
    def state(self) -> State[R]:
        """The run's state now: the final state once there is one, else ``Running`` (a worker
        has it) or ``Pending``. Never waits."""
        if self._final_state is not None:
            return self._final_state
        if self._wrapped.done():
            return self._settle()
        if self._wrapped.running():
            return Running(task_run_id=self.task_run_id)
        return Pending(task_run_id=self.task_run_id)

    def get_state(self) -> State[R]:
        """The run's state now (the :attr:`state` property). Never waits."""
        return self.state

    def done(self) -> bool:
        """Whether the run is final."""
        return self._final_state is not None or self._wrapped.done()

    def wait(self, timeout: float | None = None) -> State[R] | None:
        """Wait for the run to finish.

        Args:
            timeout: The most seconds to wait; None waits as long as it takes.

        Returns:
            The final state, or None if ``timeout`` seconds passed first (never raises on
            timeout).

        Raises:
            InvalidArgumentError: ``timeout`` is negative (a ``ValueError``).
        """
        _check_timeout(timeout)
        if not self.done():
            self._run_inline()
            concurrent.futures.wait([self._wrapped], timeout=timeout)
            if not self._wrapped.done():
                return None
        return self._settle()

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """Wait for the run to finish and return its result.

        Args:
            timeout: The most seconds to wait; None waits as long as it takes.
            raise_on_failure: For a failed or cancelled run, raise its exception (True) or
                return it (False).

        Returns:
            The run's result (see :meth:`sqlresults.states.State.result`).

        Raises:
            WaitTimeoutError: The run did not finish within ``timeout`` seconds (a
                ``TimeoutError``; Prefect's message, ``Task run {id} did not complete within
                {timeout} seconds``).
            InvalidArgumentError: ``timeout`` is negative.
            BaseException: With ``raise_on_failure``, the failed run's exception, with its
                original traceback.
        """
        state = self.wait(timeout)
        if state is None:
            raise WaitTimeoutError(
                f"Task run {self.task_run_id} did not complete within {timeout} seconds"
            )
        return state.result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, fn: Callable[[TaskRunFuture[R]], object]) -> None:
        """Call ``fn(self)`` once the run is final, or now if it already is.

        ``fn`` runs in the thread that finishes the run (or the calling thread). An
        ``Exception`` it raises is logged and ignored, as :mod:`concurrent.futures` does.
        """
        with self._lock:
            if not self._notified:
                self._callbacks.append(fn)
                return
        self._call(fn)

    def _add_internal_callback(self, fn: Callable[[TaskRunFuture[R]], None]) -> None:
        with self._lock:
            if not self._notified:
                self._internal_callbacks.append(fn)
                return
        fn(self)

    def _call(self, fn: Callable[[TaskRunFuture[R]], object]) -> None:
        try:
            fn(self)
        except Exception:
            logger.exception("A done callback of %r raised", self)

    def _on_wrapped_done(self, _: concurrent.futures.Future[Any]) -> None:
        self._settle()
        with self._lock:
            self._notified = True
            internal, self._internal_callbacks = self._internal_callbacks, []
            callbacks, self._callbacks = self._callbacks, []
        for notify in internal:
            notify(self)
        for fn in callbacks:
            self._call(fn)

    def _settle(self) -> State[R]:
        """The final state, computed once from the (done) wrapped future.

        A waiter can see the wrapped future done before its done callback has run in the
        finishing thread, so both paths come here.
        """
        if self._final_state is not None:
            return self._final_state
        state: State[Any]
        wrapped = self._wrapped
        if wrapped.cancelled():
            state = Cancelled(
                task_run_id=self.task_run_id, message="Task run was cancelled before it started."
            )
        elif (exception := wrapped.exception()) is not None:
            state = Failed(
                exception,
                task_run_id=self.task_run_id,
                message=f"Task run encountered an exception {type(exception).__name__}: "
                f"{exception}",
            )
        else:
            value = wrapped.result()
            if not isinstance(value, State):
                state = Completed(value, task_run_id=self.task_run_id)
            elif value.task_run_id is None:
                state = value.copy(task_run_id=self.task_run_id)
            else:
                state = value
        with self._lock:
            if self._final_state is None:
                self._final_state = state
            return self._final_state

    def _run_inline(self) -> bool:
        """Run the work in this thread if the runner allows it (see :class:`InlineWork`)."""
        if self._work is None or self._wrapped.done():
            return False
        return self._work.run_inline()

    def __reduce__(self) -> tuple[Any, ...]:
        # A finished future travels as a finished future: a task sent to a worker process can
        # carry the futures it depended on, and resolve them there.
        if not self.done():
            raise TypeError(
                f"Cannot pickle {self!r}: it is not finished. Wait for it first (or pass it to "
                "the runner's submit(..., wait_for=[...]), which sends work on once its "
                "upstream futures are done)."
            )
        return _finished_future, (self._settle(), self.task_run_id, self.task_run.name)

    def __repr__(self) -> str:
        return (
            f"TaskRunFuture({self.task_run.name!r}, task_run_id={self.task_run_id}, "
            f"state={self.state.name})"
        )


def _finished_future(state: State[Any], task_run_id: uuid.UUID, name: str) -> TaskRunFuture[Any]:
    return TaskRunFuture.completed(state, task_run_id=task_run_id, name=name)


class DoneAndNotDoneFutures(NamedTuple, Generic[R]):
    """What :func:`wait` returns: the futures that finished, and those that did not."""

    done: set[TaskRunFuture[R]]
    not_done: set[TaskRunFuture[R]]


class FutureList(list[TaskRunFuture[R]]):
    """A list of futures (what ``.map()`` returns), with :meth:`wait` and :meth:`result`."""

    def wait(self, timeout: float | None = None) -> DoneAndNotDoneFutures[R]:
        """Wait for every future in the list; never raises on timeout.

        Args:
            timeout: The most seconds to wait; None waits as long as it takes.

        Returns:
            The finished and unfinished futures (see :func:`wait`).
        """
        return wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """The results of every run, in the list's order.

        Results are taken as runs finish (:func:`as_completed`), so a failure is raised as
        soon as it happens, not after earlier, slower runs. A future that appears several
        times fills each of its places.

        Args:
            timeout: The most seconds to wait for all of them, result retrieval included;
                None waits as long as it takes.
            raise_on_failure: Raise a failed run's exception (True) or put it in its place.

        Returns:
            One result per future, in the list's order.

        Raises:
            WaitTimeoutError: Not all runs finished within ``timeout`` seconds (a
                ``TimeoutError``; Prefect's message, ``Timed out waiting for all futures to
                complete within {timeout} seconds``). A ``TimeoutError`` raised by a task
                itself passes through unchanged.
            InvalidArgumentError: ``timeout`` is negative.
            BaseException: With ``raise_on_failure``, the first failure's exception.
        """
        _check_timeout(timeout)
        places: dict[TaskRunFuture[R], list[int]] = {}
        for index, future in enumerate(self):
            places.setdefault(future, []).append(index)
        results: list[Any] = [None] * len(self)
        message = f"Timed out waiting for all futures to complete within {timeout} seconds"
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = as_completed(list(self), timeout=timeout)
        while True:
            # Only the waiting is guarded: a TimeoutError from a run's result is the task's.
            try:
                future = next(finished)
            except StopIteration:
                return results
            except WaitTimeoutError as exc:
                raise WaitTimeoutError(message) from exc
            value = future.result(raise_on_failure=raise_on_failure)
            for index in places[future]:
                results[index] = value
            # Retrieval runs between two waits and can overrun the deadline by itself
            # (Prefect: "including when result retrieval itself is slow").
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(message)


def wait(
    futures: Iterable[TaskRunFuture[R]], timeout: float | None = None
) -> DoneAndNotDoneFutures[R]:
    """Wait for futures to finish; never raises on timeout.

    Duplicates count once. With a timeout all futures are watched at once, so a slow first
    future does not hide fast later ones.

    Args:
        futures: The futures.
        timeout: The most seconds to wait; None waits until all are final.

    Returns:
        ``(done, not_done)``: the futures final when the wait ended, and the others.

    Raises:
        InvalidArgumentError: ``timeout`` is negative (a ``ValueError``, Prefect's message).
    """
    _check_timeout(timeout)
    unique = set(futures)
    done = {future for future in unique if future.done()}
    not_done = unique - done
    if timeout is None:
        for future in list(not_done):
            future.wait()
            not_done.discard(future)
            done.add(future)
        return DoneAndNotDoneFutures(done, not_done)
    if not_done:
        deadline = time.monotonic() + timeout
        finished = _Finished()
        for future in not_done:
            future._add_internal_callback(finished.add)
        while not_done:
            if not finished.event.is_set() and time.monotonic() < deadline:
                _run_one_inline(not_done)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            finished.event.wait(remaining)
            for future in finished.take():
                not_done.discard(future)
                done.add(future)
        # A future may finish between the last look and the deadline.
        for future in [f for f in not_done if f.done()]:
            not_done.discard(future)
            done.add(future)
    return DoneAndNotDoneFutures(done, not_done)


def as_completed(
    futures: Iterable[TaskRunFuture[R]], timeout: float | None = None
) -> Iterator[TaskRunFuture[R]]:
    """Yield futures as they finish: those already final first, then in completion order.

    Duplicates are yielded once.

    Args:
        futures: The futures.
        timeout: The most seconds to wait, counted from the first ``next()``; None waits as
            long as it takes. ``0`` yields the finished futures, then raises if any is left.

    Returns:
        An iterator of the futures.

    Raises:
        InvalidArgumentError: ``timeout`` is negative (raised by this call, not by iteration).
        WaitTimeoutError: While iterating, when ``timeout`` passes with futures unfinished:
            Prefect's message, ``{n} (of {total}) futures unfinished``.
    """
    _check_timeout(timeout)
    return _as_completed(list(futures), timeout)


def _as_completed(
    futures: list[TaskRunFuture[R]], timeout: float | None
) -> Iterator[TaskRunFuture[R]]:
    unique = list(dict.fromkeys(futures))
    total = len(unique)
    deadline = None if timeout is None else time.monotonic() + timeout
    done = [future for future in unique if future.done()]
    pending = set(unique).difference(done)
    yield from done
    finished = _Finished()
    for future in pending:
        future._add_internal_callback(finished.add)
    while pending:
        if not finished.event.is_set() and (deadline is None or time.monotonic() < deadline):
            _run_one_inline(pending)
        if deadline is None:
            finished.event.wait()
        elif not finished.event.wait(max(deadline - time.monotonic(), 0.0)):
            raise WaitTimeoutError(f"{len(pending)} (of {total}) futures unfinished")
        for future in finished.take():
            if future in pending:
                pending.discard(future)
                yield future


class _Finished:
    """Futures that finished since the last look, and an event set while there are some."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._futures: list[TaskRunFuture[Any]] = []

    def add(self, future: TaskRunFuture[Any]) -> None:
        with self._lock:
            self._futures.append(future)
            self.event.set()

    def take(self) -> list[TaskRunFuture[Any]]:
        with self._lock:
            futures, self._futures = self._futures, []
            self.event.clear()
            return futures


def _run_one_inline(futures: Iterable[TaskRunFuture[Any]]) -> bool:
    """Run one future's work in this thread, if this is a worker thread allowed to."""
    return any(future._run_inline() for future in futures)


def resolve_futures_to_states(expr: Any) -> Any:
    """Replace every future in ``expr`` by its final state, waiting for it.

    ``expr`` may nest lists, tuples (named ones too), sets, frozensets, dicts (keys and
    values) and dataclass instances; other objects are left as they are. A
    :class:`FutureList` becomes a plain list.

    Args:
        expr: A future, or a structure holding futures.

    Returns:
        The structure rebuilt with states in place of futures; ``expr`` itself (and each
        part holding no future) when there is nothing to replace.
    """
    futures = collect_futures(expr)
    if not futures:
        return expr
    states = {future: future.wait() for future in futures}
    return _replace(expr, states.__getitem__, set())


def resolve_futures_to_results(expr: Any) -> Any:
    """Replace every future in ``expr`` by its result, waiting for it.

    The structures walked are those of :func:`resolve_futures_to_states`. Futures are
    checked as they finish, so a failed one is reported without waiting for the others.

    Args:
        expr: A future, or a structure holding futures.

    Returns:
        The structure rebuilt with results in place of futures; ``expr`` itself when there is
        nothing to replace.

    Raises:
        UpstreamTaskError: A future's run did not complete (it failed or was cancelled); the
            error names it and holds its state, and is chained to its exception.
    """
    futures = collect_futures(expr)
    if not futures:
        return expr
    results: dict[TaskRunFuture[Any], Any] = {}
    for future in as_completed(futures):
        state = future.state
        if not state.is_completed():
            cause = state.exception() if state.is_failed() or state.is_cancelled() else None
            raise UpstreamTaskError(
                f"Upstream task run {future.task_run.name!r} ({future.task_run_id}) did not "
                f"reach a 'COMPLETED' state: it is {state.name}.",
                state,
            ) from cause
        results[future] = state.result()
    return _replace(expr, results.__getitem__, set())


resolve_futures_to_data = resolve_futures_to_results
"""Seed 003's (Prefect 2's) name for :func:`resolve_futures_to_results`."""


def collect_futures(expr: Any) -> list[TaskRunFuture[Any]]:
    """The futures inside ``expr`` (nested lists, tuples, sets, dicts and dataclasses), each
    once, in the order met."""
    found: dict[TaskRunFuture[Any], None] = {}

    def note(future: TaskRunFuture[Any]) -> TaskRunFuture[Any]:
        found[future] = None
        return future

    _replace(expr, note, set())
    return list(found)


_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None))


def _replace(expr: Any, fn: Callable[[TaskRunFuture[Any]], Any], active: set[int]) -> Any:
    """``expr`` with ``fn(future)`` in place of each future; unchanged parts are kept as they
    are (the same objects). ``active`` holds the containers being walked, so a structure that
    contains itself is not walked forever."""
    if isinstance(expr, TaskRunFuture):
        return fn(expr)
    if isinstance(expr, _ATOMS) or id(expr) in active:
        return expr
    active.add(id(expr))
    try:
        return _rebuild(expr, fn, active)
    finally:
        active.discard(id(expr))


def _rebuild(expr: Any, fn: Callable[[TaskRunFuture[Any]], Any], active: set[int]) -> Any:
    if isinstance(expr, list | tuple | set | frozenset):
        items = [_replace(item, fn, active) for item in expr]
        if isinstance(expr, FutureList):
            return items
        if all(new is old for new, old in zip(items, expr, strict=True)):
            return expr
        if isinstance(expr, tuple) and hasattr(expr, "_fields"):
            return type(expr)(*items)  # a named tuple
        return type(expr)(items)
    if isinstance(expr, dict):
        pairs = [(_replace(k, fn, active), _replace(v, fn, active)) for k, v in expr.items()]
        if all(
            k is old_k and v is old_v
            for (k, v), (old_k, old_v) in zip(pairs, expr.items(), strict=True)
        ):
            return expr
        if type(expr) is dict:
            return dict(pairs)
        rebuilt = copy.copy(expr)  # keeps what a subclass carries (a defaultdict's factory)
        rebuilt.clear()
        rebuilt.update(pairs)
        return rebuilt
    if dataclasses.is_dataclass(expr) and not isinstance(expr, type):
        changes = {}
        for field in dataclasses.fields(expr):
            if field.init:
                old = getattr(expr, field.name)
                new = _replace(old, fn, active)
                if new is not old:
                    changes[field.name] = new
        return dataclasses.replace(expr, **changes) if changes else expr
    return expr
