"""Which flow and task are running: context variables the task layer sets and the store reads.

This module sits below :mod:`sqlresults.results` so that ``should_persist_result()`` and
``get_result_store()`` can consult the run context without the store importing the task layer.
The task layer (:mod:`sqlresults.tasks`, :mod:`sqlresults.flows`) sets a
:class:`FlowRunContext` for each flow run and a :class:`TaskRunContext` for each task run; user
code reads them with :func:`get_run_context` (Prefect's name), e.g. in a ``cache_key_fn``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FlowRun",
    "FlowRunContext",
    "RunContext",
    "TaskRun",
    "TaskRunContext",
    "current_flow_run",
    "current_task_run",
    "get_run_context",
    "run_context",
]


@dataclass(frozen=True)
class FlowRun:
    """One run of a flow, as ``result_storage_key`` templates see it (``{flow_run.name}``).

    Attributes:
        id: The run's id.
        name: The run's name (the flow's name and a short random suffix).
        flow_name: The flow's name.
        parameters: The run's parameters, by name.
        run_count: 1 for the first attempt, 2 for the first retry, …
    """

    id: uuid.UUID
    name: str
    flow_name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    run_count: int = 1


@dataclass(frozen=True)
class TaskRun:
    """One run of a task, as ``result_storage_key`` templates and ``cache_key_fn`` see it.

    Attributes:
        id: The run's id.
        name: The run's name (the task's name and a short random suffix).
        task_name: The task's name.
        parameters: The run's parameters, by name.
        run_count: 1 for the first attempt, 2 for the first retry, …
        flow_run_id: The id of the flow run it belongs to, or None outside a flow.
    """

    id: uuid.UUID
    name: str
    task_name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    run_count: int = 1
    flow_run_id: uuid.UUID | None = None


@dataclass(frozen=True)
class RunContext:
    """What a running flow or task tells the result layer.

    Attributes:
        kind: ``"flow"`` or ``"task"``.
        persist_result: Whether this run persists its result.
        result_store: The ``ResultStore`` the run writes to (typed loosely to keep this module
            below :mod:`sqlresults.results`).
    """

    kind: str
    persist_result: bool
    result_store: Any = None


@dataclass(frozen=True)
class FlowRunContext(RunContext):
    """The context of a running flow.

    Attributes:
        flow: The :class:`~sqlresults.flows.Flow`.
        flow_run: This run.
        parameters: The run's parameters (what ``FLOW_PARAMETERS`` hashes).
        task_runner: The entered task runner that ``.submit()`` and ``.map()`` use, or None
            where none is reachable (inside a process-pool worker).
    """

    kind: str = "flow"
    persist_result: bool = False
    flow: Any = None
    flow_run: FlowRun | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    task_runner: Any = None


@dataclass(frozen=True)
class TaskRunContext(RunContext):
    """The context of a running task (what a ``cache_key_fn`` receives).

    Attributes:
        task: The :class:`~sqlresults.tasks.Task`.
        task_run: This run.
        parameters: The run's parameters (what ``INPUTS`` hashes).
    """

    kind: str = "task"
    persist_result: bool = False
    task: Any = None
    task_run: TaskRun | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


current_flow_run: ContextVar[RunContext | None] = ContextVar("sqlresults_flow_run", default=None)
current_task_run: ContextVar[RunContext | None] = ContextVar("sqlresults_task_run", default=None)


@contextmanager
def run_context(context: RunContext) -> Iterator[RunContext]:
    """Make ``context`` the current flow or task run for the duration of the block."""
    variable = current_task_run if context.kind == "task" else current_flow_run
    token = variable.set(context)
    try:
        yield context
    finally:
        variable.reset(token)


def get_run_context() -> RunContext | None:
    """The innermost running task's context, else the running flow's, else None (Prefect's
    ``get_run_context`` raises there; a ``cache_key_fn`` may simply check for None)."""
    return current_task_run.get() or current_flow_run.get()
