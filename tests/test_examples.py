"""Tests for the runnable examples in examples/: each runs as a user would run it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Hang guard for a whole example run, below pytest's own timeout; never a measurement.
RUN_TIMEOUT = 240


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an example as a user would; on a hang, kill it with every process it started (its
    own process group) and fail with what it printed so far."""
    command = [sys.executable, str(EXAMPLES / name), *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"hang guard: {name} did not finish\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


class TestComputeOnceExample:
    def test_each_key_is_computed_once(self, backend: str, database_url: str) -> None:
        """examples/compute_once.py with 2 processes x 30 keys (on its default temporary SQLite
        file, or on PostgreSQL via --url) reports every key computed exactly once, per-process
        counts that add up to 30, and exits 0."""
        url_args = ["--url", database_url] if backend == "postgresql" else []
        result = run_example("compute_once.py", "--processes", "2", "--keys", "30", *url_args)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        per_process = [int(n) for n in re.findall(r"^process \d+: computed (\d+) keys$", out, re.M)]
        assert len(per_process) == 2
        assert sum(per_process) == 30
        assert "total computations: 30 (keys: 30)" in out
        assert "keys computed more than once: 0" in out
        assert "keys never computed: 0" in out
        assert "all processes read the same value for every key: yes" in out
        assert "OK: each key was computed exactly once" in out
        assert re.search(r"^wall time: \d+\.\d\d s$", out, re.M)

    def test_rejects_bad_arguments(self) -> None:
        """--keys 0 is a usage error (exit status 2), reported before any process starts."""
        result = run_example("compute_once.py", "--keys", "0")
        assert result.returncode == 2
        assert "--processes and --keys must be at least 1" in result.stderr

    @pytest.mark.parametrize("flag", ["--help"])
    def test_help(self, flag: str) -> None:
        """--help describes the example and its options."""
        result = run_example("compute_once.py", flag)
        assert result.returncode == 0
        for option in ("--processes", "--keys", "--url"):
            assert option in result.stdout


class TestPipelineExample:
    def test_the_second_process_is_served_from_the_database(
        self,
        backend: str,
        database_url: str,
        namespace: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """examples/pipeline.py run twice (on a SQLite file in SQLRESULTS_HOME, or on
        PostgreSQL via --url): the first process computes, and within it the second flow run
        and later calls are Cached; the second process finds everything cached, the "large"
        model included."""
        monkeypatch.setenv("SQLRESULTS_HOME", str(tmp_path / "home"))
        url_args = ["--url", database_url] if backend == "postgresql" else []
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", namespace)  # the shared server's own
        first = run_example("pipeline.py", *url_args)
        assert first.returncode == 0, first.stdout + first.stderr
        assert re.search(r"^run 1: 4 documents embedded in \d+\.\d\d s$", first.stdout, re.M)
        assert "each call now: Cached, Cached, Cached, Cached" in first.stdout
        assert "another model is another key: Completed" in first.stdout
        second = run_example("pipeline.py", *url_args)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "each call now: Cached, Cached, Cached, Cached" in second.stdout
        assert "another model is another key: Cached" in second.stdout
