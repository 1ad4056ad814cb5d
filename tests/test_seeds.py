"""The seeds' examples, run with ``from sqlresults import flow, task``, on SQLite and
PostgreSQL.

Seeds 002 (Prefect 3's "Manage results"), 003 (``prefect.futures``) and 004 (an older results
explainer with a quiz) are in ``../shared/seeds/``. S3 blocks become database URLs or paths;
``PREFECT_*`` settings become ``SQLRESULTS_*`` ones. Where seed 004 disagrees with seed 002,
DESIGN.md §10 decides: a flow's persistence is inherited by its tasks, retries never require
persistence, and ``persist_result=False`` with a cache policy warns and turns caching off. Each
test names the example it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sqlresults import flow, task
from sqlresults.results import ResultStore
from sqlresults.serializers import CompressedSerializer, JSONSerializer, PickleSerializer
from sqlresults.states import Completed, State


def store_at(url: str, namespace: str) -> ResultStore:
    return ResultStore(result_storage=url, namespace=namespace, cache_result_in_memory=False)


def persisted(state: State) -> bool:
    return bool(getattr(state.data, "is_persisted", False))


class TestSeed002ManageResults:
    def test_three_tasks_with_different_persistence(
        self, pipeline: ResultStore, database_url: str, tmp_path: Path
    ) -> None:
        """Seed 002 "Result storage": in a flow with result_storage, my_task uses the flow's
        storage, unpersisted_task persists nothing, other_storage_task persists to its own."""
        other = f"sqlite:///{tmp_path / 'other-bucket.db'}"

        @task
        def my_task() -> int:
            return 42

        unpersisted_task = my_task.with_options(persist_result=False)
        other_storage_task = my_task.with_options(result_storage=other)

        @flow(result_storage=database_url)
        def my_flow() -> tuple[State, State, State]:
            return (
                my_task(return_state=True),
                unpersisted_task(return_state=True),
                other_storage_task(return_state=True),
            )

        first, second, third = my_flow()
        assert persisted(first)
        key = first.data.metadata.storage_key  # type: ignore[union-attr]
        assert store_at(database_url, pipeline.namespace).read(key).result == 42
        assert not persisted(second)
        assert persisted(third)
        third_key = third.data.metadata.storage_key  # type: ignore[union-attr]
        assert store_at(other, pipeline.namespace).read(third_key).result == 42

    def test_result_filenames_from_result_storage_key(self, pipeline: ResultStore) -> None:
        """Seed 002 "Result filenames": hello_world with result_storage_key
        "hello-{parameters[name]}.pickle" writes three records, and a second run loads them
        without running."""
        calls: list[str] = []

        @task(result_storage_key="hello-{parameters[name]}.pickle")
        def hello_world(name: str = "world") -> str:
            calls.append(name)
            return f"hello {name}"

        @flow
        def my_flow() -> None:
            hello_world()
            hello_world(name="foo")
            hello_world(name="bar")

        my_flow()
        assert sorted(pipeline.keys()) == [
            "hello-bar.pickle",
            "hello-foo.pickle",
            "hello-world.pickle",
        ]
        assert pipeline.read("hello-foo.pickle").result == "hello foo"
        my_flow()
        assert calls == ["world", "foo", "bar"]

    def test_result_serializers_by_name(self, pipeline: ResultStore) -> None:
        """Seed 002 "Result serialization": the built-in type strings all work."""
        for name in ("pickle", "json", "compressed/pickle", "compressed/json"):

            @task(result_serializer=name, result_storage_key=f"serialized-{name}")
            def value() -> dict[str, int]:
                return {"a": 1}

            assert value() == {"a": 1}
            record = pipeline.read(f"serialized-{name}")
            assert record.result == {"a": 1}
            assert record.metadata.serializer.type == name

    def test_caching_results_in_memory(self, pipeline: ResultStore) -> None:
        """Seed 002 "Caching results in memory": flow and task with
        cache_result_in_memory=False still return their values."""

        @flow(cache_result_in_memory=False)
        def foo() -> str:
            return "pretend this is large data"

        @task(cache_result_in_memory=False)
        def bar() -> str:
            return "pretend this is biiiig data"

        assert foo() == "pretend this is large data"
        assert bar() == "pretend this is biiiig data"

    def test_persist_by_default(
        self, pipeline: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Seed 002 "Turn on persistence globally": SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT=true
        persists a plain task's result."""
        monkeypatch.setenv("SQLRESULTS_RESULTS_PERSIST_BY_DEFAULT", "true")

        @task
        def plain() -> int:
            return 7

        assert persisted(plain(return_state=True))


class TestSeed003Futures:
    def test_every_docstring_example(self, pipeline: ResultStore) -> None:
        """Seed 003: submit returns a future with task_run.id; wait() returns the final
        state; wait(0.1) returns it when done; result() and result(timeout=5) return the
        value; get_state() returns the state."""

        @task
        def my_task() -> str:
            return "hello"

        @flow
        def my_flow() -> None:
            future = my_task.submit()
            assert future.task_run.id == future.task_run_id
            final_state = future.wait()
            assert final_state is not None
            assert final_state.is_completed()
            future = my_task.submit()
            future.result(timeout=60)
            final_state = future.wait(0.1)
            assert final_state is not None
            assert my_task.submit().result() == "hello"
            assert my_task.submit().result(timeout=5) == "hello"
            state = my_task.submit().get_state()
            assert isinstance(state, State)

        my_flow()


class TestSeed004Explainer:
    def test_flow_returning_a_state(self, pipeline: ResultStore, database_url: str) -> None:
        """Seed 004 "S3 results": foo (persist_result=True, result_storage=...) returns
        Completed(data="completed")."""

        @flow(persist_result=True, result_storage=database_url)
        def foo() -> State:
            return Completed(data="completed")

        assert foo() == "completed"

    def test_always_store_results(self, pipeline: ResultStore, database_url: str) -> None:
        """Seed 004: always_store_results persists its result to the given storage."""

        @flow(persist_result=True, result_storage=database_url)
        def always_store_results() -> str:
            return "Hi from Results! 👋"

        state = always_store_results(return_state=True)
        key = state.data.metadata.storage_key  # type: ignore[union-attr]
        assert store_at(database_url, pipeline.namespace).read(key).result == (
            "Hi from Results! 👋"
        )

    def test_reading_results_with_serializers(self, pipeline: ResultStore) -> None:
        """Seed 004 "How to load result data": the stored bytes decode with the serializer
        they were written with (JSON and pickle)."""

        @task(result_serializer="json", result_storage_key="as-json")
        def as_json() -> dict[str, int]:
            return {"n": 5}

        @task(result_serializer="pickle", result_storage_key="as-pickle")
        def as_pickle() -> dict[str, int]:
            return {"n": 6}

        as_json()
        as_pickle()
        assert pipeline.read("as-json").metadata.serializer == JSONSerializer()
        assert pipeline.read("as-pickle").metadata.serializer == PickleSerializer()
        assert JSONSerializer().loads(JSONSerializer().dumps({"n": 5})) == {"n": 5}

    def test_compressed_pickle(self, pipeline: ResultStore) -> None:
        """Seed 004 "compressed pickle serializer": a task with
        CompressedSerializer(compressionlib="zlib", serializer="pickle") in a flow whose
        serializer is "compressed/pickle"."""

        @task(
            persist_result=True,
            result_serializer=CompressedSerializer(compressionlib="zlib", serializer="pickle"),
        )
        def get_some_large_result() -> int:
            return 42

        @flow(result_serializer="compressed/pickle")
        def flow_with_compressed_serializer() -> tuple[str, State]:
            state = get_some_large_result(return_state=True)
            return "Hi from Results with task with compressed pickle serializer! 👋", state

        message, state = flow_with_compressed_serializer()
        assert message.startswith("Hi from Results")
        serializer = state.data.metadata.serializer  # type: ignore[union-attr]
        assert serializer.compressionlib == "zlib"
        assert state.result() == 42

    def test_quiz(self, pipeline: ResultStore, database_url: str) -> None:
        """Seed 004's quiz, answered by DESIGN §10 (seed 002 wins): extract_user and
        extract_number inherit the flow's persistence (result_storage turns it on), transform
        (persist_result=False) is not persisted, and the flow's result is."""
        states: dict[str, State] = {}

        @task
        def extract_user() -> str:
            return "Marvin"

        @task(retries=2)
        def extract_number() -> int:
            return 42

        @task(persist_result=False)
        def transform(user_name: str, number: int) -> str:
            return f"Welcome, {user_name} to the Club {number}! 👋"

        @flow(result_storage=database_url)
        def my_flow() -> str:
            states["user"] = extract_user(return_state=True)
            states["nr"] = extract_number(return_state=True)
            states["final"] = transform(
                states["user"].result(), states["nr"].result(), return_state=True
            )
            return states["final"].result()  # type: ignore[no-any-return]

        state = my_flow(return_state=True)
        assert state.result() == "Welcome, Marvin to the Club 42! 👋"
        assert persisted(states["user"])
        assert persisted(states["nr"])
        assert not persisted(states["final"])
        assert persisted(state)

    def test_big_dataframe_not_persisted(
        self, pipeline: ResultStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Seed 004 "How to toggle results": my_task(persist_result=False) in a flow with
        persist_result=True and retries=2 is not persisted; the flow's result is."""

        @task(persist_result=False)
        def my_task() -> None:
            print("Big dataframe ⛔️ disabling results")

        @flow(persist_result=True, retries=2)
        def my_flow() -> list[State]:
            return [my_task(return_state=True)]

        assert not persisted(my_flow()[0])

    def test_q1_task_inherits_the_flows_storage(
        self, pipeline: ResultStore, database_url: str
    ) -> None:
        """Q1: my_task with no options in my_flow(persist_result=True, result_storage=...)
        persists to the flow's storage."""

        @task
        def my_task() -> str:
            return "Hi! 👋"

        @flow(persist_result=True, result_storage=database_url)
        def my_flow() -> list[State]:
            return [my_task(return_state=True)]

        (state,) = my_flow()
        key = state.data.metadata.storage_key  # type: ignore[union-attr]
        assert store_at(database_url, pipeline.namespace).read(key).result == "Hi! 👋"

    def test_q2_retries_without_persistence(self, pipeline: ResultStore) -> None:
        """Q2, answered by DESIGN §10: persist_result=False with retries=3 persists nothing,
        and retries still work (they re-run in-process; no error)."""
        attempts: list[int] = []

        @task(persist_result=False, retries=3)
        def my_task() -> str:
            attempts.append(1)
            if len(attempts) < 2:
                raise RuntimeError("once")
            return "Hi! 👋"

        @flow(persist_result=True)
        def my_flow() -> list[State]:
            return [my_task(return_state=True)]

        (state,) = my_flow()
        assert state.result() == "Hi! 👋"
        assert len(attempts) == 2
        assert not persisted(state)

    def test_q3_flow_retries_persist_nothing_by_themselves(self, pipeline: ResultStore) -> None:
        """Q3, answered by DESIGN §10: a flow with retries=2 and no persistence option persists
        neither its result nor its task's."""

        @task
        def my_task() -> None:
            print("Big dataframe ⛔️")

        @flow(retries=2)
        def my_flow() -> list[State]:
            return [my_task(return_state=True)]

        assert not persisted(my_flow()[0])
        assert list(pipeline.keys()) == []

    def test_serializer_examples(self, pipeline: ResultStore, tmp_path: Path) -> None:
        """Seed 004 "How to configure result_serializer": a task with result_serializer="pickle"
        and its own storage, in a flow with JSONSerializer(jsonlib="orjson") and another
        storage."""
        task_db = f"sqlite:///{tmp_path / 'bucket.db'}"
        flow_db = f"sqlite:///{tmp_path / 'results.db'}"

        @task(persist_result=True, result_storage=task_db, result_serializer="pickle")
        def my_task() -> str:
            return "Hi! 👋"

        @flow(
            persist_result=True,
            result_storage=flow_db,
            result_serializer=JSONSerializer(jsonlib="orjson"),
        )
        def my_flow() -> Any:
            return [my_task(return_state=True)]

        (state,) = my_flow()
        assert state.data.metadata.serializer.type == "pickle"  # type: ignore[union-attr]
        assert state.result() == "Hi! 👋"

    def test_custom_picklelib_must_exist(self) -> None:
        """Seed 004's PickleSerializer(picklelib="custompickle") needs an importable library;
        a missing one is a clear error."""
        with pytest.raises(ValueError, match="custompickle"):
            PickleSerializer(picklelib="custompickle")
