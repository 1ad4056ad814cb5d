"""States: where a task run stands, and its result once it is final.

A :class:`State` is an immutable value: a :class:`StateType` (``PENDING``, ``RUNNING``,
``COMPLETED``, ``FAILED``, ``CANCELLED``), a display name, a message, the data (the result, a
:class:`~sqlresults.records.ResultRecord` holding it, or the exception of a failed run), an aware
UTC timestamp and the task run's id. States cross process boundaries (a process pool worker
returns one), so every state pickles with :mod:`pickle` and cloudpickle, as long as its data
does.

Prefect's names, types and messages, on fewer types: Prefect's ``Cached`` and ``RolledBack`` are
``COMPLETED`` states with those names, as here; its ``CRASHED`` type is a ``FAILED`` state named
``"Crashed"`` here (a process pool worker that died), so ``is_failed()`` covers both.

``state.result()`` returns a completed run's value (unwrapping a ``ResultRecord``), raises a
failed run's exception, and refuses a run that is not final::

    Completed(42).result()                              # 42
    Failed(ValueError("bad")).result()                  # raises that ValueError
    Failed(ValueError("bad")).result(raise_on_failure=False)   # returns it
    Pending().result()                                  # UnfinishedRun

The errors a state's result can raise (:class:`UnfinishedRun`, :class:`FailedRun`,
:class:`CancelledRun`, :class:`CrashedRun`, :class:`UpstreamTaskError`) are defined in
:mod:`sqlresults.errors` under :class:`~sqlresults.errors.RunError`, and importable from here
too, beside the states that produce them (as they were first published).
"""

from __future__ import annotations

import dataclasses
import enum
import reprlib
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlresults.errors import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    RunError,
    UnfinishedRun,
    UpstreamTaskError,
)
from sqlresults.records import ResultRecord

__all__ = [
    "Cached",
    "Cancelled",
    "CancelledRun",
    "Completed",
    "CrashedRun",
    "Failed",
    "FailedRun",
    "Pending",
    "RolledBack",
    "Running",
    "State",
    "StateType",
    "UnfinishedRun",
    "UpstreamTaskError",
]

R = TypeVar("R")

ROLLED_BACK_MESSAGE = "Task rolled back as part of transaction"


class StateType(enum.Enum):
    """The kind of a state; ``COMPLETED``, ``FAILED`` and ``CANCELLED`` are final."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


_FINAL_TYPES = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass(frozen=True, eq=False)
class State(Generic[R]):
    """Where a task run stands: immutable, compared by identity, picklable.

    Build states with the constructors (:func:`Completed`, :func:`Cached`, :func:`Failed`, …)
    rather than directly.

    Attributes:
        type: The kind of state.
        name: Its display name (``"Cached"`` and ``"RolledBack"`` are ``COMPLETED`` states).
        message: A human-readable note, or None.
        data: A completed run's value or the :class:`~sqlresults.records.ResultRecord` holding
            it; a failed run's exception; None otherwise.
        timestamp: When the state was created, an aware UTC datetime.
        task_run_id: The run the state belongs to, if known.
    """

    type: StateType
    name: str
    message: str | None = None
    data: Any = None
    timestamp: datetime = dataclasses.field(default_factory=_now)
    task_run_id: uuid.UUID | None = None

    def is_pending(self) -> bool:
        """Whether the run has not started."""
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        """Whether the run has started and not finished."""
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        """Whether the run finished with a result (including ``Cached`` and ``RolledBack``)."""
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        """Whether the run finished with an error (including ``Crashed``)."""
        return self.type is StateType.FAILED

    def is_cancelled(self) -> bool:
        """Whether the run was cancelled."""
        return self.type is StateType.CANCELLED

    def is_final(self) -> bool:
        """Whether the state is final: completed, failed or cancelled."""
        return self.type in _FINAL_TYPES

    def result(self, raise_on_failure: bool = True) -> R:
        """The run's result, Prefect's way.

        Args:
            raise_on_failure: For a failed or cancelled run, raise its exception (True) or
                return it (False).

        Returns:
            For a completed run, its value (a :class:`~sqlresults.records.ResultRecord` is
            unwrapped to ``record.result``; ``Completed()`` without data gives None). For a
            failed or cancelled run with ``raise_on_failure=False``, its exception.

        Raises:
            UnfinishedRun: The run is pending or running (Prefect's message).
            BaseException: With ``raise_on_failure``, a failed run's own exception (raised
                again, so its original traceback is kept), or :class:`FailedRun` /
                :class:`CancelledRun` carrying the state's message when it holds none.
        """
        if not self.is_final():
            raise UnfinishedRun(f"Run is in {self.type.name} state, its result is not available.")
        if self.is_completed():
            data = self.data
            return data.result if isinstance(data, ResultRecord) else data  # type: ignore[no-any-return]
        exception = self.exception()
        if raise_on_failure:
            raise exception
        return exception  # type: ignore[return-value]

    def exception(self) -> BaseException:
        """The exception a failed or cancelled run stands for.

        Returns:
            The exception in ``data`` (or in the :class:`~sqlresults.records.ResultRecord` in
            ``data``); else a :class:`FailedRun` or :class:`CancelledRun` with the state's
            message (``"Run failed."`` / ``"Run cancelled."`` without one). A string in
            ``data`` becomes that wrapper's message.

        Raises:
            ValueError: The state is neither failed nor cancelled.
        """
        if self.is_failed():
            wrapper: type[RunError] = FailedRun
            default_message = "Run failed."
        elif self.is_cancelled():
            wrapper, default_message = CancelledRun, "Run cancelled."
        else:
            raise ValueError(f"Expected a failed or cancelled state, got {self!r}.")
        data = self.data.result if isinstance(self.data, ResultRecord) else self.data
        if isinstance(data, BaseException):
            return data
        if isinstance(data, str):
            return wrapper(data)
        return wrapper(self.message or default_message)

    def copy(self, **changes: Any) -> State[R]:
        """A copy of this state with ``changes`` applied (e.g. ``task_run_id=...``); the
        timestamp is kept unless it is one of the changes."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (
            f"{self.name}(message={self.message!r}, type={self.type.name}, "
            f"data={reprlib.repr(self.data)})"
        )


def Completed(  # noqa: N802 (Prefect's constructor names)
    data: Any = None,
    *,
    name: str = "Completed",
    message: str | None = None,
    task_run_id: uuid.UUID | None = None,
) -> State[Any]:
    """A ``COMPLETED`` state holding a result (or the ``ResultRecord`` that holds it)."""
    return State(StateType.COMPLETED, name, message, data, task_run_id=task_run_id)


def Cached(  # noqa: N802
    data: Any = None,
    *,
    name: str = "Cached",
    message: str | None = None,
    task_run_id: uuid.UUID | None = None,
) -> State[Any]:
    """A ``COMPLETED`` state named ``"Cached"``: the result came from a cache hit."""
    return State(StateType.COMPLETED, name, message, data, task_run_id=task_run_id)


def RolledBack(  # noqa: N802
    data: Any = None,
    *,
    name: str = "RolledBack",
    message: str | None = ROLLED_BACK_MESSAGE,
    task_run_id: uuid.UUID | None = None,
) -> State[Any]:
    """A ``COMPLETED`` state named ``"RolledBack"`` with Prefect's message, ``Task rolled back
    as part of transaction``: the run finished but its transaction rolled back."""
    return State(StateType.COMPLETED, name, message, data, task_run_id=task_run_id)


def Failed(  # noqa: N802
    data: BaseException | ResultRecord[Any] | None = None,
    *,
    name: str = "Failed",
    message: str | None = None,
    task_run_id: uuid.UUID | None = None,
) -> State[Any]:
    """A ``FAILED`` state holding the run's exception (or a ``ResultRecord`` holding it)."""
    return State(StateType.FAILED, name, message, data, task_run_id=task_run_id)


def Cancelled(  # noqa: N802
    data: BaseException | None = None,
    *,
    name: str = "Cancelled",
    message: str | None = None,
    task_run_id: uuid.UUID | None = None,
) -> State[Any]:
    """A ``CANCELLED`` state: the run was dropped (e.g. its runner shut down before it
    started)."""
    return State(StateType.CANCELLED, name, message, data, task_run_id=task_run_id)


def Pending(  # noqa: N802
    *,
    name: str = "Pending",
    message: str | None = None,
    task_run_id: uuid.UUID | None = None,
    data: Any = None,
) -> State[Any]:
    """A ``PENDING`` state: submitted, not started."""
    return State(StateType.PENDING, name, message, data, task_run_id=task_run_id)


def Running(  # noqa: N802
    *,
    name: str = "Running",
    message: str | None = None,
    task_run_id: uuid.UUID | None = None,
    data: Any = None,
) -> State[Any]:
    """A ``RUNNING`` state: started, not finished."""
    return State(StateType.RUNNING, name, message, data, task_run_id=task_run_id)
