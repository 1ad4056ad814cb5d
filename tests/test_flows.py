"""Tests for sqlresults.flows: ``@flow`` runs, their persistence, retries, task runners,
subflows and async flows, on SQLite and PostgreSQL (the ``pipeline`` fixture of test_tasks.py
points the default store at the backend under test)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import Counter

from sqlresults.context import FlowRunContext, get_run_context
from sqlresults.flows import Flow, flow
from sqlresults.results import ResultStore
from sqlresults.states import Completed, State
from sqlresults.task_runners import ThreadPoolTaskRunner
from sqlresults.tasks import task


class TestRunning:
    def test_a_flow_is_a_function(self, pipeline: ResultStore) -> None:
        """A flow returns its function's result; return_state gives the Completed state."""

        @flow
        def hello(name: str = "world") -> str:
            return f"hello {name}"

        assert isinstance(hello, Flow)
        assert hello() == "hello world"
        state = hello("you", return_state=True)
        assert state.is_completed()
        assert state.result() == "hello you"

    def test_failure(self, pipeline: ResultStore) -> None:
        """A failing flow raises; return_state gives Failed."""

        @flow
        def boom() -> None:
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            boom()
        assert boom(return_state=True).is_failed()

    def test_run_context(self, pipeline: ResultStore) -> None:
        """Inside a flow, get_run_context() is its FlowRunContext with its run and
        parameters."""

        @flow(name="ctx")
        def inspect(x: int) -> FlowRunContext:
            context = get_run_context()
            assert isinstance(context, FlowRunContext)
            return context

        context = inspect(3)
        assert context.flow_run is not None
        assert context.flow_run.flow_name == "ctx"
        assert dict(context.parameters) == {"x": 3}
        assert get_run_context() is None

    def test_retries(self, pipeline: ResultStore) -> None:
        """A flow with retries re-runs until it succeeds; run_count counts attempts."""
        counter = Counter()

        @flow(retries=2)
        def flaky() -> int:
            context = get_run_context()
            assert context is not None
            if counter() < 3:
                raise RuntimeError("again")
            return context.flow_run.run_count  # type: ignore[attr-defined]

        assert flaky() == 3

    def test_async_flow(self, pipeline: ResultStore) -> None:
        """An async flow returns an awaitable; async tasks inside it are awaited."""

        @task
        async def double(x: int) -> int:
            return 2 * x

        @flow
        async def run(x: int) -> int:
            return await double(x)

        assert asyncio.run(run(4)) == 8

    def test_returned_futures_are_resolved(self, pipeline: ResultStore) -> None:
        """A flow that returns futures (or containers of them) returns their results."""

        @task
        def one() -> int:
            return 1

        @flow
        def run() -> Any:
            return {"a": one.submit(), "b": [one.submit()]}

        assert run() == {"a": 1, "b": [1]}

    def test_returning_a_state(self, pipeline: ResultStore) -> None:
        """Seed 004: a flow may return a State; it becomes the flow's final state."""

        @flow
        def foo() -> State:
            return Completed(data="completed")

        assert foo() == "completed"


class TestPersistence:
    def test_result_storage_persists_the_flow_result(
        self, pipeline: ResultStore, tmp_path: Path
    ) -> None:
        """result_storage on a flow turns persistence on: its result is written to that
        database, under a random key."""
        path = tmp_path / "flow.db"

        @flow(result_storage=f"sqlite:///{path}")
        def run() -> str:
            return "stored"

        state = run(return_state=True)
        assert state.data.is_persisted  # type: ignore[union-attr]
        key = state.data.metadata.storage_key  # type: ignore[union-attr]
        stored = ResultStore(result_storage=f"sqlite:///{path}", namespace=pipeline.namespace)
        assert stored.read(key).result == "stored"

    def test_not_persisted_by_default(self, pipeline: ResultStore) -> None:
        """Without an option or setting, a flow's result is not written."""

        @flow
        def run() -> str:
            return "memory only"

        assert not getattr(run(return_state=True).data, "is_persisted", False)
        assert list(pipeline.keys()) == []

    def test_persist_by_default_setting(
        self, pipeline: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT=true persists flows and their tasks."""
        monkeypatch.setenv("SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT", "true")

        @task
        def inner() -> int:
            return 1

        @flow
        def run() -> list[State]:
            return [inner(return_state=True)]

        assert run()[0].data.is_persisted  # type: ignore[union-attr]

    def test_tasks_use_the_flows_storage_and_serializer(
        self, pipeline: ResultStore, tmp_path: Path
    ) -> None:
        """Tasks inherit the flow's result storage and serializer; a task's own win."""
        flow_db, task_db = tmp_path / "flow.db", tmp_path / "task.db"

        @task(result_storage_key="inherited")
        def inherited() -> dict[str, int]:
            return {"a": 1}

        @task(result_storage_key="own", result_storage=f"sqlite:///{task_db}")
        def own() -> int:
            return 2

        @flow(result_storage=f"sqlite:///{flow_db}", result_serializer="json")
        def run() -> tuple[State, State]:
            return inherited(return_state=True), own(return_state=True)

        first, second = run()
        assert first.data.metadata.serializer.type == "json"  # type: ignore[union-attr]
        flow_store = ResultStore(
            result_storage=f"sqlite:///{flow_db}", namespace=pipeline.namespace
        )
        task_store = ResultStore(
            result_storage=f"sqlite:///{task_db}", namespace=pipeline.namespace
        )
        assert flow_store.read("inherited").result == {"a": 1}
        assert task_store.read("own").result == 2
        assert second.data.metadata.serializer.type == "json"  # type: ignore[union-attr]


class TestTaskRunners:
    def test_each_run_gets_a_fresh_runner_that_it_waits_for(self, pipeline: ResultStore) -> None:
        """A flow run uses a fresh copy of its runner, which is waited for before the flow
        returns: work submitted and never awaited has finished by then."""
        finished = threading.Event()

        @task
        def background() -> None:
            finished.wait(0)  # the work itself
            finished.set()

        @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
        def run() -> None:
            background.submit()

        run()
        assert finished.is_set()

    def test_nested_submission_does_not_deadlock(self, pipeline: ResultStore) -> None:
        """A task that submits a task to the same one-worker runner and waits for it does
        not deadlock (Prefect's known hang)."""

        @task
        def leaf(x: int) -> int:
            return x + 1

        @task
        def parent(x: int) -> int:
            return leaf.submit(x).result(timeout=60)

        @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
        def run() -> list[int]:
            return parent.map([1, 2, 3]).result(timeout=60)

        assert run() == [2, 3, 4]

    def test_subflow(self, pipeline: ResultStore) -> None:
        """A flow called in a flow is a subflow with a run of its own; it inherits the
        parent's persistence."""

        @flow
        def child() -> FlowRunContext:
            context = get_run_context()
            assert isinstance(context, FlowRunContext)
            return context

        @flow(persist_result=True)
        def parent() -> tuple[FlowRunContext, FlowRunContext]:
            outer = get_run_context()
            assert isinstance(outer, FlowRunContext)
            return outer, child()

        outer, inner = parent()
        assert inner.flow_run.id != outer.flow_run.id  # type: ignore[union-attr]
        assert inner.persist_result is True
