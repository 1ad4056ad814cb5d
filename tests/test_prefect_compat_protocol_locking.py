"""Prefect's own lock manager tests, ported to run against ``sqlresults.prefect.SQLLockManager``
with Prefect 3.9.1 installed: ``tests/test_locking.py`` of Prefect (PrefectHQ/prefect@ce79dd3).

Unlike ``test_prefect_compat_locking.py``, which ports the same behaviours to sqlresults' own
API, these run Prefect's code as the client: its ``ResultStore`` (``prefect.results``), with
``SQLResultStorage`` as its result storage, calls the lock manager exactly as it calls
``MemoryLockManager`` and ``FileSystemLockManager`` in Prefect's suite. Prefect runs one set of
behaviours for each of its two managers; each is ported once here and runs on SQLite and
PostgreSQL. Each test names the Prefect tests it mirrors (``Memory`` and ``FileSystem`` stand
for ``TestMemoryLockManager`` and ``TestFileSystemLockManager``). Where sqlresults differs on
purpose, the test asserts sqlresults' behaviour and names the README "Differences from Prefect"
row. Lease expiry follows a fake clock (the database's), as Prefect's file-system tests do with
theirs, instead of sleeping.

Not ported, and why:

- ``Memory::test_singleton``: the memory manager is a process-wide singleton so that a process
  shares its locks; a ``SQLLockManager`` is an ordinary object, and managers on one database
  share their locks through it (``TestPickling::test_a_copy_sees_and_takes_the_same_locks``).
- ``Memory::test_manager_has_lock_information_when_deserialized_in_new_process_with_fork``:
  forking a process with open database connections is not something sqlresults supports; the
  spawned-process variant is ported.
- The ``store`` and ``clock`` fixtures of ``FileSystem``: replaced by the fixtures below.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from uuid import uuid4

import cloudpickle
import pytest
from conftest import FakeClock, run_async
from prefect.locking.protocol import LockManager as PrefectLockManager
from prefect.results import ResultStore
from threads import JOIN_TIMEOUT, join, run_in_thread

from sqlresults.database import Database
from sqlresults.prefect import SQLLockManager, SQLResultStorage


@pytest.fixture
def manager(database: Database, namespace: str) -> SQLLockManager:
    """The Prefect lock manager on the backend under test, with the real clock."""
    return SQLLockManager(database, namespace=namespace)


@pytest.fixture
def clocked_manager(clocked_database: Database, namespace: str) -> SQLLockManager:
    """A Prefect lock manager whose leases follow the fake ``clock``."""
    return SQLLockManager(clocked_database, namespace=namespace)


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


class TestStoreLocks:
    def test_read_locked_key(self, store: ResultStore) -> None:
        """Prefect's store reading a key another holder has locked waits until the holder has
        written and released it, then returns the holder's value.

        Prefect: tests/test_locking.py::Memory::test_read_locked_key,
        ::FileSystem::test_read_locked_key
        """
        key = str(uuid4())
        read_queue: queue.Queue[Any] = queue.Queue()

        def read_locked_key() -> None:
            record = store.read(key)
            read_queue.put(record.result)

        assert store.acquire_lock(key, holder="holder1")
        thread = run_in_thread(read_locked_key)
        run_async(lambda: store.awrite(key=key, obj={"test": "value"}, holder="holder1"))
        store.release_lock(key, holder="holder1")
        join(thread)
        # the read should have been blocked until the lock was released
        assert read_queue.get_nowait() == {"test": "value"}

    def test_write_to_key_with_same_lock_holder(self, store: ResultStore) -> None:
        """The default holder that took the lock writes the key.

        Prefect: tests/test_locking.py::Memory::test_write_to_key_with_same_lock_holder,
        ::FileSystem::test_write_to_key_with_same_lock_holder
        """
        key = str(uuid4())
        assert store.acquire_lock(key)
        # can write to key because holder is the same
        store.write(key=key, obj={"test": "value"})
        assert (record := store.read(key)) is not None
        assert record.result == {"test": "value"}

    def test_write_to_key_with_different_lock_holder(self, store: ResultStore) -> None:
        """Another holder's write is refused with Prefect's RuntimeError.

        Prefect: tests/test_locking.py::Memory::test_write_to_key_with_different_lock_holder,
        ::FileSystem::test_write_to_key_with_different_lock_holder
        """
        key = str(uuid4())
        assert store.acquire_lock(key, holder="holder1")
        with pytest.raises(
            RuntimeError,
            match=f"Cannot write to result record with key {key} because it is locked by "
            "another holder.",
        ):
            store.write(key=key, obj={"test": "value"}, holder="holder2")


class TestAcquire:
    def test_acquire_lock(self, manager: SQLLockManager) -> None:
        """Acquire locks the key; release frees it.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock, ::FileSystem::test_acquire_lock
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_acquire_lock_async(self, manager: SQLLockManager) -> None:
        """The async acquire locks the key too.

        Prefect: tests/test_locking.py::FileSystem::test_acquire_lock_async
        """
        key = str(uuid4())
        assert run_async(lambda: manager.aacquire_lock(key, holder="holder1"))
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_acquire_lock_idempotent(self, manager: SQLLockManager) -> None:
        """The same holder acquiring twice gets True both times.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock_idempotent,
        ::FileSystem::test_acquire_lock_idempotent
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_acquire_lock_with_hold_timeout(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """A lock whose hold timeout ran out is free.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock_with_hold_timeout,
        ::FileSystem::test_acquire_lock_with_hold_timeout
        """
        key = str(uuid4())
        assert clocked_manager.acquire_lock(key=key, holder="holder1", hold_timeout=10)
        assert clocked_manager.is_locked(key)
        clock.advance(11)
        assert not clocked_manager.is_locked(key)

    def test_acquire_lock_with_acquire_timeout(self, manager: SQLLockManager) -> None:
        """Another holder's acquire gives up with False after ``acquire_timeout``.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock_with_acquire_timeout,
        ::FileSystem::test_acquire_lock_with_acquire_timeout
        """
        key = str(uuid4())
        assert manager.acquire_lock(key=key, holder="holder1")
        assert manager.is_locked(key)
        assert not manager.acquire_lock(key=key, holder="holder2", acquire_timeout=0.1)
        manager.release_lock(key=key, holder="holder1")
        assert not manager.is_locked(key=key)

    def test_acquire_timeout_zero_tries_once(self, manager: SQLLockManager) -> None:
        """``acquire_timeout=0`` on a held key returns False at once.

        Difference from Prefect (README "acquire_timeout=0"): Prefect's file lock manager
        waits forever. Prefect: the protocol's docstring ("Pass 0 to attempt to acquire a lock
        without waiting").
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert not manager.acquire_lock(key, holder="holder2", acquire_timeout=0)

    def test_acquire_lock_when_previously_holder_timed_out(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """A holder whose hold ran out loses the key to a waiting acquire.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock_when_previously_holder_timed_out,
        ::FileSystem::test_acquire_lock_when_previously_holder_timed_out
        """
        key = str(uuid4())
        assert clocked_manager.acquire_lock(key=key, holder="holder1", hold_timeout=10)
        assert clocked_manager.is_locked(key=key)
        clock.advance(11)
        # waits for the expired lock and acquires it
        assert clocked_manager.acquire_lock(key=key, holder="holder2")
        assert clocked_manager.is_locked(key=key)
        clocked_manager.release_lock(key=key, holder="holder2")
        assert not clocked_manager.is_locked(key=key)

    def test_locking_works_across_threads(self, manager: SQLLockManager) -> None:
        """A lock released in one thread is acquired by a waiter in another.

        Prefect: tests/test_locking.py::Memory::test_locking_works_across_threads,
        ::FileSystem::test_locking_works_across_threads
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)
        acquired = threading.Event()

        def get_lock() -> None:
            if manager.acquire_lock(key, holder="holder2", acquire_timeout=JOIN_TIMEOUT):
                acquired.set()

        thread = run_in_thread(get_lock)
        manager.release_lock(key, holder="holder1")
        join(thread)
        # the lock should have been acquired by the thread
        assert acquired.is_set()
        assert manager.lock_holder(key) == "holder2"


class TestRelease:
    def test_raises_if_releasing_with_wrong_holder(self, manager: SQLLockManager) -> None:
        """Releasing another holder's lock raises Prefect's ValueError.

        Prefect: tests/test_locking.py::Memory::test_raises_if_releasing_with_wrong_holder,
        ::FileSystem::test_raises_if_releasing_with_wrong_holder
        """
        key = str(uuid4())
        assert manager.acquire_lock(key=key, holder="holder1")
        assert manager.is_locked(key=key)
        with pytest.raises(
            ValueError, match=f"No lock held by holder2 for transaction with key {key}"
        ):
            manager.release_lock(key=key, holder="holder2")

    def test_releasing_a_lock_nobody_holds_is_a_no_op(self, manager: SQLLockManager) -> None:
        """Releasing a key that was never locked does nothing.

        Difference from Prefect (README "releasing a lock nobody holds"): Prefect's memory and
        file managers raise ValueError. Prefect: prefect-redis tests/test_locking.py::
        test_release_lock_with_nonexistent_lock (Redis made this a no-op, #17676).
        """
        key = str(uuid4())
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)


class TestInspection:
    def test_is_lock_holder(self, manager: SQLLockManager) -> None:
        """Only the holder is the lock holder, and only while it holds the lock.

        Prefect: tests/test_locking.py::Memory::test_is_lock_holder,
        ::FileSystem::test_is_lock_holder
        """
        key = str(uuid4())
        assert not manager.is_lock_holder(key, holder="holder1")
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_lock_holder(key, holder="holder1")
        assert not manager.is_lock_holder(key, holder="holder2")

    def test_wait_for_lock(self, clocked_manager: SQLLockManager, clock: FakeClock) -> None:
        """``wait_for_lock`` returns True once the hold has run out, without taking the lock.

        Prefect: tests/test_locking.py::Memory::test_wait_for_lock,
        ::FileSystem::test_wait_for_lock
        """
        key = str(uuid4())
        assert clocked_manager.acquire_lock(key, holder="holder1", hold_timeout=10)
        assert clocked_manager.is_locked(key)
        clock.advance(11)
        assert clocked_manager.wait_for_lock(key)
        assert not clocked_manager.is_locked(key)

    def test_wait_for_lock_with_timeout(self, manager: SQLLockManager) -> None:
        """``wait_for_lock`` on a held lock gives up with False; the lock stays held.

        Prefect: tests/test_locking.py::Memory::test_wait_for_lock_with_timeout,
        ::FileSystem::test_wait_for_lock_with_timeout
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)
        assert not manager.wait_for_lock(key, timeout=0.1)
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_wait_for_lock_never_been_locked(self, manager: SQLLockManager) -> None:
        """A key never locked is free at once.

        Prefect: tests/test_locking.py::Memory::test_wait_for_lock_never_been_locked,
        ::FileSystem::test_wait_for_lock_never_been_locked
        """
        key = str(uuid4())
        assert not manager.is_locked(key)
        assert manager.wait_for_lock(key)

    def test_wait_for_lock_async(self, manager: SQLLockManager) -> None:
        """The async wait gives up with False on a held lock, which stays held.

        Prefect: tests/test_locking.py::FileSystem::test_wait_for_lock_async,
        ::FileSystem::test_wait_for_lock_async_with_timeout
        """
        key = str(uuid4())
        assert run_async(lambda: manager.aacquire_lock(key, holder="holder1"))
        assert manager.is_locked(key)
        assert not run_async(lambda: manager.await_for_lock(key, timeout=0.1))
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_wait_for_lock_async_never_been_locked(self, manager: SQLLockManager) -> None:
        """The async wait on a key never locked is True at once.

        Prefect: tests/test_locking.py::FileSystem::test_wait_for_lock_async_never_been_locked
        """
        key = str(uuid4())
        assert not manager.is_locked(key)
        assert run_async(lambda: manager.await_for_lock(key))


class TestPickling:
    def test_serialize_with_no_locks(self, manager: SQLLockManager) -> None:
        """A manager survives cloudpickle (as Prefect ships it to workers).

        Prefect: tests/test_locking.py::Memory::test_serialize_with_no_locks
        """
        deserialized = cloudpickle.loads(cloudpickle.dumps(manager))
        assert isinstance(deserialized, SQLLockManager)

    def test_serialize_with_active_locks_keeps_them(
        self, manager: SQLLockManager, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Pickling a manager that holds locks warns of nothing: the unpickled one sees them
        (they are rows in the database).

        Difference from Prefect (README "stores across processes"): the memory manager warns
        that lock information will not be available after deserialization. Prefect:
        tests/test_locking.py::Memory::test_serialize_with_active_locks_logs_warning,
        ::Memory::test_deserialized_manager_get_singleton_lock_information
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        deserialized = cloudpickle.loads(cloudpickle.dumps(manager))
        assert not [record for record in caplog.records if record.levelname == "WARNING"]
        assert deserialized.is_locked(key)
        assert deserialized.is_lock_holder(key, holder="holder1")

    def test_a_copy_sees_and_takes_the_same_locks(self, manager: SQLLockManager) -> None:
        """An unpickled manager shares the original's locks, both ways, and takes new ones.

        Prefect: tests/test_locking.py::Memory::test_singleton_behavior_after_deserialization
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        serialized = cloudpickle.dumps(manager)
        assert manager.is_locked(key)
        deserialized = cloudpickle.loads(serialized)
        assert manager.is_locked(key)
        key2 = str(uuid4())
        assert deserialized.acquire_lock(key2, holder="holder2")
        assert deserialized.is_locked(key2)
        assert manager.is_lock_holder(key2, holder="holder2")

    def test_a_spawned_process_sees_the_lock(self, manager: SQLLockManager) -> None:
        """A manager unpickled in a new (spawned) process sees the parent's lock and holder.

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
