"""Helpers for the DaskTaskRunner tests in ``test_dask_runner.py``.

They live in their own module with light imports, so Dask worker processes (spawned with the
test process's ``sys.path``, which holds ``tests/``) import them by name, and the scheduler
(which runs in the test process for a LocalCluster) runs :class:`TaskLog` in place.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any, ClassVar

import distributed
from distributed.diagnostics.plugin import SchedulerPlugin

__all__ = ["RecordingLocalCluster", "TaskLog", "die_once", "log_line", "worker_name"]


class TaskLog(SchedulerPlugin):  # type: ignore[misc]
    """Records on the scheduler every task key it is sent, the keys each task depended on
    when it started, and the size of each result it stored."""

    name = "sqlresults-task-log"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: list[str] = []
        self.dependencies: dict[str, set[str]] = {}
        self.nbytes: dict[str, int] = {}

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        scheduler = self._scheduler
        task = scheduler.tasks.get(key) if scheduler is not None else None
        with self._lock:
            if start == "released" and finish == "waiting":
                self.keys.append(str(key))
            if finish == "processing" and task is not None:
                self.dependencies[str(key)] = {str(dep.key) for dep in task.dependencies}
            if finish == "memory" and task is not None:
                self.nbytes[str(key)] = int(task.nbytes)

    async def start(self, scheduler: Any) -> None:
        self._scheduler = scheduler

    _scheduler: Any = None

    def sent(self) -> list[str]:
        """The keys sent so far."""
        with self._lock:
            return list(self.keys)


class RecordingLocalCluster(distributed.LocalCluster):  # type: ignore[misc]
    """A LocalCluster that remembers every instance, so a test can see it start and stop."""

    started: ClassVar[list[RecordingLocalCluster]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        RecordingLocalCluster.started.append(self)


def log_line(path: str | Path, line: str) -> None:
    """Append ``line`` to ``path`` (one small O_APPEND write: safe across processes)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def worker_name() -> str:
    """The address of the Dask worker running the caller, or "not a worker"."""
    try:
        return str(distributed.get_worker().address)
    except ValueError:
        return "not a worker"


def die_once(marker: str | Path) -> None:
    """Kill this process (SIGKILL, no cleanup) the first time it is called for ``marker``."""
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
