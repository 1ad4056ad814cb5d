"""Helpers for the CLI tests: run ``sqlresults`` in-process and check what it printed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from click.testing import CliRunner, Result

from sqlresults.cli import cli
from sqlresults.records import Provenance
from sqlresults.results import ResultStore

PASSWORD = "s3cret"
UNREACHABLE_URL = f"postgresql+psycopg://user:{PASSWORD}@127.0.0.1:1/db"


def run(*args: str, input: str | None = None) -> Result:
    """Invoke the ``sqlresults`` command in-process, under its real name (as ``main`` does);
    stdin is ``input`` (empty: a prompt gets no answer)."""
    return CliRunner().invoke(cli, list(args), prog_name="sqlresults", input=input or "")


def assert_ok(result: Result) -> str:
    """The command exited 0 without an exception; return its stdout."""
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.exception
    return result.stdout


def assert_json(result: Result) -> Any:
    """The command exited 0 and its stdout is one JSON document and nothing else; return it."""
    output = assert_ok(result)
    return json.loads(output)


def assert_error(result: Result, exit_code: int = 1) -> str:
    """The command failed with ``exit_code`` and one line on stderr (``Error: …``), no
    traceback and nothing on stdout; return that line."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def task_provenance(task: str = "pipeline.embed", **components: str) -> Provenance:
    """The provenance a task would write, with the given component fingerprints (default:
    task source and one input)."""
    return Provenance(
        task=task,
        cache_policy="INPUTS + TASK_SOURCE",
        components=components or {"task_source": "a1", "inputs.doc": "d1"},
    )


def fill(store: ResultStore) -> None:
    """Store a small variety: pickled and JSON records, one expired, one a task wrote, one
    locked by another holder."""
    store.write({"rows": 42}, key="reports/daily")
    store.write([1, 2, 3], key="reports/weekly")
    store.write("old", key="stale", expiration=timedelta(hours=-1))
    store.write(b"x" * 1000, key="big", expiration=timedelta(hours=2))
    store.write(
        [0.5, 0.25],
        key="embed/1",
        provenance=task_provenance(**{"task_source": "a1", "inputs.doc": "d1"}),
    )
    store.acquire_lock("reports/weekly", holder="worker-7", hold_timeout=300)
