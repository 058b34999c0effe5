"""The ledger under random sequences of deposits, transfers, replays and copy-wallet funding.

After every step: Σ balances = 0, every cached balance equals the sum of its
transfers, nothing bounded is negative, and the database agrees with a plain
Python model of what each account should hold.
"""

from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from copytrading import ledger
from copytrading.errors import InsufficientFunds
from copytrading.models import Account, AccountKind, Transfer, TransferKind
from tests.factories import UserFactory

amounts = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("5000"), places=8)


class LedgerMachine(RuleBasedStateMachine):
    users = Bundle("users")
    keys = Bundle("keys")

    def __init__(self):
        super().__init__()
        # Every example runs inside a savepoint that teardown rolls back, so
        # each one starts from the same empty ledger.
        self._savepoint = transaction.savepoint()
        self.external = ledger.system_account(AccountKind.EXTERNAL)
        self.expected: dict[int, Decimal] = {}
        self.wallets: list[int] = []  # non-system accounts: main and copy wallets
        self.terms: dict[str, tuple[int, int, Decimal]] = {}
        self.counter = 0

    def teardown(self):
        transaction.savepoint_rollback(self._savepoint)

    def _key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}:{self.counter}"

    def _move(self, debit: int, credit: int, amount: Decimal, kind: str, prefix: str) -> str | None:
        key = self._key(prefix)
        free = None if debit == self.external.pk else self.expected[debit]
        if free is not None and amount > free:
            with pytest.raises(InsufficientFunds):
                ledger.transfer(debit_id=debit, credit_id=credit, amount=amount, kind=kind, key=key)
            assert not Transfer.objects.filter(idempotency_key=key).exists()
            return None
        _, created = ledger.transfer(debit_id=debit, credit_id=credit, amount=amount, kind=kind, key=key)
        assert created
        self.expected[debit] = self.expected.get(debit, Decimal(0)) - amount
        self.expected[credit] = self.expected.get(credit, Decimal(0)) + amount
        self.terms[key] = (debit, credit, amount)
        return key

    def _snapshot(self):
        return (
            dict(Account.objects.values_list("pk", "balance")),
            Transfer.objects.count(),
        )

    @initialize(target=users, n=st.integers(min_value=2, max_value=4))
    def open_users(self, n):
        self.expected[self.external.pk] = Decimal(0)
        mains = []
        for _ in range(n):
            main = ledger.main_account_for(UserFactory())
            self.expected[main.pk] = Decimal(0)
            self.wallets.append(main.pk)
            mains.append(main.pk)
        return multiple(*mains)

    @rule(target=keys, main=users, amount=amounts)
    def deposit(self, main, amount):
        key = self._move(self.external.pk, main, amount, TransferKind.DEPOSIT, "deposit")
        return key if key else multiple()

    @rule(target=keys, data=st.data(), amount=amounts)
    def move_between_wallets(self, data, amount):
        debit = data.draw(st.sampled_from(self.wallets), label="debit")
        credit = data.draw(st.sampled_from([w for w in self.wallets if w != debit]), label="credit")
        key = self._move(debit, credit, amount, TransferKind.COPY_FUND, "move")
        return key if key else multiple()

    @rule(target=keys, main=users, share=st.fractions(min_value=0, max_value=1))
    def subscribe_like_funding(self, main, share):
        """A new copy wallet funded from the main wallet (sometimes more than it holds)."""
        wallet = ledger.account_open(kind=AccountKind.COPY, name="copy")
        self.expected[wallet.pk] = Decimal(0)
        self.wallets.append(wallet.pk)
        amount = (self.expected[main] * Decimal(share.numerator) / Decimal(share.denominator)).quantize(
            Decimal("0.00000001")
        )
        if amount <= 0:
            amount = Decimal("0.00000001")
        key = self._move(main, wallet.pk, amount, TransferKind.COPY_FUND, "fund")
        return key if key else multiple()

    @rule(key=keys)
    def replay(self, key):
        debit, credit, amount = self.terms[key]
        before = self._snapshot()
        row, created = ledger.transfer(
            debit_id=debit, credit_id=credit, amount=amount, kind=TransferKind.COPY_FUND, key=key
        )
        assert created is False
        assert (row.debit_id, row.credit_id, row.amount) == (debit, credit, amount)
        assert self._snapshot() == before

    @invariant()
    def ledger_balances(self):
        report = ledger.ledger_check()
        assert report.ok, report

    @invariant()
    def database_matches_the_model(self):
        if not self.expected:
            return
        actual = dict(Account.objects.filter(pk__in=list(self.expected)).values_list("pk", "balance"))
        assert actual == self.expected
        assert all(actual[w] >= 0 for w in self.wallets)


@pytest.mark.django_db
def test_ledger_state_machine():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
