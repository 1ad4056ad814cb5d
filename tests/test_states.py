"""Tests for sqlresults.states: constructors, predicates, result(), copies and pickling."""

from __future__ import annotations

import dataclasses
import pickle
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import cloudpickle
import pytest

from sqlresults.errors import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    SQLResultsError,
    UnfinishedRun,
    UpstreamTaskError,
)
from sqlresults.records import ResultRecord, ResultRecordMetadata
from sqlresults.states import (
    Cached,
    Cancelled,
    Completed,
    Failed,
    Pending,
    RolledBack,
    Running,
    State,
    StateType,
)

PREDICATES = ["is_pending", "is_running", "is_completed", "is_failed", "is_cancelled", "is_final"]

# constructor, its type, its name, the predicates that hold
CONSTRUCTORS: list[tuple[Callable[..., State[Any]], StateType, str, set[str]]] = [
    (Completed, StateType.COMPLETED, "Completed", {"is_completed", "is_final"}),
    (Cached, StateType.COMPLETED, "Cached", {"is_completed", "is_final"}),
    (RolledBack, StateType.COMPLETED, "RolledBack", {"is_completed", "is_final"}),
    (Failed, StateType.FAILED, "Failed", {"is_failed", "is_final"}),
    (Cancelled, StateType.CANCELLED, "Cancelled", {"is_cancelled", "is_final"}),
    (Pending, StateType.PENDING, "Pending", {"is_pending"}),
    (Running, StateType.RUNNING, "Running", {"is_running"}),
]


def record(value: Any) -> ResultRecord[Any]:
    """A result record holding ``value``."""
    return ResultRecord(metadata=ResultRecordMetadata(storage_key="k"), result=value)


def raised(exc: BaseException) -> BaseException:
    """``exc`` after it was raised and caught here, so it carries a traceback."""

    def fail() -> None:
        raise exc

    try:
        fail()
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


class TestConstructors:
    @pytest.mark.parametrize(
        ("constructor", "state_type", "name", "true"),
        CONSTRUCTORS,
        ids=[name for _, _, name, _ in CONSTRUCTORS],
    )
    def test_type_name_and_predicates(
        self,
        constructor: Callable[..., State[Any]],
        state_type: StateType,
        name: str,
        true: set[str],
    ) -> None:
        """Each constructor gives its type and Prefect's name; exactly the predicates of that
        type hold (final: completed, failed, cancelled)."""
        state = constructor()
        assert state.type is state_type
        assert state.name == name
        assert {predicate for predicate in PREDICATES if getattr(state, predicate)()} == true

    @pytest.mark.parametrize("constructor", [c for c, _, _, _ in CONSTRUCTORS])
    def test_defaults(self, constructor: Callable[..., State[Any]]) -> None:
        """Without arguments a state has no data and no task run id, and an aware UTC
        timestamp of its creation; only RolledBack has a default message."""
        before = datetime.now(UTC)
        state = constructor()
        assert state.data is None
        assert state.task_run_id is None
        assert state.timestamp.utcoffset() is not None
        assert state.timestamp.tzinfo is UTC
        assert before <= state.timestamp <= datetime.now(UTC)
        if constructor is not RolledBack:
            assert state.message is None

    def test_keywords(self) -> None:
        """Data, message, name and task run id are kept as given."""
        run_id = uuid.uuid4()
        state = Completed([1], name="Custom", message="done", task_run_id=run_id)
        assert (state.data, state.name, state.message, state.task_run_id) == (
            [1],
            "Custom",
            "done",
            run_id,
        )
        error = ValueError("bad")
        assert Failed(error, message="it failed").data is error
        assert Cached(5).data == 5
        assert Pending(task_run_id=run_id).task_run_id == run_id
        assert Running(message="on it").message == "on it"

    def test_rolled_back_has_prefect_message(self) -> None:
        """RolledBack is a COMPLETED state with Prefect's message."""
        state = RolledBack()
        assert state.is_completed()
        assert state.message == "Task rolled back as part of transaction"

    def test_state_type_values(self) -> None:
        """StateType has Prefect's five run types, valued by their names."""
        assert [member.value for member in StateType] == [
            "PENDING",
            "RUNNING",
            "COMPLETED",
            "FAILED",
            "CANCELLED",
        ]


class TestResult:
    @pytest.mark.parametrize("constructor", [Completed, Cached, RolledBack])
    def test_completed_returns_its_data(self, constructor: Callable[..., State[Any]]) -> None:
        """A completed state's result is its data; without data, None."""
        assert constructor({"rows": 42}).result() == {"rows": 42}
        assert constructor().result() is None

    def test_result_record_is_unwrapped(self) -> None:
        """A ResultRecord in a completed state gives record.result."""
        assert Completed(record([1, 2])).result() == [1, 2]

    def test_failed_raises_its_exception_with_its_traceback(self) -> None:
        """A failed state raises the very exception it holds, whose traceback still reaches
        the frame that first raised it."""
        error = raised(ValueError("bad input"))
        with pytest.raises(ValueError, match="bad input") as info:
            Failed(error).result()
        assert info.value is error
        frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
        assert "fail" in frames

    def test_failed_without_raising_returns_the_exception(self) -> None:
        """raise_on_failure=False returns a failed state's exception."""
        error = ValueError("bad")
        assert Failed(error).result(raise_on_failure=False) is error

    def test_completed_ignores_raise_on_failure(self) -> None:
        """raise_on_failure changes nothing for a completed state."""
        assert Completed(3).result(raise_on_failure=False) == 3

    def test_failed_record_holding_an_exception(self) -> None:
        """A ResultRecord holding the exception (a persisted failure) works the same."""
        error = KeyError("missing")
        with pytest.raises(KeyError):
            Failed(record(error)).result()
        assert Failed(record(error)).result(raise_on_failure=False) is error

    def test_failed_without_exception(self) -> None:
        """A failed state without an exception raises FailedRun with its message, Prefect's
        default "Run failed." without one, or the string in its data."""
        with pytest.raises(FailedRun, match=r"^upstream broke$"):
            Failed(message="upstream broke").result()
        with pytest.raises(FailedRun, match=r"^Run failed\.$"):
            Failed().result()
        string_data = State(StateType.FAILED, "Failed", data="as a string")
        with pytest.raises(FailedRun, match=r"^as a string$"):
            string_data.result()
        assert isinstance(Failed().result(raise_on_failure=False), FailedRun)

    def test_cancelled(self) -> None:
        """A cancelled state raises CancelledRun ("Run cancelled." by default), or the
        exception it holds."""
        with pytest.raises(CancelledRun, match=r"^Run cancelled\.$"):
            Cancelled().result()
        with pytest.raises(CancelledRun, match=r"^dropped$"):
            Cancelled(message="dropped").result()
        assert isinstance(Cancelled().result(raise_on_failure=False), CancelledRun)

    @pytest.mark.parametrize(
        ("constructor", "type_name"), [(Pending, "PENDING"), (Running, "RUNNING")]
    )
    @pytest.mark.parametrize("raise_on_failure", [True, False])
    def test_unfinished_raises(
        self, constructor: Callable[..., State[Any]], type_name: str, raise_on_failure: bool
    ) -> None:
        """An unfinished state has no result: UnfinishedRun with Prefect's message, whatever
        raise_on_failure says."""
        with pytest.raises(
            UnfinishedRun, match=f"^Run is in {type_name} state, its result is not available.$"
        ):
            constructor().result(raise_on_failure=raise_on_failure)

    def test_exception_of_a_state_that_did_not_fail(self) -> None:
        """exception() is only for failed and cancelled states."""
        with pytest.raises(ValueError, match="Expected a failed or cancelled state"):
            Completed(1).exception()

    def test_errors_are_in_the_tree(self) -> None:
        """The run errors derive from SQLResultsError, and from the builtin a caller would
        catch where one fits."""
        for error in (UnfinishedRun, FailedRun, CancelledRun, CrashedRun, UpstreamTaskError):
            assert issubclass(error, SQLResultsError)
        assert issubclass(UnfinishedRun, RuntimeError)
        assert issubclass(CrashedRun, RuntimeError)
        assert issubclass(UpstreamTaskError, RuntimeError)


class TestValueSemantics:
    def test_immutable(self) -> None:
        """States cannot be changed in place."""
        state = Completed(1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            state.data = 2  # type: ignore[misc]

    def test_copy(self) -> None:
        """copy() applies the changes, keeps the rest (the timestamp too) and leaves the
        original alone."""
        run_id = uuid.uuid4()
        state = Completed(1, message="m")
        copied = state.copy(task_run_id=run_id)
        assert copied is not state
        assert (copied.data, copied.message, copied.timestamp) == (1, "m", state.timestamp)
        assert copied.task_run_id == run_id
        assert state.task_run_id is None

    def test_identity_equality_and_hashable(self) -> None:
        """States compare by identity and are hashable whatever their data, so they can sit
        in sets (resolve_futures_to_states rebuilds sets of them)."""
        first, second = Completed([1]), Completed([1])
        assert first == first
        assert first != second
        assert len({first, second, first}) == 2

    def test_repr(self) -> None:
        """The repr shows the name, message, type and a shortened data."""
        text = repr(Cached(list(range(100)), message="hit"))
        assert text.startswith("Cached(message='hit', type=COMPLETED, data=[0, 1, 2")
        assert len(text) < 120


class TestPickling:
    @pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloud"])
    @pytest.mark.parametrize(
        "state",
        [
            Completed({"a": [1, 2]}, task_run_id=uuid.uuid4()),
            Cached(record(42), message="hit"),
            RolledBack(),
            Failed(ValueError("bad"), message="failed"),
            Failed(message="no exception"),
            Cancelled(),
            Pending(task_run_id=uuid.uuid4()),
            Running(),
        ],
        ids=lambda state: state.name,
    )
    def test_round_trip(self, state: State[Any], dumps: Callable[[Any], bytes]) -> None:
        """Every kind of state survives pickle and cloudpickle (they cross process
        boundaries) with all its fields."""
        copy = pickle.loads(dumps(state))
        assert (copy.type, copy.name, copy.message, copy.timestamp, copy.task_run_id) == (
            state.type,
            state.name,
            state.message,
            state.timestamp,
            state.task_run_id,
        )
        if state.is_failed() and isinstance(state.data, BaseException):
            assert type(copy.data) is type(state.data)
            assert copy.data.args == state.data.args
        else:
            assert copy.data == state.data

    def test_failed_copy_still_raises(self) -> None:
        """An unpickled failed state raises the exception's copy."""
        copy = pickle.loads(cloudpickle.dumps(Failed(KeyError("k"))))
        with pytest.raises(KeyError, match="k"):
            copy.result()

    def test_run_errors_pickle(self) -> None:
        """The run errors survive pickling with their message (and the upstream state)."""
        upstream = Failed(ValueError("x"))
        error = pickle.loads(pickle.dumps(UpstreamTaskError("upstream failed", upstream)))
        assert str(error) == "upstream failed"
        assert error.upstream_state is not None
        assert error.upstream_state.is_failed()
        for cls in (UnfinishedRun, FailedRun, CancelledRun, CrashedRun):
            assert str(pickle.loads(pickle.dumps(cls("message")))) == "message"


@pytest.mark.parametrize(
    "name", ["CancelledRun", "CrashedRun", "FailedRun", "UnfinishedRun", "UpstreamTaskError"]
)
def test_run_errors_import_from_states_as_first_published(name: str) -> None:
    """The errors a state's result raises, first published in ``sqlresults.states``, still
    import from there (they are defined in ``sqlresults.errors``, under ``RunError``)."""
    import sqlresults.errors
    import sqlresults.states

    assert name in sqlresults.states.__all__
    assert getattr(sqlresults.states, name) is getattr(sqlresults.errors, name)
    assert issubclass(getattr(sqlresults.states, name), sqlresults.errors.RunError)
