"""Tests for sqlresults.cache_policies: Prefect's policies, arithmetic and errors (behaviours
65-70 of the reference), on sqlresults' stable hashing, with the named key components that
become each record's provenance."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sqlresults.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    FlowParameters,
    Inputs,
    RunId,
    TaskSource,
)
from sqlresults.context import TaskRun, TaskRunContext
from sqlresults.errors import ConfigurationError, UnhashableError
from sqlresults.locking import IsolationLevel, SQLLockManager


class FakeTask:
    """What TASK_SOURCE reads of a task: its function."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn


def add(x: int, y: int) -> int:
    return x + y


def sub(x: int, y: int) -> int:
    return x - y


def task_context(
    fn: Any = add, *, flow_run_id: uuid.UUID | None = None, task_run_id: uuid.UUID | None = None
) -> TaskRunContext:
    run = TaskRun(
        id=task_run_id or uuid.uuid4(), name="t-1", task_name="t", flow_run_id=flow_run_id
    )
    return TaskRunContext(task=FakeTask(fn), task_run=run)


class TestNonePolicy:
    def test_no_key(self) -> None:
        """NO_CACHE (NONE) gives no key, whatever the inputs."""
        assert NO_CACHE.compute_key(task_context(), {"x": 1}, {}) is None
        assert NONE.compute_key(None, {}, {}) is None

    def test_adding_none_is_a_no_op(self) -> None:
        """Behaviour 65: NO_CACHE + X is X, and X + NO_CACHE is X."""
        assert NO_CACHE + INPUTS is INPUTS
        assert INPUTS + NO_CACHE is INPUTS

    def test_a_compound_of_nones_gives_no_key(self) -> None:
        """Behaviour 65: a compound whose every part gives None gives None."""
        policy = CompoundCachePolicy(policies=[NO_CACHE, NO_CACHE])
        assert policy.compute_key(task_context(), {"x": 1}, {}) is None


class TestInputs:
    def test_key_depends_on_inputs_only(self) -> None:
        """Equal inputs give equal keys (across task runs); different inputs differ; no inputs
        give no key."""
        key = INPUTS.compute_key(task_context(), {"x": 1, "y": 2}, {})
        assert key is not None
        assert len(key) == 32
        assert INPUTS.compute_key(task_context(sub), {"y": 2, "x": 1}, {}) == key
        assert INPUTS.compute_key(task_context(), {"x": 1, "y": 3}, {}) != key
        assert INPUTS.compute_key(task_context(), {}, {}) is None

    def test_types_are_part_of_the_key(self) -> None:
        """1, 1.0, True and "1" are different inputs (Prefect's JSON hashing equates some)."""
        keys = {INPUTS.compute_key(None, {"x": value}, {}) for value in (1, 1.0, True, "1")}
        assert len(keys) == 4

    def test_exclude(self) -> None:
        """Behaviour 66: INPUTS - "y" ignores y; (Inputs() - "y").exclude == ["y"]."""
        policy = INPUTS - "y"
        assert isinstance(policy, Inputs)
        assert policy.exclude == ["y"]
        assert policy.compute_key(None, {"x": 1, "y": 2}, {}) == policy.compute_key(
            None, {"x": 1, "y": 3}, {}
        )
        assert INPUTS.exclude == []

    def test_subtraction_keeps_the_configuration(self) -> None:
        """Prefect 3.9.1: subtracting keeps isolation level and lock manager."""
        policy = INPUTS.configure(isolation_level="SERIALIZABLE") - "y"
        assert policy.isolation is IsolationLevel.SERIALIZABLE

    def test_unhashable_input_names_the_argument(self) -> None:
        """An input that cannot be hashed raises UnhashableError naming it and the way out
        (never a silent fallback, never a shared key)."""
        import threading

        with pytest.raises(UnhashableError, match="'lock'") as caught:
            INPUTS.compute_key(None, {"x": 1, "lock": threading.Lock()}, {})
        assert 'INPUTS - "lock"' in str(caught.value) or "INPUTS - 'lock'" in str(caught.value)
        assert (INPUTS - "lock").compute_key(None, {"x": 1, "lock": threading.Lock()}, {})

    def test_components_name_each_input(self) -> None:
        """The key's components are one fingerprint per input, by name (provenance)."""
        parts = INPUTS.key_components(None, {"model": "small", "doc": "hi"}, {})
        assert parts is not None
        assert [name for name, _ in parts] == ["inputs.doc", "inputs.model"]


class TestTaskSourceAndRunId:
    def test_task_source(self) -> None:
        """TASK_SOURCE depends on the task's code; no key without a task context."""
        assert TASK_SOURCE.compute_key(None, {}, {}) is None
        a = TASK_SOURCE.compute_key(task_context(add), {}, {})
        assert a == TASK_SOURCE.compute_key(task_context(add), {"x": 9}, {})
        assert a != TASK_SOURCE.compute_key(task_context(sub), {}, {})

    def test_run_id(self) -> None:
        """RUN_ID is the flow run's id, else the task run's; None without a context."""
        flow_run_id, task_run_id = uuid.uuid4(), uuid.uuid4()
        assert RUN_ID.compute_key(None, {}, {}) is None
        in_flow = task_context(flow_run_id=flow_run_id, task_run_id=task_run_id)
        alone = task_context(task_run_id=task_run_id)
        assert RUN_ID.key_components(in_flow, {}, {}) == [("run_id", str(flow_run_id))]
        assert RUN_ID.key_components(alone, {}, {}) == [("run_id", str(task_run_id))]

    def test_flow_parameters(self) -> None:
        """FLOW_PARAMETERS hashes the flow's parameters; none gives no key."""
        assert FLOW_PARAMETERS.compute_key(None, {}, {}) is None
        assert FLOW_PARAMETERS.compute_key(None, {}, {"a": 1}) != FLOW_PARAMETERS.compute_key(
            None, {}, {"a": 2}
        )

    def test_subtracting_from_policies_without_inputs_is_the_same_object(self) -> None:
        """Behaviour 66: RUN_ID - "foo" is RUN_ID itself; subtracting a non-str is a
        TypeError."""
        assert RUN_ID - "foo" is RUN_ID
        with pytest.raises(TypeError, match="Can only subtract strings"):
            RUN_ID - 1  # type: ignore[operator]


class TestCompound:
    def test_default_is_inputs_source_and_run_id(self) -> None:
        """DEFAULT is INPUTS + TASK_SOURCE + RUN_ID, stored with Inputs last."""
        assert isinstance(DEFAULT, CompoundCachePolicy)
        assert [type(p) for p in DEFAULT.policies] == [TaskSource, RunId, Inputs]
        assert DEFAULT.description == "TASK_SOURCE + RUN_ID + INPUTS"

    def test_default_key_changes_with_each_part(self) -> None:
        """Behaviour 70: the DEFAULT key changes when the inputs, the run or the source
        change."""
        flow_run_id = uuid.uuid4()
        ctx = task_context(flow_run_id=flow_run_id)
        key = DEFAULT.compute_key(ctx, {"x": 1}, {})
        assert key == DEFAULT.compute_key(task_context(flow_run_id=flow_run_id), {"x": 1}, {})
        assert key != DEFAULT.compute_key(ctx, {"x": 2}, {})
        assert key != DEFAULT.compute_key(task_context(flow_run_id=uuid.uuid4()), {"x": 1}, {})
        assert key != DEFAULT.compute_key(task_context(sub, flow_run_id=flow_run_id), {"x": 1}, {})

    def test_inputs_are_merged_on_addition_and_subtraction(self) -> None:
        """Behaviour 67: [Inputs(), TaskSource(), Inputs(exclude=["x"]), Inputs(exclude=["y"])]
        makes 2 policies; minus "z" makes one Inputs excluding x, y and z."""
        policy = CompoundCachePolicy(
            policies=[Inputs(), TaskSource(), Inputs(exclude=["x"]), Inputs(exclude=["y"])]
        )
        assert len(policy.policies) == 2
        smaller = policy - "z"
        assert isinstance(smaller, CompoundCachePolicy)
        (inputs,) = [p for p in smaller.policies if isinstance(p, Inputs)]
        assert inputs.exclude == ["x", "y", "z"]

    def test_creation_by_subtraction(self) -> None:
        """Behaviour 68: DEFAULT - "y" is a compound whose key equals RUN_ID + TASK_SOURCE +
        (INPUTS - "y")."""
        ctx = task_context(flow_run_id=uuid.uuid4())
        policy = DEFAULT - "y"
        assert isinstance(policy, CompoundCachePolicy)
        expected = TASK_SOURCE + RUN_ID + Inputs(exclude=["y"])
        inputs = {"x": 1, "y": 2}
        assert policy.compute_key(ctx, inputs, {}) == expected.compute_key(ctx, inputs, {})

    def test_a_part_that_cannot_be_hashed_fails_the_whole_key(self) -> None:
        """#15861: a compound key fails as a whole; no weaker key from the other parts."""
        import threading

        with pytest.raises(UnhashableError):
            (TASK_SOURCE + INPUTS).compute_key(task_context(), {"x": threading.Lock()}, {})

    def test_components_of_a_compound(self) -> None:
        """A compound's components are its parts', in policy order: what provenance stores."""
        flow_run_id = uuid.uuid4()
        parts = DEFAULT.key_components(task_context(flow_run_id=flow_run_id), {"x": 1}, {})
        assert parts is not None
        assert [name for name, _ in parts] == ["task_source", "run_id", "inputs.x"]
        key, components = DEFAULT.key_and_components(
            task_context(flow_run_id=flow_run_id), {"x": 1}, {}
        )
        assert components == parts
        assert key == DEFAULT.compute_key(task_context(flow_run_id=flow_run_id), {"x": 1}, {})


class TestConfiguration:
    def test_configure_returns_a_changed_copy(self) -> None:
        """configure() copies and sets only what is given; with nothing it equals the
        original."""
        serial = INPUTS.configure(isolation_level="SERIALIZABLE")
        assert serial is not INPUTS
        assert serial.isolation is IsolationLevel.SERIALIZABLE
        assert INPUTS.isolation_level is None
        assert INPUTS.configure() == INPUTS

    def test_conflicting_settings_cannot_be_added(self, tmp_path: Any) -> None:
        """Behaviour 69: different isolation levels or lock managers raise Prefect's
        ValueErrors."""
        with pytest.raises(ValueError, match="different isolation levels"):
            INPUTS.configure(isolation_level="SERIALIZABLE") + TASK_SOURCE.configure(
                isolation_level="READ_COMMITTED"
            )
        one = SQLLockManager(tmp_path / "a.db")
        other = SQLLockManager(tmp_path / "b.db")
        with pytest.raises(ValueError, match="different lock implementations"):
            INPUTS.configure(lock_manager=one) + TASK_SOURCE.configure(lock_manager=other)
        combined = INPUTS.configure(lock_manager=one) + TASK_SOURCE
        assert combined.lock_manager is one

    def test_key_storage_is_refused(self) -> None:
        """key_storage (Prefect's separate metadata store) is refused with a clear error: a
        record and its metadata are one row."""
        with pytest.raises(ConfigurationError, match="key_storage"):
            INPUTS.configure(key_storage="/tmp/keys")

    def test_bad_isolation_level(self) -> None:
        """An isolation level that is no level is refused."""
        with pytest.raises(ConfigurationError, match="isolation_level"):
            INPUTS.configure(isolation_level="EVENTUAL")  # type: ignore[arg-type]


class TestCacheKeyFn:
    def test_key_is_the_functions(self) -> None:
        """A cache_key_fn policy's key comes from the function (called with the task run
        context and the parameters); None means no caching."""
        seen: list[Any] = []

        def key_fn(ctx: TaskRunContext, parameters: dict[str, Any]) -> str | None:
            seen.append((ctx, parameters))
            return None if parameters.get("skip") else f"k-{parameters['x']}"

        policy = CachePolicy.from_cache_key_fn(key_fn)
        assert isinstance(policy, CacheKeyFnPolicy)
        ctx = task_context()
        key = policy.compute_key(ctx, {"x": 1}, {})
        assert key is not None
        assert policy.key_components(ctx, {"x": 1}, {}) == [("cache_key_fn", "k-1")]
        assert policy.compute_key(ctx, {"x": 1, "skip": True}, {}) is None
        assert seen[0] == (ctx, {"x": 1})

    def test_a_key_that_is_no_string_is_refused(self) -> None:
        """A cache_key_fn returning something else than a str or None is a TypeError."""
        policy = CacheKeyFnPolicy(cache_key_fn=lambda ctx, params: 42)  # type: ignore[arg-type,return-value]
        with pytest.raises(TypeError, match="cache_key_fn must return a str"):
            policy.compute_key(None, {}, {})

    def test_custom_policy_written_prefects_way(self) -> None:
        """A CachePolicy subclass that only overrides compute_key (Prefect's way) works: its
        key is its own, and it is one component named after the class."""

        class Constant(CachePolicy):
            def compute_key(
                self, task_ctx: Any, inputs: Any, flow_parameters: Any, **kw: Any
            ) -> str:
                return "always-the-same"

        policy = Constant()
        assert policy.compute_key(None, {}, {}) == "always-the-same"
        assert policy.key_and_components(None, {}, {}) == (
            "always-the-same",
            [("Constant", "always-the-same")],
        )
        assert (policy + INPUTS).compute_key(None, {"x": 1}, {}) is not None


class TestFlowParametersClass:
    def test_instances(self) -> None:
        """The constants are instances of Prefect's classes."""
        assert isinstance(FLOW_PARAMETERS, FlowParameters)
        assert isinstance(RUN_ID, RunId)
        assert isinstance(TASK_SOURCE, TaskSource)
        assert isinstance(INPUTS, Inputs)
