"""Prefect's own transaction tests, ported: ``tests/test_transactions.py`` of Prefect
(PrefectHQ/prefect@ce79dd3), the sync ``Transaction`` half, against sqlresults' API.

Each test names the Prefect test it mirrors. Where sqlresults differs from Prefect on purpose,
the test asserts our behaviour and its docstring names the difference, which the README's
"Differences from Prefect" table lists. Tests that touch a store run on SQLite and PostgreSQL:
``store`` directly, or ``default_store``, which points the default store (``transaction(key=...)``
without a store, ``ResultStore()``) at the backend under test.

Not ported, and why:

- ``test_async_basic_init``, ``test_async_equality``, every ``TestAsyncTransaction`` class,
  ``test_overwrite_ignores_existing_record_async`` and
  ``test_serializable_isolation_works_with_multiple_asyncio_tasks``: ``AsyncTransaction`` and
  ``atransaction()`` are being added in this issue by other work, which ports them.
- ``TestTransactionState::test_state_and_methods_are_consistent`` for ``AsyncTransaction``: the
  same reason (the ``Transaction`` case is ported).
- ``TestDefaultTransactionStorage::test_transaction_inside_flow_default_storage`` and
  ``::test_transaction_inside_task_default_storage``: they need ``@flow`` and ``@task``, which
  sqlresults does not have yet; both also compare Prefect storage block ids, which a database
  does not have.
- ``TestWithResultStore::test_transaction_with_nullfilesystem_metadata``: about Prefect's
  ``metadata_storage`` and files on disk; a sqlresults record and its metadata are one row.
  (Its last step, that the next transaction on the key begins committed, is
  ``tests/test_transactions.py::TestWithResultStore::test_next_transaction_is_a_cache_hit``.)
- ``isolate_default_result_storage``, ``default_storage_setting`` and Prefect's
  ``MemoryLockManager``: replaced by the ``default_store`` and ``store`` fixtures (locks live in
  the result database, so no lock manager is configured).
"""

from __future__ import annotations

import threading
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest
from threads import join, run_in_thread

from sqlresults.records import ResultRecord
from sqlresults.results import ResultStore
from sqlresults.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
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
    @pytest.mark.parametrize("state", list(TransactionState))
    def test_state_and_methods_are_consistent(self, state: TransactionState) -> None:
        """A transaction built with a state reports it through exactly one predicate.

        Prefect: tests/test_transactions.py::TestTransactionState::
        test_state_and_methods_are_consistent (the Transaction case).
        """
        txn = Transaction(state=state)
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
