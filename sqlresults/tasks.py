"""Tasks: functions whose results are cached, retried and persisted (Prefect's ``@task``).

::

    @task(cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(days=1))
    def embed(doc: str, model: str = "small") -> list[float]: ...

    embed("hello")                        # runs, or is served from the result database
    embed("hello", return_state=True)     # Completed / Cached / Failed, with .result()
    embed.submit("hello")                 # a future, on the flow's task runner
    embed.map(["a", "b"])                 # a FutureList

A task run goes like this (one body of logic for sync and async tasks, :mod:`sqlresults.effects`):

1. futures among the arguments (and ``wait_for``) are resolved; a failed upstream fails this
   run without running it (:class:`~sqlresults.errors.UpstreamTaskError`);
2. the run's settings are decided: persistence (the task's, else
   ``SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT``, else the flow's, else
   ``SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT``) and the store (the task's result storage and
   serializer, else the flow's, else the defaults);
3. the cache key is computed by the cache policy (or is the formatted ``result_storage_key``);
4. a transaction on the key (SERIALIZABLE if the policy says so; async tasks use an
   :class:`~sqlresults.transactions.AsyncTransaction`, which never blocks the event loop) finds
   the record (``Cached``) or runs the function, with retries inside the transaction, and
   stages the result, with its provenance; the commit writes it when the run persists.

``.submit()`` decides a cache hit on the submitting side, before the task takes a runner slot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import threading
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from sqlresults.backoff import RetryDelay, exponential_backoff, retry_delay
from sqlresults.cache_policies import (
    DEFAULT,
    NO_CACHE,
    CacheKeyFnPolicy,
    CachePolicy,
    Component,
    _None,
)
from sqlresults.context import (
    FlowRunContext,
    TaskRun,
    TaskRunContext,
    current_flow_run,
    run_context,
)
from sqlresults.effects import Call, Effect, Plan, Sleep, arun_plan, run_plan
from sqlresults.errors import (
    ConfigurationError,
    InvalidArgumentError,
    LeaseLostError,
    UpstreamTaskError,
)
from sqlresults.futures import (
    FutureList,
    TaskRunFuture,
    collect_futures,
    resolve_futures_to_results,
    resolve_futures_to_states,
)
from sqlresults.records import Provenance, ResultRecord
from sqlresults.results import (
    ResultStore,
    derive_result_store,
    resolve_result_storage,
    resolve_serializer,
)
from sqlresults.serializers import Serializer
from sqlresults.settings import get_settings
from sqlresults.states import Cached, Completed, Failed, RolledBack, State
from sqlresults.task_runners import TaskRunner, ThreadPoolTaskRunner
from sqlresults.transactions import (
    AsyncTransaction,
    BaseTransaction,
    Transaction,
)
from sqlresults.validation import check_retries

__all__ = ["Task", "exponential_backoff", "task", "unmapped"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("sqlresults.tasks")


class _NotSet:
    """The default of options whose None means something (``cache_policy=None``)."""

    def __repr__(self) -> str:
        return "NotSet"


NotSet: Any = _NotSet()


class unmapped:  # noqa: N801 - Prefect's name, used like a function
    """Wrap an argument of :meth:`Task.map` that is passed whole to every call, not iterated.

    Args:
        value: The value every mapped call receives.
    """

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"unmapped({self.value!r})"


class Task(Generic[P, R]):
    """A function whose runs are cached, retried and persisted. Build one with :func:`task`.

    Args:
        fn: The function (sync or ``async def``).
        name: The task's name (default: the function's name).
        description: What it does (default: the function's docstring).
        tags: Labels of its runs.
        version: A version string of your own.
        cache_policy: What the cache key is made of (:mod:`sqlresults.cache_policies`);
            default ``DEFAULT`` (inputs, task source, run id). None or ``NO_CACHE``: no cache.
        cache_key_fn: ``fn(task_run_context, parameters) -> str | None``; wins over
            ``cache_policy`` (with a warning when both are given).
        cache_expiration: How long a cached result stays valid.
        retries: How many times a failed run is retried (inside its transaction, so a
            SERIALIZABLE key stays locked between attempts).
        retry_delay_seconds: Seconds between attempts: a number, a list (one per retry, the
            last one repeating), or ``fn(retry_number) -> seconds``.
        persist_result: Write results to the result database. None: inferred (True when a cache
            policy, cache_key_fn, result_storage_key, result_storage or result_serializer is
            given), else inherited from the flow and the settings.
        result_storage: Where results live: a :class:`~sqlresults.database.Database`, a URL
            or a ``pathlib.Path``; default the flow's, else the default database.
        result_serializer: A serializer or type string; default the flow's, else the default.
        result_storage_key: A template for the record's key (``"{parameters[x]}-out"``, with
            ``flow_run.*`` and ``task_run.*``); it is also the cache key.
        cache_result_in_memory: Keep results in the store's in-memory LRU.
        refresh_cache: Recompute and overwrite even on a hit (default
            ``SQLRESULTS_TASKS_REFRESH_CACHE``).

    Raises:
        ConfigurationError: An option describes something unusable (a bad storage URL, an
            unknown serializer, a negative retry count).
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        cache_policy: CachePolicy | None = NotSet,
        cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None = None,
        cache_expiration: timedelta | None = None,
        retries: int | None = None,
        retry_delay_seconds: RetryDelay | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Serializer | str | None = None,
        result_storage_key: str | None = None,
        cache_result_in_memory: bool = True,
        refresh_cache: bool | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, not {type(fn).__name__}: {fn!r}.")
        self.fn = fn
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        self.description = description if description is not None else inspect.getdoc(fn)
        self.tags = frozenset(tags or ())
        self.version = version
        self.cache_expiration = _check_expiration(cache_expiration)
        self.retries = check_retries(retries)
        self.retry_delay_seconds = retry_delay_seconds
        self.result_storage = (
            None if result_storage is None else resolve_result_storage(result_storage)
        )
        self.result_serializer = (
            None if result_serializer is None else resolve_serializer(result_serializer)
        )
        self.result_storage_key = result_storage_key
        self.cache_result_in_memory = cache_result_in_memory
        self.refresh_cache = refresh_cache
        self.cache_key_fn = cache_key_fn
        #: Whether caching was asked for (a cache_policy, cache_key_fn or result_storage_key
        #: given), rather than the implicit DEFAULT: only then does a key that cannot be
        #: computed fail the run.
        self.explicit_cache_policy = (
            cache_policy is not NotSet or cache_key_fn is not None or result_storage_key is not None
        )
        self._options = {
            "name": name,
            "description": description,
            "tags": tags,
            "version": version,
            "cache_policy": cache_policy,
            "cache_key_fn": cache_key_fn,
            "cache_expiration": cache_expiration,
            "retries": retries,
            "retry_delay_seconds": retry_delay_seconds,
            "persist_result": persist_result,
            "result_storage": result_storage,
            "result_serializer": result_serializer,
            "result_storage_key": result_storage_key,
            "cache_result_in_memory": cache_result_in_memory,
            "refresh_cache": refresh_cache,
        }
        self.persist_result, self.cache_policy = _decide_caching(
            self.name,
            cache_policy,
            cache_key_fn,
            persist_result,
            inferred=any(
                (
                    result_storage_key is not None,
                    result_storage is not None,
                    result_serializer is not None,
                )
            ),
            has_storage_key=result_storage_key is not None,
        )
        self._signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, fn={self.qualified_name})"

    @property
    def qualified_name(self) -> str:
        """``module.qualname`` of the function: what provenance records."""
        fn = self.fn
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', self.name)}"

    def with_options(self, **changes: Any) -> Task[P, R]:
        """A copy of this task with some options changed (the same keywords as :func:`task`).

        Raises:
            TypeError: An unknown option.
        """
        unknown = set(changes) - set(self._options)
        if unknown:
            raise TypeError(f"Unknown task options: {', '.join(sorted(unknown))}.")
        return Task(self.fn, **{**self._options, **changes})

    # -- running -------------------------------------------------------------------------

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(self, *args: Any, return_state: bool, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here and return its result (or, with ``return_state=True``, its final
        state). An async task returns an awaitable.

        Keyword-only extras: ``return_state`` (bool), ``wait_for`` (futures to wait for first).

        Raises:
            Exception: Whatever the function raised on its last attempt, or
                :class:`~sqlresults.errors.UnhashableError` when an input cannot be hashed
                into the cache key (not with ``return_state=True``: the state is Failed).
        """
        return_state = bool(kwargs.pop("return_state", False))
        wait_for = kwargs.pop("wait_for", None)
        parameters = self._bind(args, kwargs)
        plan = _task_run_plan(self, parameters, wait_for, uuid.uuid4())
        if self.isasync:
            return _finish_async(arun_plan(plan), return_state)
        state = run_plan(plan)
        return state if return_state else state.result()

    def submit(self, *args: Any, **kwargs: Any) -> TaskRunFuture[R]:
        """Run the task on the flow's task runner (outside a flow, a shared thread pool) and
        return a future at once.

        A cache hit is decided here, before the task takes a runner slot: a pipeline whose
        results are all cached does no scheduling work.

        Keyword-only extra: ``wait_for`` (futures to wait for first).
        """
        wait_for = kwargs.pop("wait_for", None)
        return self._submit(self._bind(args, kwargs), wait_for)

    def map(self, *args: Any, **kwargs: Any) -> FutureList[R]:
        """Submit one run per element of the iterable arguments (zipped; :class:`unmapped`
        values and non-iterables are passed whole to every run).

        Raises:
            ValueError: The iterable arguments have different lengths, or there is none.
        """
        wait_for = kwargs.pop("wait_for", None)
        parameters = self._signature.bind_partial(*args, **kwargs).arguments
        mapped = {
            name: list(value)
            for name, value in parameters.items()
            if not isinstance(value, unmapped) and _is_mappable(value)
        }
        if not mapped:
            raise ValueError(
                f"Task.map of {self.name!r} got no iterable argument to map over; wrap the "
                "constant ones in unmapped(...) and pass at least one iterable."
            )
        lengths = {name: len(values) for name, values in mapped.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"Received iterable parameters with different lengths. Parameters for map "
                f"must all be the same length. Got lengths: {lengths}"
            )
        futures: FutureList[R] = FutureList()
        for index in range(next(iter(lengths.values()))):
            call = {
                name: (
                    mapped[name][index]
                    if name in mapped
                    else value.value
                    if isinstance(value, unmapped)
                    else value
                )
                for name, value in parameters.items()
            }
            bound = self._signature.bind(**call) if call else self._signature.bind()
            bound.apply_defaults()
            futures.append(self._submit(dict(bound.arguments), wait_for))
        return futures

    def _submit(self, parameters: dict[str, Any], wait_for: Any) -> TaskRunFuture[R]:
        task_run_id = uuid.uuid4()
        hit = _early_cache_hit(self, parameters, wait_for, task_run_id)
        if hit is not None:
            return TaskRunFuture.completed(hit)
        flow_ctx = current_flow_run.get()
        runner = _runner_for(flow_ctx)
        call = _SubmittedRun(self, parameters, wait_for, task_run_id, _portable(flow_ctx, runner))
        # The runner starts the call once its upstream futures are final, holding no worker
        # while it waits (and a call crossing processes then carries finished futures only).
        upstream = collect_futures([parameters, list(wait_for or ())])
        return runner.submit(
            call, task_run_id=task_run_id, name=_run_name(self, task_run_id), wait_for=upstream
        )

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"Cannot call task {self.name!r}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def _call_arguments(self, parameters: Mapping[str, Any]) -> tuple[Any, ...]:
        bound = inspect.BoundArguments(self._signature, dict(parameters))
        return bound.args, bound.kwargs


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(
    __fn: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    cache_policy: CachePolicy | None = NotSet,
    cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None] | None = None,
    cache_expiration: timedelta | None = None,
    retries: int | None = None,
    retry_delay_seconds: RetryDelay | None = None,
    persist_result: bool | None = None,
    result_storage: Any = None,
    result_serializer: Serializer | str | None = None,
    result_storage_key: str | None = None,
    cache_result_in_memory: bool = True,
    refresh_cache: bool | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Any = None, **options: Any) -> Any:
    """Make a function a :class:`Task`; use as ``@task`` or ``@task(option=...)`` (the options
    of :class:`Task`)."""
    if __fn is not None:
        return Task(__fn, **options)
    return functools.partial(Task, **options)


# -- deciding a run's settings --------------------------------------------------------------


def _decide_caching(
    name: str,
    cache_policy: Any,
    cache_key_fn: Any,
    persist_result: bool | None,
    *,
    inferred: bool,
    has_storage_key: bool,
) -> tuple[bool | None, CachePolicy | None]:
    """Prefect's rules (reference §6 "Task construction"), in order, with DESIGN §10's: the
    task's ``persist_result`` (explicit or inferred) and its cache policy."""
    settings = get_settings()
    if cache_policy is NotSet and settings.tasks_default_no_cache:
        cache_policy = NO_CACHE
    if cache_key_fn is not None:
        if cache_policy is not NotSet and cache_policy is not None:
            warnings.warn(
                f"Task {name!r}: both `cache_policy` and `cache_key_fn` are set; "
                "`cache_key_fn` will be used.",
                stacklevel=4,
            )
        cache_policy = CacheKeyFnPolicy(cache_key_fn=cache_key_fn)
    real_policy = cache_policy is not NotSet and cache_policy is not None
    real_policy = real_policy and not isinstance(cache_policy, _None)
    if persist_result is None and (real_policy or inferred):
        persist_result = True
    if settings.tasks_disable_caching:
        cache_policy = NO_CACHE
    if persist_result is False:
        if real_policy:
            warnings.warn(
                f"Task {name!r}: ignoring `cache_policy` because `persist_result` is False: "
                "a result that is never written cannot be served from the cache.",
                stacklevel=4,
            )
        return False, (NO_CACHE if cache_policy is not None else None)
    if cache_policy is NotSet:
        cache_policy = NO_CACHE if has_storage_key else DEFAULT
    if cache_policy is not None and not isinstance(cache_policy, CachePolicy):
        raise ConfigurationError(
            f"Task {name!r}: cache_policy must be a CachePolicy (e.g. INPUTS + TASK_SOURCE), "
            f"NO_CACHE or None, not {type(cache_policy).__name__}."
        )
    if has_storage_key and isinstance(cache_policy, _None):
        cache_policy = None  # the formatted result_storage_key is the key
    return persist_result, cache_policy


@dataclasses.dataclass
class _Run:
    """What one task run has decided: its persistence, store, context and key."""

    task: Task[Any, Any]
    persist: bool
    store: ResultStore
    context: TaskRunContext
    flow_context: FlowRunContext | None
    refresh: bool

    @classmethod
    def prepare(
        cls,
        task: Task[Any, Any],
        parameters: dict[str, Any],
        task_run_id: uuid.UUID,
        flow_ctx: FlowRunContext | None,
    ) -> _Run:
        settings = get_settings()
        persist = task.persist_result
        if persist is None:
            persist = settings.tasks_default_persist_result
        if persist is None:
            persist = flow_ctx.persist_result if flow_ctx is not None else None
        if persist is None:
            persist = settings.results_persist_by_default
        store = _store_for(task, flow_ctx)
        flow_run = None if flow_ctx is None else flow_ctx.flow_run
        task_run = TaskRun(
            id=task_run_id,
            name=_run_name(task, task_run_id),
            task_name=task.name,
            parameters=parameters,
            flow_run_id=None if flow_run is None else flow_run.id,
        )
        context = TaskRunContext(
            persist_result=persist,
            result_store=store,
            task=task,
            task_run=task_run,
            parameters=parameters,
        )
        refresh = task.refresh_cache
        if refresh is None:
            refresh = settings.tasks_refresh_cache
        return cls(task, persist, store, context, flow_ctx, refresh)

    def cache_key(self) -> tuple[str | None, list[Component]]:
        """The run's cache key and its named components (no key: no caching).

        Raises:
            UnhashableError: An input (or the task's closure) cannot be hashed.
            InvalidArgumentError: The result_storage_key template cannot be formatted.
        """
        task = self.task
        policy = task.cache_policy
        if policy is not None:
            flow_parameters = {} if self.flow_context is None else self.flow_context.parameters
            return policy.key_and_components(self.context, self.context.parameters, flow_parameters)
        if task.result_storage_key is not None:
            key = _format_storage_key(task.result_storage_key, self.context, self.flow_context)
            return key, [("result_storage_key", key)]
        return None, []

    def record(self, value: Any, key: str, components: list[Component]) -> ResultRecord[Any]:
        """The record staged for commit, with the run's provenance."""
        flow_run = None if self.flow_context is None else self.flow_context.flow_run
        provenance = Provenance(
            task=self.task.qualified_name,
            task_run_id=str(self.context.task_run.id) if self.context.task_run else None,
            flow_run_id=None if flow_run is None else str(flow_run.id),
            flow=None if flow_run is None else flow_run.flow_name,
            cache_policy=_describe(self.task),
            components=dict(components),
        )
        return self.store.create_result_record(
            value, key=key, expiration=self.task.cache_expiration, provenance=provenance
        )


def _describe(task: Task[Any, Any]) -> str | None:
    return None if task.cache_policy is None else task.cache_policy.description


def _store_for(task: Task[Any, Any], flow_ctx: FlowRunContext | None) -> ResultStore:
    """The store a run of ``task`` uses: the task's storage and serializer, else its flow's,
    else the defaults."""
    policy = task.cache_policy
    return derive_result_store(
        None if flow_ctx is None else flow_ctx.result_store,
        result_storage=task.result_storage,
        serializer=task.result_serializer,
        cache_result_in_memory=task.cache_result_in_memory,
        lock_manager=None if policy is None else policy.lock_manager,
    )


def _format_storage_key(
    template: str, context: TaskRunContext, flow_ctx: FlowRunContext | None
) -> str:
    flow_run = None if flow_ctx is None else flow_ctx.flow_run
    try:
        return template.format(
            parameters=context.parameters,
            task_run=context.task_run,
            flow_run=flow_run if flow_run is not None else _NoFlowRun(),
        )
    except (KeyError, AttributeError, IndexError, ValueError) as exc:
        raise InvalidArgumentError(
            f"result_storage_key {template!r} cannot be formatted for task "
            f"{context.task_run.task_name if context.task_run else '?'}: {exc!r}. It may use "
            "{parameters[name]}, {task_run.name}, {task_run.task_name}, {task_run.id} and, "
            "inside a flow, {flow_run.name}, {flow_run.flow_name}, {flow_run.id}."
        ) from exc


class _NoFlowRun:
    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"flow_run.{name}: the task runs outside a flow")


def _run_name(task: Task[Any, Any], task_run_id: uuid.UUID) -> str:
    return f"{task.name}-{task_run_id.hex[:8]}"


# -- the run itself ---------------------------------------------------------------------------


def _task_run_plan(
    task: Task[Any, Any],
    parameters: dict[str, Any],
    wait_for: Any,
    task_run_id: uuid.UUID,
) -> Plan[State[Any]]:
    """One task run, sync or async (see the module docstring): returns its final state."""
    try:
        parameters = yield _ResolveInputs(parameters, wait_for)
    except UpstreamTaskError as exc:
        return Failed(exc, message=str(exc), task_run_id=task_run_id)
    flow_ctx = current_flow_run.get()
    run = _Run.prepare(
        task, parameters, task_run_id, flow_ctx if isinstance(flow_ctx, FlowRunContext) else None
    )
    with run_context(run.context):
        try:
            key, components = run.cache_key()
        except Exception as exc:
            if task.explicit_cache_policy:
                # Caching was asked for: a run that cannot have its key must not silently run
                # uncached (PrefectHQ/prefect#16042).
                return Failed(exc, message=str(exc), task_run_id=task_run_id)
            # The implicit DEFAULT policy: this run is not cacheable. Say why, run it, and
            # write its result (if it persists) under a key of its own.
            logger.warning("Task run %r is not cached: %s", run.context.task_run.name, exc)  # type: ignore[union-attr]
            key, components = (uuid.uuid4().hex if run.persist else None), []
        policy = task.cache_policy
        txn: BaseTransaction = yield _OpenTransaction(
            key=key,
            store=run.store if key is not None else None,
            overwrite=run.refresh,
            write_on_commit=run.persist,
            isolation_level=None if policy is None else policy.isolation,
            logger=logger,
        )
        value: Any = None
        try:
            if txn.is_committed():
                record = yield _ReadRecord(txn)
                hit: State[Any] = Cached(record, task_run_id=task_run_id)
                yield _CloseTransaction(txn, None)
                return hit
            value = yield from _attempts(task, run, parameters)
            staged = value if key is None else run.record(value, key, components)
            txn.stage(staged)
        except BaseException as exc:
            yield _CloseTransaction(txn, exc)
            if not isinstance(exc, Exception):
                raise
            logger.error("Task run %r failed: %r", run.context.task_run.name, exc)  # type: ignore[union-attr]
            return Failed(exc, message=f"Task run failed: {exc!r}", task_run_id=task_run_id)
        try:
            yield _CloseTransaction(txn, None)
        except LeaseLostError as exc:
            logger.warning("%s", exc)
            return RolledBack(data=value, message=str(exc), task_run_id=task_run_id)
        if txn.is_rolled_back():
            return RolledBack(data=value, task_run_id=task_run_id)
        if isinstance(staged, ResultRecord) and staged.is_persisted:
            return Completed(staged, task_run_id=task_run_id)
        return Completed(value, task_run_id=task_run_id)


def _attempts(task: Task[Any, Any], run: _Run, parameters: dict[str, Any]) -> Plan[Any]:
    """Call the function, retrying failures ``task.retries`` times; return its value or raise
    the last attempt's exception."""
    args, kwargs = task._call_arguments(parameters)
    for attempt in range(task.retries + 1):
        try:
            return (yield Call(task.fn, args, kwargs))
        except Exception as exc:
            if attempt == task.retries:
                raise
            delay = retry_delay(task.retry_delay_seconds, attempt, task.retries)
            logger.warning(
                "Task run %r failed (%r); retry %d of %d in %g s.",
                run.context.task_run.name if run.context.task_run else task.name,
                exc,
                attempt + 1,
                task.retries,
                delay,
            )
            if delay:
                yield Sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _early_cache_hit(
    task: Task[Any, Any], parameters: dict[str, Any], wait_for: Any, task_run_id: uuid.UUID
) -> State[Any] | None:
    """A cache hit decided on the submitting side, before any runner slot is taken, or None
    (no key yet: futures among the inputs; a refresh; a miss; any doubt)."""
    if wait_for or _holds_futures(parameters):
        return None
    flow_ctx = current_flow_run.get()
    run = _Run.prepare(
        task, parameters, task_run_id, flow_ctx if isinstance(flow_ctx, FlowRunContext) else None
    )
    if run.refresh:
        return None
    try:
        with run_context(run.context):
            key, _ = run.cache_key()
        if key is None or not run.store.exists(key):
            return None
        record = run.store.read(key, holder=f"early-lookup-{task_run_id}", lock_timeout=0)
    except Exception:
        return None  # the run itself will meet (and report) the problem
    return Cached(record, task_run_id=task_run_id)


def _holds_futures(value: Any) -> bool:
    return bool(collect_futures(value))


class _SubmittedRun:
    """A submitted run as its runner receives it: calling it runs the run (on a thread, or in
    another process) and returns its final state; :meth:`result_store` says where a persisted
    result is written, for runners that may send a reference to the record instead of the
    value (DaskTaskRunner)."""

    def __init__(
        self,
        task: Task[Any, Any],
        parameters: dict[str, Any],
        wait_for: Any,
        task_run_id: uuid.UUID,
        flow_ctx: FlowRunContext | None,
    ) -> None:
        self.task = task
        self.parameters = parameters
        self.wait_for = wait_for
        self.task_run_id = task_run_id
        self.flow_ctx = flow_ctx

    def __call__(self) -> State[Any]:
        return _run_submitted(
            self.task, self.parameters, self.wait_for, self.task_run_id, self.flow_ctx
        )

    def result_store(self) -> ResultStore:
        """The store the run reads its cached result from and writes a persisted one to."""
        return _store_for(self.task, self.flow_ctx)


def _run_submitted(
    task: Task[Any, Any],
    parameters: dict[str, Any],
    wait_for: Any,
    task_run_id: uuid.UUID,
    flow_ctx: FlowRunContext | None,
) -> State[Any]:
    """A submitted run, on a runner's worker (a thread, or another process)."""
    with _flow_context(flow_ctx):
        plan = _task_run_plan(task, parameters, wait_for, task_run_id)
        if task.isasync:
            return asyncio.run(arun_plan(plan))
        return run_plan(plan)


@contextmanager
def _flow_context(flow_ctx: FlowRunContext | None) -> Iterator[None]:
    if flow_ctx is None or current_flow_run.get() is not None:
        yield
        return
    with run_context(flow_ctx):
        yield


def _portable(flow_ctx: Any, runner: TaskRunner) -> FlowRunContext | None:
    """The flow context a submitted run carries: whole for threads, without the task runner
    where the run crosses processes (a runner cannot be pickled; nested submissions there run
    where they are)."""
    if not isinstance(flow_ctx, FlowRunContext):
        return None
    if getattr(runner, "crosses_processes", False):
        return dataclasses.replace(flow_ctx, task_runner=None)
    return flow_ctx


_default_runner_lock = threading.Lock()
_default_runner: TaskRunner | None = None


def _runner_for(flow_ctx: Any) -> TaskRunner:
    """The running flow's task runner, else one shared thread pool for submissions made
    outside any flow."""
    runner = getattr(flow_ctx, "task_runner", None)
    if runner is not None:
        return runner  # type: ignore[no-any-return]
    global _default_runner
    with _default_runner_lock:
        if _default_runner is None:
            _default_runner = ThreadPoolTaskRunner()
            _default_runner.__enter__()
        return _default_runner


async def _finish_async(run: Awaitable[State[Any]], return_state: bool) -> Any:
    state = await run
    return state if return_state else state.result()


# -- effects of the task plan ----------------------------------------------------------------


class _ResolveInputs(Effect):
    """Wait for futures among the parameters and ``wait_for``; replace them by their results.

    Raises UpstreamTaskError when one of them did not complete.
    """

    def __init__(self, parameters: dict[str, Any], wait_for: Any) -> None:
        self.parameters, self.wait_for = parameters, wait_for

    def run(self) -> dict[str, Any]:
        if not self.wait_for and not _holds_futures(self.parameters):
            return self.parameters
        states = resolve_futures_to_states([self.parameters, list(self.wait_for or [])])
        failed = _first_failed(states)
        if failed is not None:
            raise UpstreamTaskError(
                f"An upstream task run did not complete ({failed.name}: {failed.message}), "
                "so this task did not run."
            )
        resolved: dict[str, Any] = resolve_futures_to_results(self.parameters)
        return resolved

    async def arun(self) -> dict[str, Any]:
        if not self.wait_for and not _holds_futures(self.parameters):
            return self.parameters
        return await asyncio.to_thread(self.run)


def _first_failed(value: Any) -> State[Any] | None:
    if isinstance(value, State):
        return None if value.is_completed() else value
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found = _first_failed(item)
            if found is not None:
                return found
    return None


class _OpenTransaction(Effect):
    def __init__(self, **options: Any) -> None:
        self.options = options

    def run(self) -> Transaction:
        return Transaction(**self.options).__enter__()

    async def arun(self) -> AsyncTransaction:
        return await AsyncTransaction(**self.options).__aenter__()


class _CloseTransaction(Effect):
    def __init__(self, txn: BaseTransaction, error: BaseException | None) -> None:
        self.txn, self.error = txn, error

    def run(self) -> None:
        error = self.error
        self.txn.__exit__(type(error) if error else None, error, None)  # type: ignore[attr-defined]

    async def arun(self) -> None:
        error = self.error
        await self.txn.__aexit__(type(error) if error else None, error, None)  # type: ignore[attr-defined]


class _ReadRecord(Effect):
    def __init__(self, txn: BaseTransaction) -> None:
        self.txn = txn

    def run(self) -> Any:
        return self.txn.read()  # type: ignore[attr-defined]

    async def arun(self) -> Any:
        return await self.txn.read()  # type: ignore[attr-defined]


# -- checks ----------------------------------------------------------------------------------


def _check_expiration(expiration: Any) -> timedelta | None:
    if expiration is None or isinstance(expiration, timedelta):
        return expiration
    raise ConfigurationError(
        f"cache_expiration must be a datetime.timedelta (or None), not "
        f"{type(expiration).__name__}: {expiration!r}."
    )


def _is_mappable(value: Any) -> bool:
    if isinstance(value, str | bytes | bytearray | Mapping):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True
