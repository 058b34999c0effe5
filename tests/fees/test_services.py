"""Profit share through the services, on real mirrors closed by propagation."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from copytrading import ledger
from copytrading.errors import Conflict, DomainError, InsufficientFunds
from copytrading.ledger import ledger_check
from copytrading.models import Account, AccountKind, Position, PositionStatus, Transfer
from fees import services
from fees.models import (
    AccrualStatus,
    AuditAction,
    FeeAccrual,
    FeeAuditEntry,
    FeeGroup,
    LeaderGroupAssignment,
    LeaderProfitAccount,
    LeaderWithdrawal,
    LimitsGroup,
)
from fees.selectors import leader_caps, stuck_accruals
from fees.services import KIND_ACCRUAL, fee_accrual_resolve, fees_accrue, fees_settle, leader_withdrawal_create
from followers.services import subscription_position_close
from tests.factories import StaffFactory, UserFactory
from tests.fees.conftest import D, accrue, balance, closed_mirrors, escrow, platform

pytestmark = pytest.mark.django_db


def profit_account(portfolio) -> Account:
    return LeaderProfitAccount.objects.get(portfolio_id=portfolio.pk).account


def test_worked_example_accrues_into_escrow_then_settles_6_to_platform_and_9_to_leader(fee_world):
    portfolio = fee_world.leader(share="15.00", platform_cut="40.00")
    sub = fee_world.follower(portfolio)  # 0.5 of the leader's 1 ETH
    fee_world.round_trip(portfolio, "3200", "3400")  # mirror realizes 0.5 * 200 = 100

    (accrual,) = accrue(sub)
    assert (accrual.profit, accrual.share_pct, accrual.platform_cut_pct) == (D("100"), D("15"), D("40"))
    assert (accrual.fee, accrual.platform_part, accrual.leader_part) == (D("15"), D("6"), D("9"))
    assert accrual.status == AccrualStatus.ACCRUED
    # Debited at once: the copy wallet holds its deposit + profit - fee; escrow holds the fee.
    assert balance(sub.copy_account_id) == D("5085")
    assert escrow() == D("15")
    assert not LeaderProfitAccount.objects.exists()

    result = fees_settle()
    assert (result.claimed, result.settled, result.failed) == (1, 1, 0)
    accrual.refresh_from_db()
    assert accrual.status == AccrualStatus.SETTLED and accrual.settled_at is not None
    assert escrow() == 0
    assert platform() == D("6")
    leader_account = profit_account(portfolio)
    assert (leader_account.kind, leader_account.user_id, leader_account.balance) == (
        AccountKind.LEADER_PROFIT,
        portfolio.leader_id,
        D("9"),
    )
    assert list(accrual.audit.values_list("action", flat=True)) == [AuditAction.ACCRUED, AuditAction.SETTLED]
    accrued_audit = accrual.audit.get(action=AuditAction.ACCRUED).detail
    assert accrued_audit["profit"] == "100.00000000" and accrued_audit["share_pct"] == "15.00"
    assert ledger_check().ok


def test_a_loss_accrues_nothing_and_moves_nothing(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3000")  # mirror loses 100

    assert accrue(sub) == []
    assert not FeeAccrual.objects.exists()
    assert not Transfer.objects.filter(kind=KIND_ACCRUAL).exists()
    assert balance(sub.copy_account_id) == D("4900")
    assert fees_settle().claimed == 0


def test_the_same_close_processed_twice_debits_once(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")  # the close listener accrues as the mirror closes
    closes = closed_mirrors(sub)

    again = fees_accrue(closes=closes)  # the same close reported again
    twice = fees_accrue(closes=closes + closes)  # a replayed chunk, and a duplicate inside it

    assert again == twice == []
    assert FeeAccrual.objects.count() == 1
    assert Transfer.objects.filter(kind=KIND_ACCRUAL).count() == 1
    assert balance(sub.copy_account_id) == D("5085")
    fees_settle()
    assert fees_accrue(closes=closes) == []  # also after settlement
    assert (escrow(), platform(), profit_account(portfolio).balance) == (0, D("6"), D("9"))
    assert ledger_check().ok


def test_the_first_report_of_a_close_accrues_and_the_second_does_not(fee_world, no_close_listener):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")  # no listener: nothing accrued yet
    assert not FeeAccrual.objects.exists() and balance(sub.copy_account_id) == D("5100")
    closes = closed_mirrors(sub)

    first = fees_accrue(closes=closes)
    again = fees_accrue(closes=closes + closes)

    assert [a.fee for a in first] == [D("15")] and again == []
    assert Transfer.objects.filter(kind=KIND_ACCRUAL).count() == 1
    assert balance(sub.copy_account_id) == D("5085")


def test_many_followers_accrue_in_one_call(fee_world):
    portfolio = fee_world.leader()
    subs = [fee_world.follower(portfolio, multiplier=m) for m in ("0.5", "0.25", "1")]
    fee_world.round_trip(portfolio, "3200", "3400")

    accruals = accrue(*subs)
    assert sorted(a.fee for a in accruals) == [D("7.5"), D("15"), D("30")]  # 15 % of 50, 100, 200
    fees_settle()
    assert profit_account(portfolio).balance == D("31.5")  # 60 % of 52.5
    assert platform() == D("21")
    assert ledger_check().ok


def test_partial_closes_are_charged_once_on_the_whole_position_at_its_close(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    leader_position_id = fee_world.open(portfolio)
    fee_world.price("3400")
    fee_world.close(portfolio, leader_position_id, "0.5")  # the mirror reduces 0.25 at +200: +50
    mirror = Position.objects.get(account_id=sub.copy_account_id)
    assert mirror.status == PositionStatus.OPEN and mirror.realized_pnl == D("50")

    # An open position is never charged, even if reported.
    reported = services.ClosedMirror(
        mirror.pk, sub.pk, portfolio.pk, sub.copy_account_id, portfolio.leader_id, D("50"), D("15.00")
    )
    assert fees_accrue(closes=[reported]) == []
    assert not FeeAccrual.objects.exists()

    fee_world.price("3300")
    fee_world.close(portfolio, leader_position_id)  # the rest at +100: +25
    (accrual,) = accrue(sub)
    assert (accrual.profit, accrual.fee) == (D("75"), D("11.25"))


def test_a_followers_own_close_accrues(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    fee_world.open(portfolio)
    fee_world.price("3500")
    mirror = Position.objects.get(account_id=sub.copy_account_id)
    subscription_position_close(subscription=sub, position_id=mirror.pk)

    (accrual,) = accrue(sub)
    assert accrual.source_position_id == mirror.pk
    assert (accrual.profit, accrual.fee) == (D("150"), D("22.5"))


def test_the_share_charged_is_capped_by_the_leaders_groups(fee_world):
    portfolio = fee_world.leader(share="30.00")
    strict = FeeGroup.objects.create(name="strict", max_profit_share_pct=D("20.00"), platform_cut_pct=D("10.00"))
    services.leader_group_assign(leader=portfolio.leader, fee_group=strict)
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")

    (accrual,) = accrue(sub)
    assert (accrual.portfolio_share_pct, accrual.share_pct, accrual.fee_group_id) == (D("30"), D("20"), strict.pk)
    assert (accrual.fee, accrual.platform_part, accrual.leader_part) == (D("20"), D("2"), D("18"))


def test_a_wallet_short_of_the_fee_is_charged_its_free_balance_and_the_rest_is_recorded(fee_world, no_close_listener):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio, amount="500")
    fee_world.round_trip(portfolio, "3200", "3400")  # +100: wallet 600, fee due 15
    # Before the fee is taken, the wallet's money goes into margin elsewhere:
    # 0.046 BTC at 64,000 and 5x locks 588.80, leaving 11.20 free.
    with fee_world.capture(execute=True):
        from portfolios.services import portfolio_order_place

        portfolio_order_place(portfolio=portfolio, symbol="BTC/USDT:USDT", side="buy", quantity=D("0.092"), leverage=5)
    wallet = Account.objects.get(pk=sub.copy_account_id)
    assert wallet.free == D("11.2")

    (accrual,) = fees_accrue(closes=closed_mirrors(sub))
    assert (accrual.fee_due, accrual.available, accrual.fee) == (D("15"), D("11.2"), D("11.2"))
    assert (accrual.platform_part, accrual.leader_part) == (D("4.48"), D("6.72"))
    wallet.refresh_from_db()
    assert wallet.free == 0 and wallet.balance == wallet.locked
    assert ledger_check().ok


def test_settlement_runs_twice_without_moving_anything_twice(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    accrue(sub)
    fees_settle()
    transfers = Transfer.objects.count()

    assert fees_settle().claimed == 0
    assert Transfer.objects.count() == transfers
    assert (escrow(), platform(), profit_account(portfolio).balance) == (0, D("6"), D("9"))


def test_a_crash_after_the_leader_credit_but_before_marking_is_recovered_without_double_credit(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    (accrual,) = accrue(sub)
    # The state an interrupted run leaves if the credit and the status change
    # were ever split: the leader's part moved under its key, the accrual still
    # "accrued", the platform's part not moved.
    accounts = services.leader_profit_accounts({(portfolio.pk, portfolio.leader_id)})
    ledger.transfer(
        debit_id=ledger.system_account(AccountKind.FEE_ESCROW).pk,
        credit_id=accounts[portfolio.pk],
        amount=D("9"),
        kind=services.KIND_TO_LEADER,
        key=services.leader_key(accrual.source_position_id),
    )

    assert fees_settle().settled == 1
    assert (escrow(), platform(), profit_account(portfolio).balance) == (0, D("6"), D("9"))
    assert Transfer.objects.filter(kind=services.KIND_TO_LEADER).count() == 1
    detail = accrual.audit.get(action=AuditAction.SETTLED).detail
    assert detail["already_moved"] == [services.leader_key(accrual.source_position_id)]
    assert ledger_check().ok


def test_a_worker_killed_mid_settlement_leaves_nothing_half_done_and_the_next_run_settles_once(fee_world, monkeypatch):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    (accrual,) = accrue(sub)
    real_apply = services.ledger.apply_transfers

    def apply_then_die(specs, **kwargs):
        real_apply(specs, **kwargs)
        raise SystemExit("worker killed after the credit, before the accrual was marked")

    monkeypatch.setattr(services.ledger, "apply_transfers", apply_then_die)
    with pytest.raises(SystemExit):
        fees_settle()
    accrual.refresh_from_db()
    assert accrual.status == AccrualStatus.ACCRUED
    assert (escrow(), platform()) == (D("15"), 0)

    monkeypatch.setattr(services.ledger, "apply_transfers", real_apply)
    assert fees_settle().settled == 1
    assert (escrow(), platform(), profit_account(portfolio).balance) == (0, D("6"), D("9"))
    assert ledger_check().ok


def test_a_stuck_accrual_is_isolated_shown_to_staff_and_resolved_by_one_action(fee_world, monkeypatch):
    portfolio = fee_world.leader()
    subs = [fee_world.follower(portfolio) for _ in range(3)]
    fee_world.round_trip(portfolio, "3200", "3400")
    accruals = accrue(*subs)
    stuck = accruals[1]
    real_apply = services.ledger.apply_transfers

    def refuse_one(specs, **kwargs):
        if any(s.key == services.platform_key(stuck.source_position_id) for s in specs):
            raise DatabaseError("could not serialize access")
        return real_apply(specs, **kwargs)

    monkeypatch.setattr(services.ledger, "apply_transfers", refuse_one)
    result = fees_settle()
    assert (result.claimed, result.settled, result.failed) == (3, 2, 1)
    stuck.refresh_from_db()
    assert stuck.status == AccrualStatus.FAILED and "could not serialize access" in stuck.error
    assert list(stuck_accruals()) == [stuck]
    assert escrow() == D("15")  # only the stuck fee is still held
    assert fees_settle().claimed == 0  # a failed accrual waits for staff

    monkeypatch.setattr(services.ledger, "apply_transfers", real_apply)
    staff = StaffFactory()
    resolved = fee_accrual_resolve(accrual_id=stuck.pk, actor=staff)
    assert resolved.status == AccrualStatus.SETTLED and resolved.error == ""
    assert (escrow(), platform(), profit_account(portfolio).balance) == (0, D("18"), D("27"))
    assert stuck.audit.filter(action=AuditAction.RESOLVED, actor=staff).count() == 1

    # A second click changes nothing.
    transfers = Transfer.objects.count()
    assert fee_accrual_resolve(accrual_id=stuck.pk, actor=staff).status == AccrualStatus.SETTLED
    assert Transfer.objects.count() == transfers
    assert not stuck_accruals().exists()
    assert ledger_check().ok


def test_resolve_records_a_failure_that_persists(fee_world, monkeypatch):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    (accrual,) = accrue(sub)

    def broken(specs, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(services.ledger, "apply_transfers", broken)
    resolved = fee_accrual_resolve(accrual_id=accrual.pk)
    assert resolved.status == AccrualStatus.FAILED and "disk full" in resolved.error
    assert resolved.attempts == 1
    assert escrow() == D("15")
    with pytest.raises(DomainError) as exc:
        fee_accrual_resolve(accrual_id=10**9)
    assert exc.value.code == "NOT_FOUND"


# --- withdrawals ---------------------------------------------------------------------


@pytest.fixture
def earned(fee_world):
    """A portfolio whose leader has 9.00 settled in the profit account."""
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    accrue(sub)
    fees_settle()
    return portfolio


def main_balance(user) -> Decimal:
    return ledger.main_account_for(user).balance


def test_a_withdrawal_moves_whole_cents_to_the_main_wallet(earned):
    leader = earned.leader
    before = main_balance(leader)
    w = leader_withdrawal_create(leader=leader, portfolio_id=earned.pk, amount=D("5.5599"))
    assert (w.requested_amount, w.amount, w.currency) == (D("5.5599"), D("5.55"), "USDT")
    assert main_balance(leader) == before + D("5.55")
    assert profit_account(earned).balance == D("3.45")

    everything = leader_withdrawal_create(leader=leader, portfolio_id=earned.pk)
    assert everything.amount == D("3.45")
    assert profit_account(earned).balance == 0
    assert LeaderWithdrawal.objects.filter(portfolio_id=earned.pk).count() == 2
    assert ledger_check().ok


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("0.99", "BELOW_MIN_WITHDRAWAL"),
        ("0.999999", "BELOW_MIN_WITHDRAWAL"),
        ("9.01", "INSUFFICIENT_FUNDS"),
        ("0", "INVALID_AMOUNT"),
        ("-5", "INVALID_AMOUNT"),
    ],
)
def test_withdrawals_below_the_minimum_or_above_the_balance_are_refused(earned, amount, code):
    leader = earned.leader
    with pytest.raises(DomainError) as exc:
        leader_withdrawal_create(leader=leader, portfolio_id=earned.pk, amount=D(amount))
    assert exc.value.code == code
    assert profit_account(earned).balance == D("9")
    assert not LeaderWithdrawal.objects.exists()


def test_a_withdrawal_cannot_leave_a_sub_cent_remainder_negative(fee_world):
    portfolio = fee_world.leader(share="15.00", platform_cut="33.33")
    sub = fee_world.follower(portfolio, multiplier="0.37")
    fee_world.round_trip(portfolio, "3200", "3401.37")  # mirror +74.5069 (0.37 ETH)
    accrue(sub)
    fees_settle()
    held = profit_account(portfolio).balance
    assert held != held.quantize(D("0.01"))  # sub-cent earnings

    w = leader_withdrawal_create(leader=portfolio.leader, portfolio_id=portfolio.pk)
    assert w.amount == held.quantize(D("0.01"), rounding="ROUND_DOWN")
    assert D("0") <= profit_account(portfolio).balance < D("0.01")
    with pytest.raises(DomainError) as exc:
        leader_withdrawal_create(leader=portfolio.leader, portfolio_id=portfolio.pk)
    assert exc.value.code == "BELOW_MIN_WITHDRAWAL"


def test_a_withdrawal_replayed_with_its_idempotency_key_happens_once(earned):
    leader = earned.leader
    first = leader_withdrawal_create(leader=leader, portfolio_id=earned.pk, amount=D("2"), idempotency_key="k-1")
    again = leader_withdrawal_create(leader=leader, portfolio_id=earned.pk, amount=D("2"), idempotency_key="k-1")
    assert again.pk == first.pk
    assert profit_account(earned).balance == D("7")
    with pytest.raises(Conflict):
        leader_withdrawal_create(leader=leader, portfolio_id=earned.pk, amount=D("3"), idempotency_key="k-1")


def test_nobody_else_can_withdraw_a_portfolios_earnings(earned):
    with pytest.raises(InsufficientFunds):
        leader_withdrawal_create(leader=UserFactory(), portfolio_id=earned.pk, amount=D("5"))
    assert profit_account(earned).balance == D("9")


# --- groups and caps ---------------------------------------------------------------------


def test_leaders_fall_into_default_groups_until_assigned(db):
    leader = UserFactory()
    caps = leader_caps(leader.pk)
    assert (caps.max_profit_share_pct, caps.platform_cut_pct, caps.max_followers) == (D("50"), D("20"), 1000)
    assert FeeGroup.objects.filter(is_default=True).count() == LimitsGroup.objects.filter(is_default=True).count() == 1

    limits = LimitsGroup.objects.create(name="small", max_followers=3, max_profit_share_pct=D("10.00"))
    staff = StaffFactory()
    assignment = services.leader_group_assign(leader=leader, limits_group=limits, actor=staff)
    assert (assignment.fee_group.is_default, assignment.limits_group, assignment.assigned_by) == (True, limits, staff)
    caps = leader_caps(leader.pk)
    # The lower cap of the two groups applies.
    assert (caps.max_profit_share_pct, caps.max_followers) == (D("10"), 3)
    assert LeaderGroupAssignment.objects.count() == 1


def test_profit_share_and_follower_caps_are_enforced(db):
    leader = UserFactory()
    group = FeeGroup.objects.create(name="pro", max_profit_share_pct=D("25.00"), platform_cut_pct=D("30.00"))
    services.leader_group_assign(leader=leader, fee_group=group)

    assert services.profit_share_validate(leader=leader, profit_share_pct=D("25.00")).fee_group_id == group.pk
    for bad, code in (
        ("25.01", "PROFIT_SHARE_ABOVE_CAP"),
        ("-1", "INVALID_PROFIT_SHARE"),
        ("10.005", "INVALID_PROFIT_SHARE"),
    ):
        with pytest.raises(DomainError) as exc:
            services.profit_share_validate(leader=leader, profit_share_pct=D(bad))
        assert (exc.value.code, exc.value.field) == (code, "profit_share_pct")

    services.follower_capacity_validate(leader=leader, current_followers=999)
    with pytest.raises(DomainError) as exc:
        services.follower_capacity_validate(leader=leader, current_followers=1000)
    assert (exc.value.code, exc.value.status) == ("FOLLOWER_LIMIT_REACHED", 409)


def _queries_to_accrue_and_settle(fee_world, followers: int) -> tuple[int, int]:
    """Accrual driven by hand (the listener is off), then settlement."""
    portfolio = fee_world.leader()
    subs = [fee_world.follower(portfolio) for _ in range(followers)]
    fee_world.round_trip(portfolio, "3200", "3400")
    closes = closed_mirrors(*subs)
    # Created once per system / per portfolio ever, not per call.
    ledger.system_account(AccountKind.FEE_ESCROW)
    ledger.system_account(AccountKind.PLATFORM_FEES)
    services.leader_profit_accounts({(portfolio.pk, portfolio.leader_id)})
    with CaptureQueriesContext(connection) as accrual_queries:
        assert len(fees_accrue(closes=closes)) == followers
    with CaptureQueriesContext(connection) as settle_queries:
        assert fees_settle().settled == followers
    return len(accrual_queries), len(settle_queries)


def test_accrual_and_settlement_cost_a_constant_number_of_queries(fee_world, no_close_listener):
    """The hook runs inside the propagation chunk (500 closes): its cost must
    not grow with the number of closes."""
    assert _queries_to_accrue_and_settle(fee_world, 2) == _queries_to_accrue_and_settle(fee_world, 12)


def test_audit_rows_exist_for_every_accrual_and_settlement(fee_world):
    portfolio = fee_world.leader()
    subs = [fee_world.follower(portfolio) for _ in range(2)]
    fee_world.round_trip(portfolio, "3200", "3400")
    accrue(*subs)
    fees_settle()
    actions = sorted(FeeAuditEntry.objects.values_list("accrual_id", "action"))
    ids = sorted(FeeAccrual.objects.values_list("pk", flat=True))
    assert actions == sorted([(pk, AuditAction.ACCRUED) for pk in ids] + [(pk, AuditAction.SETTLED) for pk in ids])


def test_the_minimum_applies_after_rounding_down_to_cents(earned, settings):
    settings.FEES_MIN_WITHDRAWAL = D("1.01")
    with pytest.raises(DomainError) as exc:
        leader_withdrawal_create(leader=earned.leader, portfolio_id=earned.pk, amount=D("1.0099"))
    assert exc.value.code == "BELOW_MIN_WITHDRAWAL"
    assert leader_withdrawal_create(leader=earned.leader, portfolio_id=earned.pk, amount=D("1.019")).amount == D("1.01")
