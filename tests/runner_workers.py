"""Calls for the ProcessPoolTaskRunner tests in ``test_task_runners.py``.

They live at module level in their own module with light imports, so a spawned worker process
can import them by name (it receives the parent's ``sys.path``, which holds ``tests/``)
without importing pytest or the test module. Lambdas and closures defined in the tests travel
by value instead (cloudpickle), which the tests check too.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from sqlresults.results import ResultStore
from sqlresults.states import Completed, State
from sqlresults.transactions import IsolationLevel, transaction

__all__ = ["SET_IN_PARENT", "compute_once", "fail_in_worker", "pid", "sees_parent_flag"]

SET_IN_PARENT = False
"""The tests set this to True in the parent: a forked worker would inherit it, a spawned one
imports this module afresh and sees False."""


def pid() -> State[Any]:
    """The worker's process id."""
    return Completed(os.getpid())


def sees_parent_flag() -> State[Any]:
    """Whether this process sees :data:`SET_IN_PARENT` as the parent set it."""
    return Completed(SET_IN_PARENT)


def fail_in_worker(message: str) -> State[Any]:
    """Raise a ValueError in the worker."""
    raise ValueError(message)


def compute_once(store: ResultStore, key: str, out_dir: str) -> State[Any]:
    """The README's SERIALIZABLE compute-once block on ``key``: a miss computes the value (and
    leaves a file in ``out_dir`` to count computations), a hit reads it."""
    with transaction(key, store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
        if txn.is_committed():
            record = txn.read()
            assert record is not None
            return Completed(record.result)
        value = f"computed by {os.getpid()}"
        (Path(out_dir) / uuid.uuid4().hex).touch()
        txn.stage(value)
    return Completed(value)
