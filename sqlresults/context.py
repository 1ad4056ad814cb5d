"""Which flow and task are running: context variables the task layer sets and the store reads.

This module sits below :mod:`sqlresults.results` so that ``should_persist_result()`` and
``get_result_store()`` can consult the run context without the store importing the task layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["RunContext", "current_flow_run", "current_task_run", "run_context"]


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
