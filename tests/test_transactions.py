"""Tests for sqlresults.transactions.

Prefect's transaction behaviours 23-44 (reference §4 and §10), adapted per DESIGN §10
(transactions compare by identity; every store supports SERIALIZABLE), and the fixes sqlresults
makes (DESIGN §2, reference §4 "Known quirks" and §11): one holder per transaction, an atomic
write-and-release at commit, no double release by EAGER children, self-deadlock detection, lease
renewal, and a bounded lock wait.

Threads and tasks are coordinated with events; tests assert orderings and outcomes, never
durations. Timeouts are hang guards.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import pytest
from conftest import FakeClock, run_async
from threads import JOIN_TIMEOUT, join, run_in_thread

from sqlresults.database import Database
from sqlresults.errors import (
    ConfigurationError,
    EventLoopBlockingError,
    InvalidArgumentError,
    LeaseLostError,
    LockNotHeldError,
    LockTimeoutError,
    RecordNotFoundError,
    SelfDeadlockError,
)
from sqlresults.locking import SQLLockManager
from sqlresults.results import ResultStore
from sqlresults.transactions import (
    AsyncTransaction,
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
    atransaction,
    get_transaction,
    transaction,
)

SERIALIZABLE = IsolationLevel.SERIALIZABLE
READ_COMMITTED = IsolationLevel.READ_COMMITTED
TXN_LOGGER = "sqlresults.transactions"


class BoomError(Exception):
    """The failure a test body raises on purpose."""


def stage_then_fail(txn: Transaction, value: Any = "never", **hooks: Any) -> NoReturn:
    """A body that stages ``value`` (with ``hooks``) and then fails."""
    txn.stage(value, **hooks)
    raise BoomError


def lock_free(store: ResultStore, *keys: str) -> bool:
    return not any(store.is_locked(key) for key in keys)


@pytest.fixture
def default_store_settings(
    backend: str, database_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the default store at the backend under test: SQLite keeps the default file under
    SQLRESULTS_HOME (a tmp dir); PostgreSQL goes through SQLRESULTS_DATABASE_URL and a fresh
    SQLRESULTS_NAMESPACE."""
    if backend == "postgresql":
        monkeypatch.setenv("SQLRESULTS_DATABASE_URL", database_url)
        monkeypatch.setenv("SQLRESULTS_NAMESPACE", namespace)


class TestInit:
    def test_defaults(self) -> None:
        """Behaviour 23: Transaction() has no store or key, is PENDING, has no commit mode and
        READ_COMMITTED isolation (the field default of a directly built transaction)."""
        txn = Transaction()
        assert txn.store is None
        assert txn.key is None
        assert txn.state is TransactionState.PENDING
        assert txn.is_pending()
        assert txn.commit_mode is None
        assert txn.isolation_level is READ_COMMITTED
        assert txn.overwrite is False
        assert txn.write_on_commit is True
        assert txn.children == []
        assert txn.on_commit_hooks == []
        assert txn.on_rollback_hooks == []
        assert txn.lock_timeout is None
        assert txn.hold_timeout is None

    def test_equality_is_identity(self) -> None:
        """Behaviour 23 as changed by DESIGN §10: a transaction equals only itself (Prefect's
        "two fresh transactions are equal" is dropped)."""
        first, second = Transaction(), Transaction()
        assert first == first
        assert first != second
        assert first != Transaction(key="test")
        assert len({first, second}) == 2

    def test_each_transaction_is_its_own_holder(self) -> None:
        """Every transaction has a holder id of its own, unlike the thread-based default
        holder (PrefectHQ/prefect#17785)."""
        holders = {Transaction().holder for _ in range(50)}
        assert len(holders) == 50
        assert ResultStore.generate_default_holder() not in holders

    @pytest.mark.parametrize("field", ["lock_timeout", "hold_timeout"])
    def test_negative_timeouts_are_refused(self, field: str) -> None:
        """A negative lock_timeout or hold_timeout is refused when the transaction is built."""
        with pytest.raises(InvalidArgumentError, match=field):
            Transaction(key="k", **{field: -1})

    @pytest.mark.parametrize("lease", [0, -1, math.nan], ids=repr)
    def test_lease_must_be_more_than_zero(self, lease: float) -> None:
        """hold_timeout is a lease: zero is refused like a negative value, with the message
        every lease gets (a zero lease would free the lock the moment it was taken)."""
        with pytest.raises(InvalidArgumentError) as caught:
            Transaction(key="k", hold_timeout=lease)
        assert str(caught.value).startswith(
            f"hold_timeout must be more than zero seconds, not {lease!r}"
        )

    def test_repr(self) -> None:
        """The repr names key, state and isolation level."""
        assert repr(Transaction(key="k")) == (
            "Transaction(key='k', state=PENDING, isolation_level=READ_COMMITTED)"
        )


class TestGetTransaction:
    def test_none_outside(self) -> None:
        """Behaviour 24: no transaction is current outside any."""
        assert get_transaction() is None

    def test_nesting_and_restore(self) -> None:
        """Behaviour 24: get_transaction() is the innermost open transaction, and the outer one
        is current again after the inner exits."""
        with transaction() as outer:
            assert get_transaction() is outer
            with transaction() as inner:
                assert get_transaction() is inner
            assert get_transaction() is outer
        assert get_transaction() is None

    def test_restored_after_an_exception(self) -> None:
        """Behaviour 24: the current transaction is restored even when the inner one raises."""
        with transaction() as outer:
            with pytest.raises(BoomError), transaction():
                raise BoomError
            assert get_transaction() is outer
        assert get_transaction() is None

    def test_entering_twice_is_refused(self) -> None:
        """Entering a transaction that is already entered raises (reference §4 "enter")."""
        txn = Transaction()
        with txn, pytest.raises(RuntimeError, match="Context already entered"):
            txn.__enter__()


class TestGetParent:
    def test_parent_while_open(self) -> None:
        """get_parent() is the enclosing transaction while open; a root has none."""
        with transaction() as outer:
            assert outer.get_parent() is None
            with transaction() as inner:
                assert inner.get_parent() is outer

    def test_get_parent_in_rollback_hook(self) -> None:
        """Behaviour 25: an inner transaction staged with a rollback hook; a sibling raises; the
        outer rolls back and the hook sees the outer as txn.get_parent()."""
        seen: dict[str, Any] = {}

        def hook(txn: Transaction) -> None:
            seen["parent"] = txn.get_parent()

        opened: list[Transaction] = []

        def body() -> None:
            with transaction() as outer:
                opened.append(outer)
                with transaction() as inner:
                    opened.append(inner)
                    inner.stage("foo", on_rollback_hooks=[hook])
                with transaction() as sibling:
                    stage_then_fail(sibling)

        with pytest.raises(BoomError):
            body()
        outer, inner = opened
        assert outer.is_rolled_back()
        assert inner.is_rolled_back()
        assert seen["parent"] is outer


class TestCommitModes:
    def test_default_is_lazy(self, store: ResultStore) -> None:
        """A root transaction without commit_mode is LAZY; children inherit the parent's."""
        with (
            transaction("a", store) as outer,
            transaction("b", store, commit_mode=CommitMode.EAGER) as eager,
            transaction("c", store) as inherited,
        ):
            pass
        assert outer.commit_mode is CommitMode.LAZY
        assert eager.commit_mode is CommitMode.EAGER
        assert inherited.commit_mode is CommitMode.EAGER

    def test_lazy_children_commit_with_the_outermost(self, store: ResultStore) -> None:
        """Behaviour 26: a LAZY inner transaction is not committed at its own exit (nothing is
        written yet); both commit when the outer exits."""
        with transaction("outer", store) as outer:
            with transaction("inner", store) as inner:
                inner.stage("inner value")
            assert inner.is_staged()
            assert not store.exists("inner")
            outer.stage("outer value")
        assert outer.is_committed()
        assert inner.is_committed()
        assert store.read("inner").result == "inner value"
        assert store.read("outer").result == "outer value"

    def test_eager_commits_at_exit(self, store: ResultStore) -> None:
        """Behaviour 27: commit_mode=EAGER commits at exit; an inner transaction of an EAGER
        outer commits (and writes) at its own exit."""
        with transaction("outer", store, commit_mode=CommitMode.EAGER) as outer:
            with transaction("inner", store) as inner:
                inner.stage(1)
            assert inner.is_committed()
            assert store.read("inner").result == 1
            assert not outer.is_committed()
            outer.stage(2)
        assert outer.is_committed()
        assert store.read("outer").result == 2

    def test_exception_rolls_back_and_reraises(self, store: ResultStore) -> None:
        """Behaviour 28: an exception inside rolls back (nothing written) and is re-raised."""
        with pytest.raises(BoomError), transaction("k", store) as txn:
            stage_then_fail(txn)
        assert txn.is_rolled_back()
        assert not txn.is_committed()
        assert not store.exists("k")

    def test_explicit_rollback_stays_rolled_back(self, store: ResultStore) -> None:
        """Behaviour 29: txn.rollback() inside the block leaves it ROLLED_BACK after exit, and
        nothing is written."""
        with transaction("k", store) as txn:
            txn.stage("never")
            assert txn.rollback() is True
        assert txn.is_rolled_back()
        assert not store.exists("k")

    def test_off_rolls_back_at_exit(self, store: ResultStore) -> None:
        """Behaviour 30: commit_mode=OFF rolls back at exit; nothing is written."""
        with transaction("k", store, commit_mode=CommitMode.OFF) as txn:
            txn.stage("never")
        assert txn.is_rolled_back()
        assert not store.exists("k")

    def test_off_keeps_an_explicit_commit(self, store: ResultStore) -> None:
        """Behaviour 30: under OFF, a commit() called inside stays COMMITTED after exit."""
        with transaction("k", store, commit_mode=CommitMode.OFF) as txn:
            txn.stage("kept")
            assert txn.commit() is True
        assert txn.is_committed()
        assert store.read("k").result == "kept"

    def test_commit_and_rollback_return_false_when_done(self) -> None:
        """commit() and rollback() return False on a finished transaction; a committed
        transaction never rolls back."""
        with transaction() as txn:
            assert txn.commit() is True
            assert txn.commit() is False
            assert txn.rollback() is False
        assert txn.is_committed()


class TestRollbacks:
    def test_error_in_child_commit_rolls_back_the_parent(self) -> None:
        """Behaviour 31: a child whose commit raises leaves the parent ROLLED_BACK, not
        committed."""

        class BadTransaction(Transaction):
            def commit(self) -> bool:
                raise ValueError("fail!")

        with Transaction() as outer, BadTransaction():
            pass
        assert outer.is_rolled_back()
        assert not outer.is_committed()

    def test_rollback_propagates_up(self, store: ResultStore) -> None:
        """Behaviour 32: the innermost rollback() makes every ancestor ROLLED_BACK at each exit;
        nothing is written."""
        with transaction("a", store) as a:
            a.stage(1)
            with transaction("b", store) as b:
                b.stage(2)
                with transaction("c", store) as c:
                    c.stage(3)
                    c.rollback()
                assert b.is_rolled_back()
            assert a.is_rolled_back()
        assert [t.state for t in (a, b, c)] == [TransactionState.ROLLED_BACK] * 3
        assert not any(store.exists(key) for key in "abc")

    def test_child_opened_under_a_rolled_back_parent_is_rolled_back(
        self, store: ResultStore
    ) -> None:
        """A LAZY child opened after its parent rolled back (the parent caught a failing
        child and went on) can never be committed by that parent: it is rolled back by the time
        the outermost transaction exits, runs its rollback hook once, writes nothing and holds
        no lock. (Prefect leaves it STAGED forever; here its lease would be renewed forever.)"""
        rollbacks: list[Transaction] = []
        with transaction("root", store, isolation_level=SERIALIZABLE) as root:
            with pytest.raises(BoomError), transaction("failing", store):
                raise BoomError
            assert root.is_rolled_back()
            with transaction("late", store) as late:
                late.stage("late value", on_rollback_hooks=[rollbacks.append])
        assert root.is_rolled_back()
        assert late.is_rolled_back()
        assert rollbacks == [late]
        assert not store.exists("late")
        assert lock_free(store, "root", "failing", "late")

    def test_rollback_rolls_children_back_newest_first(self) -> None:
        """A parent's rollback runs rollback hooks newest first and rolls its children back in
        reverse order."""
        order: list[str] = []
        with Transaction() as outer:
            for name in ("first", "second"):
                with Transaction() as child:
                    child.stage(name, on_rollback_hooks=[lambda t, n=name: order.append(n)])
            outer.stage(
                "outer",
                on_rollback_hooks=[
                    lambda t: order.append("outer-1"),
                    lambda t: order.append("outer-2"),
                ],
            )
            outer.rollback()
        assert order == ["outer-2", "outer-1", "second", "first"]


class TestOverwrite:
    def test_existing_record_begins_committed(self, store: ResultStore) -> None:
        """Behaviour 33: when the key exists the transaction begins COMMITTED; a stage is
        ignored and the record is unchanged."""
        store.write("original", key="k")
        with transaction("k", store) as txn:
            assert txn.is_committed()
            assert txn.read().result == "original"  # type: ignore[union-attr]
            txn.stage("ignored")
        assert store.read("k").result == "original"

    def test_overwrite_ignores_the_existing_record(self, store: ResultStore) -> None:
        """Behaviour 33: overwrite=True does not begin committed; the new value is written."""
        store.write("original", key="k")
        with transaction("k", store, overwrite=True) as txn:
            assert not txn.is_committed()
            txn.stage("replacement")
        assert txn.is_committed()
        assert store.read("k").result == "replacement"


class TestDefaultStore:
    def test_transaction_outside_of_a_run(self, default_store_settings: None) -> None:
        """Behaviour 34: transaction(key) without a store, outside any run, uses the default
        store; after exit txn.read() gives the staged value, and a new default store sees it."""
        with transaction(key="default-key") as txn:
            txn.stage({"foo": "bar"})
        assert txn.store is not None
        assert txn.read().result == {"foo": "bar"}  # type: ignore[union-attr]
        assert ResultStore().read("default-key").result == {"foo": "bar"}

    def test_default_store_is_under_sqlresults_home(self, tmp_path: Path) -> None:
        """With no database configured, the default store is a SQLite file in SQLRESULTS_HOME."""
        with transaction(key="k") as txn:
            txn.stage(1)
        assert txn.store is not None
        assert txn.store.result_storage.dialect.sqlite_path == tmp_path / "home" / "results.db"

    def test_serializable_on_a_plain_store(self, default_store_settings: None) -> None:
        """Behaviour 42 as changed by sqlresults: a plain ResultStore() supports both isolation
        levels (its locks live in the database), so SERIALIZABLE raises no ConfigurationError;
        the lock is held inside the block and free after."""
        store = ResultStore()
        assert store.supports_isolation_level(SERIALIZABLE)
        assert store.supports_isolation_level(READ_COMMITTED)
        assert store.supports_isolation_level("SERIALIZABLE")
        with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
            assert store.is_lock_holder("k", txn.holder)
            txn.stage("value")
        assert lock_free(store, "k")
        assert store.read("k").result == "value"

    def test_unknown_isolation_level(self, store: ResultStore) -> None:
        """supports_isolation_level of something that is no level raises Prefect's ValueError."""
        with pytest.raises(ValueError, match="Unsupported isolation level: bogus"):
            store.supports_isolation_level("bogus")

    def test_foreign_lock_manager_without_serializable_support(self, store: ResultStore) -> None:
        """A store whose supports_isolation_level says no makes a keyed SERIALIZABLE
        transaction raise Prefect's ConfigurationError at enter (without a key, no error)."""

        class NoLocks(ResultStore):
            def supports_isolation_level(self, level: Any) -> bool:
                return level is READ_COMMITTED

        limited = NoLocks(result_storage=store.result_storage, namespace=store.namespace)
        with pytest.raises(ConfigurationError, match="Isolation level SERIALIZABLE is not"):
            Transaction(key="k", store=limited, isolation_level=SERIALIZABLE).__enter__()
        assert get_transaction() is None
        with Transaction(store=limited, isolation_level=SERIALIZABLE):
            pass


class TestWithResultStore:
    def test_basic_transaction(self, store: ResultStore) -> None:
        """Behaviour 35: the written record's storage_key is the key (verbatim), and txn.read()
        equals store.read(key)."""
        with transaction("some/key.with.dots", store) as txn:
            txn.stage({"answer": 42})
        record = txn.read()
        assert record is not None
        assert record.metadata.storage_key == "some/key.with.dots"
        assert record.result == store.read("some/key.with.dots").result == {"answer": 42}

    def test_next_transaction_is_a_cache_hit(self, store: ResultStore) -> None:
        """Behaviour 36 (adapted): after a commit, the next transaction on the key begins
        committed and reads the value."""
        with transaction("k", store) as first:
            first.stage([1, 2, 3])
        with transaction("k", store) as second:
            assert second.is_committed()
            assert second.read().result == [1, 2, 3]  # type: ignore[union-attr]

    def test_read_without_store_or_key(self) -> None:
        """txn.read() is None without a store and key."""
        with transaction() as txn:
            assert txn.read() is None

    def test_staging_a_result_record(self, store: ResultStore) -> None:
        """A staged ResultRecord is persisted as is (its expiration included)."""
        record = store.create_result_record("value", key="k")
        with transaction("k", store) as txn:
            txn.stage(record)
        assert record.metadata.storage_key == "k"
        assert store.read("k").result == "value"


class TestCompetingTransactions:
    def test_competing_read_transaction(self, store: ResultStore) -> None:
        """Behaviour 37: a SERIALIZABLE writer is open in thread A; a READ_COMMITTED transaction
        in thread B calls read() and blocks until A commits, then returns A's value."""
        events: list[str] = []
        a_open = threading.Event()
        b_reading = threading.Event()
        values: list[Any] = []

        def writer() -> None:
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                a_open.set()
                b_reading.wait(JOIN_TIMEOUT)
                time.sleep(0.1)  # give B the chance to block; never measured
                txn.stage("A's value")
                events.append("A committing")

        def reader() -> None:
            with transaction("k", store, isolation_level=READ_COMMITTED) as txn:
                b_reading.set()
                values.append(txn.read().result)  # type: ignore[union-attr]
                events.append("B read")

        a = run_in_thread(writer)
        assert a_open.wait(JOIN_TIMEOUT)
        b = run_in_thread(reader)
        join(a)
        join(b)
        assert events == ["A committing", "B read"]
        assert values == ["A's value"]

    def test_competing_write_transaction(self, store: ResultStore) -> None:
        """Behaviour 38: two SERIALIZABLE writers on one key; the second blocks at begin, then
        finds the record committed; its stage is ignored and the first value stays."""
        events: list[str] = []
        a_open = threading.Event()
        b_states: list[bool] = []

        def first() -> None:
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                a_open.set()
                time.sleep(0.1)  # give B the chance to block; never measured
                txn.stage("first")
                events.append("A committing")

        def second() -> None:
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                events.append("B began")
                b_states.append(txn.is_committed())
                txn.stage("second")

        a = run_in_thread(first)
        assert a_open.wait(JOIN_TIMEOUT)
        b = run_in_thread(second)
        join(a)
        join(b)
        assert events == ["A committing", "B began"]
        assert b_states == [True]
        assert store.read("k").result == "first"
        assert lock_free(store, "k")


class TestGetAndSet:
    def test_set_and_get(self) -> None:
        """Behaviour 39: txn.set/get round-trips a value."""
        with transaction() as txn:
            txn.set("x", 42)
            assert txn.get("x") == 42

    def test_child_sees_parent_values(self) -> None:
        """Behaviour 39: a child sees its parent's values, even ones set after it opened."""
        with transaction() as outer:
            outer.set("before", 1)
            with transaction() as inner:
                outer.set("after", 2)
                assert inner.get("before") == 1
                assert inner.get("after") == 2

    def test_child_set_shadows_without_touching_the_parent(self) -> None:
        """Behaviour 39: a child's set() shadows the parent's value for the child only."""
        with transaction() as outer:
            outer.set("x", "outer")
            with transaction() as inner:
                inner.set("x", "inner")
                assert inner.get("x") == "inner"
            assert outer.get("x") == "outer"

    def test_get_returns_copies(self) -> None:
        """Behaviour 39: get() returns a deep copy; mutating it changes nothing stored."""
        with transaction() as outer:
            outer.set("items", {"a": [1]})
            with transaction() as inner:
                inner.get("items")["a"].append(2)
            copy = outer.get("items")
            copy["a"].append(3)
            assert outer.get("items") == {"a": [1]}

    def test_unknown_name(self) -> None:
        """Behaviour 40: get() of an unknown name raises ValueError naming it; a default is
        returned instead when given (None included)."""
        with transaction() as txn:
            with pytest.raises(ValueError, match="foobar"):
                txn.get("foobar")
            assert txn.get("foobar", None) is None
            assert txn.get("foobar", 7) == 7


class TestIsolationLevel:
    def test_default_isolation_level(self, store: ResultStore) -> None:
        """Behaviour 41: transaction(key) without a level is READ_COMMITTED and takes no lock."""
        with transaction("k", store) as txn:
            assert txn.isolation_level is READ_COMMITTED
            assert not store.is_locked("k")

    def test_inherited_isolation_level(self, store: ResultStore) -> None:
        """Behaviour 41: an inner transaction inherits SERIALIZABLE from the outer (and locks)."""
        with (
            transaction("outer", store, isolation_level=SERIALIZABLE),
            transaction("inner", store) as inner,
        ):
            assert inner.isolation_level is SERIALIZABLE
            assert store.is_lock_holder("inner", inner.holder)
        assert lock_free(store, "outer", "inner")

    def test_serializable_parent_and_child_in_different_tasks(self, store: ResultStore) -> None:
        """Behaviour 43: a SERIALIZABLE parent and a child opened in another asyncio task work
        together without error; the child's value is readable afterwards."""

        async def child() -> str:
            with transaction("child", store) as txn:
                assert txn.isolation_level is SERIALIZABLE
                await asyncio.sleep(0)
                txn.stage("child value")
                return txn.holder

        async def scenario() -> tuple[Transaction, str]:
            with transaction("parent", store, isolation_level=SERIALIZABLE) as parent:
                holder = await asyncio.create_task(child())
                parent.stage("parent value")
            return parent, holder

        parent, child_holder = asyncio.run(scenario())
        assert parent.is_committed()
        assert child_holder != parent.holder
        assert store.read("child").result == "child value"
        assert store.read("parent").result == "parent value"
        assert lock_free(store, "child", "parent")

    def test_lazy_serializable_child_holds_its_lock_until_the_outermost_commits(
        self, store: ResultStore
    ) -> None:
        """Reference §4 "Known quirks": a LAZY SERIALIZABLE child keeps its lock until the
        outermost commit, and that commit releases it."""
        with transaction("outer", store, isolation_level=SERIALIZABLE):
            with transaction("inner", store) as inner:
                inner.stage(1)
            assert store.is_lock_holder("inner", inner.holder)
        assert inner.is_committed()
        assert lock_free(store, "outer", "inner")


class TestHooks:
    def test_sync_commit_hook(self) -> None:
        """Behaviour 44: a sync on_commit hook is called once, with the transaction."""
        calls: list[Transaction] = []
        with transaction() as txn:
            txn.stage("x", on_commit_hooks=[calls.append])
        assert calls == [txn]

    def test_async_commit_hook(self) -> None:
        """Behaviour 44: an async on_commit hook is run to completion once, with the txn."""
        calls: list[Transaction] = []

        async def hook(txn: Transaction) -> None:
            await asyncio.sleep(0)
            calls.append(txn)

        with transaction() as txn:
            txn.stage("x", on_commit_hooks=[hook])
        assert calls == [txn]

    def test_async_hook_inside_a_running_loop(self) -> None:
        """An async hook of a transaction used inside a coroutine still runs exactly once."""
        calls: list[Transaction] = []

        async def hook(txn: Transaction) -> None:
            calls.append(txn)

        async def scenario() -> Transaction:
            with transaction() as txn:
                txn.stage("x", on_commit_hooks=[hook])
            return txn

        txn = asyncio.run(scenario())
        assert calls == [txn]

    def test_sync_rollback_hook(self) -> None:
        """Behaviour 44: an on_rollback hook is called once when the body raises; the commit
        hook is not called."""
        rollbacks: list[Transaction] = []
        commits: list[Transaction] = []
        with pytest.raises(BoomError), transaction() as txn:
            stage_then_fail(
                txn, on_rollback_hooks=[rollbacks.append], on_commit_hooks=[commits.append]
            )
        assert rollbacks == [txn]
        assert commits == []

    def test_async_rollback_hook(self) -> None:
        """Behaviour 44: an async on_rollback hook is called once when the body raises."""
        calls: list[Transaction] = []

        async def hook(txn: Transaction) -> None:
            calls.append(txn)

        with pytest.raises(BoomError), transaction() as txn:
            stage_then_fail(txn, on_rollback_hooks=[hook])
        assert calls == [txn]

    def test_hooks_of_a_serializable_transaction(self, store: ResultStore) -> None:
        """Hooks of a SERIALIZABLE transaction on a store run once; the commit hook runs before
        the record is written (Prefect's order)."""
        seen: list[bool] = []
        with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
            txn.stage("v", on_commit_hooks=[lambda t: seen.append(store.exists("k"))])
        assert seen == [False]
        assert store.read("k").result == "v"

    def test_hook_logging(self, caplog: pytest.LogCaptureFixture) -> None:
        """Hooks are logged by name; a hook with log_on_run=False is not."""

        def loud(txn: Transaction) -> None:
            pass

        def quiet(txn: Transaction) -> None:
            pass

        quiet.log_on_run = False  # type: ignore[attr-defined]
        with caplog.at_level(logging.INFO, logger=TXN_LOGGER), transaction() as txn:
            txn.stage("x", on_commit_hooks=[loud, quiet])
        messages = [r.getMessage() for r in caplog.records]
        assert any("'loud'" in m for m in messages)
        assert not any("'quiet'" in m for m in messages)

    def test_failing_commit_hook_rolls_back(self, store: ResultStore) -> None:
        """A commit hook that raises rolls the transaction back: nothing is written and the
        rollback hooks run once."""
        rollbacks: list[Transaction] = []

        def bad(txn: Transaction) -> None:
            raise RuntimeError("hook failed")

        with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
            txn.stage("v", on_commit_hooks=[bad], on_rollback_hooks=[rollbacks.append])
        assert txn.is_rolled_back()
        assert rollbacks == [txn]
        assert not store.exists("k")
        assert lock_free(store, "k")


class TestHolders:
    def test_two_transactions_in_one_thread_do_not_share_a_lock(self, store: ResultStore) -> None:
        """Fix (a), PrefectHQ/prefect#17785: two unrelated transactions in the same thread on
        one key do not share a holder; the second waits for the first's lock, and with
        lock_timeout it gets LockTimeoutError (not a self-deadlock: they are not nested)."""
        first = Transaction(key="k", store=store, isolation_level=SERIALIZABLE)
        other_context = contextvars.Context()
        other_context.run(first.__enter__)
        try:
            with pytest.raises(LockTimeoutError, match="'k'") as caught:
                Transaction(
                    key="k", store=store, isolation_level=SERIALIZABLE, lock_timeout=0.2
                ).__enter__()
            assert not isinstance(caught.value, SelfDeadlockError)
            assert store.is_lock_holder("k", first.holder)
            first.stage("first")
        finally:
            other_context.run(first.__exit__, None, None, None)
        assert first.is_committed()
        assert store.read("k").result == "first"
        assert lock_free(store, "k")

    def test_asyncio_tasks_do_not_share_a_holder(self, store: ResultStore) -> None:
        """Fix (a), PrefectHQ/prefect#17785: two asyncio tasks in one thread opening sync
        SERIALIZABLE transactions on one key do not both get the lock; the second one, which
        would have to block the loop to wait, raises EventLoopBlockingError at once (its
        bounded wait could never see the first task release), and the first then commits."""
        results: dict[str, Any] = {}

        async def first(opened: asyncio.Event, done: asyncio.Event) -> None:
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                results["first holder"] = txn.holder
                opened.set()
                await done.wait()
                txn.stage("first")

        async def second(opened: asyncio.Event, done: asyncio.Event) -> None:
            await opened.wait()
            try:
                with transaction("k", store, isolation_level=SERIALIZABLE, lock_timeout=0.2):
                    results["second"] = "acquired"
            except EventLoopBlockingError as exc:
                results["second"] = type(exc)
            finally:
                done.set()

        async def scenario() -> None:
            opened, done = asyncio.Event(), asyncio.Event()
            await asyncio.gather(first(opened, done), second(opened, done))

        asyncio.run(scenario())
        assert results["second"] is EventLoopBlockingError
        assert store.read("k").result == "first"
        assert lock_free(store, "k")

    def test_threads_take_turns(self, store: ResultStore) -> None:
        """Transactions in different threads have different holders: while one thread's
        SERIALIZABLE transaction is open, another's waits for it."""
        events: list[str] = []
        opened = threading.Event()

        def worker(name: str, started: threading.Event | None) -> None:
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                events.append(f"{name} in")
                if started is not None:
                    started.set()
                    time.sleep(0.1)  # give the other thread the chance to wait; never measured
                events.append(f"{name} out")
                txn.stage(name)

        a = run_in_thread(worker, "a", opened)
        assert opened.wait(JOIN_TIMEOUT)
        b = run_in_thread(worker, "b", None)
        join(a)
        join(b)
        assert events == ["a in", "a out", "b in", "b out"]
        assert store.read("k").result == "a"


class TestAtomicCommit:
    def test_commit_writes_and_releases(self, store: ResultStore) -> None:
        """Fix (b): after a SERIALIZABLE commit the record exists and the lock is free (one
        database transaction does both)."""
        with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
            assert store.is_lock_holder("k", txn.holder)
            txn.stage("value")
        assert txn.is_committed()
        assert store.read("k").result == "value"
        assert lock_free(store, "k")

    def test_rollback_releases_the_lock(self, store: ResultStore) -> None:
        """A SERIALIZABLE transaction whose body raises releases its lock and writes nothing."""
        with pytest.raises(BoomError), transaction("k", store, isolation_level=SERIALIZABLE):
            raise BoomError
        assert lock_free(store, "k")
        assert not store.exists("k")

    def test_cache_hit_takes_no_lock(self, store: ResultStore) -> None:
        """A SERIALIZABLE transaction that finds the record at begin is committed from the
        start and will write nothing, so it takes no lock (a hit costs no write): the key stays
        free throughout, the record reads back, and the key is free after exit."""
        store.write("cached", key="k")
        with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
            assert txn.is_committed()
            assert lock_free(store, "k")
            assert txn.read().result == "cached"  # type: ignore[union-attr]
        assert lock_free(store, "k")
        assert store.read("k").result == "cached"

    def test_miss_is_checked_again_under_the_lock(self, store: ResultStore) -> None:
        """A SERIALIZABLE transaction that misses at first waits for the lock, then checks
        again: if the holder wrote the key meanwhile, it begins committed and its stage is
        ignored (double-checked locking)."""
        assert store.acquire_lock("k", holder="other", timeout=0)
        writer = threading.Timer(
            0.2,
            lambda: store.persist_result_record(
                store.create_result_record("first", key="k"), holder="other", release_lock=True
            ),
        )
        writer.start()
        try:
            with transaction("k", store, isolation_level=SERIALIZABLE, lock_timeout=30) as txn:
                assert txn.is_committed()
                txn.stage("second")
        finally:
            writer.join()
        assert store.read("k").result == "first"
        assert lock_free(store, "k")

    def test_eager_serializable_child_releases_once(
        self, store: ResultStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Fix (c): an EAGER SERIALIZABLE child commits and releases at its own exit; the
        parent then commits successfully. (Prefect releases the child's lock twice and rolls
        the parent back: reference §4 "Known quirks".)"""
        with (
            caplog.at_level(logging.WARNING, logger=TXN_LOGGER),
            transaction("parent", store, isolation_level=SERIALIZABLE) as parent,
        ):
            with transaction("child", store, commit_mode=CommitMode.EAGER) as child:
                child.stage("child value")
            assert child.is_committed()
            assert lock_free(store, "child")
            assert store.read("child").result == "child value"
            parent.stage("parent value")
        assert parent.is_committed()
        assert store.read("parent").result == "parent value"
        assert lock_free(store, "parent", "child")
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

    def test_commit_without_stage_writes_none(self, store: ResultStore) -> None:
        """Fix (f), as Prefect: committing without staging writes None."""
        with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
            pass
        assert txn.is_committed()
        assert store.exists("k")
        assert store.read("k").result is None
        assert lock_free(store, "k")

    def test_write_on_commit_false_writes_nothing(self, store: ResultStore) -> None:
        """write_on_commit=False commits (hooks run) without writing, and frees the lock."""
        calls: list[Transaction] = []
        with transaction("k", store, isolation_level=SERIALIZABLE, write_on_commit=False) as txn:
            txn.stage("unwritten", on_commit_hooks=[calls.append])
        assert txn.is_committed()
        assert calls == [txn]
        assert not store.exists("k")
        assert lock_free(store, "k")

    def test_serialization_error_at_commit(
        self, store: ResultStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Fix (f): a SerializationError at commit logs Prefect's warning, rolls back, writes
        nothing and releases the lock; the block itself does not raise."""
        with (
            caplog.at_level(logging.WARNING, logger=TXN_LOGGER),
            transaction("k", store, isolation_level=SERIALIZABLE) as txn,
        ):
            txn.stage(threading.Lock())
        assert txn.is_rolled_back()
        assert not store.exists("k")
        assert lock_free(store, "k")
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any(
            "Encountered an error while serializing result for transaction 'k'" in r.getMessage()
            for r in warnings
        )


class TestFencedCommit:
    """A commit whose lease was lost writes nothing, raises LeaseLostError and rolls back
    (issue: "a stale holder overwrites the new holder's committed record"). The transactions
    are entered and exited by hand, so that ``pytest.raises`` wraps the exit alone."""

    def test_stale_holder_never_overwrites_the_new_holders_record(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A's lease runs out; B takes the key, commits "B" and releases; A's commit then
        finds its lock gone: it raises LeaseLostError (a LockNotHeldError naming the key and
        the lease), runs A's rollback hooks, and "B" stays."""
        store = clocked_store
        rollbacks: list[Transaction] = []
        stale = Transaction("k", store, isolation_level=SERIALIZABLE, hold_timeout=2)
        stale.__enter__()
        stale.stage("A", on_rollback_hooks=[rollbacks.append])
        clock.advance(3)  # A stops past its lease

        def other_holder() -> None:
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                assert not txn.is_committed()
                txn.stage("B")

        join(run_in_thread(other_holder))  # a new thread starts in an empty context
        assert store.read("k").result == "B"
        with pytest.raises(LeaseLostError, match=r"'k'.*lease") as caught:
            stale.__exit__(None, None, None)
        assert isinstance(caught.value, LockNotHeldError)
        assert caught.value.key == "k"
        assert stale.is_rolled_back()
        assert rollbacks == [stale]
        assert store.read("k").result == "B"
        assert lock_free(store, "k")
        assert get_transaction() is None

    def test_lock_taken_over_and_still_held(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A's lease runs out and holder2 takes the key and still holds it: A's commit raises
        LeaseLostError, writes nothing, and holder2's lock and lease are untouched."""
        store = clocked_store
        txn = Transaction("k", store, isolation_level=SERIALIZABLE, hold_timeout=60)
        txn.__enter__()
        txn.stage("stale")
        clock.advance(61)
        assert store.acquire_lock("k", holder="holder2", timeout=0, hold_timeout=600)
        with pytest.raises(LeaseLostError):
            txn.__exit__(None, None, None)
        assert txn.is_rolled_back()
        assert not store.exists("k")
        assert store.is_lock_holder("k", "holder2")
        clock.advance(599)
        assert store.is_lock_holder("k", "holder2")  # its lease was not shortened either

    def test_lock_row_swept_away(self, clocked_store: ResultStore, clock: FakeClock) -> None:
        """A's lease runs out and sweep_expired() deletes its dead lock row: nobody holds the
        key, but A no longer does either; its commit raises and writes nothing."""
        store = clocked_store
        txn = Transaction("k", store, isolation_level=SERIALIZABLE, hold_timeout=2)
        txn.__enter__()
        txn.stage("stale")
        clock.advance(3)
        store.sweep_expired()
        with pytest.raises(LeaseLostError):
            txn.__exit__(None, None, None)
        assert txn.is_rolled_back()
        assert not store.exists("k")
        assert lock_free(store, "k")

    def test_expired_lease_nobody_took_still_commits(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A lease that ran out while its row stayed (nobody took the key, nothing swept it)
        still commits: no newer work exists that the write could overwrite."""
        store = clocked_store
        with transaction("k", store, isolation_level=SERIALIZABLE, hold_timeout=2) as txn:
            txn.stage("late but unchallenged")
            clock.advance(3)
        assert txn.is_committed()
        assert store.read("k").result == "late but unchallenged"
        assert lock_free(store, "k")

    def test_lost_lease_in_a_child_rolls_back_the_parent(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A LAZY SERIALIZABLE child whose lease was lost by the time the root commits: the
        root's commit raises LeaseLostError, and root and child roll back; the child's key
        keeps the other holder's record and the parent's key is not written."""
        store = clocked_store
        parent = Transaction("parent", store, isolation_level=SERIALIZABLE)
        parent.__enter__()
        with transaction("child", store, hold_timeout=2) as child:
            child.stage("stale child")
        parent.stage("parent")
        clock.advance(3)
        store.write("newer", key="child", holder="someone")
        assert store.acquire_lock("child", holder="someone", timeout=0)
        with pytest.raises(LeaseLostError, match="'child'"):
            parent.__exit__(None, None, None)
        assert parent.is_rolled_back()
        assert child.is_rolled_back()
        assert store.read("child", holder="someone").result == "newer"
        assert not store.exists("parent")
        assert lock_free(store, "parent")
        assert get_transaction() is None


class TestSelfDeadlock:
    def test_nested_same_key_raises(self, store: ResultStore) -> None:
        """Fix (d), PrefectHQ/prefect#18600: a nested SERIALIZABLE transaction on its
        ancestor's key raises SelfDeadlockError (a LockTimeoutError) naming the key, instead of
        waiting forever; the ancestor still holds its lock and commits."""
        with transaction("shared-key", store, isolation_level=SERIALIZABLE) as outer:
            with (
                pytest.raises(SelfDeadlockError, match="shared-key") as caught,
                transaction("shared-key", store),
            ):
                pass  # pragma: no cover - never entered
            assert isinstance(caught.value, LockTimeoutError)
            assert get_transaction() is outer
            assert store.is_lock_holder("shared-key", outer.holder)
            outer.stage("outer value")
        assert outer.is_committed()
        assert store.read("shared-key").result == "outer value"
        assert lock_free(store, "shared-key")

    def test_deeper_nesting_raises(self, store: ResultStore) -> None:
        """The check walks every ancestor, not only the parent."""
        with transaction("k", store, isolation_level=SERIALIZABLE) as outer:
            with (
                transaction("middle", store),
                pytest.raises(SelfDeadlockError, match="'k'"),
                transaction("k", store),
            ):
                pass  # pragma: no cover - never entered
            outer.stage(1)
        assert store.read("k").result == 1

    def test_same_key_other_store_object_raises(
        self, store: ResultStore, database_url: str
    ) -> None:
        """The ancestor is recognised through another ResultStore object (and Database
        object) on the same database and namespace: still a self-deadlock, not a wait (with
        lock_timeout as a hang guard, a plain LockTimeoutError would mean it waited)."""
        other = ResultStore(result_storage=database_url, namespace=store.namespace)
        with transaction("k", store, isolation_level=SERIALIZABLE) as outer:
            with (
                pytest.raises(SelfDeadlockError, match="'k'"),
                transaction("k", other, lock_timeout=2),
            ):
                pass  # pragma: no cover - never entered
            outer.stage(1)
        assert outer.is_committed()

    def test_lazy_sibling_holding_the_key_raises(self, store: ResultStore) -> None:
        """PrefectHQ/prefect#18600: a LAZY SERIALIZABLE child keeps its lock until the root
        commits, so a later same-key transaction under the same root would wait on its own
        tree forever; it raises SelfDeadlockError instead (lock_timeout is a hang guard)."""
        with transaction() as root:
            with transaction("k", store, isolation_level=SERIALIZABLE) as first:
                first.stage("first")
            with (
                pytest.raises(SelfDeadlockError, match="'k'"),
                transaction("k", store, isolation_level=SERIALIZABLE, lock_timeout=2),
            ):
                pass  # pragma: no cover - never entered
        assert root.is_committed()
        assert first.is_committed()
        assert store.read("k").result == "first"
        assert lock_free(store, "k")

    def test_other_namespace_is_not_a_self_deadlock(
        self, database: Database, namespace: str
    ) -> None:
        """The same key in another namespace is another lock: nesting it is fine."""
        a = ResultStore(result_storage=database, namespace=namespace)
        b = ResultStore(result_storage=database, namespace=namespace + "-b")
        with transaction("k", a, isolation_level=SERIALIZABLE) as outer:
            with transaction("k", b) as inner:
                inner.stage("b")
            outer.stage("a")
        assert a.read("k").result == "a"
        assert b.read("k").result == "b"


class TestLeaseRenewal:
    def test_open_transaction_keeps_its_lock(self, store: ResultStore) -> None:
        """Fix (e): with hold_timeout=0.6, a SERIALIZABLE transaction kept open for ~2 s still
        holds the lock throughout (it renews every third of the lease); after exit the key is
        free."""
        with transaction("k", store, isolation_level=SERIALIZABLE, hold_timeout=0.6) as txn:
            for _ in range(4):
                time.sleep(0.5)
                assert store.acquire_lock("k", holder="other", timeout=0) is False
                assert store.is_lock_holder("k", txn.holder)
            txn.stage("kept")
        assert store.read("k").result == "kept"
        assert store.acquire_lock("k", holder="other", timeout=0) is True

    def test_short_lease_opened_inside_a_long_one_is_renewed(self, store: ResultStore) -> None:
        """The renewal thread sleeps until the soonest renewal it knows of: a short lease
        opened while it sleeps for a long one (300 s, renewed in 100 s) still gets renewed
        every third of its own lease (1.5 s, so a renewal may come a second late on a loaded
        machine), and keeps its lock for ~4 s."""
        with (
            transaction("long", store, isolation_level=SERIALIZABLE, hold_timeout=300),
            transaction("short", store, isolation_level=SERIALIZABLE, hold_timeout=1.5) as txn,
        ):
            for _ in range(4):
                time.sleep(1.0)
                assert store.is_lock_holder("short", txn.holder)
            txn.stage("kept")
        assert store.read("short").result == "kept"


class TestLockTimeout:
    def test_lock_timeout_at_begin(self, store: ResultStore) -> None:
        """Fix (g): a SERIALIZABLE transaction with lock_timeout raises LockTimeoutError (a
        TimeoutError) naming the key when another holder keeps the lock; the other's lock
        stays, nothing is written, and no transaction is left current."""
        store.acquire_lock("k", holder="holder1")
        with (
            pytest.raises(LockTimeoutError, match="'k'") as caught,
            transaction("k", store, isolation_level=SERIALIZABLE, lock_timeout=0.2),
        ):
            pass  # pragma: no cover - never entered
        assert isinstance(caught.value, TimeoutError)
        assert get_transaction() is None
        assert store.is_lock_holder("k", "holder1")
        assert not store.exists("k")

    def test_lock_timeout_zero_tries_once(self, store: ResultStore) -> None:
        """lock_timeout=0 makes one attempt: a free key is taken, a held key fails at once."""
        with transaction("free", store, isolation_level=SERIALIZABLE, lock_timeout=0) as txn:
            txn.stage(1)
        assert store.read("free").result == 1
        store.acquire_lock("held", holder="holder1")
        with (
            pytest.raises(LockTimeoutError),
            transaction("held", store, isolation_level=SERIALIZABLE, lock_timeout=0),
        ):
            pass  # pragma: no cover - never entered

    def test_a_transaction_on_a_missing_key_reads_nothing(self, store: ResultStore) -> None:
        """A fresh key is not committed at begin, and reading it before commit finds nothing."""
        with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
            assert not txn.is_committed()
            with pytest.raises(RecordNotFoundError):
                txn.read()
            txn.stage(0)


class TestLockManagerType:
    def test_store_lock_manager_is_sql(self, store: ResultStore) -> None:
        """A store's default lock manager keeps its locks in the same database and namespace,
        which is what makes commit's write-and-release atomic."""
        manager = store.lock_manager
        assert isinstance(manager, SQLLockManager)
        assert manager.database is store.result_storage
        assert manager.namespace == store.namespace


# -- async transactions ----------------------------------------------------------------------
#
# Prefect's behaviours 23-44 in async form (AsyncTransaction / atransaction), and the fix for
# sync transactions that hung the event loop. Every scenario runs under asyncio.run inside a
# hang guard (``run_async``, from conftest.py), so a regression that blocks the loop fails
# instead of hanging.


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    """Tick every 10 ms until ``stop``: a loop that is blocked stops ticking."""
    while not stop.is_set():
        beats.append(time.monotonic())
        await asyncio.sleep(0.01)


class TestAsyncBasics:
    def test_atransaction_writes_at_commit(self, store: ResultStore) -> None:
        """Behaviour 35 in async form: a staged value is written when the block exits and
        read back through the transaction and the store."""

        async def scenario() -> Any:
            async with atransaction("k", store) as txn:
                assert isinstance(txn, AsyncTransaction)
                assert get_transaction() is txn
                txn.stage({"foo": "bar"})
            assert txn.is_committed()
            record = await txn.read()
            assert record is not None
            return record.result

        assert run_async(scenario) == {"foo": "bar"}
        assert store.read("k").result == {"foo": "bar"}

    def test_with_statement_is_refused(self) -> None:
        """Prefect: an AsyncTransaction does not support the plain `with` statement."""
        with pytest.raises(NotImplementedError, match="async with"), AsyncTransaction():
            pass  # pragma: no cover - never entered

    def test_nesting_and_restore(self) -> None:
        """Behaviour 24: get_transaction() is the innermost async transaction, restored on
        exit, also after an exception."""

        async def scenario() -> None:
            async with atransaction() as outer:
                async with atransaction() as inner:
                    assert get_transaction() is inner
                    assert inner.get_parent() is outer
                assert get_transaction() is outer
                with pytest.raises(BoomError):
                    async with atransaction():
                        raise BoomError
                assert get_transaction() is outer
            assert get_transaction() is None

        run_async(scenario)

    def test_lazy_children_commit_with_the_outermost(self, store: ResultStore) -> None:
        """Behaviour 26: a LAZY child is not committed at its own exit; both commit when the
        outermost exits."""

        async def scenario() -> None:
            async with atransaction("outer", store) as outer:
                async with atransaction("inner", store) as inner:
                    inner.stage(1)
                assert not inner.is_committed()
                assert not store.exists("inner")
                outer.stage(2)
            assert outer.is_committed()
            assert inner.is_committed()

        run_async(scenario)
        assert store.read("inner").result == 1

    def test_eager_commits_at_exit(self, store: ResultStore) -> None:
        """Behaviour 27: EAGER commits at the transaction's own exit."""

        async def scenario() -> None:
            async with atransaction("outer", store, commit_mode=CommitMode.EAGER):
                async with atransaction("inner", store) as inner:
                    inner.stage("eager")
                assert inner.is_committed()
                assert store.exists("inner")

        run_async(scenario)

    def test_exception_rolls_back_and_reraises(self, store: ResultStore) -> None:
        """Behaviour 28: an exception in the block rolls back, writes nothing, re-raises."""
        holder: list[AsyncTransaction] = []

        async def scenario() -> None:
            async with atransaction("k", store) as txn:
                holder.append(txn)
                txn.stage("never")
                raise BoomError

        with pytest.raises(BoomError):
            run_async(scenario)
        assert holder[0].is_rolled_back()
        assert not store.exists("k")

    def test_explicit_rollback_and_off_mode(self, store: ResultStore) -> None:
        """Behaviours 29-30: an awaited rollback() stays rolled back; OFF rolls back at exit
        unless commit() was awaited inside."""

        async def scenario() -> tuple[AsyncTransaction, ...]:
            async with atransaction("a", store) as rolled:
                rolled.stage(1)
                assert await rolled.rollback() is True
            async with atransaction("b", store, commit_mode=CommitMode.OFF) as off:
                off.stage(2)
            async with atransaction("c", store, commit_mode=CommitMode.OFF) as kept:
                kept.stage(3)
                assert await kept.commit() is True
            return rolled, off, kept

        rolled, off, kept = run_async(scenario)
        assert rolled.is_rolled_back()
        assert off.is_rolled_back()
        assert kept.is_committed()
        assert (store.exists("a"), store.exists("b"), store.read("c").result) == (False, False, 3)

    def test_rollback_propagates_up(self, store: ResultStore) -> None:
        """Behaviour 32: an innermost rollback rolls back every ancestor at its exit."""

        async def scenario() -> list[AsyncTransaction]:
            async with (
                atransaction("a", store) as a,
                atransaction("b", store) as b,
                atransaction("c", store) as c,
            ):
                await c.rollback()
            return [a, b, c]

        assert all(txn.is_rolled_back() for txn in run_async(scenario))

    def test_error_in_child_commit_rolls_back_the_parent(self, store: ResultStore) -> None:
        """Behaviour 31: a child whose commit raises leaves the parent rolled back and
        unwritten."""

        class BadTransaction(AsyncTransaction):
            async def commit(self) -> bool:
                raise ValueError("fail!")

        async def scenario() -> AsyncTransaction:
            async with atransaction("parent", store) as parent, BadTransaction():
                parent.stage(2)
            return parent

        assert run_async(scenario).is_rolled_back()
        assert not store.exists("parent")

    def test_overwrite(self, store: ResultStore) -> None:
        """Behaviour 33: an existing record begins committed (its stage is ignored);
        overwrite=True recomputes."""
        store.write("old", key="k")

        async def scenario() -> tuple[bool, bool]:
            async with atransaction("k", store) as hit:
                hit.stage("ignored")
            async with atransaction("k", store, overwrite=True) as fresh:
                committed_at_begin = fresh.is_committed()
                fresh.stage("new")
            return hit.is_committed(), committed_at_begin

        assert run_async(scenario) == (True, False)
        assert store.read("k").result == "new"

    def test_values_and_isolation_inheritance(self, store: ResultStore) -> None:
        """Behaviours 39-41: children see their parent's values (copies); the level defaults
        to READ_COMMITTED and is inherited from the parent."""

        async def scenario() -> None:
            async with atransaction("outer", store, isolation_level=SERIALIZABLE) as outer:
                outer.set("x", [1])
                async with atransaction("inner", store) as inner:
                    assert inner.get("x") == [1]
                    assert inner.get("x") is not inner.get("x")
                    assert inner.isolation_level is SERIALIZABLE
                    inner.stage(0)
                outer.stage(1)
            async with atransaction("plain", store) as plain:
                assert plain.isolation_level is READ_COMMITTED
                plain.stage(2)

        run_async(scenario)

    def test_transaction_outside_of_a_run(self, default_store_settings: None) -> None:
        """Behaviour 34: atransaction(key) without a store uses the default store."""

        async def scenario() -> Any:
            async with atransaction(key="default-key") as txn:
                txn.stage({"foo": "bar"})
            record = await txn.read()
            assert record is not None
            return record.result

        assert run_async(scenario) == {"foo": "bar"}


class TestAsyncHooks:
    def test_sync_and_async_hooks_run_once(self, store: ResultStore) -> None:
        """Behaviour 44: async hooks are awaited on the loop's thread, sync hooks run once in
        a worker thread (user code may block); both get the transaction."""
        calls: list[tuple[str, Any, bool]] = []
        loop_threads: list[int] = []

        async def async_hook(txn: Any) -> None:
            calls.append(("async", txn, threading.get_ident() == loop_threads[0]))

        def sync_hook(txn: Any) -> None:
            calls.append(("sync", txn, threading.get_ident() == loop_threads[0]))

        async def scenario() -> AsyncTransaction:
            loop_threads.append(threading.get_ident())
            async with atransaction("k", store) as txn:
                txn.stage(1, on_commit_hooks=[async_hook, sync_hook])
            return txn

        txn = run_async(scenario)
        assert calls == [("async", txn, True), ("sync", txn, False)]

    def test_rollback_hooks_on_failure(self, store: ResultStore) -> None:
        """Behaviour 44: rollback hooks of either kind run once, newest first, when the block
        raises; get_parent() inside one is the enclosing transaction (behaviour 25)."""
        calls: list[Any] = []

        async def async_hook(txn: Any) -> None:
            calls.append(("async", txn.get_parent()))

        def sync_hook(txn: Any) -> None:
            calls.append(("sync", txn.get_parent()))

        async def failing_child() -> None:
            async with atransaction("k", store) as inner:
                stage_then_fail(inner, 1, on_rollback_hooks=[sync_hook, async_hook])

        async def scenario() -> AsyncTransaction:
            async with atransaction() as outer:
                with pytest.raises(BoomError):
                    await failing_child()
            return outer

        outer = run_async(scenario)
        assert calls == [("async", outer), ("sync", outer)]


class TestAsyncLocks:
    def test_coroutines_on_one_key_take_turns_without_blocking_the_loop(
        self, store: ResultStore
    ) -> None:
        """Behaviour 38 in async form, and the hang the issue describes: two coroutines of one
        loop open SERIALIZABLE atransactions on one key. The second waits for the lock without
        blocking the loop (a heartbeat keeps ticking while it waits), then finds the first's
        record: its stage is ignored and the value is the first one."""
        beats: list[float] = []
        events: list[str] = []

        async def first(opened: asyncio.Event) -> None:
            async with atransaction("k", store, isolation_level=SERIALIZABLE) as txn:
                opened.set()
                ticks = len(beats)
                while len(beats) < ticks + 10:  # the loop keeps running while 2nd waits
                    await asyncio.sleep(0.01)
                txn.stage("first")
                events.append("first commits")

        async def second(opened: asyncio.Event) -> bool:
            await opened.wait()
            async with atransaction("k", store, isolation_level=SERIALIZABLE) as txn:
                events.append("second begins")
                txn.stage("second")
                return txn.is_committed()

        async def scenario() -> bool:
            opened, stop = asyncio.Event(), asyncio.Event()
            pulse = asyncio.create_task(heartbeat(beats, stop))
            try:
                _, committed = await asyncio.gather(first(opened), second(opened))
            finally:
                stop.set()
                await pulse
            return bool(committed)

        assert run_async(scenario) is True
        assert events == ["first commits", "second begins"]
        assert store.read("k").result == "first"
        assert lock_free(store, "k")

    def test_competing_read_waits_without_blocking_the_loop(self, store: ResultStore) -> None:
        """Behaviour 37 in async form: a READ_COMMITTED reader's awaited read() waits for a
        SERIALIZABLE writer of the same loop and returns its value."""
        events: list[str] = []

        async def writer(opened: asyncio.Event, reading: asyncio.Event) -> None:
            async with atransaction("k", store, isolation_level=SERIALIZABLE) as txn:
                opened.set()
                await reading.wait()
                await asyncio.sleep(0.05)  # let the reader block; never measured
                txn.stage("A's value")
                events.append("A committing")

        async def reader(opened: asyncio.Event, reading: asyncio.Event) -> Any:
            await opened.wait()
            async with atransaction("k", store) as txn:
                reading.set()
                record = await txn.read()
                events.append("B read")
                assert record is not None
                return record.result

        async def scenario() -> Any:
            opened, reading = asyncio.Event(), asyncio.Event()
            _, value = await asyncio.gather(writer(opened, reading), reader(opened, reading))
            return value

        assert run_async(scenario) == "A's value"
        assert events == ["A committing", "B read"]

    def test_lock_timeout(self, store: ResultStore) -> None:
        """An atransaction with lock_timeout raises LockTimeoutError naming the key when
        another holder keeps the lock; nothing is written."""
        store.acquire_lock("k", holder="holder1")

        async def scenario() -> None:
            async with atransaction("k", store, isolation_level=SERIALIZABLE, lock_timeout=0.2):
                pass  # pragma: no cover - never entered

        with pytest.raises(LockTimeoutError, match="'k'"):
            run_async(scenario)
        assert store.is_lock_holder("k", "holder1")
        assert not store.exists("k")

    def test_self_deadlock(self, store: ResultStore) -> None:
        """A nested atransaction on its ancestor's key raises SelfDeadlockError."""

        async def scenario() -> None:
            async with atransaction("k", store, isolation_level=SERIALIZABLE) as outer:
                with pytest.raises(SelfDeadlockError, match="'k'"):
                    async with atransaction("k", store):
                        pass  # pragma: no cover - never entered
                outer.stage(1)

        run_async(scenario)
        assert store.read("k").result == 1

    def test_parent_and_child_in_different_tasks(self, store: ResultStore) -> None:
        """Behaviour 43: a SERIALIZABLE parent and a child opened in another asyncio task are
        no error, and the child's value is readable afterwards."""

        async def child() -> None:
            async with atransaction("child", store, isolation_level=SERIALIZABLE) as txn:
                txn.stage("child value")

        async def scenario() -> None:
            async with atransaction("parent", store, isolation_level=SERIALIZABLE) as parent:
                await asyncio.create_task(child())
                parent.stage("parent value")

        run_async(scenario)
        assert store.read("child").result == "child value"
        assert store.read("parent").result == "parent value"

    def test_lost_lease_raises_from_the_block(
        self, clocked_store: ResultStore, clock: FakeClock
    ) -> None:
        """A lease lost before the async commit: LeaseLostError out of `async with`, rollback
        hooks awaited, nothing written over the other holder's record."""
        store = clocked_store
        rolled_back: list[Any] = []

        async def on_rollback(txn: Any) -> None:
            rolled_back.append(txn)

        async def scenario() -> None:
            async with atransaction(
                "k", store, isolation_level=SERIALIZABLE, hold_timeout=2
            ) as txn:
                txn.stage("stale", on_rollback_hooks=[on_rollback])
                clock.advance(3)
                await asyncio.to_thread(store.write, "newer", "k", None, "someone")
                assert await asyncio.to_thread(store.acquire_lock, "k", "someone", 0)

        with pytest.raises(LeaseLostError):
            run_async(scenario)
        assert len(rolled_back) == 1
        assert rolled_back[0].is_rolled_back()
        assert store.read("k", holder="someone").result == "newer"

    def test_sync_child_in_an_async_parent(self, store: ResultStore) -> None:
        """Sync and async transactions nest: a sync child (no lock wait) under an async parent
        commits with it."""

        async def scenario() -> None:
            async with atransaction("parent", store) as parent:
                with transaction("child", store) as child:
                    child.stage("sync child")
                parent.stage("async parent")

        run_async(scenario)
        assert store.read("child").result == "sync child"
        assert store.read("parent").result == "async parent"


class TestSyncTransactionInAnEventLoop:
    """A sync transaction whose lock wait would block a running event loop raises
    EventLoopBlockingError instead of hanging (issue: "two coroutines using the sync
    transaction() on one key under SERIALIZABLE hang the event loop forever")."""

    def test_two_coroutines_with_sync_transactions_do_not_hang(self, store: ResultStore) -> None:
        """The first coroutine holds the lock across an await; the second's sync begin would
        block the loop forever (before the fix the hang guard fired): it raises
        EventLoopBlockingError naming the key and pointing at atransaction, and the first
        commits."""
        errors: list[BaseException] = []

        async def first(opened: asyncio.Event, done: asyncio.Event) -> None:
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                opened.set()
                await done.wait()
                txn.stage("first")

        async def second(opened: asyncio.Event, done: asyncio.Event) -> None:
            await opened.wait()
            try:
                with transaction("k", store, isolation_level=SERIALIZABLE):
                    pass  # pragma: no cover - never entered
            except EventLoopBlockingError as exc:
                errors.append(exc)
            finally:
                done.set()

        async def scenario() -> None:
            opened, done = asyncio.Event(), asyncio.Event()
            await asyncio.gather(first(opened, done), second(opened, done))

        run_async(scenario)
        assert len(errors) == 1
        assert isinstance(errors[0], RuntimeError)
        assert "'k'" in str(errors[0])
        assert "atransaction" in str(errors[0])
        assert store.read("k").result == "first"
        assert lock_free(store, "k")

    def test_sync_read_of_a_locked_key_in_a_loop(self, store: ResultStore) -> None:
        """A sync transaction's read() in a running loop, while another holder has the key
        locked, raises EventLoopBlockingError instead of waiting; the lock is untouched."""
        store.acquire_lock("k", holder="computing")

        async def scenario() -> None:
            with transaction("k", store) as txn, pytest.raises(EventLoopBlockingError):
                txn.read()

        run_async(scenario)
        assert store.is_lock_holder("k", "computing")

    def test_free_keys_need_no_wait(self, store: ResultStore) -> None:
        """Sync transactions stay usable in async code when nothing has to wait: a free key is
        locked, computed and committed."""

        async def scenario() -> None:
            with transaction("k", store, isolation_level=SERIALIZABLE) as txn:
                txn.stage("fine")

        run_async(scenario)
        assert store.read("k").result == "fine"
        assert lock_free(store, "k")
