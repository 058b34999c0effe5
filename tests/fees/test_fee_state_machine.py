"""Profit share under random sequences of closes (profit and loss, replayed),
settlement runs and leader withdrawals, on real positions, under either fee
model (per trade, or high-water mark). Each close accrues through the venue's
close listener, as in production; the test then reports it again by hand.

After every step: Σ ledger = 0 with every cached balance equal to its
transfers and nothing negative; total fees = Σ accruals = what left the copy
wallets; escrow holds exactly the unsettled fees; the leader's profit account
holds exactly the settled leader parts minus withdrawals (so withdrawals
never exceed earnings); every withdrawal is whole cents.
"""

from decimal import ROUND_DOWN, Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from copytrading import ledger, trading
from copytrading.errors import DomainError, InsufficientFunds
from copytrading.models import Account, AccountKind, Instrument, Transfer
from copytrading.services import price_set, wallet_deposit
from fees import math as fee_math
from fees.checks import fee_books_check
from fees.models import AccrualStatus, FeeAccrual, FeeGroup, FeeModel, LeaderProfitAccount, LeaderWithdrawal
from fees.services import (
    KIND_ACCRUAL,
    ClosedMirror,
    fees_accrue,
    fees_settle,
    leader_group_assign,
    leader_withdrawal_create,
    min_withdrawal,
)
from followers.services import subscription_create
from portfolios.fee_settings import portfolio_fee_model_set
from portfolios.services import portfolio_create
from tests.factories import UserFactory

D = Decimal
ETH_PERP = "ETH/USDT:USDT"
ENTRY = D("3200")
CENT = D("0.01")
pcts = st.decimals(min_value=0, max_value=50, places=2)


def total(values) -> Decimal:
    return sum(values, D("0"))


class FeeMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # Each example runs in a savepoint rolled back at teardown.
        self._savepoint = transaction.savepoint()
        self.eth = Instrument.objects.get(symbol=ETH_PERP)
        self.closes: list[ClosedMirror] = []
        self.expected_fees: dict[int, Decimal] = {}  # position id -> fee
        self.withdrawn = D("0")
        # The high-water-mark model's state, kept independently of the code.
        self.result: dict[int, Decimal] = {}  # subscription -> Σ realized PnL of closed mirrors
        self.mark: dict[int, Decimal] = {}  # subscription -> mark (absent until first charged)

    def teardown(self):
        transaction.savepoint_rollback(self._savepoint)

    @initialize(
        share=pcts,
        cut=st.decimals(min_value=0, max_value=100, places=2),
        followers=st.integers(1, 3),
        fee_model=st.sampled_from(FeeModel.values),
    )
    def world(self, share, cut, followers, fee_model):
        self.share, self.cut, self.fee_model = share, cut, fee_model
        leader = UserFactory()
        self.portfolio = portfolio_create(leader=leader, name="book", profit_share_pct=share)
        portfolio_fee_model_set(portfolio=self.portfolio, fee_model=fee_model)
        group = FeeGroup.objects.create(
            name=f"g{self.portfolio.pk}", max_profit_share_pct=D("50"), platform_cut_pct=cut
        )
        leader_group_assign(leader=leader, fee_group=group)
        self.subs = []
        for _ in range(followers):
            user = UserFactory()
            wallet_deposit(user=user, amount=D("5000"))
            self.subs.append(
                subscription_create(follower=user, portfolio=self.portfolio, amount=D("5000"), multiplier=D("1"))
            )

    def _close(self, sub, side: str, quantity: Decimal, move: Decimal) -> ClosedMirror:
        price_set(instrument=self.eth, price=ENTRY)
        (step,) = trading.margin_market_order(
            account_id=sub.copy_account_id, instrument=self.eth, side=side, quantity=quantity, leverage=5
        )
        price_set(instrument=self.eth, price=ENTRY + move)
        done = trading.position_close(position_id=step.fill.position.pk, account_id=sub.copy_account_id)
        pnl = done.fill.realized_pnl
        return ClosedMirror(
            position_id=step.fill.position.pk,
            subscription_id=sub.pk,
            portfolio_id=self.portfolio.pk,
            copy_account_id=sub.copy_account_id,
            leader_user_id=self.portfolio.leader_id,
            realized_pnl=pnl,
            profit_share_pct=self.share,
            fee_model=self.fee_model,
        )

    def _expected(self, close: ClosedMirror) -> fee_math.FeeSplit:
        """The fee this close owes, by the model's definition."""
        sub = close.subscription_id
        before = self.result.get(sub, D("0"))
        self.result[sub] = before + close.realized_pnl
        if close.realized_pnl <= 0 or self.share == 0:
            return fee_math.NO_FEE
        if self.fee_model == FeeModel.PER_TRADE:
            profit = close.realized_pnl
        else:
            mark = max(self.mark.get(sub, D("0")), before, D("0"))
            profit = self.result[sub] - mark
        split = fee_math.fee_split(profit=profit, share_pct=self.share, platform_cut_pct=self.cut)
        if split.fee and self.fee_model == FeeModel.HIGH_WATER_MARK:
            self.mark[sub] = self.result[sub]
        return split

    @rule(
        data=st.data(),
        side=st.sampled_from(["buy", "sell"]),
        lots=st.integers(min_value=1, max_value=200),
        ticks=st.integers(min_value=-30000, max_value=30000),
        replay=st.booleans(),
    )
    def close_a_mirror(self, data, side, lots, ticks, replay):
        sub = data.draw(st.sampled_from(self.subs), label="subscription")
        wallet_before = Account.objects.get(pk=sub.copy_account_id).balance
        close = self._close(sub, side, lots * CENT, ticks * CENT)  # the listener accrues here
        created = list(FeeAccrual.objects.filter(source_position_id=close.position_id))
        expected = self._expected(close)
        if expected.fee:
            (accrual,) = created
            assert (accrual.fee, accrual.platform_part, accrual.leader_part, accrual.fee_model) == (
                expected.fee,
                expected.platform_part,
                expected.leader_part,
                self.fee_model,
            )
            self.expected_fees[close.position_id] = expected.fee
        else:
            assert created == []  # a loss, a fee below 1e-8, or still under the high-water mark
        # Reported again (once, or twice in one call): nothing more.
        assert fees_accrue(closes=[close, close] if replay else [close]) == []
        balance = Account.objects.get(pk=sub.copy_account_id).balance
        assert balance == wallet_before + close.realized_pnl - expected.fee
        self.closes.append(close)

    @precondition(lambda self: self.closes)
    @rule()
    def replay_every_close(self):
        before = (Transfer.objects.count(), sorted(Account.objects.values_list("pk", "balance")))
        assert fees_accrue(closes=self.closes) == []
        assert (Transfer.objects.count(), sorted(Account.objects.values_list("pk", "balance"))) == before

    @rule(limit=st.integers(min_value=1, max_value=4))
    def settle(self, limit):
        waiting = FeeAccrual.objects.filter(status=AccrualStatus.ACCRUED).count()
        result = fees_settle(limit=limit)
        assert (result.claimed, result.settled, result.failed) == (min(limit, waiting),) * 2 + (0,)

    @rule(
        amount=st.one_of(
            st.none(),
            st.decimals(min_value=D("0.5"), max_value=D("5"), places=4),
            st.decimals(min_value=D("0.001"), max_value=D("100"), places=8),
        )
    )
    def withdraw(self, amount):
        link = LeaderProfitAccount.objects.filter(portfolio_id=self.portfolio.pk).first()
        free = Account.objects.get(pk=link.account_id).free if link else None
        call = {"leader": self.portfolio.leader, "portfolio_id": self.portfolio.pk, "amount": amount}
        if free is None:
            with pytest.raises(InsufficientFunds):
                leader_withdrawal_create(**call)
            return
        cents = (amount if amount is not None else free).quantize(CENT, rounding=ROUND_DOWN)
        if cents < min_withdrawal() or cents > free:
            with pytest.raises(DomainError) as exc:
                leader_withdrawal_create(**call)
            assert exc.value.code == ("BELOW_MIN_WITHDRAWAL" if cents < min_withdrawal() else "INSUFFICIENT_FUNDS")
            return
        withdrawal = leader_withdrawal_create(**call)
        assert withdrawal.amount == cents
        self.withdrawn += cents

    @invariant()
    def ledger_balances(self):
        report = ledger.ledger_check()
        assert report.ok, report
        books = fee_books_check()
        assert books.ok, books

    @invariant()
    def fees_add_up(self):
        accruals = list(
            FeeAccrual.objects.values_list("source_position_id", "fee", "platform_part", "leader_part", "status")
        )
        fees = {pos: fee for pos, fee, *_ in accruals}
        assert fees == self.expected_fees
        debited = total(Transfer.objects.filter(kind=KIND_ACCRUAL).values_list("amount", flat=True))
        assert debited == total(fees.values())

        settled = [a for a in accruals if a[4] == AccrualStatus.SETTLED]
        escrow = Account.objects.filter(kind=AccountKind.FEE_ESCROW).first()
        assert (escrow.balance if escrow else 0) == total(a[1] for a in accruals if a[4] != AccrualStatus.SETTLED)
        platform = Account.objects.filter(kind=AccountKind.PLATFORM_FEES).first()
        assert (platform.balance if platform else 0) == total(a[2] for a in settled)

        earned = total(a[3] for a in settled)
        withdrawals = list(LeaderWithdrawal.objects.values_list("amount", flat=True))
        assert total(withdrawals) == self.withdrawn <= earned
        assert all(w == w.quantize(CENT) and w >= min_withdrawal() for w in withdrawals)
        link = LeaderProfitAccount.objects.filter(portfolio_id=self.portfolio.pk).first()
        assert (Account.objects.get(pk=link.account_id).balance if link else 0) == earned - self.withdrawn


@pytest.fixture
def no_spread(settings):
    settings.PAPER_SPREAD_BPS = D("0")


@pytest.mark.django_db
def test_fee_state_machine(no_spread, instruments):
    run_state_machine_as_test(
        FeeMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
