"""Flows: functions that run tasks (Prefect's ``@flow``).

::

    @flow(result_storage="sqlite:///pipeline.db", persist_result=True)
    def pipeline(docs: list[str]) -> list[list[float]]:
        return embed.map(docs).result()     # runs on the flow's task runner

A flow run gives its tasks their defaults: result storage and serializer (a task's own win),
and persistence (``persist_result`` of the flow, explicit or inferred True from
``result_storage``/``result_serializer``, is inherited by its tasks unless a task or
``SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT`` says otherwise; DESIGN §10). ``.submit()`` and
``.map()`` inside the flow use its task runner (a fresh copy per run), which the run waits for
before it returns. The flow's own result is written under a random key when it persists.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from sqlresults.backoff import RetryDelay, retry_delay
from sqlresults.context import FlowRun, FlowRunContext, current_flow_run, run_context
from sqlresults.effects import Call, Effect, Plan, Sleep, arun_plan, run_plan
from sqlresults.errors import ConfigurationError
from sqlresults.futures import resolve_futures_to_results
from sqlresults.results import derive_result_store, resolve_result_storage, resolve_serializer
from sqlresults.serializers import Serializer
from sqlresults.settings import get_settings
from sqlresults.states import Completed, Failed, State
from sqlresults.task_runners import TaskRunner, ThreadPoolTaskRunner
from sqlresults.validation import check_retries

__all__ = ["Flow", "flow"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("sqlresults.flows")


class Flow(Generic[P, R]):
    """A function that runs tasks. Build one with :func:`flow`.

    Args:
        fn: The function (sync or ``async def``).
        name: The flow's name (default: the function's name).
        description: What it does (default: the function's docstring).
        version: A version string of your own.
        task_runner: Where ``.submit()``/``.map()`` run tasks (an instance, or a
            :class:`~sqlresults.task_runners.TaskRunner` class); default
            :class:`~sqlresults.task_runners.ThreadPoolTaskRunner`. Each run uses a fresh copy.
        persist_result: Write the flow's result (and, by default, its tasks'). None: True
            when ``result_storage`` or ``result_serializer`` is given, else inherited from an
            enclosing flow, else ``SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT``.
        result_storage: Where the flow's and its tasks' results live (a
            :class:`~sqlresults.database.Database`, URL or ``pathlib.Path``).
        result_serializer: Their serializer (instance or type string).
        cache_result_in_memory: Keep the flow's result in the store's in-memory LRU.
        retries: How many times a failed run is retried.
        retry_delay_seconds: Seconds between attempts (a number, a list, or a function of the
            retry number).

    Raises:
        ConfigurationError: An option describes something unusable.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        task_runner: TaskRunner | type[TaskRunner] | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Serializer | str | None = None,
        cache_result_in_memory: bool = True,
        retries: int | None = None,
        retry_delay_seconds: RetryDelay | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@flow needs a function, not {type(fn).__name__}: {fn!r}.")
        self.fn = fn
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        self.description = description if description is not None else inspect.getdoc(fn)
        self.version = version
        if isinstance(task_runner, type):
            task_runner = task_runner()  # type: ignore[call-arg]
        if task_runner is not None and not isinstance(task_runner, TaskRunner):
            raise ConfigurationError(
                f"task_runner must be a TaskRunner (e.g. ThreadPoolTaskRunner()), not "
                f"{type(task_runner).__name__}."
            )
        self.task_runner: TaskRunner = task_runner or ThreadPoolTaskRunner()
        self.result_storage = (
            None if result_storage is None else resolve_result_storage(result_storage)
        )
        self.result_serializer = (
            None if result_serializer is None else resolve_serializer(result_serializer)
        )
        if persist_result is None and (result_storage is not None or result_serializer):
            persist_result = True
        self.persist_result = persist_result
        self.cache_result_in_memory = cache_result_in_memory
        self.retries = check_retries(retries)
        self.retry_delay_seconds = retry_delay_seconds
        self._options = {
            "name": name,
            "description": description,
            "version": version,
            "task_runner": task_runner,
            "persist_result": persist_result,
            "result_storage": result_storage,
            "result_serializer": result_serializer,
            "cache_result_in_memory": cache_result_in_memory,
            "retries": retries,
            "retry_delay_seconds": retry_delay_seconds,
        }
        self._signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"

    def with_options(self, **changes: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed (the keywords of :func:`flow`).

        Raises:
            TypeError: An unknown option.
        """
        unknown = set(changes) - set(self._options)
        if unknown:
            raise TypeError(f"Unknown flow options: {', '.join(sorted(unknown))}.")
        return Flow(self.fn, **{**self._options, **changes})

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(self, *args: Any, return_state: bool, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow and return its result (or, with ``return_state=True``, its final
        state). An async flow returns an awaitable.

        Raises:
            Exception: Whatever the function raised on its last attempt.
        """
        return_state = bool(kwargs.pop("return_state", False))
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"Cannot call flow {self.name!r}: {exc}") from None
        bound.apply_defaults()
        plan = _flow_run_plan(self, bound)
        if self.isasync:
            return _finish_async(arun_plan(plan), return_state)
        state = run_plan(plan)
        return state if return_state else state.result()


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...


@overload
def flow(
    __fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    version: str | None = None,
    task_runner: TaskRunner | type[TaskRunner] | None = None,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: Serializer | str | None = None,
    cache_result_in_memory: bool = True,
    retries: int | None = None,
    retry_delay_seconds: RetryDelay | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Any = None, **options: Any) -> Any:
    """Make a function a :class:`Flow`; use as ``@flow`` or ``@flow(option=...)`` (the options
    of :class:`Flow`)."""
    if __fn is not None:
        return Flow(__fn, **options)
    return functools.partial(Flow, **options)


def _flow_run_plan(flow: Flow[Any, Any], bound: inspect.BoundArguments) -> Plan[State[Any]]:
    """One flow run, sync or async: returns its final state."""
    parent = current_flow_run.get()
    parent = parent if isinstance(parent, FlowRunContext) else None
    persist = flow.persist_result
    if persist is None and parent is not None:
        persist = parent.persist_result
    if persist is None:
        persist = get_settings().results_persist_by_default
    store = derive_result_store(
        None if parent is None else parent.result_store,
        result_storage=flow.result_storage,
        serializer=flow.result_serializer,
        cache_result_in_memory=flow.cache_result_in_memory,
    )
    run_id = uuid.uuid4()
    flow_run = FlowRun(
        id=run_id,
        name=f"{flow.name}-{run_id.hex[:8]}",
        flow_name=flow.name,
        parameters=dict(bound.arguments),
    )
    runner = flow.task_runner.duplicate()
    yield _EnterRunner(runner)
    try:
        for attempt in range(flow.retries + 1):
            context = FlowRunContext(
                persist_result=persist,
                result_store=store,
                flow=flow,
                flow_run=dataclasses.replace(flow_run, run_count=attempt + 1),
                parameters=flow_run.parameters,
                task_runner=runner,
            )
            with run_context(context):
                try:
                    value = yield Call(flow.fn, bound.args, bound.kwargs)
                    value = yield _ResolveResult(value)
                except Exception as exc:
                    if attempt < flow.retries:
                        delay = retry_delay(flow.retry_delay_seconds, attempt, flow.retries)
                        logger.warning(
                            "Flow run %r failed (%r); retry %d of %d in %g s.",
                            flow_run.name,
                            exc,
                            attempt + 1,
                            flow.retries,
                            delay,
                        )
                        if delay:
                            yield Sleep(delay)
                        continue
                    logger.error("Flow run %r failed: %r", flow_run.name, exc)
                    return Failed(exc, message=f"Flow run failed: {exc!r}")
                if isinstance(value, State):
                    return value  # a flow that returns a state ends in it (seed 004)
                if not persist:
                    return Completed(value)
                try:
                    record = store.create_result_record(value)
                    yield _Persist(store, record)
                except Exception as exc:
                    logger.error(
                        "The result of flow run %r was not written: %r", flow_run.name, exc
                    )
                    return Failed(exc, message=f"The flow's result could not be written: {exc!r}")
                return Completed(record)
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        yield _ExitRunner(runner)


async def _finish_async(run: Awaitable[State[Any]], return_state: bool) -> Any:
    state = await run
    return state if return_state else state.result()


class _EnterRunner(Effect):
    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner

    def run(self) -> None:
        self.runner.__enter__()

    async def arun(self) -> None:
        self.runner.__enter__()


class _ExitRunner(Effect):
    """Wait for the work submitted during the run, then shut the runner down."""

    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner

    def run(self) -> None:
        self.runner.__exit__(None, None, None)

    async def arun(self) -> None:
        import asyncio

        await asyncio.to_thread(self.run)


class _ResolveResult(Effect):
    """Futures in a flow's return value become their results (a failed one fails the flow)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def run(self) -> Any:
        return resolve_futures_to_results(self.value)

    async def arun(self) -> Any:
        import asyncio

        return await asyncio.to_thread(self.run)


class _Persist(Effect):
    def __init__(self, store: Any, record: Any) -> None:
        self.store, self.record = store, record

    def run(self) -> None:
        self.store.persist_result_record(self.record)

    async def arun(self) -> None:
        await self.store.apersist_result_record(self.record)
