"""Tests for sqlresults.tasks: ``@task`` runs, caching, persistence rules, retries, futures,
runners, provenance and compute-once, on SQLite and PostgreSQL.

Every test points the default store at the backend under test (``pipeline`` fixture:
``SQLRESULTS_DATABASE_URL`` and a namespace of its own), so tasks and flows with no
``result_storage`` write there. Prefect's behaviours 71-78 (reference §10) are adapted here;
the seeds' examples are in test_seeds.py.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Counter
from hypothesis import given, settings
from hypothesis import strategies as st
from threads import join, run_in_thread

from sqlresults.cache_policies import DEFAULT, FLOW_PARAMETERS, INPUTS, NO_CACHE, TASK_SOURCE
from sqlresults.errors import UnhashableError, UpstreamTaskError
from sqlresults.flows import flow
from sqlresults.futures import TaskRunFuture
from sqlresults.results import ResultStore
from sqlresults.states import State
from sqlresults.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
from sqlresults.tasks import Task, exponential_backoff, task, unmapped

SERIALIZABLE_INPUTS = INPUTS.configure(isolation_level="SERIALIZABLE")


class TestCalling:
    def test_a_task_is_a_function(self, pipeline: ResultStore) -> None:
        """Calling a task outside a flow runs it and returns its result; return_state gives
        the Completed state with the same result."""

        @task
        def add(x: int, y: int = 1) -> int:
            return x + y

        assert isinstance(add, Task)
        assert add.name == "add"
        assert add(1) == 2
        state = add(2, y=3, return_state=True)
        assert isinstance(state, State)
        assert state.is_completed()
        assert state.name == "Completed"
        assert state.result() == 5

    def test_failure_raises_and_return_state_is_failed(self, pipeline: ResultStore) -> None:
        """A failing task raises its exception; with return_state it is a Failed state whose
        result() raises it."""

        @task
        def boom() -> None:
            raise KeyError("nope")

        with pytest.raises(KeyError, match="nope"):
            boom()
        state = boom(return_state=True)
        assert state.is_failed()
        with pytest.raises(KeyError):
            state.result()
        assert isinstance(state.result(raise_on_failure=False), KeyError)

    def test_bad_arguments(self, pipeline: ResultStore) -> None:
        """Calling with arguments the function does not take is a TypeError naming the
        task."""

        @task
        def one(x: int) -> int:
            return x

        with pytest.raises(TypeError, match="'one'"):
            one(1, 2)

    def test_with_options(self, pipeline: ResultStore) -> None:
        """with_options makes a copy with options changed; unknown options are refused."""

        @task(retries=1)
        def plain() -> int:
            return 1

        other = plain.with_options(name="renamed", persist_result=False)
        assert (other.name, other.retries, other.persist_result) == ("renamed", 1, False)
        assert plain.name == "plain"
        with pytest.raises(TypeError, match="bogus"):
            plain.with_options(bogus=True)

    def test_async_task(self, pipeline: ResultStore) -> None:
        """An async task returns an awaitable of its result."""

        @task
        async def double(x: int) -> int:
            await asyncio.sleep(0)
            return 2 * x

        assert asyncio.run(double(21)) == 42
        state = asyncio.run(double(1, return_state=True))
        assert state.is_completed()


class TestCaching:
    def test_a_persisted_task_is_served_from_the_database(self, pipeline: ResultStore) -> None:
        """With a cache policy, the second call with equal inputs is Cached and does not run;
        other inputs run."""
        counter = Counter()

        @task(cache_policy=INPUTS)
        def square(x: int) -> int:
            counter()
            return x * x

        assert square(3) == 9
        second = square(3, return_state=True)
        assert second.name == "Cached"
        assert second.result() == 9
        assert square(4) == 16
        assert counter.calls == 2

    def test_repeated_call_in_a_flow_is_cached_by_default(self, pipeline: ResultStore) -> None:
        """Behaviour 71: a task with persist_result=True called twice with the same arguments
        in one flow run: the second state is Cached (DEFAULT includes the run id)."""

        @task(persist_result=True)
        def value() -> dict[str, int]:
            return {"a": 1}

        @flow
        def twice() -> tuple[State, State]:
            return value(return_state=True), value(return_state=True)

        first, second = twice()
        assert first.name == "Completed"
        assert second.name == "Cached"
        assert second.result() == first.result()

    def test_default_policy_does_not_cross_flow_runs(self, pipeline: ResultStore) -> None:
        """DEFAULT includes the run id: a new flow run recomputes (#15559, as Prefect)."""
        counter = Counter()

        @task(persist_result=True)
        def compute() -> int:
            return counter()

        @flow
        def run() -> int:
            return compute()

        assert run() == 1
        assert run() == 2

    def test_past_expiration_is_not_a_hit(self, pipeline: ResultStore) -> None:
        """Behaviour 72: cache_expiration in the past: the second call recomputes."""
        counter = Counter()

        @task(cache_policy=INPUTS, cache_expiration=timedelta(seconds=-5))
        def compute(x: int) -> int:
            return counter()

        assert compute(0) == 1
        assert compute(0, return_state=True).name == "Completed"
        assert counter.calls == 2

    def test_refresh_cache(self, pipeline: ResultStore, monkeypatch: pytest.MonkeyPatch) -> None:
        """Behaviour 73: refresh_cache=True recomputes and overwrites; the setting turns it on
        for every task, and a task's refresh_cache=False wins over the setting."""
        counter = Counter()

        @task(cache_policy=INPUTS)
        def compute(x: int) -> int:
            return counter()

        refreshed = compute.with_options(refresh_cache=True)
        assert compute(0) == 1
        assert compute(0) == 1
        assert refreshed(0) == 2
        assert compute(0) == 2  # the overwrite is what later calls see
        monkeypatch.setenv("SQLRESULTS_TASKS_REFRESH_CACHE", "true")
        assert compute(0) == 3
        assert compute.with_options(refresh_cache=False)(0) == 3

    def test_task_source_separates_tasks(self, pipeline: ResultStore) -> None:
        """INPUTS + TASK_SOURCE: two tasks with the same inputs but different code do not
        share entries."""

        @task(cache_policy=INPUTS + TASK_SOURCE)
        def one(x: int) -> str:
            return "one"

        @task(cache_policy=INPUTS + TASK_SOURCE)
        def two(x: int) -> str:
            return "two"

        assert (one(1), two(1)) == ("one", "two")

    def test_no_cache(self, pipeline: ResultStore) -> None:
        """NO_CACHE runs every time, and persist_result=True with NO_CACHE writes nothing (no
        key, as in Prefect)."""
        counter = Counter()

        @task(cache_policy=NO_CACHE, persist_result=True)
        def compute() -> int:
            return counter()

        assert (compute(), compute()) == (1, 2)
        assert list(pipeline.keys()) == []

    def test_unhashable_input(self, pipeline: ResultStore) -> None:
        """An input that cannot be hashed raises UnhashableError naming the argument before the
        function runs; excluding it works."""
        counter = Counter()

        @task(cache_policy=INPUTS)
        def use(x: int, lock: Any) -> int:
            counter()
            return x

        with pytest.raises(UnhashableError, match="'lock'"):
            use(1, threading.Lock())
        assert counter.calls == 0
        assert use.with_options(cache_policy=INPUTS - "lock")(1, threading.Lock()) == 1

    def test_persist_false_with_a_policy_warns_and_does_not_cache(
        self, pipeline: ResultStore
    ) -> None:
        """DESIGN §10: persist_result=False with a cache policy warns and disables caching."""
        counter = Counter()
        with pytest.warns(UserWarning, match="persist_result"):

            @task(cache_policy=INPUTS, persist_result=False)
            def compute() -> int:
                return counter()

        assert (compute(), compute()) == (1, 2)

    def test_cache_key_fn(self, pipeline: ResultStore) -> None:
        """A cache_key_fn's key decides hits; a cache_key_fn alone turns persistence on."""
        counter = Counter()

        @task(cache_key_fn=lambda ctx, params: f"by-{params['x'] % 2}")
        def parity(x: int) -> int:
            counter()
            return x % 2

        assert parity.persist_result is True
        assert (parity(1), parity(3), parity(2)) == (1, 1, 0)
        assert counter.calls == 2


class TestResultStorageKey:
    def test_templated_key(self, pipeline: ResultStore) -> None:
        """Behaviour 77: result_storage_key is formatted from the parameters; it is the record's
        key and the cache key."""
        counter = Counter()

        @task(result_storage_key="{parameters[x]}-{parameters[y]}-bar")
        def keyed(x: int, y: str) -> str:
            counter()
            return f"{x}{y}"

        assert keyed(1, "foo") == "1foo"
        assert pipeline.read("1-foo-bar").result == "1foo"
        assert keyed(1, "foo", return_state=True).name == "Cached"
        assert counter.calls == 1

    def test_flow_run_fields(self, pipeline: ResultStore) -> None:
        """A key may use the flow run's fields, e.g. {flow_run.flow_name}."""

        @task(result_storage_key="{flow_run.flow_name}__bar")
        def keyed() -> int:
            return 1

        @flow(name="foo")
        def foo() -> int:
            return keyed()

        foo()
        assert pipeline.read("foo__bar").result == 1

    def test_bad_template(self, pipeline: ResultStore) -> None:
        """A template naming an unknown parameter fails the run with a clear error."""

        @task(result_storage_key="{parameters[missing]}")
        def keyed(x: int) -> int:
            return x

        with pytest.raises(ValueError, match="result_storage_key"):
            keyed(1)


class TestPersistence:
    def test_flow_persistence_is_inherited(self, pipeline: ResultStore) -> None:
        """Behaviour 11: a task with no persistence option inherits the flow's; a task's own
        persist_result wins."""

        @task(result_storage_key="inherits")
        def inherits() -> int:
            return 1

        @task
        def plain() -> int:
            return 2

        @flow(persist_result=True)
        def persisting() -> tuple[State, State]:
            return plain(return_state=True), plain.with_options(persist_result=False)(
                return_state=True
            )

        persisted, not_persisted = persisting()
        assert persisted.data.is_persisted  # type: ignore[union-attr]
        assert not getattr(not_persisted.data, "is_persisted", False)
        assert inherits() == 1

    def test_setting_opts_tasks_out(
        self, pipeline: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Behaviour 12: SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT=false overrides a flow's
        persist_result=True for its tasks."""
        monkeypatch.setenv("SQLRESULTS_TASKS_DEFAULT_PERSIST_RESULT", "false")

        @task
        def plain() -> int:
            return 2

        @flow(persist_result=True)
        def persisting() -> list[State]:
            return [plain(return_state=True)]

        assert not getattr(persisting()[0].data, "is_persisted", False)

    def test_cache_result_in_memory(self, pipeline: ResultStore) -> None:
        """Behaviour 78: a persisted task's record lands in its store's LRU; with
        cache_result_in_memory=False it does not, and is still readable."""

        @task(result_storage_key="in-memory")
        def kept() -> int:
            return 1

        @task(result_storage_key="not-in-memory", cache_result_in_memory=False)
        def dropped() -> int:
            return 2

        kept_state = kept(return_state=True)
        dropped_state = dropped(return_state=True)
        # The stores the runs wrote through (derived once per configuration, so the same
        # objects), looked at before any read (a read fills an LRU itself).
        from sqlresults.tasks import _store_for

        assert _store_for(kept, None).cache.get("in-memory") is not None
        assert _store_for(dropped, None).cache_result_in_memory is False
        assert _store_for(dropped, None).cache.get("not-in-memory") is None
        assert pipeline.read("not-in-memory").result == 2
        kept_store = kept_state.data
        assert kept_store.metadata.storage_key == "in-memory"  # type: ignore[union-attr]
        assert dropped_state.result() == 2


class TestRetries:
    def test_retries_then_success(self, pipeline: ResultStore) -> None:
        """A task that fails twice with retries=2 completes on the third attempt."""
        counter = Counter()

        @task(retries=2)
        def flaky() -> int:
            if counter() < 3:
                raise RuntimeError("not yet")
            return counter.calls

        assert flaky() == 3

    def test_retries_exhausted(self, pipeline: ResultStore) -> None:
        """When every attempt fails, the last exception is the result."""
        counter = Counter()

        @task(retries=1, retry_delay_seconds=[0])
        def always() -> None:
            raise RuntimeError(f"attempt {counter()}")

        with pytest.raises(RuntimeError, match="attempt 2"):
            always()

    def test_exponential_backoff(self) -> None:
        """exponential_backoff gives doubling delays for retry_delay_seconds (Prefect's)."""
        assert exponential_backoff(10)(3) == [10, 20, 40]


class TestFutures:
    def test_submit_and_map_in_a_flow(self, pipeline: ResultStore) -> None:
        """submit returns a future; map returns a FutureList whose result() keeps order;
        unmapped arguments are passed whole."""

        @task
        def add(x: int, y: int) -> int:
            return x + y

        @flow
        def run() -> tuple[int, list[int]]:
            future = add.submit(1, 2)
            assert isinstance(future, TaskRunFuture)
            return future.result(), add.map([1, 2, 3], unmapped(10)).result()

        assert run() == (3, [11, 12, 13])

    def test_futures_as_arguments(self, pipeline: ResultStore) -> None:
        """A future passed as an argument is resolved to its result first."""

        @task
        def one() -> int:
            return 1

        @task
        def inc(x: int) -> int:
            return x + 1

        @flow
        def chain() -> int:
            return inc.submit(inc.submit(one.submit())).result()

        assert chain() == 3

    def test_a_failed_upstream_fails_its_dependants_without_running_them(
        self, pipeline: ResultStore
    ) -> None:
        """A dependant of a failed future does not run; its state is Failed with
        UpstreamTaskError."""
        counter = Counter()

        @task
        def boom() -> int:
            raise RuntimeError("upstream")

        @task
        def after(x: int) -> int:
            counter()
            return x

        @flow
        def run() -> list[State]:
            return [after.submit(boom.submit()).wait()]  # type: ignore[list-item]

        (state,) = run()
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), UpstreamTaskError)
        assert counter.calls == 0

    def test_map_with_different_lengths(self, pipeline: ResultStore) -> None:
        """map refuses iterables of different lengths."""

        @task
        def add(x: int, y: int) -> int:
            return x + y

        with pytest.raises(ValueError, match="different lengths"):
            add.map([1, 2], [1, 2, 3])

    def test_submit_outside_a_flow(self, pipeline: ResultStore) -> None:
        """submit outside a flow runs on a shared thread pool."""

        @task
        def one() -> int:
            return 1

        assert one.submit().result(timeout=60) == 1

    def test_a_cache_hit_takes_no_runner_slot(self, pipeline: ResultStore) -> None:
        """A cached submit is answered on the submitting side: the runner never sees it."""
        submitted: list[str | None] = []

        class CountingRunner(ThreadPoolTaskRunner):
            def submit(self, call: Any, **kw: Any) -> Any:
                submitted.append(kw.get("name"))
                return super().submit(call, **kw)

            def duplicate(self) -> CountingRunner:
                return CountingRunner(max_workers=self.max_workers)

        @task(cache_policy=INPUTS)
        def square(x: int) -> int:
            return x * x

        @flow(task_runner=CountingRunner())
        def run() -> list[int]:
            return square.map([1, 2, 3]).result()

        assert run() == [1, 4, 9]
        assert len(submitted) == 3
        assert run() == [1, 4, 9]
        assert len(submitted) == 3


class TestComputeOnce:
    def test_threads(self, pipeline: ResultStore) -> None:
        """A SERIALIZABLE policy: eight threads calling with the same input compute once; the
        others get Cached."""
        counter = Counter()
        barrier = threading.Barrier(8)
        states: list[State] = []

        @task(cache_policy=SERIALIZABLE_INPUTS)
        def slow(x: int) -> int:
            counter()
            return x

        def call() -> None:
            barrier.wait(60)
            states.append(slow(7, return_state=True))

        for thread in [run_in_thread(call) for _ in range(8)]:
            join(thread)
        assert counter.calls == 1
        assert sorted(state.name for state in states) == ["Cached"] * 7 + ["Completed"]

    def test_async_tasks_in_one_loop(self, pipeline: ResultStore) -> None:
        """Behaviour 76 (#17785): three concurrent async calls under SERIALIZABLE in one event
        loop compute once and all get the same value, without blocking the loop."""
        counter = Counter()

        @task(cache_policy=SERIALIZABLE_INPUTS)
        async def random_value(x: int) -> str:
            counter()
            await asyncio.sleep(0.05)
            return uuid.uuid4().hex

        async def scenario() -> list[str]:
            return list(await asyncio.gather(*(random_value(1) for _ in range(3))))

        values = asyncio.run(scenario())
        assert len(set(values)) == 1
        assert counter.calls == 1


class TestProcessPool:
    def test_a_process_pool_flow_computes_each_serializable_key_once(
        self, pipeline: ResultStore, tmp_path: Path
    ) -> None:
        """A flow on a ProcessPoolTaskRunner (spawn) maps a SERIALIZABLE task over repeated
        inputs: each key is computed once across the pool (the computations are counted in a
        file every process appends to), and every call gets the one value."""
        log = tmp_path / "computed.txt"

        @task(cache_policy=SERIALIZABLE_INPUTS)
        def compute(x: int) -> str:
            import os
            import time

            with log.open("a", encoding="utf-8") as out:
                out.write(f"{x}\n")
            time.sleep(0.05)  # overlap the duplicates; never measured
            return f"{x}-{os.getpid()}"

        @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
        def run(xs: list[int]) -> list[str]:
            return compute.map(xs).result(timeout=120)

        xs = [1, 2, 1, 2, 3, 1, 3, 2]
        values = run(xs)
        computed = log.read_text(encoding="utf-8").split()
        assert sorted(computed) == ["1", "2", "3"]
        by_input: dict[int, set[str]] = {}
        for x, value in zip(xs, values, strict=True):
            by_input.setdefault(x, set()).add(value)
        assert all(len(seen) == 1 for seen in by_input.values())

    def test_futures_cross_processes_as_their_results(self, pipeline: ResultStore) -> None:
        """A future passed to a task on a process pool reaches the worker as its result."""

        @task
        def one() -> int:
            return 1

        @task
        def inc(x: int) -> int:
            return x + 1

        @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
        def run() -> int:
            return inc.submit(inc.submit(one.submit())).result(timeout=120)  # type: ignore[no-any-return]

        assert run() == 3


class TestProvenance:
    def test_records_say_who_wrote_them(self, pipeline: ResultStore) -> None:
        """A task's record carries its provenance: the task, the flow run, the policy and a
        fingerprint per key component."""

        @task(cache_policy=INPUTS + TASK_SOURCE)
        def embed(doc: str, model: str = "small") -> int:
            return len(doc)

        @flow(name="embedder")
        def run() -> list[State]:
            return [embed("hello", return_state=True)]

        (state,) = run()
        record = state.data
        provenance = record.metadata.provenance  # type: ignore[union-attr]
        assert provenance.task.endswith("embed")
        assert provenance.flow == "embedder"
        assert provenance.cache_policy == "TASK_SOURCE + INPUTS"
        assert set(provenance.components) == {"task_source", "inputs.doc", "inputs.model"}
        stored = pipeline.read(record.metadata.storage_key)  # type: ignore[union-attr]
        assert stored.metadata.provenance == provenance


class TestRunners:
    def test_runner_must_be_a_task_runner(self) -> None:
        """A flow's task_runner must be a TaskRunner."""
        from sqlresults.errors import ConfigurationError

        with pytest.raises(ConfigurationError, match="TaskRunner"):
            flow(task_runner="threads")(lambda: None)  # type: ignore[arg-type]


# -- property: caching never changes what a pipeline computes ---------------------------------

# Policies under which a key determines the output of the graph's tasks (every one of them takes
# its node's identity and coefficient as arguments, so INPUTS tells nodes apart).
GRAPH_POLICIES: dict[str, Any] = {
    "NO_CACHE": NO_CACHE,
    "INPUTS": INPUTS,
    "INPUTS + TASK_SOURCE": INPUTS + TASK_SOURCE,
    "DEFAULT": DEFAULT,
    "INPUTS - 'unused'": INPUTS - "unused",
    "INPUTS + FLOW_PARAMETERS": INPUTS + FLOW_PARAMETERS,
    "SERIALIZABLE INPUTS": SERIALIZABLE_INPUTS,
}


@st.composite
def task_graphs(draw: st.DrawFn) -> list[tuple[int, list[int], str, bool]]:
    """A random DAG: per node (coefficient, upstream node indexes, policy name, submitted?)."""
    size = draw(st.integers(min_value=1, max_value=6))
    nodes = []
    for index in range(size):
        upstream = draw(st.lists(st.integers(0, index - 1), max_size=3)) if index else []
        nodes.append(
            (
                draw(st.integers(-3, 3)),
                sorted(set(upstream)),
                draw(st.sampled_from(sorted(GRAPH_POLICIES))),
                draw(st.booleans()),
            )
        )
    return nodes


def node_value(node: int, coef: int, upstream: list[int]) -> int:
    """What every node computes, from its arguments only."""
    return coef * (node + 1) + sum(upstream) * 2 - len(upstream)


class TestCachingNeverChangesResults:
    @given(graph=task_graphs(), seed=st.integers(0, 3))
    @settings(max_examples=25, deadline=None)
    def test_random_graphs_compute_the_same_cached_and_uncached(
        self, pipeline: ResultStore, graph: list[tuple[int, list[int], str, bool]], seed: int
    ) -> None:
        """A random task graph, each task with a random cache policy (from those whose key
        determines the output), called directly or submitted, run twice in a flow: both runs
        give exactly what plain Python computes, whatever was served from the cache."""
        tasks = {
            name: task(cache_policy=policy, name=f"node-{name}")(node_value_task)
            for name, policy in GRAPH_POLICIES.items()
        }

        def expected() -> list[int]:
            values: list[int] = []
            for index, (coef, upstream, _, _) in enumerate(graph):
                values.append(node_value(index, coef + seed, [values[u] for u in upstream]))
            return values

        @flow
        def run(seed: int) -> list[int]:
            results: list[Any] = []
            for index, (coef, upstream, policy, submitted) in enumerate(graph):
                args = (index, coef + seed, [results[u] for u in upstream])
                call = tasks[policy]
                results.append(call.submit(*args) if submitted else call(*args))
            return [r.result() if isinstance(r, TaskRunFuture) else r for r in results]

        assert run(seed) == expected()
        assert run(seed) == expected()


def node_value_task(node: int, coef: int, upstream: list[int], unused: int = 0) -> int:
    """node_value as a task body (module level, so TASK_SOURCE sees a stable function)."""
    return node_value(node, coef, upstream)
