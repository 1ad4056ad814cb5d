"""Prefect's own transaction tests, ported: ``tests/test_transactions.py`` of Prefect
(PrefectHQ/prefect@ce79dd3, the sync ``Transaction`` half).

Each test names the Prefect test it mirrors. Where sqlresults differs from Prefect on purpose,
the test asserts our behaviour and its docstring names the difference, which the README's
"Differences from Prefect" table lists.
"""

from __future__ import annotations

import pytest

from sqlresults.transactions import Transaction, TransactionState


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
