"""Prefect's own lock manager tests, ported: ``tests/test_locking.py`` of Prefect
(PrefectHQ/prefect@ce79dd3), against both of sqlresults' lock managers and its store.

Prefect runs one set of behaviours twice, for ``MemoryLockManager`` and
``FileSystemLockManager``. sqlresults has two managers, whose locks are rows in the result
database: its own :class:`~sqlresults.locking.SQLLockManager` and the Prefect adapter
:class:`~sqlresults.prefect.SQLLockManager` (a subclass that renews unbounded leases and fences
the storage's writes). Each behaviour is ported once and runs against both (the ``manager``
fixture, ids ``own`` and ``prefect``), on SQLite and PostgreSQL. ``TestStoreLocks`` runs with
sqlresults' ``ResultStore`` as the client here, and again with Prefect's own ``ResultStore`` as
the client in ``test_prefect_compat_protocol_locking.py``. Each test names the Prefect tests it
mirrors (``Memory`` and ``FileSystem`` stand for ``TestMemoryLockManager`` and
``TestFileSystemLockManager``). Where sqlresults differs on purpose, the test asserts our
behaviour and names the difference, which the README's "Differences from Prefect" table lists.
Lease expiry follows the fake ``clock``, as in Prefect's file-system tests, instead of sleeping.

Not ported, and why:

- ``Memory::test_singleton``: ``MemoryLockManager`` is a process-wide singleton so that every
  store of a process shares its locks. A ``SQLLockManager`` is an ordinary object; what the
  singleton is for, shared locks, comes from the database and is ported as
  ``TestSharedLocks::test_managers_on_one_database_share_locks``.
- ``Memory::test_manager_has_no_lock_information_when_deserialized_in_new_process`` (spawn)
  and ``::test_manager_has_lock_information_when_deserialized_in_new_process_with_fork``: a
  real second process is ``tests/test_locking.py::TestPickling::
  test_a_spawned_worker_takes_a_lock_the_parent_sees`` and, for the Prefect adapter shipped
  with cloudpickle, ``test_prefect_compat_protocol_locking.py::TestPickling::
  test_a_spawned_process_sees_the_lock``, not repeated here; its outcome is the same however
  the process starts (the locks are rows), and forking a process with open
  database connections is not something sqlresults supports. ``TestPickling`` below ports
  what they expect of the unpickled manager, through real ``pickle`` round trips (Prefect uses
  cloudpickle, which pickles these classes the same way).
- ``FileSystem`` fixtures (``store``: a lock files directory, ``clock``: a patched ``now``):
  replaced by the ``manager`` and ``clocked_manager`` fixtures below.
"""

from __future__ import annotations

import logging
import pickle
import queue
from typing import Any
from uuid import uuid4

import pytest
from conftest import FakeClock, run_async
from threads import JOIN_TIMEOUT, join, run_in_thread

import sqlresults.prefect
from sqlresults.database import Database
from sqlresults.locking import SQLLockManager
from sqlresults.results import ResultStore
from sqlresults.transactions import IsolationLevel, transaction


@pytest.fixture(params=[SQLLockManager, sqlresults.prefect.SQLLockManager], ids=["own", "prefect"])
def manager_class(request: pytest.FixtureRequest) -> type[SQLLockManager]:
    """The lock manager under test: sqlresults' own, or the Prefect adapter (its subclass)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def manager(
    manager_class: type[SQLLockManager], database: Database, namespace: str
) -> SQLLockManager:
    """A lock manager on the backend under test, with the real clock."""
    return manager_class(database, namespace=namespace)


@pytest.fixture
def clocked_manager(
    manager_class: type[SQLLockManager], clocked_database: Database, namespace: str
) -> SQLLockManager:
    """A lock manager whose leases follow the fake ``clock``."""
    return manager_class(clocked_database, namespace=namespace)


class TestStoreLocks:
    """The store as a lock client; ``test_prefect_compat_protocol_locking.py`` runs these
    again with Prefect's ``ResultStore`` as the ``store``."""

    def test_read_locked_key(self, store: Any) -> None:
        """A read of a key another holder has locked waits until the holder has written and
        released it, then returns the holder's value.

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

    def test_write_to_key_with_same_lock_holder(self, store: Any) -> None:
        """The default holder that took the lock may write the key.

        Prefect: tests/test_locking.py::Memory::test_write_to_key_with_same_lock_holder,
        ::FileSystem::test_write_to_key_with_same_lock_holder
        """
        key = str(uuid4())
        assert store.acquire_lock(key)
        # can write to key because holder is the same
        store.write(key=key, obj={"test": "value"})
        assert (record := store.read(key)) is not None
        assert record.result == {"test": "value"}

    def test_write_to_key_with_different_lock_holder(self, store: Any) -> None:
        """A write by another holder is refused with Prefect's RuntimeError message.

        Prefect: tests/test_locking.py::Memory::test_write_to_key_with_different_lock_holder,
        ::FileSystem::test_write_to_key_with_different_lock_holder
        """
        key = str(uuid4())
        assert store.acquire_lock(key, holder="holder1")
        with pytest.raises(
            RuntimeError,
            match=(
                f"Cannot write to result record with key {key} because it is locked by another "
                "holder."
            ),
        ):
            store.write(key=key, obj={"test": "value"}, holder="holder2")


class TestAcquireAndRelease:
    def test_acquire_lock(self, manager: SQLLockManager) -> None:
        """Acquiring locks the key; releasing unlocks it.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock,
        ::FileSystem::test_acquire_lock
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_acquire_lock_async(self, manager: SQLLockManager) -> None:
        """aacquire_lock locks the key like acquire_lock.

        Prefect: tests/test_locking.py::FileSystem::test_acquire_lock_async
        """
        key = str(uuid4())
        assert run_async(lambda: manager.aacquire_lock(key, holder="holder1"))
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_acquire_lock_idempotent(self, manager: SQLLockManager) -> None:
        """The holder acquiring its own lock again succeeds; one release frees it.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock_idempotent,
        ::FileSystem::test_acquire_lock_idempotent
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_acquire_lock_with_acquire_timeout(self, manager: SQLLockManager) -> None:
        """Another holder whose acquire_timeout runs out gets False; the lock stays held.

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

    def test_releasing_an_unheld_key_is_a_no_op(self, manager: SQLLockManager) -> None:
        """Releasing a key nobody holds does nothing. Difference from Prefect (README
        "releasing a lock nobody holds"): its memory and file managers raise "No lock held by
        …" there; the Redis manager, like sqlresults, does not.

        Prefect: src/integrations/prefect-redis/tests/test_locking.py::
        test_release_lock_with_nonexistent_lock (reference behaviour 56)
        """
        key = str(uuid4())
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_is_lock_holder(self, manager: SQLLockManager) -> None:
        """is_lock_holder is False before the lock is taken, True for its holder only.

        Prefect: tests/test_locking.py::Memory::test_is_lock_holder,
        ::FileSystem::test_is_lock_holder
        """
        key = str(uuid4())
        assert not manager.is_lock_holder(key, holder="holder1")
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_lock_holder(key, holder="holder1")
        assert not manager.is_lock_holder(key, holder="holder2")

    def test_locking_works_across_threads(self, manager: SQLLockManager) -> None:
        """A lock released in one thread is acquired by a thread waiting for it.

        Prefect: tests/test_locking.py::Memory::test_locking_works_across_threads,
        ::FileSystem::test_locking_works_across_threads
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)
        acquired: list[bool] = []

        def get_lock() -> None:
            acquired.append(
                manager.acquire_lock(key, holder="holder2", acquire_timeout=JOIN_TIMEOUT)
            )

        thread = run_in_thread(get_lock)
        manager.release_lock(key, holder="holder1")
        join(thread)

        # the lock should have been acquired by the thread
        assert acquired == [True]
        assert manager.is_lock_holder(key, holder="holder2")
        assert manager.lock_holder(key) == "holder2"


class TestHoldTimeout:
    def test_acquire_lock_with_hold_timeout(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """A lock is free once its hold_timeout has passed.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock_with_hold_timeout,
        ::FileSystem::test_acquire_lock_with_hold_timeout
        """
        key = str(uuid4())
        assert clocked_manager.acquire_lock(key=key, holder="holder1", hold_timeout=10)
        assert clocked_manager.is_locked(key)
        clock.advance(11)
        assert not clocked_manager.is_locked(key)

    def test_acquire_lock_when_previously_holder_timed_out(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """Another holder acquires a key whose previous holder's hold_timeout ran out.

        Prefect: tests/test_locking.py::Memory::test_acquire_lock_when_previously_holder_timed_out,
        ::FileSystem::test_acquire_lock_when_previously_holder_timed_out
        """
        key = str(uuid4())
        assert clocked_manager.acquire_lock(key=key, holder="holder1", hold_timeout=10)
        assert clocked_manager.is_locked(key=key)
        clock.advance(11)
        # takes the expired lock
        assert clocked_manager.acquire_lock(key=key, holder="holder2")
        assert clocked_manager.is_locked(key=key)
        clocked_manager.release_lock(key=key, holder="holder2")
        assert not clocked_manager.is_locked(key=key)


class TestWaitForLock:
    def test_wait_for_lock(self, clocked_manager: SQLLockManager, clock: FakeClock) -> None:
        """Waiting on a lock whose hold_timeout runs out returns True; the key is then free.

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
        """A wait whose timeout runs out returns False and leaves the lock held.

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
        """Waiting on a key never locked returns True at once.

        Prefect: tests/test_locking.py::Memory::test_wait_for_lock_never_been_locked,
        ::FileSystem::test_wait_for_lock_never_been_locked
        """
        key = str(uuid4())
        assert not manager.is_locked(key)
        assert manager.wait_for_lock(key)

    def test_wait_for_lock_async(self, manager: SQLLockManager) -> None:
        """await_for_lock on a held lock returns False when its timeout runs out; the lock
        stays held.

        Prefect: tests/test_locking.py::FileSystem::test_wait_for_lock_async,
        ::FileSystem::test_wait_for_lock_async_with_timeout (the same test)
        """
        key = str(uuid4())
        assert run_async(lambda: manager.aacquire_lock(key, holder="holder1"))
        assert manager.is_locked(key)
        assert not run_async(lambda: manager.await_for_lock(key, timeout=0.1))
        assert manager.is_locked(key)
        manager.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_wait_for_lock_async_never_been_locked(self, manager: SQLLockManager) -> None:
        """await_for_lock on a key never locked returns True at once.

        Prefect: tests/test_locking.py::FileSystem::test_wait_for_lock_async_never_been_locked
        """
        key = str(uuid4())
        assert not manager.is_locked(key)
        assert run_async(lambda: manager.await_for_lock(key))


class TestSharedLocks:
    def test_managers_on_one_database_share_locks(
        self, manager_class: type[SQLLockManager], database: Database, namespace: str
    ) -> None:
        """Two managers on one database and namespace see and respect each other's locks, as
        Prefect's singleton MemoryLockManager makes every store of a process share locks (here
        across processes and machines too).

        Prefect: tests/test_locking.py::Memory::test_singleton (what it is for)
        """
        first = manager_class(database, namespace=namespace)
        second = manager_class(database, namespace=namespace)
        key = str(uuid4())
        assert first.acquire_lock(key, holder="holder1")
        assert second.is_locked(key)
        assert second.is_lock_holder(key, holder="holder1")
        assert not second.acquire_lock(key, holder="holder2", acquire_timeout=0)
        first.release_lock(key, holder="holder1")
        assert not second.is_locked(key)


class TestPickling:
    def test_serialize_with_no_locks(self, manager: SQLLockManager) -> None:
        """A lock manager holding no locks pickles and unpickles to a lock manager of its class
        on the same database and namespace.

        Prefect: tests/test_locking.py::Memory::test_serialize_with_no_locks
        """
        deserialized = pickle.loads(pickle.dumps(manager))
        assert type(deserialized) is type(manager)
        assert deserialized.database.is_same_database(manager.database)
        assert deserialized.namespace == manager.namespace

    def test_serialize_with_active_locks_keeps_them(
        self, manager: SQLLockManager, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Pickling a lock manager that holds a lock warns of nothing and loses nothing: the
        unpickled manager sees the lock and its holder. Difference from Prefect (README
        "stores across processes"): a MemoryLockManager warns "Lock information will not be
        available after deserialization" and, in another process, has lost its locks; SQL
        locks are rows in the database, which travels as its URL.

        Prefect: tests/test_locking.py::Memory::test_serialize_with_active_locks_logs_warning,
        ::Memory::test_manager_has_no_lock_information_when_deserialized_in_new_process
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)

        caplog.set_level(logging.DEBUG)
        deserialized = pickle.loads(pickle.dumps(manager))

        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert deserialized.is_locked(key)
        assert deserialized.is_lock_holder(key, holder="holder1")

    def test_deserialized_manager_get_singleton_lock_information(
        self, manager: SQLLockManager
    ) -> None:
        """The unpickled manager, on connections of its own (not the original's Database
        object), knows the locks taken before pickling, and a release through it frees the key
        for the original.

        Prefect: tests/test_locking.py::Memory::
        test_deserialized_manager_get_singleton_lock_information
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")
        assert manager.is_locked(key)
        assert manager.is_lock_holder(key, holder="holder1")

        deserialized = pickle.loads(pickle.dumps(manager))

        assert deserialized.database is not manager.database
        assert deserialized.is_locked(key)
        assert deserialized.is_lock_holder(key, holder="holder1")
        deserialized.release_lock(key, holder="holder1")
        assert not manager.is_locked(key)

    def test_singleton_behavior_after_deserialization(self, manager: SQLLockManager) -> None:
        """Pickling and unpickling leave the original manager's locks in place, and the
        unpickled manager takes new locks that the original sees and respects. (The singleton part,
        ``deserialized is MemoryLockManager()``, does not apply: see ``test_singleton`` in the
        module docstring.)

        Prefect: tests/test_locking.py::Memory::test_singleton_behavior_after_deserialization
        """
        key = str(uuid4())
        assert manager.acquire_lock(key, holder="holder1")

        serialized = pickle.dumps(manager)
        assert manager.is_locked(key)

        deserialized = pickle.loads(serialized)
        assert manager.is_locked(key)

        key2 = str(uuid4())
        assert deserialized.acquire_lock(key2, holder="holder2")
        assert deserialized.is_locked(key2)
        assert manager.is_lock_holder(key2, holder="holder2")
        assert not manager.acquire_lock(key2, holder="holder1", acquire_timeout=0)

    def test_pickle_unpickle_and_use_lock_manager(
        self, clocked_manager: SQLLockManager, clock: FakeClock
    ) -> None:
        """An unpickled manager works, sync and async: it acquires, is the holder, releases;
        re-acquires its own lock; and the lease it gives a lock runs out on time, after which
        another holder takes the key.

        Prefect: src/integrations/prefect-redis/tests/test_locking.py::
        test_pickle_unpickle_and_use_lock_manager (Redis keeps its locks on the server too)
        """
        unpickled_manager: SQLLockManager = pickle.loads(pickle.dumps(clocked_manager))
        # A database with a clock of its own unpickles to a new Database object (closed below).
        assert unpickled_manager.database is not clocked_manager.database
        try:
            sync_key = str(uuid4())
            assert unpickled_manager.acquire_lock(
                sync_key, holder="sync_pickle_holder", acquire_timeout=1, hold_timeout=5
            )
            assert unpickled_manager.is_lock_holder(sync_key, "sync_pickle_holder")
            unpickled_manager.release_lock(sync_key, "sync_pickle_holder")
            assert not unpickled_manager.is_locked(sync_key)

            async_key = str(uuid4())

            async def acquire() -> bool:
                return await unpickled_manager.aacquire_lock(
                    async_key, holder="async_pickle_holder", acquire_timeout=1, hold_timeout=10
                )

            assert run_async(acquire)
            # re-acquiring its own lock succeeds
            assert run_async(acquire)
            assert not clocked_manager.acquire_lock(async_key, "new_holder", acquire_timeout=0)
            # the lease runs out (on the fake clock, which the original manager follows)
            clock.advance(11)
            assert clocked_manager.acquire_lock(async_key, "new_holder", acquire_timeout=0)
            assert unpickled_manager.is_lock_holder(async_key, "new_holder")
        finally:
            unpickled_manager.database.close()

    def test_unpickled_store_locks_for_its_transactions(self, store: ResultStore) -> None:
        """A store that went through pickle keeps locking: a SERIALIZABLE transaction on the
        unpickled store holds the key's lock as the original store sees it, a write by another
        holder is refused with Prefect's message while it is open, and its commit writes the
        value and frees the key. Difference from Prefect (README "stores across processes"):
        a store with a MemoryLockManager loses its locks in another process.

        Prefect: no test of its own; what test_serialize_with_active_locks_logs_warning warns
        about, for a ResultStore's lock manager.
        """
        key = str(uuid4())
        unpickled_store: ResultStore = pickle.loads(pickle.dumps(store))

        with transaction(
            key=key,
            store=unpickled_store,
            isolation_level=IsolationLevel.SERIALIZABLE,
            lock_timeout=60,  # a hang guard: the key is free
        ) as txn:
            assert store.is_lock_holder(key, holder=txn.holder)
            with pytest.raises(RuntimeError, match="because it is locked by another holder"):
                store.write(key=key, obj="other", holder="holder2")
            txn.stage({"test": "value"})

        assert txn.is_committed()
        assert not store.is_locked(key)
        assert store.read(key).result == {"test": "value"}
