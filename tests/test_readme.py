"""The README's tour is code: it must run as written."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
TESTS = Path(__file__).resolve().parent


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def _difference_topics() -> set[str]:
    """The topics (first cells, backticks removed) of the "Differences from Prefect" table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Differences from Prefect", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return {row.split("|")[1].strip().replace("`", "") for row in rows[1:]}


def _compat_test_docstrings() -> list[tuple[str, str]]:
    """(test id, docstring with whitespace collapsed) of every test in the Prefect
    compatibility modules."""
    found = []
    for path in sorted(TESTS.glob("test_prefect_compat_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = " ".join((ast.get_docstring(node) or "").split())
                found.append((f"{path.name}::{node.name}", doc))
    return found


class TestTour:
    def test_tour_runs_and_shows_what_it_says(self) -> None:
        """The tour's code runs top to bottom in a fresh home (the autouse fixture points
        SQLRESULTS_HOME and the working directory at a temporary directory), and the values its
        comments promise are the real ones."""
        tour = _python_blocks()[0]
        namespace: dict[str, object] = {}
        exec(compile(tour, str(README), "exec"), namespace)  # our own README, not input
        store = namespace["store"]
        team = namespace["team"]
        assert store.read("daily-report").result == {"rows": 42}  # type: ignore[attr-defined]
        assert list(team.keys(prefix="raw/")) == ["raw/2026-11-21.json"]  # type: ignore[attr-defined]
        assert namespace["value"] == sum(range(10**7))
        assert not store.is_locked("k")  # type: ignore[attr-defined]
        assert store.read("async-step").result == "computed"  # type: ignore[attr-defined]
        assert Path("team.db").is_file()


class TestCachingSection:
    def test_pipeline_example_runs_and_caches(self, tmp_path: Path) -> None:
        """The "Caching pipeline steps" example runs as written: the second pipeline run is
        served from pipeline.db, and the last call's first run is Completed, its second
        Cached."""
        blocks = _python_blocks()
        assert len(blocks) == 5
        namespace: dict[str, Any] = {}
        exec(compile(blocks[1], str(README), "exec"), namespace)  # our own README, not input
        assert Path("pipeline.db").is_file()
        state = namespace["pipeline"](["a cached step", "another one"], return_state=True)
        assert state.result() == [[1.0, 6.0, 4.0], [7.0, 3.0]]
        assert namespace["embed"]("new text", return_state=True).name == "Cached"
        assert namespace["fetch"]("x") == "<contents of x>"


class TestDifferencesTable:
    def test_compat_tests_name_only_rows_of_the_table(self) -> None:
        """Every difference a Prefect compatibility test names (README "topic") is a row of
        the README's "Differences from Prefect" table, the one place differences are listed."""
        topics = _difference_topics()
        missing = [
            (test, topic)
            for test, doc in _compat_test_docstrings()
            for topic in re.findall(r'README "([^"]+)"', doc)
            if topic not in topics
        ]
        assert missing == []

    def test_every_stated_difference_names_its_row(self) -> None:
        """A compatibility test that asserts a difference from Prefect names its README row."""
        unnamed = [
            test
            for test, doc in _compat_test_docstrings()
            if "Difference from Prefect" in doc and 'README "' not in doc
        ]
        assert unnamed == []
        assert any("Difference from Prefect" in doc for _, doc in _compat_test_docstrings())


class TestScalingOutSection:
    @pytest.mark.timeout(240)
    def test_the_dask_example_runs_and_computes_each_day_once(self) -> None:
        """The "Scaling out" example runs as written on the LocalCluster its runner starts
        (with the dashboard on a free port: 8787 may be taken on a shared machine), and a
        second run is served from features.db."""
        from sqlresults.task_runners import DaskTaskRunner

        namespace: dict[str, Any] = {"__name__": "readme"}
        exec(compile(_python_blocks()[2], str(README), "exec"), namespace)  # our own README
        backfill = namespace["backfill"]
        runner = backfill.task_runner
        assert isinstance(runner, DaskTaskRunner)
        assert runner.address is None
        backfill = backfill.with_options(
            task_runner=DaskTaskRunner(
                cluster_kwargs={**runner.cluster_kwargs, "dashboard_address": "127.0.0.1:0"}
            )
        )
        days = ["2026-11-01", "2026-11-02"]
        assert backfill(days) == [day.encode() * 1000 for day in days]
        assert Path("features.db").is_file()
        state = backfill(days, return_state=True)
        assert state.result() == [day.encode() * 1000 for day in days]


class TestPrefectSection:
    def test_example_and_migration_snippet_run(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The "Using sqlresults from Prefect" example builds its task and flow as written
        (Prefect accepts the unsaved storage, the policy takes the lock manager) on a SQLite
        file instead of the PostgreSQL URL; the flow is not run (real flows are
        test_prefect_flows.py). The migration snippet then moves a Prefect local storage found
        under the home directory into that file, keys and values intact."""
        from prefect.filesystems import LocalFileSystem
        from prefect.results import ResultStore as PrefectResultStore

        from sqlresults.prefect import SQLLockManager, SQLResultStorage
        from sqlresults.results import ResultStore

        url = f"sqlite:///{tmp_path / 'results.db'}"
        example, snippet = _python_blocks()[3:5]
        example = example.replace('"postgresql+psycopg://ci@db/results"', repr(url))
        namespace: dict[str, Any] = {}
        exec(compile(example, str(README), "exec"), namespace)  # our own README, not input
        assert isinstance(namespace["pipeline"].result_storage, SQLResultStorage)
        assert isinstance(namespace["expensive"].cache_policy.lock_manager, SQLLockManager)

        monkeypatch.setenv("HOME", str(tmp_path))
        prefect_storage = LocalFileSystem(basepath=str(tmp_path / ".prefect" / "storage"))
        PrefectResultStore(result_storage=prefect_storage).write({"rows": 42}, key="run/1")
        exec(compile(snippet, str(README), "exec"), namespace)  # our own README, not input
        assert ResultStore(result_storage=url).read("run/1").result == {"rows": 42}
