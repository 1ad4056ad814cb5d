"""Prefect's own lock manager tests with Prefect 3.9.1 installed and Prefect's code as the
client of ``sqlresults.prefect.SQLLockManager``: ``tests/test_locking.py`` of Prefect
(PrefectHQ/prefect@ce79dd3).

The lock manager behaviours themselves (acquire, release, inspection, waits, pickling) run
against both of sqlresults' managers, the adapter among them, in
``test_prefect_compat_locking.py``. This module adds what needs Prefect: its ``LockManager``
protocol, its ``ResultStore`` (``prefect.results``), with ``SQLResultStorage`` as its result
storage, calling the lock manager exactly as it calls ``MemoryLockManager`` and
``FileSystemLockManager`` in Prefect's suite (``TestStoreLocks``: the store behaviours of
``test_prefect_compat_locking.py`` again, with Prefect's store as the client), and a manager
shipped to a new process with cloudpickle, as Prefect ships it. Each test runs on SQLite and
PostgreSQL and names the Prefect tests it mirrors (``Memory`` and ``FileSystem`` stand for
``TestMemoryLockManager`` and ``TestFileSystemLockManager``). Where sqlresults differs on
purpose, the test asserts sqlresults' behaviour and names the README "Differences from Prefect"
row.

Not ported, and why:

- ``Memory::test_singleton``: the memory manager is a process-wide singleton so that a process
  shares its locks; a ``SQLLockManager`` is an ordinary object, and managers on one database
  share their locks through it (``test_prefect_compat_locking.py::TestSharedLocks`` and
  ``::TestPickling::test_singleton_behavior_after_deserialization``, both run on the adapter).
- ``Memory::test_manager_has_lock_information_when_deserialized_in_new_process_with_fork``:
  forking a process with open database connections is not something sqlresults supports; the
  spawned-process variant is ported.
- The ``store`` and ``clock`` fixtures of ``FileSystem``: replaced by the fixtures below and
  those of ``test_prefect_compat_locking.py``.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from uuid import uuid4

import cloudpickle
import pytest
import test_prefect_compat_locking as compat
from prefect.locking.protocol import LockManager as PrefectLockManager
from prefect.results import ResultStore
from threads import JOIN_TIMEOUT

from sqlresults.database import Database
from sqlresults.prefect import SQLLockManager, SQLResultStorage


@pytest.fixture
def manager(database: Database, namespace: str) -> SQLLockManager:
    """The Prefect lock manager on the backend under test, with the real clock."""
    return SQLLockManager(database, namespace=namespace)


@pytest.fixture
def store(database_url: str, namespace: str, manager: SQLLockManager) -> ResultStore:
    """Prefect's own result store, on sqlresults for both its results and its locks."""
    return ResultStore(
        result_storage=SQLResultStorage(url=database_url, namespace=namespace),
        lock_manager=manager,
    )


def sees_lock(serialized: bytes, key: str, holder: str) -> bool:
    """Whether a manager unpickled here (a spawned process) sees ``holder``'s lock."""
    manager = cloudpickle.loads(serialized)
    return bool(manager.is_locked(key) and manager.is_lock_holder(key, holder))


class TestProtocol:
    def test_satisfies_prefect_lock_manager_protocol(self, manager: SQLLockManager) -> None:
        """Prefect's ``LockManager`` protocol is runtime-checkable; the manager satisfies it."""
        assert isinstance(manager, PrefectLockManager)


class TestStoreLocks(compat.TestStoreLocks):
    """The store behaviours of ``test_prefect_compat_locking.py::TestStoreLocks`` (each test's
    docstring there names the Prefect tests it mirrors), with Prefect's ``ResultStore`` as the
    client: the ``store`` fixture above."""


class TestPickling:
    def test_a_spawned_process_sees_the_lock(self, manager: SQLLockManager) -> None:
        """A manager cloudpickled (as Prefect ships it to workers) into a new (spawned) process
        sees the parent's lock and holder there.

        Difference from Prefect (README "stores across processes"): the memory manager has
        no lock information there. Prefect: tests/test_locking.py::Memory::
        test_manager_has_no_lock_information_when_deserialized_in_new_process
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        serialized = cloudpickle.dumps(manager)
        with ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        ) as executor:
            future = executor.submit(sees_lock, serialized, key, "holder1")
            assert future.result(timeout=JOIN_TIMEOUT)
