"""Prefect's own transaction tests, ported: ``tests/test_transactions.py`` of Prefect
(PrefectHQ/prefect@ce79dd3), both halves, ``Transaction`` / ``transaction()`` and
``AsyncTransaction`` / ``atransaction()``, against sqlresults' API.

Each test names the Prefect test it mirrors. Where sqlresults differs from Prefect on purpose,
the test asserts our behaviour and its docstring names the difference, which the README's
"Differences from Prefect" table lists. Tests that touch a store run on SQLite and PostgreSQL:
``store`` directly, or ``default_store``, which points the default store (``transaction(key=...)``
without a store, ``ResultStore()``) at the backend under test.

Prefect's ``TestX::TestAsyncTransaction`` classes are ported as ``TestAsyncX``. The suite has no
async test plugin, so each async test body is a coroutine run by ``run_async`` (conftest.py): on
a fresh event loop in a helper thread, under a hang guard, so a lock wait that blocked the loop
would fail the test instead of hanging it.

Not ported, and why:

- ``TestDefaultTransactionStorage::test_transaction_inside_flow_default_storage`` and
  ``::test_transaction_inside_task_default_storage``, sync and async: they need ``@flow`` and
  ``@task``, which sqlresults does not have yet; both also compare Prefect storage block ids,
  which a database does not have.
- ``TestWithResultStore::test_transaction_with_nullfilesystem_metadata``, sync and async: about
  Prefect's ``metadata_storage`` and files on disk; a sqlresults record and its metadata are one
  row. (Its last step, that the next transaction on the key begins committed, is
  ``tests/test_transactions.py::TestWithResultStore::test_next_transaction_is_a_cache_hit``.)
- ``isolate_default_result_storage``, ``default_storage_setting`` and Prefect's
  ``MemoryLockManager``: replaced by the ``default_store`` and ``store`` fixtures (locks live in
  the result database, so no lock manager is configured).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest
from conftest import run_async
from threads import join, run_in_thread

from sqlresults.records import ResultRecord
from sqlresults.results import ResultStore
from sqlresults.transactions import (
    AsyncTransaction,
    BaseTransaction,
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
    atransaction,
    get_transaction,
    transaction,
)


@pytest.fixture
def default_store(database_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default store at the backend under test, in this test's own namespace, so that
    ``transaction(key=...)`` without a store and ``ResultStore()`` use it (as Prefect's tests
    point the default storage at a temporary directory)."""
    monkeypatch.setenv("SQLRESULTS_DATABASE_URL", database_url)
    monkeypatch.setenv("SQLRESULTS_NAMESPACE", namespace)


class TestInit:
    def test_basic_init(self) -> None:
        """A new Transaction has no store, is PENDING and has no commit mode yet.

        Prefect: tests/test_transactions.py::test_basic_init
        """
        txn = Transaction()
        assert txn.store is None
        assert txn.state == TransactionState.PENDING
        assert txn.is_pending()
        assert txn.commit_mode is None

    def test_equality(self) -> None:
        """Transactions compare by identity. Difference from Prefect (README "transactions"):
        Prefect compares their fields, so two fresh transactions are equal there.

        Prefect: tests/test_transactions.py::test_equality
        """
        txn1 = Transaction()
        txn2 = Transaction()
        txn3 = Transaction(key="test")
        assert txn1 == txn1
        assert txn1 != txn2
        assert txn1 != txn3

    def test_async_basic_init(self) -> None:
        """A new AsyncTransaction has no store, is PENDING and has no commit mode yet.

        Prefect: tests/test_transactions.py::test_async_basic_init
        """
        txn = AsyncTransaction()
        assert txn.store is None
        assert txn.state == TransactionState.PENDING
        assert txn.is_pending()
        assert txn.commit_mode is None

    def test_async_equality(self) -> None:
        """AsyncTransactions compare by identity. Difference from Prefect (README
        "transactions"): Prefect compares their fields, so two fresh ones are equal there.

        Prefect: tests/test_transactions.py::test_async_equality
        """
        txn1 = AsyncTransaction()
        txn2 = AsyncTransaction()
        txn3 = AsyncTransaction(key="test")
        assert txn1 == txn1
        assert txn1 != txn2
        assert txn1 != txn3


class TestGetTxn:
    def test_get_transaction(self) -> None:
        """get_transaction() is the open transaction, and None outside.

        Prefect: tests/test_transactions.py::TestGetTxn::TestTransaction::test_get_transaction
        """
        assert get_transaction() is None
        with Transaction() as txn:
            assert get_transaction() == txn
        assert get_transaction() is None

    def test_nested_get_transaction(self) -> None:
        """get_transaction() is the innermost transaction; the outer one again after the inner
        exits.

        Prefect: tests/test_transactions.py::TestGetTxn::TestTransaction::
        test_nested_get_transaction
        """
        assert get_transaction() is None
        with Transaction(key="outer") as outer:
            assert get_transaction() == outer
            with Transaction(key="inner") as inner:
                assert get_transaction() == inner
            assert get_transaction() == outer
        assert get_transaction() is None

    def test_txn_resets_even_with_error(self) -> None:
        """The current transaction is reset when the body raises.

        Prefect: tests/test_transactions.py::TestGetTxn::TestTransaction::
        test_txn_resets_even_with_error
        """
        assert get_transaction() is None

        def body() -> None:
            with Transaction() as txn:
                assert get_transaction() == txn
                raise ValueError("foo")

        with pytest.raises(ValueError, match="foo"):
            body()

        assert get_transaction() is None

    def test_get_active(self) -> None:
        """get_active(), on any transaction class, is get_transaction(): the innermost open
        transaction of either kind, and None outside (one context variable serves both).

        Prefect: src/prefect/transactions.py BaseTransaction.get_active (in Prefect's API
        reference; no test of its own)
        """
        assert Transaction.get_active() is None
        with Transaction() as txn:
            assert Transaction.get_active() is txn
            assert AsyncTransaction.get_active() is txn
            assert BaseTransaction.get_active() is txn

        async def scenario() -> None:
            async with AsyncTransaction() as atxn:
                assert AsyncTransaction.get_active() is atxn
                assert Transaction.get_active() is atxn

        run_async(scenario)
        assert BaseTransaction.get_active() is None


class TestGetParent:
    def test_get_parent(self) -> None:
        """A root transaction has no parent.

        Prefect: tests/test_transactions.py::TestGetParent::TestTransaction::test_get_parent
        """
        with Transaction() as txn:
            assert txn.get_parent() is None

    def test_get_parent_with_parent(self) -> None:
        """A nested transaction's parent is the enclosing one.

        Prefect: tests/test_transactions.py::TestGetParent::TestTransaction::
        test_get_parent_with_parent
        """
        with Transaction(key="outer") as outer:
            assert outer.get_parent() is None
            with Transaction(key="inner") as inner:
                assert inner.get_parent() == outer
            assert outer.get_parent() is None

    def test_get_parent_works_in_rollback_hook_after_success(self) -> None:
        """A rollback hook of an inner transaction that had exited fine sees the outer one as
        its parent when a sibling's failure rolls everything back (PrefectHQ/prefect#15593).

        Prefect: tests/test_transactions.py::TestGetParent::TestTransaction::
        test_get_parent_works_in_rollback_hook_after_success
        """
        spy = MagicMock()

        def hook(txn: Transaction) -> None:
            spy(txn.get_parent())

        outer = None
        try:
            with Transaction() as outer:
                with Transaction(key="inner_with_rollback") as inner_with_rollback:
                    inner_with_rollback.stage("foo", on_rollback_hooks=[hook])
                with Transaction(key="inner_trouble_maker"):
                    raise ValueError("I'm acting out because I'm misunderstood.")
        except ValueError:
            pass

        assert outer is not None
        spy.assert_called_once_with(outer)


class TestCommitMode:
    def test_txns_dont_auto_commit(self) -> None:
        """A LAZY inner transaction is not committed at its own exit; both are when the outer
        one exits.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_dont_auto_commit
        """
        with Transaction(key="outer") as outer:
            assert not outer.is_committed()

            with Transaction(key="inner") as inner:
                pass

            assert not inner.is_committed()

        assert outer.is_committed()
        assert inner.is_committed()

    def test_txns_auto_commit_in_eager(self) -> None:
        """EAGER commits at exit; an inner transaction of an EAGER outer one inherits EAGER and
        commits at its own exit.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_auto_commit_in_eager
        """
        with Transaction(commit_mode=CommitMode.EAGER) as txn:
            assert txn.is_active()
            assert not txn.is_committed()
        assert txn.is_committed()

        with Transaction(key="outer", commit_mode=CommitMode.EAGER) as outer:
            assert not outer.is_committed()
            with Transaction(key="inner") as inner:
                pass
            assert inner.is_committed()
        assert outer.is_committed()

    def test_txns_dont_commit_on_exception(self) -> None:
        """A body that raises leaves the transaction rolled back, not committed.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_dont_commit_on_exception
        """
        txn = Transaction()
        with pytest.raises(ValueError, match="foo"), txn:
            raise ValueError("foo")

        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_dont_commit_on_rollback(self) -> None:
        """An explicit rollback() inside stays rolled back after exit.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_dont_commit_on_rollback
        """
        with Transaction() as txn:
            txn.rollback()

        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_commit_with_lazy_parent_if_eager(self) -> None:
        """An EAGER inner transaction commits at its exit even under a LAZY outer one.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_commit_with_lazy_parent_if_eager
        """
        with Transaction(key="outer", commit_mode=CommitMode.LAZY) as outer:
            assert not outer.is_committed()

            with Transaction(key="inner", commit_mode=CommitMode.EAGER) as inner:
                pass

            assert inner.is_committed()

        assert outer.is_committed()

    def test_txns_commit_off_rolls_back_on_exit(self) -> None:
        """commit_mode=OFF rolls back at exit.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_commit_off_rolls_back_on_exit
        """
        with Transaction(commit_mode=CommitMode.OFF) as txn:
            assert not txn.is_committed()
        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_commit_off_doesnt_roll_back_if_committed(self) -> None:
        """commit_mode=OFF keeps an explicit commit() made inside.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_commit_off_doesnt_roll_back_if_committed
        """
        with Transaction(commit_mode=CommitMode.OFF) as txn:
            txn.commit()
        assert txn.is_committed()
        assert not txn.is_rolled_back()

    def test_error_in_commit_triggers_rollback(self) -> None:
        """A child whose commit raises makes its parent roll back instead of committing.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_error_in_commit_triggers_rollback
        """

        class BadTxn(Transaction):
            def commit(self, **kwargs: Any) -> bool:
                raise ValueError("foo")

        with Transaction() as txn:
            txn.add_child(BadTxn())

        assert not txn.is_committed()
        assert txn.is_rolled_back()


class TestRollBacks:
    def test_rollback_flag_is_set(self) -> None:
        """rollback() inside the body marks the transaction rolled back at once.

        Prefect: tests/test_transactions.py::TestRollBacks::TestTransaction::
        test_rollback_flag_is_set
        """
        with Transaction() as txn:
            assert not txn.is_rolled_back()
            txn.rollback()
            assert txn.is_rolled_back()

    def test_txns_rollback_on_exception(self) -> None:
        """A body that raises rolls the transaction back.

        Prefect: tests/test_transactions.py::TestRollBacks::TestTransaction::
        test_txns_rollback_on_exception
        """
        txn = Transaction()
        with pytest.raises(ValueError, match="foo"), txn:
            raise ValueError("foo")

        assert txn.is_rolled_back()

    def test_rollback_flag_propagates_up(self) -> None:
        """Rolling back the innermost transaction rolls back each ancestor as it exits.

        Prefect: tests/test_transactions.py::TestRollBacks::TestTransaction::
        test_rollback_flag_propagates_up
        """
        with Transaction(key="outer") as outer:
            assert not outer.is_rolled_back()
            with Transaction(key="inner") as inner:
                assert not inner.is_rolled_back()
                with Transaction(key="nested") as nested:
                    assert not nested.is_rolled_back()
                    nested.rollback()
                    assert nested.is_rolled_back()
                assert inner.is_rolled_back()
        assert outer.is_rolled_back()


class TestTransactionState:
    @pytest.mark.parametrize("txn_class", [Transaction, AsyncTransaction])
    @pytest.mark.parametrize("state", list(TransactionState))
    def test_state_and_methods_are_consistent(
        self, txn_class: type[BaseTransaction], state: TransactionState
    ) -> None:
        """A transaction (sync or async) built with a state reports it through exactly one
        predicate.

        Prefect: tests/test_transactions.py::TestTransactionState::
        test_state_and_methods_are_consistent
        """
        txn = txn_class(state=state)
        assert txn.state is state
        assert txn.is_active() == (txn.state.name == "ACTIVE")
        assert txn.is_pending() == (txn.state.name == "PENDING")
        assert txn.is_committed() == (txn.state.name == "COMMITTED")
        assert txn.is_staged() == (txn.state.name == "STAGED")
        assert txn.is_rolled_back() == (txn.state.name == "ROLLED_BACK")

    @pytest.mark.parametrize("state", list(TransactionState))
    def test_entering_makes_any_given_state_active(self, state: TransactionState) -> None:
        """Whatever state a transaction was built with, entering it makes it ACTIVE, and a
        root transaction without a store then commits at exit, as Prefect's
        ``prepare_transaction`` does.

        Prefect: src/prefect/transactions.py BaseTransaction.prepare_transaction (no test of
        its own; the construction above is tested).
        """
        with Transaction(state=state) as txn:
            assert txn.is_active()
        assert txn.is_committed()

    def test_state_may_be_given_by_name(self) -> None:
        """The state is validated like Prefect's pydantic field: its name is accepted and
        anything else is refused.

        Prefect: the ``state: TransactionState`` field of BaseTransaction.
        """
        assert Transaction(state="COMMITTED").state is TransactionState.COMMITTED  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="DONE"):
            Transaction(state="DONE")  # type: ignore[arg-type]

    def test_happy_state_lifecycle(self) -> None:
        """PENDING before, ACTIVE inside, COMMITTED after a body that succeeds.

        Prefect: tests/test_transactions.py::TestTransactionState::TestTransaction::
        test_happy_state_lifecycle
        """
        txn = Transaction()
        assert txn.is_pending()

        with txn:
            assert txn.is_active()

        assert txn.is_committed()

    def test_unhappy_state_lifecycle(self) -> None:
        """PENDING before, ACTIVE inside, ROLLED_BACK after a body that raises.

        Prefect: tests/test_transactions.py::TestTransactionState::TestTransaction::
        test_unhappy_state_lifecycle
        """
        txn = Transaction()
        assert txn.is_pending()

        def body() -> None:
            with txn:
                assert txn.is_active()
                raise ValueError("foo")

        with pytest.raises(ValueError, match="foo"):
            body()

        assert txn.is_rolled_back()


class TestOverwrite:
    def test_overwrite_ignores_existing_record(self, store: ResultStore) -> None:
        """A store that says the key exists makes the transaction begin committed, unless
        overwrite=True.

        Prefect: tests/test_transactions.py::test_overwrite_ignores_existing_record
        """

        class Store(ResultStore):
            def exists(self, key: str) -> bool:
                return True

        always_there = Store(result_storage=store.result_storage, namespace=store.namespace)

        with Transaction(key="test_overwrite_ignores_existing_record", store=always_there) as txn:
            assert txn.is_committed()

        with Transaction(
            key="test_overwrite_ignores_existing_record", store=always_there, overwrite=True
        ) as txn:
            assert not txn.is_committed()


@pytest.mark.usefixtures("default_store")
class TestDefaultTransactionStorage:
    def test_transaction_outside_of_run(self) -> None:
        """With a key and no store, outside any run, the default store is used: the staged
        value is written at commit and read back.

        Prefect: tests/test_transactions.py::TestDefaultTransactionStorage::TestTransaction::
        test_transaction_outside_of_run
        """
        with transaction(key="test_transaction_outside_of_run", write_on_commit=True) as txn:
            assert isinstance(txn.store, ResultStore)
            txn.stage({"foo": "bar"})

        record = txn.read()
        assert isinstance(record, ResultRecord)
        assert record.result == {"foo": "bar"}


class TestWithResultStore:
    def test_basic_transaction(self, store: ResultStore) -> None:
        """A committed transaction's record is what the store reads, under the key itself.

        Prefect: tests/test_transactions.py::TestWithResultStore::TestTransaction::
        test_basic_transaction
        """
        with transaction(key="test_basic_transaction", store=store, write_on_commit=True) as txn:
            assert isinstance(txn.store, ResultStore)
            txn.stage({"foo": "bar"})

        record_1 = txn.read()
        assert record_1
        assert record_1.result == {"foo": "bar"}

        record_2 = store.read("test_basic_transaction")
        assert record_2
        assert record_2 == record_1
        assert record_2.metadata.storage_key == "test_basic_transaction"

    def test_competing_read_transaction(self, store: ResultStore) -> None:
        """A READ_COMMITTED reader of a key a SERIALIZABLE writer holds waits for the writer's
        commit and reads its value. (Every store can be SERIALIZABLE: a difference from Prefect,
        README "SERIALIZABLE"; Prefect's test configures a lock manager.)

        Prefect: tests/test_transactions.py::TestWithResultStore::TestTransaction::
        test_competing_read_transaction
        """
        write_transaction_open = threading.Event()

        def writing_transaction() -> None:
            # isolation level is SERIALIZABLE, so a lock will be taken
            with transaction(
                key="test_competing_read_transaction",
                store=store,
                isolation_level=IsolationLevel.SERIALIZABLE,
                write_on_commit=True,
            ) as txn:
                write_transaction_open.set()
                txn.stage({"foo": "bar"})

        thread = run_in_thread(writing_transaction)
        assert write_transaction_open.wait(timeout=60)
        with transaction(key="test_competing_read_transaction", store=store) as txn:
            read_result = txn.read()

        assert read_result is not None
        assert read_result.result == {"foo": "bar"}
        join(thread)

    def test_competing_write_transaction(self, store: ResultStore) -> None:
        """Of two SERIALIZABLE writers of one key, the second waits at begin, then finds the
        first's record: its own staged value is ignored.

        Prefect: tests/test_transactions.py::TestWithResultStore::TestTransaction::
        test_competing_write_transaction
        """
        transaction_1_open = threading.Event()

        def winning_transaction() -> None:
            with transaction(
                key="test_competing_write_transaction",
                store=store,
                isolation_level=IsolationLevel.SERIALIZABLE,
                write_on_commit=True,
            ) as txn:
                transaction_1_open.set()
                txn.stage({"foo": "bar"})

        thread = run_in_thread(winning_transaction)
        assert transaction_1_open.wait(timeout=60)
        with transaction(
            key="test_competing_write_transaction",
            store=store,
            isolation_level=IsolationLevel.SERIALIZABLE,
            write_on_commit=True,
        ) as txn:
            txn.stage({"fizz": "buzz"})

        join(thread)
        record = store.read("test_competing_write_transaction")
        assert record
        # the first transaction wrote its result; the second one wrote nothing on exit
        assert record.result == {"foo": "bar"}


@pytest.mark.usefixtures("default_store")
class TestGetAndSetData:
    def test_get_and_set_data(self) -> None:
        """A value set on a transaction is returned by get().

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_get_and_set_data
        """
        with transaction(key="test") as txn:
            txn.set("x", 42)
            assert txn.get("x") == 42

    def test_get_and_set_data_in_nested_context(self) -> None:
        """A child sees its parent's values and may shadow them without touching the parent.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_get_and_set_data_in_nested_context
        """
        with transaction(key="test") as top:
            top.set("key", 42)
            with transaction(key="nested") as inner:
                assert inner.get("key") == 42  # children inherit from their parents first
                inner.set("key", "string")  # and can override
                assert inner.get("key") == "string"
                assert top.get("key") == 42
            assert top.get("key") == 42

    def test_get_and_set_data_doesnt_mutate_parent(self) -> None:
        """get() returns copies: a child changing one and setting it leaves the parent's
        alone.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_get_and_set_data_doesnt_mutate_parent
        """
        with transaction(key="test") as top:
            top.set("key", {"x": [42]})
            with transaction(key="nested") as inner:
                inner_value = inner.get("key")
                inner_value["x"].append(43)
                inner.set("key", inner_value)
                assert inner.get("key") == {"x": [42, 43]}
                assert top.get("key") == {"x": [42]}
            assert top.get("key") == {"x": [42]}

    def test_get_raises_on_unknown_but_allows_default(self) -> None:
        """get() of an unknown name raises ValueError naming it, unless a default is given.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_get_raises_on_unknown_but_allows_default
        """
        with transaction(key="test") as txn:
            with pytest.raises(ValueError, match="foobar"):
                txn.get("foobar")
            assert txn.get("foobar", None) is None
            assert txn.get("foobar", "string") == "string"

    def test_parent_values_set_after_child_open_are_available(self) -> None:
        """A child sees values its parent sets after the child opened; mutating a returned
        value changes nothing stored.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_parent_values_set_after_child_open_are_available
        """
        parent_transaction = Transaction()
        child_transaction = Transaction()

        parent_transaction.__enter__()
        child_transaction.__enter__()

        try:
            parent_transaction.set("key", "value")

            # child can access parent's values
            assert child_transaction.get("key") == "value"

            parent_transaction.set("list", [1, 2, 3])
            assert child_transaction.get("list") == [1, 2, 3]

            # Mutating the value doesn't update the stored value
            child_transaction.get("list").append(4)
            assert child_transaction.get("list") == [1, 2, 3]
            child_transaction.set("list", [1, 2, 3, 4])
            assert child_transaction.get("list") == [1, 2, 3, 4]

            # parent transaction isn't affected by child's modifications
            assert parent_transaction.get("list") == [1, 2, 3]

        finally:
            child_transaction.__exit__(None, None, None)
            parent_transaction.__exit__(None, None, None)


@pytest.mark.usefixtures("default_store")
class TestIsolationLevel:
    def test_default_isolation_level(self) -> None:
        """transaction(key) without a level is READ_COMMITTED.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestTransaction::
        test_default_isolation_level
        """
        with transaction(key="test") as txn:
            assert txn.isolation_level == IsolationLevel.READ_COMMITTED

    def test_inherited_isolation_level(self, store: ResultStore) -> None:
        """An inner transaction inherits SERIALIZABLE from the outer one.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestTransaction::
        test_inherited_isolation_level (whose stores need a MemoryLockManager)
        """
        with (
            transaction(
                key="test", store=store, isolation_level=IsolationLevel.SERIALIZABLE
            ) as top,
            transaction(key="nested", store=store) as inner,
        ):
            assert inner.isolation_level == top.isolation_level == IsolationLevel.SERIALIZABLE

    def test_raises_on_unsupported_isolation_level(self) -> None:
        """SERIALIZABLE on a plain ResultStore() works and holds the key's lock. Difference from
        Prefect (README "SERIALIZABLE"): Prefect raises ConfigurationError ("Isolation level
        SERIALIZABLE is not supported by provided configuration") for a store without a lock
        manager; every sqlresults store keeps its locks in its database.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestTransaction::
        test_raises_on_unsupported_isolation_level
        """
        store = ResultStore()
        with transaction(
            key="test", store=store, isolation_level=IsolationLevel.SERIALIZABLE
        ) as txn:
            assert store.is_lock_holder("test", txn.holder)
        assert txn.is_committed()
        assert not store.is_locked("test")


@pytest.mark.usefixtures("default_store")
class TestHooks:
    def test_sync_on_commit_hook(self) -> None:
        """A sync commit hook is called once, with the transaction.

        Prefect: tests/test_transactions.py::TestHooks::TestTransaction::test_sync_on_commit_hook
        """
        spy = MagicMock()
        with transaction(key="test_sync_on_commit_hook") as txn:
            txn.stage("foo", on_commit_hooks=[spy])

        spy.assert_called_once_with(txn)

    def test_sync_on_rollback_hook(self) -> None:
        """A sync rollback hook is called once, with the transaction, when the body raises.

        Prefect: tests/test_transactions.py::TestHooks::TestTransaction::
        test_sync_on_rollback_hook
        """
        spy = MagicMock()
        opened: list[Transaction] = []

        def body() -> None:
            with transaction(key="test_sync_on_rollback_hook") as txn:
                opened.append(txn)
                txn.stage("foo", on_rollback_hooks=[spy])
                raise RuntimeError("I left the stove on!")

        with pytest.raises(RuntimeError):
            body()

        [txn] = opened
        spy.assert_called_once_with(txn)

    def test_async_on_commit_hook(self) -> None:
        """An async commit hook of a sync transaction is run to completion, once.

        Prefect: tests/test_transactions.py::TestHooks::TestTransaction::
        test_async_on_commit_hook
        """
        spy = AsyncMock()

        async def async_on_commit_hook(txn: Transaction) -> None:
            await spy(txn)

        with transaction(key="test_async_on_commit_hook") as txn:
            txn.stage("foo", on_commit_hooks=[async_on_commit_hook])

        spy.assert_called_once_with(txn)

    def test_async_on_rollback_hook(self) -> None:
        """An async rollback hook of a sync transaction is run to completion, once.

        Prefect: tests/test_transactions.py::TestHooks::TestTransaction::
        test_async_on_rollback_hook
        """
        spy = AsyncMock()

        async def async_on_rollback_hook(txn: Transaction) -> None:
            await spy(txn)

        opened: list[Transaction] = []

        def body() -> None:
            with transaction(key="test_async_on_rollback_hook") as txn:
                opened.append(txn)
                txn.stage("foo", on_rollback_hooks=[async_on_rollback_hook])
                raise RuntimeError("I forgot my keys at home!")

        with pytest.raises(RuntimeError):
            body()

        [txn] = opened
        spy.assert_called_once_with(txn)


# -- AsyncTransaction and atransaction() ------------------------------------------------------


class TestAsyncGetTxn:
    def test_get_transaction_async(self) -> None:
        """get_transaction() is the open async transaction, and None outside.

        Prefect: tests/test_transactions.py::TestGetTxn::TestAsyncTransaction::
        test_get_transaction_async
        """

        async def scenario() -> None:
            assert get_transaction() is None
            async with AsyncTransaction() as txn:
                assert get_transaction() == txn
            assert get_transaction() is None

        run_async(scenario)

    def test_nested_get_transaction_async(self) -> None:
        """get_transaction() is the innermost async transaction; the outer one again after
        the inner exits.

        Prefect: tests/test_transactions.py::TestGetTxn::TestAsyncTransaction::
        test_nested_get_transaction_async
        """

        async def scenario() -> None:
            assert get_transaction() is None
            async with AsyncTransaction(key="outer") as outer:
                assert get_transaction() == outer
                async with AsyncTransaction(key="inner") as inner:
                    assert get_transaction() == inner
                assert get_transaction() == outer
            assert get_transaction() is None

        run_async(scenario)

    def test_txn_resets_even_with_error_async(self) -> None:
        """The current transaction is reset when the body of an async transaction raises
        (Prefect's test stops at the raise; the reset is checked here too).

        Prefect: tests/test_transactions.py::TestGetTxn::TestAsyncTransaction::
        test_txn_resets_even_with_error_async
        """

        async def body() -> None:
            async with AsyncTransaction() as txn:
                assert get_transaction() == txn
                raise ValueError("foo")

        async def scenario() -> None:
            assert get_transaction() is None

            with pytest.raises(ValueError, match="foo"):
                await body()

            assert get_transaction() is None

        run_async(scenario)


class TestAsyncGetParent:
    def test_get_parent(self) -> None:
        """A root async transaction has no parent.

        Prefect: tests/test_transactions.py::TestGetParent::TestAsyncTransaction::
        test_get_parent
        """

        async def scenario() -> None:
            async with AsyncTransaction() as txn:
                assert txn.get_parent() is None

        run_async(scenario)

    def test_get_parent_with_parent(self) -> None:
        """A nested async transaction's parent is the enclosing one.

        Prefect: tests/test_transactions.py::TestGetParent::TestAsyncTransaction::
        test_get_parent_with_parent
        """

        async def scenario() -> None:
            async with AsyncTransaction(key="outer") as outer:
                assert outer.get_parent() is None
                async with AsyncTransaction(key="inner") as inner:
                    assert inner.get_parent() == outer
                assert outer.get_parent() is None

        run_async(scenario)

    def test_get_parent_works_in_rollback_hook_after_success(self) -> None:
        """A sync rollback hook (run in a worker thread) of an inner async transaction that
        had exited fine sees the outer one as its parent when a sibling's failure rolls
        everything back.

        Prefect: tests/test_transactions.py::TestGetParent::TestAsyncTransaction::
        test_get_parent_works_in_rollback_hook_after_success
        """
        spy = MagicMock()

        def hook(txn: AsyncTransaction) -> None:
            spy(txn.get_parent())

        async def scenario() -> AsyncTransaction | None:
            outer = None
            try:
                async with AsyncTransaction() as outer:
                    async with AsyncTransaction(key="inner_with_rollback") as inner_with_rollback:
                        inner_with_rollback.stage("foo", on_rollback_hooks=[hook])
                    async with AsyncTransaction(key="inner_trouble_maker"):
                        raise ValueError(
                            "I'm acting out because I like being the center of attention."
                        )
            except ValueError:
                pass
            return outer

        outer = run_async(scenario)
        assert outer is not None
        spy.assert_called_once_with(outer)


class TestAsyncCommitMode:
    def test_txns_dont_auto_commit(self) -> None:
        """A LAZY inner async transaction is not committed at its own exit; both are when the
        outer one exits.

        Prefect: tests/test_transactions.py::TestCommitMode::TestAsyncTransaction::
        test_txns_dont_auto_commit
        """

        async def scenario() -> None:
            async with AsyncTransaction(key="outer") as outer:
                assert not outer.is_committed()

                async with AsyncTransaction(key="inner") as inner:
                    pass

                assert not inner.is_committed()

            assert outer.is_committed()
            assert inner.is_committed()

        run_async(scenario)

    def test_txns_auto_commit_in_eager(self) -> None:
        """An EAGER async transaction commits at exit; so does a sync one, and its inner
        transaction, opened inside a coroutine.

        Prefect: tests/test_transactions.py::TestCommitMode::TestAsyncTransaction::
        test_txns_auto_commit_in_eager
        """

        async def scenario() -> None:
            async with AsyncTransaction(commit_mode=CommitMode.EAGER) as txn:
                assert txn.is_active()
                assert not txn.is_committed()
            assert txn.is_committed()

            with Transaction(key="outer", commit_mode=CommitMode.EAGER) as outer:
                assert not outer.is_committed()
                with Transaction(key="inner") as inner:
                    pass
                assert inner.is_committed()
            assert outer.is_committed()

        run_async(scenario)

    def test_txns_dont_commit_on_exception(self) -> None:
        """An async transaction whose body raises is rolled back, not committed.

        Prefect: tests/test_transactions.py::TestCommitMode::TestAsyncTransaction::
        test_txns_dont_commit_on_exception
        """

        async def scenario() -> AsyncTransaction | None:
            txn = None
            with pytest.raises(ValueError, match="foo"):
                async with AsyncTransaction() as txn:
                    raise ValueError("foo")
            return txn

        txn = run_async(scenario)
        assert txn is not None
        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_dont_commit_on_rollback(self) -> None:
        """An awaited rollback() inside stays rolled back after exit.

        Prefect: tests/test_transactions.py::TestCommitMode::TestAsyncTransaction::
        test_txns_dont_commit_on_rollback
        """

        async def scenario() -> AsyncTransaction:
            async with AsyncTransaction() as txn:
                await txn.rollback()
            return txn

        txn = run_async(scenario)
        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_commit_with_lazy_parent_if_eager(self) -> None:
        """An EAGER inner async transaction commits at its exit even under a LAZY outer one.

        Prefect: tests/test_transactions.py::TestCommitMode::TestAsyncTransaction::
        test_txns_commit_with_lazy_parent_if_eager
        """

        async def scenario() -> None:
            async with AsyncTransaction(key="outer", commit_mode=CommitMode.LAZY) as outer:
                assert not outer.is_committed()

                async with AsyncTransaction(key="inner", commit_mode=CommitMode.EAGER) as inner:
                    pass

                assert inner.is_committed()

            assert outer.is_committed()

        run_async(scenario)

    def test_txns_commit_off_rolls_back_on_exit(self) -> None:
        """commit_mode=OFF rolls an async transaction back at exit.

        Prefect: tests/test_transactions.py::TestCommitMode::TestAsyncTransaction::
        test_txns_commit_off_rolls_back_on_exit
        """

        async def scenario() -> AsyncTransaction:
            async with AsyncTransaction(commit_mode=CommitMode.OFF) as txn:
                assert not txn.is_committed()
            return txn

        txn = run_async(scenario)
        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_commit_off_doesnt_roll_back_if_committed(self) -> None:
        """commit_mode=OFF keeps an explicit, awaited commit() made inside.

        Prefect: tests/test_transactions.py::TestCommitMode::TestAsyncTransaction::
        test_txns_commit_off_doesnt_roll_back_if_committed
        """

        async def scenario() -> AsyncTransaction:
            async with AsyncTransaction(commit_mode=CommitMode.OFF) as txn:
                await txn.commit()
            return txn

        txn = run_async(scenario)
        assert txn.is_committed()
        assert not txn.is_rolled_back()

    def test_error_in_commit_triggers_rollback(self) -> None:
        """A child whose async commit raises makes its parent roll back instead of
        committing.

        Prefect: tests/test_transactions.py::TestCommitMode::TestAsyncTransaction::
        test_error_in_commit_triggers_rollback
        """

        class BadTxn(AsyncTransaction):
            async def commit(self, **kwargs: Any) -> bool:
                raise ValueError("foo")

        async def scenario() -> AsyncTransaction:
            async with AsyncTransaction() as txn:
                txn.add_child(BadTxn())
            return txn

        txn = run_async(scenario)
        assert not txn.is_committed()
        assert txn.is_rolled_back()


class TestAsyncRollBacks:
    def test_rollback_flag_is_set(self) -> None:
        """An awaited rollback() inside the body marks the transaction rolled back at once.

        Prefect: tests/test_transactions.py::TestRollBacks::TestAsyncTransaction::
        test_rollback_flag_is_set
        """

        async def scenario() -> None:
            async with AsyncTransaction() as txn:
                assert not txn.is_rolled_back()
                await txn.rollback()
                assert txn.is_rolled_back()

        run_async(scenario)

    def test_txns_rollback_on_exception(self) -> None:
        """An async transaction whose body raises is rolled back.

        Prefect: tests/test_transactions.py::TestRollBacks::TestAsyncTransaction::
        test_txns_rollback_on_exception
        """

        async def scenario() -> AsyncTransaction | None:
            txn = None
            with pytest.raises(ValueError, match="foo"):
                async with AsyncTransaction() as txn:
                    raise ValueError("foo")
            return txn

        txn = run_async(scenario)
        assert txn is not None
        assert txn.is_rolled_back()

    def test_rollback_flag_propagates_up(self) -> None:
        """Rolling back the innermost async transaction rolls back each ancestor as it exits.

        Prefect: tests/test_transactions.py::TestRollBacks::TestAsyncTransaction::
        test_rollback_flag_propagates_up
        """

        async def scenario() -> None:
            async with AsyncTransaction(key="outer") as outer:
                assert not outer.is_rolled_back()
                async with AsyncTransaction(key="inner") as inner:
                    assert not inner.is_rolled_back()
                    async with AsyncTransaction(key="nested") as nested:
                        assert not nested.is_rolled_back()
                        await nested.rollback()
                        assert nested.is_rolled_back()
                    assert inner.is_rolled_back()
            assert outer.is_rolled_back()

        run_async(scenario)


class TestAsyncTransactionState:
    def test_happy_state_lifecycle(self) -> None:
        """PENDING before, ACTIVE inside, COMMITTED after a body that succeeds; entering the
        committed transaction again runs the same lifecycle again.

        Prefect: tests/test_transactions.py::TestTransactionState::TestAsyncTransaction::
        test_happy_state_lifecycle
        """
        txn = AsyncTransaction()
        assert txn.is_pending()

        async def scenario() -> None:
            async with txn:
                assert txn.is_active()

            assert txn.is_committed()

            async with txn:
                assert txn.is_active()

            assert txn.is_committed()

        run_async(scenario)

    def test_unhappy_state_lifecycle(self) -> None:
        """PENDING before, ACTIVE inside, ROLLED_BACK after a body that raises.

        Prefect: tests/test_transactions.py::TestTransactionState::TestAsyncTransaction::
        test_unhappy_state_lifecycle
        """
        txn = AsyncTransaction()
        assert txn.is_pending()

        async def body() -> None:
            async with txn:
                assert txn.is_active()
                raise ValueError("foo")

        async def scenario() -> None:
            with pytest.raises(ValueError, match="foo"):
                await body()

        run_async(scenario)
        assert txn.is_rolled_back()


class TestAsyncOverwrite:
    def test_overwrite_ignores_existing_record_async(self, store: ResultStore) -> None:
        """A store whose aexists says the key exists makes an async transaction begin
        committed, unless overwrite=True.

        Prefect: tests/test_transactions.py::test_overwrite_ignores_existing_record_async
        """

        class Store(ResultStore):
            async def aexists(self, key: str) -> bool:
                return True

        always_there = Store(result_storage=store.result_storage, namespace=store.namespace)

        async def scenario() -> None:
            async with AsyncTransaction(
                key="test_overwrite_ignores_existing_record", store=always_there
            ) as txn:
                assert txn.is_committed()

            async with AsyncTransaction(
                key="test_overwrite_ignores_existing_record", store=always_there, overwrite=True
            ) as txn:
                assert not txn.is_committed()

        run_async(scenario)


@pytest.mark.usefixtures("default_store")
class TestAsyncDefaultTransactionStorage:
    def test_transaction_outside_of_run(self) -> None:
        """atransaction() with a key and no store, outside any run, uses the default store:
        the staged value is written at commit and read back with an awaited read().

        Prefect: tests/test_transactions.py::TestDefaultTransactionStorage::
        TestAsyncTransaction::test_transaction_outside_of_run
        """

        async def scenario() -> ResultRecord[Any] | None:
            async with atransaction(
                key="test_transaction_outside_of_run", write_on_commit=True
            ) as txn:
                assert isinstance(txn.store, ResultStore)
                txn.stage({"foo": "bar"})

            return await txn.read()

        record = run_async(scenario)
        assert isinstance(record, ResultRecord)
        assert record.result == {"foo": "bar"}


class TestAsyncWithResultStore:
    def test_basic_transaction(self, store: ResultStore) -> None:
        """A committed async transaction's record is what the store's aread returns, under
        the key itself.

        Prefect: tests/test_transactions.py::TestWithResultStore::TestAsyncTransaction::
        test_basic_transaction
        """

        async def scenario() -> None:
            async with atransaction(
                key="test_basic_transaction", store=store, write_on_commit=True
            ) as txn:
                assert isinstance(txn.store, ResultStore)
                txn.stage({"foo": "bar"})

            record_1 = await txn.read()
            assert record_1
            assert record_1.result == {"foo": "bar"}

            record_2 = await store.aread("test_basic_transaction")
            assert record_2
            assert record_2 == record_1
            assert record_2.metadata.storage_key == "test_basic_transaction"

        run_async(scenario)

    def test_competing_read_transaction(self, store: ResultStore) -> None:
        """A READ_COMMITTED async reader of a key that a SERIALIZABLE async writer (another
        task of the same loop) holds waits for the writer's commit and reads its value. (Every
        store can be SERIALIZABLE: a difference from Prefect, README "SERIALIZABLE"; Prefect's
        test configures a lock manager.)

        Prefect: tests/test_transactions.py::TestWithResultStore::TestAsyncTransaction::
        test_competing_read_transaction
        """

        async def scenario() -> Any:
            write_transaction_open = asyncio.Event()

            async def writing_transaction() -> None:
                # isolation level is SERIALIZABLE, so a lock will be taken
                async with atransaction(
                    key="test_competing_read_transaction",
                    store=store,
                    isolation_level=IsolationLevel.SERIALIZABLE,
                    write_on_commit=True,
                ) as txn:
                    write_transaction_open.set()
                    txn.stage({"foo": "bar"})

            task = asyncio.create_task(writing_transaction())
            await write_transaction_open.wait()
            async with atransaction(key="test_competing_read_transaction", store=store) as txn:
                read_result = await txn.read()

            await task
            assert read_result is not None
            return read_result.result

        assert run_async(scenario) == {"foo": "bar"}

    def test_competing_write_transaction_async(self, store: ResultStore) -> None:
        """Of two SERIALIZABLE async writers of one key in one loop, the second waits at begin
        (without blocking the loop), then finds the first's record: its own staged value is
        ignored.

        Prefect: tests/test_transactions.py::TestWithResultStore::TestAsyncTransaction::
        test_competing_write_transaction_async
        """

        async def scenario() -> None:
            transaction_1_open = asyncio.Event()

            async def winning_transaction() -> None:
                async with atransaction(
                    key="test_competing_write_transaction",
                    store=store,
                    isolation_level=IsolationLevel.SERIALIZABLE,
                    write_on_commit=True,
                ) as txn:
                    transaction_1_open.set()
                    txn.stage({"foo": "bar"})

            task = asyncio.create_task(winning_transaction())
            await transaction_1_open.wait()
            async with atransaction(
                key="test_competing_write_transaction",
                store=store,
                isolation_level=IsolationLevel.SERIALIZABLE,
                write_on_commit=True,
            ) as txn:
                txn.stage({"fizz": "buzz"})

            await task

        run_async(scenario)
        record = store.read("test_competing_write_transaction")
        assert record
        # the first transaction wrote its result; the second one wrote nothing on exit
        assert record.result == {"foo": "bar"}
        assert not store.is_locked("test_competing_write_transaction")


@pytest.mark.usefixtures("default_store")
class TestAsyncGetAndSetData:
    def test_get_and_set_data(self) -> None:
        """A value set on an async transaction is returned by get().

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestAsyncTransaction::
        test_get_and_set_data
        """

        async def scenario() -> None:
            async with atransaction(key="test") as txn:
                txn.set("x", 42)
                assert txn.get("x") == 42

        run_async(scenario)

    def test_get_and_set_data_in_nested_context(self) -> None:
        """An async child sees its parent's values and may shadow them without touching the
        parent.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestAsyncTransaction::
        test_get_and_set_data_in_nested_context
        """

        async def scenario() -> None:
            async with atransaction(key="test") as top:
                top.set("key", 42)
                async with atransaction(key="nested") as inner:
                    assert inner.get("key") == 42  # children inherit from their parents first
                    inner.set("key", "string")  # and can override
                    assert inner.get("key") == "string"
                    assert top.get("key") == 42
                assert top.get("key") == 42

        run_async(scenario)

    def test_get_and_set_data_doesnt_mutate_parent(self) -> None:
        """get() returns copies: an async child changing one and setting it leaves the
        parent's alone.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestAsyncTransaction::
        test_get_and_set_data_doesnt_mutate_parent
        """

        async def scenario() -> None:
            async with atransaction(key="test") as top:
                top.set("key", {"x": [42]})
                async with atransaction(key="nested") as inner:
                    inner_value = inner.get("key")
                    inner_value["x"].append(43)
                    inner.set("key", inner_value)
                    assert inner.get("key") == {"x": [42, 43]}
                    assert top.get("key") == {"x": [42]}
                assert top.get("key") == {"x": [42]}

        run_async(scenario)

    def test_get_raises_on_unknown_but_allows_default(self) -> None:
        """get() of an unknown name raises ValueError naming it, unless a default is given.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestAsyncTransaction::
        test_get_raises_on_unknown_but_allows_default
        """

        async def scenario() -> None:
            async with atransaction(key="test") as txn:
                with pytest.raises(ValueError, match="foobar"):
                    txn.get("foobar")
                assert txn.get("foobar", None) is None
                assert txn.get("foobar", "string") == "string"

        run_async(scenario)

    def test_parent_values_set_after_child_open_are_available(self) -> None:
        """An async child sees values its parent sets after the child opened (entered with
        awaited __aenter__ calls); mutating a returned value changes nothing stored.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestAsyncTransaction::
        test_parent_values_set_after_child_open_are_available
        """

        async def scenario() -> None:
            parent_transaction = AsyncTransaction()
            child_transaction = AsyncTransaction()

            await parent_transaction.__aenter__()
            await child_transaction.__aenter__()

            try:
                parent_transaction.set("key", "value")

                # child can access parent's values
                assert child_transaction.get("key") == "value"

                parent_transaction.set("list", [1, 2, 3])
                assert child_transaction.get("list") == [1, 2, 3]

                # Mutating the value doesn't update the stored value
                child_transaction.get("list").append(4)
                assert child_transaction.get("list") == [1, 2, 3]
                child_transaction.set("list", [1, 2, 3, 4])
                assert child_transaction.get("list") == [1, 2, 3, 4]

                # parent transaction isn't affected by child's modifications
                assert parent_transaction.get("list") == [1, 2, 3]

            finally:
                await child_transaction.__aexit__(None, None, None)
                await parent_transaction.__aexit__(None, None, None)

        run_async(scenario)


@pytest.mark.usefixtures("default_store")
class TestAsyncIsolationLevel:
    def test_default_isolation_level(self) -> None:
        """atransaction(key) without a level is READ_COMMITTED.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestAsyncTransaction::
        test_default_isolation_level
        """

        async def scenario() -> None:
            async with atransaction(key="test") as txn:
                assert txn.isolation_level == IsolationLevel.READ_COMMITTED

        run_async(scenario)

    def test_inherited_isolation_level(self, store: ResultStore) -> None:
        """An inner async transaction inherits SERIALIZABLE from the outer one.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestAsyncTransaction::
        test_inherited_isolation_level (whose stores need a MemoryLockManager)
        """

        async def scenario() -> None:
            async with (
                atransaction(
                    key="test", store=store, isolation_level=IsolationLevel.SERIALIZABLE
                ) as top,
                atransaction(key="nested", store=store) as inner,
            ):
                assert inner.isolation_level == top.isolation_level == IsolationLevel.SERIALIZABLE

        run_async(scenario)

    def test_raises_on_unsupported_isolation_level(self) -> None:
        """SERIALIZABLE on a plain ResultStore() works in an async transaction and holds the
        key's lock. Difference from Prefect (README "SERIALIZABLE"): Prefect raises
        ConfigurationError ("Isolation level SERIALIZABLE is not supported by provided
        configuration") for a store without a lock manager; every sqlresults store keeps its
        locks in its database.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestAsyncTransaction::
        test_raises_on_unsupported_isolation_level
        """
        store = ResultStore()

        async def scenario() -> AsyncTransaction:
            async with atransaction(
                key="test", store=store, isolation_level=IsolationLevel.SERIALIZABLE
            ) as txn:
                assert store.is_lock_holder("test", txn.holder)
            return txn

        assert run_async(scenario).is_committed()
        assert not store.is_locked("test")

    def test_serializable_isolation_works_with_multiple_asyncio_tasks(self) -> None:
        """A SERIALIZABLE async transaction whose SERIALIZABLE child runs in another asyncio
        task raises nothing, and the child's value is readable afterwards
        (PrefectHQ/prefect#18600: each transaction is its own lock holder, whatever task it
        runs in).

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestAsyncTransaction::
        test_serializable_isolation_works_with_multiple_asyncio_tasks (whose stores need a
        MemoryLockManager)
        """

        async def child_task() -> None:
            async with atransaction(
                key="child",
                store=ResultStore(),
                isolation_level=IsolationLevel.SERIALIZABLE,
            ) as txn:
                txn.stage({"foo": "bar"})

        async def parent_task() -> None:
            async with atransaction(
                key="parent",
                store=ResultStore(),
                isolation_level=IsolationLevel.SERIALIZABLE,
            ):
                t = asyncio.create_task(child_task())
                await t

        # Should not raise an error
        run_async(parent_task)

        assert ResultStore().read("child").result == {"foo": "bar"}
        assert not ResultStore().is_locked("child")
        assert not ResultStore().is_locked("parent")


@pytest.mark.usefixtures("default_store")
class TestAsyncHooks:
    def test_sync_on_commit_hook(self) -> None:
        """A sync commit hook of an async transaction is called once, with the transaction.

        Prefect: tests/test_transactions.py::TestHooks::TestAsyncTransaction::
        test_sync_on_commit_hook
        """
        spy = MagicMock()

        async def scenario() -> AsyncTransaction:
            async with atransaction(key="test_sync_on_commit_hook") as txn:
                txn.stage("foo", on_commit_hooks=[spy])
            return txn

        txn = run_async(scenario)
        spy.assert_called_once_with(txn)

    def test_sync_on_rollback_hook(self) -> None:
        """A sync rollback hook of an async transaction is called once, with the
        transaction, when the body raises.

        Prefect: tests/test_transactions.py::TestHooks::TestAsyncTransaction::
        test_sync_on_rollback_hook
        """
        spy = MagicMock()

        opened: list[AsyncTransaction] = []

        async def body() -> None:
            async with atransaction(key="test_sync_on_rollback_hook") as txn:
                opened.append(txn)
                txn.stage("foo", on_rollback_hooks=[spy])
                raise RuntimeError("I forgot to pay my internet bill!")

        async def scenario() -> None:
            with pytest.raises(RuntimeError):
                await body()

        run_async(scenario)
        [txn] = opened
        spy.assert_called_once_with(txn)

    def test_async_on_commit_hook(self) -> None:
        """An async commit hook of an async transaction is awaited once, with the
        transaction.

        Prefect: tests/test_transactions.py::TestHooks::TestAsyncTransaction::
        test_async_on_commit_hook
        """
        spy = AsyncMock()

        async def async_on_commit_hook(txn: AsyncTransaction) -> None:
            await spy(txn)

        async def scenario() -> AsyncTransaction:
            async with atransaction(key="test_async_on_commit_hook") as txn:
                txn.stage("foo", on_commit_hooks=[async_on_commit_hook])
            return txn

        txn = run_async(scenario)
        spy.assert_called_once_with(txn)

    def test_async_on_rollback_hook(self) -> None:
        """An async rollback hook of an async transaction is awaited once, with the
        transaction, when the body raises.

        Prefect: tests/test_transactions.py::TestHooks::TestAsyncTransaction::
        test_async_on_rollback_hook
        """
        spy = AsyncMock()

        async def async_on_rollback_hook(txn: AsyncTransaction) -> None:
            await spy(txn)

        opened: list[AsyncTransaction] = []

        async def body() -> None:
            async with atransaction(key="test_async_on_rollback_hook") as txn:
                opened.append(txn)
                txn.stage("foo", on_rollback_hooks=[async_on_rollback_hook])
                raise RuntimeError("The sump pump is unplugged!")

        async def scenario() -> None:
            with pytest.raises(RuntimeError):
                await body()

        run_async(scenario)
        [txn] = opened
        spy.assert_called_once_with(txn)
