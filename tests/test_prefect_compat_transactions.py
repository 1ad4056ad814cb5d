"""Prefect's own transaction tests, ported: ``tests/test_transactions.py`` of Prefect
(PrefectHQ/prefect@ce79dd3), both halves, ``Transaction`` / ``transaction()`` and
``AsyncTransaction`` / ``atransaction()``, against sqlresults' API.

Each test names the Prefect test it mirrors. Where sqlresults differs from Prefect on purpose,
the test asserts our behaviour and its docstring names the difference, which the README's
"Differences from Prefect" table lists. Tests that touch a store run on SQLite and PostgreSQL:
``store`` directly, or ``default_store`` (conftest.py), which points the default store
(``transaction(key=...)`` without a store, ``ResultStore()``) at the backend under test.

Prefect's ``TestX::TestTransaction`` and ``TestX::TestAsyncTransaction`` halves test the same
behaviours; each pair is ported once, as ``TestX``, and runs for both: the ``flavor`` fixture
(``sync``: ``Transaction`` and ``transaction()``; ``async``: ``AsyncTransaction`` and
``atransaction()``, see tests/flavors.py). A test body is a coroutine written against the
flavor; the sync flavor runs it in the test's thread with no event loop, exactly as plain sync
code, and the async flavor with ``run_async`` (conftest.py; the suite has no async test plugin):
on a fresh event loop in a helper thread, under a hang guard, so a lock wait that blocked the
loop would fail the test instead of hanging it. A second party waiting for a lock is a thread
for sync transactions and a task of the same loop for async ones, as in Prefect's halves.
``TestWithResultStore`` runs again with Prefect's store and transactions as the client, in
``test_prefect_compat_protocol_results.py``.

Not ported, and why:

- ``TestDefaultTransactionStorage::test_transaction_inside_flow_default_storage`` and
  ``::test_transaction_inside_task_default_storage``, sync and async: they need ``@flow`` and
  ``@task``, which sqlresults does not have yet; both also compare Prefect storage block ids,
  which a database does not have.
- ``TestWithResultStore::test_transaction_with_nullfilesystem_metadata``, sync and async: about
  Prefect's ``metadata_storage`` and files on disk; a sqlresults record and its metadata are one
  row. (Its last step, that the next transaction on the key begins committed, is
  ``tests/test_transactions.py::TestWithResultStore::test_next_transaction_is_a_cache_hit``.
  With Prefect's store, whose metadata storage it is about, it is ported in
  ``test_prefect_compat_protocol_results.py``.)
- ``isolate_default_result_storage``, ``default_storage_setting`` and Prefect's
  ``MemoryLockManager``: replaced by the ``default_store`` and ``store`` fixtures (locks live in
  the result database, so no lock manager is configured).
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest
from conftest import run_async
from flavors import Flavor

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

SYNC = Flavor("sync", Transaction, transaction)
ASYNC = Flavor("async", AsyncTransaction, atransaction)


@pytest.fixture(params=[SYNC, ASYNC], ids=str)
def flavor(request: pytest.FixtureRequest) -> Flavor:
    """The half of Prefect's test under way: sync (``Transaction``, ``transaction()``) or async
    (``AsyncTransaction``, ``atransaction()``)."""
    return request.param  # type: ignore[no-any-return]


def exited_by_an_error(flavor: Flavor) -> BaseTransaction:
    """A new transaction of ``flavor`` after a body that raised ValueError("foo") in it."""
    txn = flavor.transaction_class()

    async def scenario() -> None:
        with pytest.raises(ValueError, match="foo"):
            async with flavor.open(txn):
                raise ValueError("foo")

    flavor.run(scenario)
    return txn


class TestInit:
    def test_basic_init(self, flavor: Flavor) -> None:
        """A new Transaction or AsyncTransaction has no store, is PENDING and has no commit
        mode yet.

        Prefect: tests/test_transactions.py::test_basic_init, ::test_async_basic_init
        """
        txn = flavor.transaction_class()
        assert txn.store is None
        assert txn.state == TransactionState.PENDING
        assert txn.is_pending()
        assert txn.commit_mode is None

    def test_equality(self, flavor: Flavor) -> None:
        """Transactions and AsyncTransactions compare by identity. Difference from Prefect
        (README "transactions"): Prefect compares their fields, so two fresh transactions are
        equal there.

        Prefect: tests/test_transactions.py::test_equality, ::test_async_equality
        """
        txn1 = flavor.transaction_class()
        txn2 = flavor.transaction_class()
        txn3 = flavor.transaction_class(key="test")
        assert txn1 == txn1
        assert txn1 != txn2
        assert txn1 != txn3


class TestGetTxn:
    def test_get_transaction(self, flavor: Flavor) -> None:
        """get_transaction() is the open transaction, and None outside.

        Prefect: tests/test_transactions.py::TestGetTxn::TestTransaction::test_get_transaction,
        ::TestGetTxn::TestAsyncTransaction::test_get_transaction_async
        """

        async def scenario() -> None:
            assert get_transaction() is None
            async with flavor.open(flavor.transaction_class()) as txn:
                assert get_transaction() == txn
            assert get_transaction() is None

        flavor.run(scenario)

    def test_nested_get_transaction(self, flavor: Flavor) -> None:
        """get_transaction() is the innermost transaction; the outer one again after the inner
        exits.

        Prefect: tests/test_transactions.py::TestGetTxn::TestTransaction::
        test_nested_get_transaction, ::TestGetTxn::TestAsyncTransaction::
        test_nested_get_transaction_async
        """

        async def scenario() -> None:
            assert get_transaction() is None
            async with flavor.open(flavor.transaction_class(key="outer")) as outer:
                assert get_transaction() == outer
                async with flavor.open(flavor.transaction_class(key="inner")) as inner:
                    assert get_transaction() == inner
                assert get_transaction() == outer
            assert get_transaction() is None

        flavor.run(scenario)

    def test_txn_resets_even_with_error(self, flavor: Flavor) -> None:
        """The current transaction is reset when the body raises (Prefect's async test stops
        at the raise; the reset is checked for both here).

        Prefect: tests/test_transactions.py::TestGetTxn::TestTransaction::
        test_txn_resets_even_with_error, ::TestGetTxn::TestAsyncTransaction::
        test_txn_resets_even_with_error_async
        """

        async def body() -> None:
            async with flavor.open(flavor.transaction_class()) as txn:
                assert get_transaction() == txn
                raise ValueError("foo")

        async def scenario() -> None:
            assert get_transaction() is None

            with pytest.raises(ValueError, match="foo"):
                await body()

            assert get_transaction() is None

        flavor.run(scenario)

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
    def test_get_parent(self, flavor: Flavor) -> None:
        """A root transaction has no parent.

        Prefect: tests/test_transactions.py::TestGetParent::TestTransaction::test_get_parent,
        ::TestGetParent::TestAsyncTransaction::test_get_parent
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction_class()) as txn:
                assert txn.get_parent() is None

        flavor.run(scenario)

    def test_get_parent_with_parent(self, flavor: Flavor) -> None:
        """A nested transaction's parent is the enclosing one.

        Prefect: tests/test_transactions.py::TestGetParent::TestTransaction::
        test_get_parent_with_parent, ::TestGetParent::TestAsyncTransaction::
        test_get_parent_with_parent
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction_class(key="outer")) as outer:
                assert outer.get_parent() is None
                async with flavor.open(flavor.transaction_class(key="inner")) as inner:
                    assert inner.get_parent() == outer
                assert outer.get_parent() is None

        flavor.run(scenario)

    def test_get_parent_works_in_rollback_hook_after_success(self, flavor: Flavor) -> None:
        """A sync rollback hook (for an async transaction, run in a worker thread) of an inner
        transaction that had exited fine sees the outer one as its parent when a sibling's
        failure rolls everything back (PrefectHQ/prefect#15593).

        Prefect: tests/test_transactions.py::TestGetParent::TestTransaction::
        test_get_parent_works_in_rollback_hook_after_success, ::TestGetParent::
        TestAsyncTransaction::test_get_parent_works_in_rollback_hook_after_success
        """
        spy = MagicMock()

        def hook(txn: BaseTransaction) -> None:
            spy(txn.get_parent())

        async def scenario() -> BaseTransaction | None:
            outer = None
            try:
                async with flavor.open(flavor.transaction_class()) as outer:
                    async with flavor.open(
                        flavor.transaction_class(key="inner_with_rollback")
                    ) as inner_with_rollback:
                        inner_with_rollback.stage("foo", on_rollback_hooks=[hook])
                    async with flavor.open(flavor.transaction_class(key="inner_trouble_maker")):
                        raise ValueError("I'm acting out because I'm misunderstood.")
            except ValueError:
                pass
            return outer

        outer = flavor.run(scenario)
        assert outer is not None
        spy.assert_called_once_with(outer)


class TestCommitMode:
    def test_txns_dont_auto_commit(self, flavor: Flavor) -> None:
        """A LAZY inner transaction is not committed at its own exit; both are when the outer
        one exits.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_dont_auto_commit, ::TestCommitMode::TestAsyncTransaction::
        test_txns_dont_auto_commit
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction_class(key="outer")) as outer:
                assert not outer.is_committed()

                async with flavor.open(flavor.transaction_class(key="inner")) as inner:
                    pass

                assert not inner.is_committed()

            assert outer.is_committed()
            assert inner.is_committed()

        flavor.run(scenario)

    def test_txns_auto_commit_in_eager(self, flavor: Flavor) -> None:
        """EAGER commits at exit; an inner transaction of an EAGER outer one inherits EAGER and
        commits at its own exit. The nested part uses sync transactions in both halves, as
        Prefect's async test does: inside a coroutine there.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_auto_commit_in_eager, ::TestCommitMode::TestAsyncTransaction::
        test_txns_auto_commit_in_eager
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction_class(commit_mode=CommitMode.EAGER)) as txn:
                assert txn.is_active()
                assert not txn.is_committed()
            assert txn.is_committed()

            with Transaction(key="outer", commit_mode=CommitMode.EAGER) as outer:
                assert not outer.is_committed()
                with Transaction(key="inner") as inner:
                    pass
                assert inner.is_committed()
            assert outer.is_committed()

        flavor.run(scenario)

    def test_txns_dont_commit_on_exception(self, flavor: Flavor) -> None:
        """A body that raises leaves the transaction rolled back, not committed.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_dont_commit_on_exception, ::TestCommitMode::TestAsyncTransaction::
        test_txns_dont_commit_on_exception
        """
        txn = exited_by_an_error(flavor)
        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_dont_commit_on_rollback(self, flavor: Flavor) -> None:
        """An explicit rollback() inside (awaited, for async) stays rolled back after exit.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_dont_commit_on_rollback, ::TestCommitMode::TestAsyncTransaction::
        test_txns_dont_commit_on_rollback
        """

        async def scenario() -> BaseTransaction:
            async with flavor.open(flavor.transaction_class()) as txn:
                await flavor.done(txn.rollback())
            return txn

        txn = flavor.run(scenario)
        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_commit_with_lazy_parent_if_eager(self, flavor: Flavor) -> None:
        """An EAGER inner transaction commits at its exit even under a LAZY outer one.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_commit_with_lazy_parent_if_eager, ::TestCommitMode::TestAsyncTransaction::
        test_txns_commit_with_lazy_parent_if_eager
        """

        async def scenario() -> None:
            outer_txn = flavor.transaction_class(key="outer", commit_mode=CommitMode.LAZY)
            async with flavor.open(outer_txn) as outer:
                assert not outer.is_committed()

                inner_txn = flavor.transaction_class(key="inner", commit_mode=CommitMode.EAGER)
                async with flavor.open(inner_txn) as inner:
                    pass

                assert inner.is_committed()

            assert outer.is_committed()

        flavor.run(scenario)

    def test_txns_commit_off_rolls_back_on_exit(self, flavor: Flavor) -> None:
        """commit_mode=OFF rolls back at exit.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_commit_off_rolls_back_on_exit, ::TestCommitMode::TestAsyncTransaction::
        test_txns_commit_off_rolls_back_on_exit
        """

        async def scenario() -> BaseTransaction:
            async with flavor.open(flavor.transaction_class(commit_mode=CommitMode.OFF)) as txn:
                assert not txn.is_committed()
            return txn

        txn = flavor.run(scenario)
        assert not txn.is_committed()
        assert txn.is_rolled_back()

    def test_txns_commit_off_doesnt_roll_back_if_committed(self, flavor: Flavor) -> None:
        """commit_mode=OFF keeps an explicit commit() (awaited, for async) made inside.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_txns_commit_off_doesnt_roll_back_if_committed, ::TestCommitMode::
        TestAsyncTransaction::test_txns_commit_off_doesnt_roll_back_if_committed
        """

        async def scenario() -> BaseTransaction:
            async with flavor.open(flavor.transaction_class(commit_mode=CommitMode.OFF)) as txn:
                await flavor.done(txn.commit())
            return txn

        txn = flavor.run(scenario)
        assert txn.is_committed()
        assert not txn.is_rolled_back()

    def test_error_in_commit_triggers_rollback(self, flavor: Flavor) -> None:
        """A child whose commit (sync or async) raises makes its parent roll back instead of
        committing.

        Prefect: tests/test_transactions.py::TestCommitMode::TestTransaction::
        test_error_in_commit_triggers_rollback, ::TestCommitMode::TestAsyncTransaction::
        test_error_in_commit_triggers_rollback
        """

        class BadTxn(Transaction):
            def commit(self, **kwargs: Any) -> bool:
                raise ValueError("foo")

        class BadAsyncTxn(AsyncTransaction):
            async def commit(self, **kwargs: Any) -> bool:
                raise ValueError("foo")

        async def scenario() -> BaseTransaction:
            async with flavor.open(flavor.transaction_class()) as txn:
                txn.add_child(BadAsyncTxn() if flavor.is_async else BadTxn())
            return txn

        txn = flavor.run(scenario)
        assert not txn.is_committed()
        assert txn.is_rolled_back()


class TestRollBacks:
    def test_rollback_flag_is_set(self, flavor: Flavor) -> None:
        """rollback() inside the body (awaited, for async) marks the transaction rolled back
        at once.

        Prefect: tests/test_transactions.py::TestRollBacks::TestTransaction::
        test_rollback_flag_is_set, ::TestRollBacks::TestAsyncTransaction::
        test_rollback_flag_is_set
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction_class()) as txn:
                assert not txn.is_rolled_back()
                await flavor.done(txn.rollback())
                assert txn.is_rolled_back()

        flavor.run(scenario)

    def test_txns_rollback_on_exception(self, flavor: Flavor) -> None:
        """A body that raises rolls the transaction back.

        Prefect: tests/test_transactions.py::TestRollBacks::TestTransaction::
        test_txns_rollback_on_exception, ::TestRollBacks::TestAsyncTransaction::
        test_txns_rollback_on_exception
        """
        txn = exited_by_an_error(flavor)
        assert txn.is_rolled_back()

    def test_rollback_flag_propagates_up(self, flavor: Flavor) -> None:
        """Rolling back the innermost transaction rolls back each ancestor as it exits.

        Prefect: tests/test_transactions.py::TestRollBacks::TestTransaction::
        test_rollback_flag_propagates_up, ::TestRollBacks::TestAsyncTransaction::
        test_rollback_flag_propagates_up
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction_class(key="outer")) as outer:
                assert not outer.is_rolled_back()
                async with flavor.open(flavor.transaction_class(key="inner")) as inner:
                    assert not inner.is_rolled_back()
                    async with flavor.open(flavor.transaction_class(key="nested")) as nested:
                        assert not nested.is_rolled_back()
                        await flavor.done(nested.rollback())
                        assert nested.is_rolled_back()
                    assert inner.is_rolled_back()
            assert outer.is_rolled_back()

        flavor.run(scenario)


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

    def test_happy_state_lifecycle(self, flavor: Flavor) -> None:
        """PENDING before, ACTIVE inside, COMMITTED after a body that succeeds; entering the
        committed transaction again runs the same lifecycle again (Prefect's async test checks
        this; it holds for both here).

        Prefect: tests/test_transactions.py::TestTransactionState::TestTransaction::
        test_happy_state_lifecycle, ::TestTransactionState::TestAsyncTransaction::
        test_happy_state_lifecycle
        """
        txn = flavor.transaction_class()
        assert txn.is_pending()

        async def scenario() -> None:
            async with flavor.open(txn):
                assert txn.is_active()

            assert txn.is_committed()

            async with flavor.open(txn):
                assert txn.is_active()

            assert txn.is_committed()

        flavor.run(scenario)

    def test_unhappy_state_lifecycle(self, flavor: Flavor) -> None:
        """PENDING before, ACTIVE inside, ROLLED_BACK after a body that raises.

        Prefect: tests/test_transactions.py::TestTransactionState::TestTransaction::
        test_unhappy_state_lifecycle, ::TestTransactionState::TestAsyncTransaction::
        test_unhappy_state_lifecycle
        """
        txn = flavor.transaction_class()
        assert txn.is_pending()

        async def body() -> None:
            async with flavor.open(txn):
                assert txn.is_active()
                raise ValueError("foo")

        async def scenario() -> None:
            with pytest.raises(ValueError, match="foo"):
                await body()

        flavor.run(scenario)
        assert txn.is_rolled_back()


class TestOverwrite:
    def test_overwrite_ignores_existing_record(self, store: ResultStore, flavor: Flavor) -> None:
        """A store that says the key exists (``exists``, or ``aexists`` for an async
        transaction: only the one of its kind is made to say so) makes the transaction begin
        committed, unless overwrite=True.

        Prefect: tests/test_transactions.py::test_overwrite_ignores_existing_record,
        ::test_overwrite_ignores_existing_record_async
        """

        class Store(ResultStore):
            def exists(self, key: str) -> bool:
                return True

        class AsyncStore(ResultStore):
            async def aexists(self, key: str) -> bool:
                return True

        always_there = (AsyncStore if flavor.is_async else Store)(
            result_storage=store.result_storage, namespace=store.namespace
        )

        async def scenario() -> None:
            async with flavor.open(
                flavor.transaction_class(
                    key="test_overwrite_ignores_existing_record", store=always_there
                )
            ) as txn:
                assert txn.is_committed()

            async with flavor.open(
                flavor.transaction_class(
                    key="test_overwrite_ignores_existing_record",
                    store=always_there,
                    overwrite=True,
                )
            ) as txn:
                assert not txn.is_committed()

        flavor.run(scenario)


@pytest.mark.usefixtures("default_store")
class TestDefaultTransactionStorage:
    def test_transaction_outside_of_run(self, flavor: Flavor) -> None:
        """With a key and no store, outside any run, the default store is used: the staged
        value is written at commit and read back (with an awaited read(), for async).

        Prefect: tests/test_transactions.py::TestDefaultTransactionStorage::TestTransaction::
        test_transaction_outside_of_run, ::TestDefaultTransactionStorage::
        TestAsyncTransaction::test_transaction_outside_of_run
        """

        async def scenario() -> ResultRecord[Any] | None:
            async with flavor.open(
                flavor.transaction(key="test_transaction_outside_of_run", write_on_commit=True)
            ) as txn:
                assert isinstance(txn.store, ResultStore)
                txn.stage({"foo": "bar"})

            return await flavor.done(txn.read())  # type: ignore[no-any-return]

        record = flavor.run(scenario)
        assert isinstance(record, ResultRecord)
        assert record.result == {"foo": "bar"}


class TestWithResultStore:
    """A transaction writing through a store. ``test_prefect_compat_protocol_results.py`` runs
    these again with Prefect's ``ResultStore`` and Prefect's transactions as the client (its
    ``store`` and ``flavor`` fixtures), on ``SQLResultStorage`` and ``SQLLockManager``."""

    def test_basic_transaction(self, store: Any, flavor: Flavor) -> None:
        """A committed transaction's record is what the store reads (``aread``, for async),
        under the key itself.

        Prefect: tests/test_transactions.py::TestWithResultStore::TestTransaction::
        test_basic_transaction, ::TestWithResultStore::TestAsyncTransaction::
        test_basic_transaction
        """

        async def scenario() -> tuple[Any, Any]:
            async with flavor.open(
                flavor.transaction(key="test_basic_transaction", store=store, write_on_commit=True)
            ) as txn:
                assert isinstance(txn.store, type(store))
                txn.stage({"foo": "bar"})

            return await flavor.done(txn.read()), await flavor.read(store, "test_basic_transaction")

        record_1, record_2 = flavor.run(scenario)
        assert record_1
        assert record_1.result == {"foo": "bar"}
        assert record_2
        assert record_2 == record_1
        assert record_2.metadata.storage_key == "test_basic_transaction"

    def test_competing_read_transaction(self, store: Any, flavor: Flavor) -> None:
        """A READ_COMMITTED reader of a key a SERIALIZABLE writer holds (in another thread, or
        for async another task of the same loop, which the reader's wait must not block) waits
        for the writer's commit and reads its value. (Every store can be SERIALIZABLE: a
        difference from Prefect, README "SERIALIZABLE"; Prefect's test configures a lock
        manager.)

        Prefect: tests/test_transactions.py::TestWithResultStore::TestTransaction::
        test_competing_read_transaction, ::TestWithResultStore::TestAsyncTransaction::
        test_competing_read_transaction
        """
        write_transaction_open = flavor.event()

        async def writing_transaction() -> None:
            # isolation level is SERIALIZABLE, so a lock will be taken
            async with flavor.open(
                flavor.transaction(
                    key="test_competing_read_transaction",
                    store=store,
                    isolation_level=flavor.isolation_level.SERIALIZABLE,
                    write_on_commit=True,
                )
            ) as txn:
                write_transaction_open.set()
                # commit only once the reader is (very likely) waiting for the lock
                await flavor.sleep(0.1)
                txn.stage({"foo": "bar"})

        async def scenario() -> Any:
            writer = flavor.start(writing_transaction)
            await flavor.wait(write_transaction_open)
            async with flavor.open(
                flavor.transaction(key="test_competing_read_transaction", store=store)
            ) as txn:
                read_result = await flavor.done(txn.read())
            await flavor.finish(writer)
            return read_result

        read_result = flavor.run(scenario)
        assert read_result is not None
        assert read_result.result == {"foo": "bar"}

    def test_competing_write_transaction(self, store: Any, flavor: Flavor) -> None:
        """Of two SERIALIZABLE writers of one key (in two threads, or two tasks of one loop),
        the second waits at begin, then finds the first's record: its own staged value is
        ignored, and the key is free afterwards.

        Prefect: tests/test_transactions.py::TestWithResultStore::TestTransaction::
        test_competing_write_transaction, ::TestWithResultStore::TestAsyncTransaction::
        test_competing_write_transaction_async
        """
        transaction_1_open = flavor.event()

        def serializable() -> Any:
            return flavor.transaction(
                key="test_competing_write_transaction",
                store=store,
                isolation_level=flavor.isolation_level.SERIALIZABLE,
                write_on_commit=True,
            )

        async def winning_transaction() -> None:
            async with flavor.open(serializable()) as txn:
                transaction_1_open.set()
                txn.stage({"foo": "bar"})

        async def scenario() -> None:
            winner = flavor.start(winning_transaction)
            await flavor.wait(transaction_1_open)
            async with flavor.open(serializable()) as txn:
                txn.stage({"fizz": "buzz"})
            await flavor.finish(winner)

        flavor.run(scenario)
        record = store.read("test_competing_write_transaction")
        assert record
        # the first transaction wrote its result; the second one wrote nothing on exit
        assert record.result == {"foo": "bar"}
        assert not store.is_locked("test_competing_write_transaction")


@pytest.mark.usefixtures("default_store")
class TestGetAndSetData:
    def test_get_and_set_data(self, flavor: Flavor) -> None:
        """A value set on a transaction is returned by get().

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_get_and_set_data, ::TestGetAndSetData::TestAsyncTransaction::
        test_get_and_set_data
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction(key="test")) as txn:
                txn.set("x", 42)
                assert txn.get("x") == 42

        flavor.run(scenario)

    def test_get_and_set_data_in_nested_context(self, flavor: Flavor) -> None:
        """A child sees its parent's values and may shadow them without touching the parent.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_get_and_set_data_in_nested_context, ::TestGetAndSetData::TestAsyncTransaction::
        test_get_and_set_data_in_nested_context
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction(key="test")) as top:
                top.set("key", 42)
                async with flavor.open(flavor.transaction(key="nested")) as inner:
                    assert inner.get("key") == 42  # children inherit from their parents first
                    inner.set("key", "string")  # and can override
                    assert inner.get("key") == "string"
                    assert top.get("key") == 42
                assert top.get("key") == 42

        flavor.run(scenario)

    def test_get_and_set_data_doesnt_mutate_parent(self, flavor: Flavor) -> None:
        """get() returns copies: a child changing one and setting it leaves the parent's
        alone.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_get_and_set_data_doesnt_mutate_parent, ::TestGetAndSetData::
        TestAsyncTransaction::test_get_and_set_data_doesnt_mutate_parent
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction(key="test")) as top:
                top.set("key", {"x": [42]})
                async with flavor.open(flavor.transaction(key="nested")) as inner:
                    inner_value = inner.get("key")
                    inner_value["x"].append(43)
                    inner.set("key", inner_value)
                    assert inner.get("key") == {"x": [42, 43]}
                    assert top.get("key") == {"x": [42]}
                assert top.get("key") == {"x": [42]}

        flavor.run(scenario)

    def test_get_raises_on_unknown_but_allows_default(self, flavor: Flavor) -> None:
        """get() of an unknown name raises ValueError naming it, unless a default is given.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_get_raises_on_unknown_but_allows_default, ::TestGetAndSetData::
        TestAsyncTransaction::test_get_raises_on_unknown_but_allows_default
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction(key="test")) as txn:
                with pytest.raises(ValueError, match="foobar"):
                    txn.get("foobar")
                assert txn.get("foobar", None) is None
                assert txn.get("foobar", "string") == "string"

        flavor.run(scenario)

    def test_parent_values_set_after_child_open_are_available(self, flavor: Flavor) -> None:
        """A child sees values its parent sets after the child opened (both entered by hand:
        ``__enter__``, or awaited ``__aenter__``); mutating a returned value changes nothing
        stored.

        Prefect: tests/test_transactions.py::TestGetAndSetData::TestTransaction::
        test_parent_values_set_after_child_open_are_available, ::TestGetAndSetData::
        TestAsyncTransaction::test_parent_values_set_after_child_open_are_available
        """

        async def scenario() -> None:
            parent_transaction = flavor.transaction_class()
            child_transaction = flavor.transaction_class()

            await flavor.enter(parent_transaction)
            await flavor.enter(child_transaction)

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
                await flavor.exit(child_transaction)
                await flavor.exit(parent_transaction)

        flavor.run(scenario)


@pytest.mark.usefixtures("default_store")
class TestIsolationLevel:
    def test_default_isolation_level(self, flavor: Flavor) -> None:
        """transaction(key) or atransaction(key) without a level is READ_COMMITTED.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestTransaction::
        test_default_isolation_level, ::TestIsolationLevel::TestAsyncTransaction::
        test_default_isolation_level
        """

        async def scenario() -> None:
            async with flavor.open(flavor.transaction(key="test")) as txn:
                assert txn.isolation_level == IsolationLevel.READ_COMMITTED

        flavor.run(scenario)

    def test_inherited_isolation_level(self, store: ResultStore, flavor: Flavor) -> None:
        """An inner transaction inherits SERIALIZABLE from the outer one.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestTransaction::
        test_inherited_isolation_level, ::TestIsolationLevel::TestAsyncTransaction::
        test_inherited_isolation_level (whose stores need a MemoryLockManager)
        """

        async def scenario() -> None:
            async with (
                flavor.open(
                    flavor.transaction(
                        key="test", store=store, isolation_level=IsolationLevel.SERIALIZABLE
                    )
                ) as top,
                flavor.open(flavor.transaction(key="nested", store=store)) as inner,
            ):
                assert inner.isolation_level == top.isolation_level == IsolationLevel.SERIALIZABLE

        flavor.run(scenario)

    def test_raises_on_unsupported_isolation_level(self, flavor: Flavor) -> None:
        """SERIALIZABLE on a plain ResultStore() works, sync or async, and holds the key's
        lock. Difference from Prefect (README "SERIALIZABLE"): Prefect raises
        ConfigurationError ("Isolation level SERIALIZABLE is not supported by provided
        configuration") for a store without a lock manager; every sqlresults store keeps its
        locks in its database.

        Prefect: tests/test_transactions.py::TestIsolationLevel::TestTransaction::
        test_raises_on_unsupported_isolation_level, ::TestIsolationLevel::
        TestAsyncTransaction::test_raises_on_unsupported_isolation_level
        """
        store = ResultStore()

        async def scenario() -> BaseTransaction:
            async with flavor.open(
                flavor.transaction(
                    key="test", store=store, isolation_level=IsolationLevel.SERIALIZABLE
                )
            ) as txn:
                assert store.is_lock_holder("test", txn.holder)
            return txn

        assert flavor.run(scenario).is_committed()
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


def run_with_hook(flavor: Flavor, key: str, hook: Any, *, fail: bool) -> BaseTransaction:
    """Open ``flavor.transaction(key=key)``, stage a value with ``hook`` as its commit hook (or,
    when the body is to ``fail``, its rollback hook, the body then raising RuntimeError) and
    return the transaction once it has exited."""
    opened: list[BaseTransaction] = []
    hooks = {"on_rollback_hooks" if fail else "on_commit_hooks": [hook]}

    async def body() -> None:
        async with flavor.open(flavor.transaction(key=key)) as txn:
            opened.append(txn)
            txn.stage("foo", **hooks)
            if fail:
                raise RuntimeError("I left the stove on!")

    async def scenario() -> None:
        if fail:
            with pytest.raises(RuntimeError):
                await body()
        else:
            await body()

    flavor.run(scenario)
    [txn] = opened
    return txn


def awaiting(spy: AsyncMock) -> Any:
    """An async hook (a coroutine function, as Prefect's tests write it) that awaits ``spy``."""

    async def async_hook(txn: BaseTransaction) -> None:
        await spy(txn)

    return async_hook


@pytest.mark.usefixtures("default_store")
class TestHooks:
    def test_sync_on_commit_hook(self, flavor: Flavor) -> None:
        """A sync commit hook is called once, with the transaction.

        Prefect: tests/test_transactions.py::TestHooks::TestTransaction::test_sync_on_commit_hook,
        ::TestHooks::TestAsyncTransaction::test_sync_on_commit_hook
        """
        spy = MagicMock()
        txn = run_with_hook(flavor, "test_sync_on_commit_hook", spy, fail=False)
        spy.assert_called_once_with(txn)

    def test_sync_on_rollback_hook(self, flavor: Flavor) -> None:
        """A sync rollback hook is called once, with the transaction, when the body raises.

        Prefect: tests/test_transactions.py::TestHooks::TestTransaction::
        test_sync_on_rollback_hook, ::TestHooks::TestAsyncTransaction::
        test_sync_on_rollback_hook
        """
        spy = MagicMock()
        txn = run_with_hook(flavor, "test_sync_on_rollback_hook", spy, fail=True)
        spy.assert_called_once_with(txn)

    def test_async_on_commit_hook(self, flavor: Flavor) -> None:
        """An async commit hook is run to completion (awaited, by an async transaction), once,
        with the transaction.

        Prefect: tests/test_transactions.py::TestHooks::TestTransaction::
        test_async_on_commit_hook, ::TestHooks::TestAsyncTransaction::test_async_on_commit_hook
        """
        spy = AsyncMock()
        txn = run_with_hook(flavor, "test_async_on_commit_hook", awaiting(spy), fail=False)
        spy.assert_called_once_with(txn)
        spy.assert_awaited_once_with(txn)

    def test_async_on_rollback_hook(self, flavor: Flavor) -> None:
        """An async rollback hook is run to completion (awaited, by an async transaction),
        once, with the transaction, when the body raises.

        Prefect: tests/test_transactions.py::TestHooks::TestTransaction::
        test_async_on_rollback_hook, ::TestHooks::TestAsyncTransaction::
        test_async_on_rollback_hook
        """
        spy = AsyncMock()
        txn = run_with_hook(flavor, "test_async_on_rollback_hook", awaiting(spy), fail=True)
        spy.assert_called_once_with(txn)
        spy.assert_awaited_once_with(txn)
