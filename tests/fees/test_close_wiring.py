"""Profit share accrues on every path that closes a follower's mirror, through
the venue's close listener, in the transaction that closed it — and never on
the leader's own positions."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from copytrading import ledger, propagation
from copytrading.ledger import ledger_check
from copytrading.models import Account, AccountKind, Position, PositionStatus, Transfer, TransferKind
from copytrading.venue import close_listeners
from fees import tasks
from fees.checks import fee_books_check
from fees.models import AccrualStatus, AuditAction, FeeAccrual, LeaderProfitAccount
from followers.fee_hooks import accrue_closed_mirrors
from followers.services import subscription_unfollow
from portfolios.services import portfolio_order_place, portfolio_position_close, portfolio_position_tpsl_set
from risk.watchdog import _force_close
from tests.fees.conftest import ETH_PERP, D, balance, escrow, platform

pytestmark = pytest.mark.django_db


def mirror_of(sub) -> Position:
    return Position.objects.get(account_id=sub.copy_account_id)


def test_the_followers_app_registers_the_close_listener(db):
    assert accrue_closed_mirrors in close_listeners()


def test_end_to_end_a_leaders_close_accrues_on_profitable_mirrors_only_and_settles(fee_world):
    portfolio = fee_world.leader(share="15.00", platform_cut="40.00")
    early = fee_world.follower(portfolio)  # mirrors 0.5 of the leader's size
    fee_world.price("3200")
    leader_position_id = fee_world.open(portfolio)  # early: 0.5 at 3200
    fee_world.price("3600")
    late = fee_world.follower(portfolio)  # joins with the leader already in profit
    fee_world.open(portfolio)  # the leader adds 1 at 3600: early 1.0 at avg 3400, late 0.5 at 3600
    fee_world.price("3500")
    fee_world.close(portfolio, leader_position_id)  # propagated to both mirrors

    early_mirror, late_mirror = mirror_of(early), mirror_of(late)
    assert (early_mirror.status, early_mirror.realized_pnl) == (PositionStatus.CLOSED, D("100"))
    assert (late_mirror.status, late_mirror.realized_pnl) == (PositionStatus.CLOSED, D("-50"))
    # The profitable mirror accrued 15 % of 100 into escrow at once; the losing one nothing.
    (accrual,) = FeeAccrual.objects.all()
    assert (accrual.source_position_id, accrual.subscription_id) == (early_mirror.pk, early.pk)
    assert (accrual.profit, accrual.fee, accrual.platform_part, accrual.leader_part) == (
        D("100"),
        D("15"),
        D("6"),
        D("9"),
    )
    assert (balance(early.copy_account_id), balance(late.copy_account_id)) == (D("5085"), D("4950"))
    assert escrow() == D("15")
    # The leader's own position (2 at avg 3400, +200 at the close) is never charged.
    leader_position = Position.objects.get(pk=leader_position_id)
    assert leader_position.realized_pnl == D("200")
    assert not FeeAccrual.objects.filter(source_position=leader_position).exists()
    assert ledger_check().ok

    assert tasks.settle_fees() == {"settled": 1, "failed": 0}
    accrual.refresh_from_db()
    assert accrual.status == AccrualStatus.SETTLED
    profit = LeaderProfitAccount.objects.get(portfolio_id=portfolio.pk).account
    assert (escrow(), platform(), profit.balance) == (0, D("6"), D("9"))
    assert list(accrual.audit.values_list("action", flat=True)) == [AuditAction.ACCRUED, AuditAction.SETTLED]
    assert tasks.settle_fees() == {"settled": 0, "failed": 0}  # the next minute finds nothing
    assert ledger_check().ok
    assert fee_books_check().ok


def test_a_leaders_own_profitable_close_accrues_nothing_without_followers(fee_world):
    portfolio = fee_world.leader()
    fee_world.round_trip(portfolio, "3200", "3400")
    assert Position.objects.get(account_id=portfolio.trading_account_id).realized_pnl == D("200")
    assert not FeeAccrual.objects.exists()
    assert not Transfer.objects.filter(kind=TransferKind.PROFIT_SHARE).exists()


def test_a_take_profit_copied_to_the_mirror_accrues_when_it_triggers(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    leader_position_id = fee_world.open(portfolio)
    with fee_world.capture(execute=True):
        portfolio_position_tpsl_set(portfolio=portfolio, position_id=leader_position_id, take_profit=D("3300"))
    assert mirror_of(sub).take_profit == D("3300")

    with fee_world.capture(execute=True):
        fee_world.price("3300")  # the matching closes leader and mirror at their TP

    mirror = mirror_of(sub)
    assert (mirror.status, mirror.realized_pnl) == (PositionStatus.CLOSED, D("50"))
    (accrual,) = FeeAccrual.objects.all()
    assert (accrual.source_position_id, accrual.fee) == (mirror.pk, D("7.5"))
    assert balance(sub.copy_account_id) == D("5042.5")
    assert ledger_check().ok


def test_a_liquidated_mirror_pays_nothing(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    fee_world.open(portfolio)  # 10x: the mirror's isolated margin is 160
    with fee_world.capture(execute=True):
        fee_world.price("2800")
    mirror = mirror_of(sub)
    assert mirror.status == PositionStatus.CLOSED and mirror.realized_pnl < 0
    assert not FeeAccrual.objects.exists()


def test_the_watchdogs_force_close_accrues(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    fee_world.open(portfolio)
    fee_world.price("3400")

    # (closed positions per wallet, spot sales per wallet: none here)
    assert _force_close([sub.copy_account_id]) == ({sub.copy_account_id: 1}, {})

    (accrual,) = FeeAccrual.objects.all()
    assert (accrual.source_position_id, accrual.profit, accrual.fee) == (mirror_of(sub).pk, D("100"), D("15"))


def test_unfollow_accrues_before_the_wallet_is_returned(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    fee_world.open(portfolio)
    fee_world.price("3400")

    result = subscription_unfollow(subscription=sub)

    (accrual,) = FeeAccrual.objects.all()
    assert (accrual.source_position_id, accrual.fee) == (mirror_of(sub).pk, D("15"))
    # The follower gets deposit + profit - fee; the fee waits in escrow.
    assert result.returned == D("5085")
    assert balance(sub.copy_account_id) == 0
    assert escrow() == D("15")
    tasks.settle_fees()
    assert (escrow(), platform()) == (0, D("6"))
    assert ledger_check().ok


def test_a_partial_close_by_the_leader_accrues_only_when_the_mirror_closes(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    leader_position_id = fee_world.open(portfolio)
    fee_world.price("3400")
    fee_world.close(portfolio, leader_position_id, "0.5")
    assert not FeeAccrual.objects.exists()
    fee_world.price("3300")
    fee_world.close(portfolio, leader_position_id)
    (accrual,) = FeeAccrual.objects.all()
    assert (accrual.source_position_id, accrual.profit, accrual.fee) == (mirror_of(sub).pk, D("75"), D("11.25"))


def _chunk_queries(fee_world, followers: int) -> int:
    """Queries of one propagation chunk that closes ``followers`` profitable
    mirrors, each accruing its fee inside the chunk."""
    portfolio = fee_world.leader()
    subs = [fee_world.follower(portfolio) for _ in range(followers)]
    fee_world.price("3200")
    # Created once ever, not per chunk.
    ledger.system_account(AccountKind.VENUE)
    ledger.system_account(AccountKind.FEE_ESCROW)
    # Placed without the on-commit dispatch: the engine is driven by hand.
    (event,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)
    for chunk_id in propagation.event_start(event.pk):
        propagation.chunk_propagate(chunk_id)
    propagation.event_complete(event.pk)
    fee_world.price("3400")
    event = portfolio_position_close(portfolio=portfolio, position_id=event.payload["leader_position_id"])
    (chunk_id,) = propagation.event_start(event.pk)
    with CaptureQueriesContext(connection) as queries:
        result = propagation.chunk_propagate(chunk_id)
    assert result.copied == followers
    assert FeeAccrual.objects.filter(subscription_id__in=[s.pk for s in subs]).count() == followers
    assert {Account.objects.get(pk=s.copy_account_id).balance for s in subs} == {D("5085")}
    return len(queries)


def test_a_chunks_query_count_stays_constant_with_fees_accruing(fee_world, settings):
    settings.FANOUT_CHUNK_SIZE = 100
    assert _chunk_queries(fee_world, 5) == _chunk_queries(fee_world, 40)


def test_the_venue_reports_each_batch_of_full_closes_once(fee_world, monkeypatch):
    from copytrading import venue

    calls: list[list] = []

    def listener(closed, sold):
        assert sold == []  # margin fills sell nothing spot
        calls.append(closed)

    monkeypatch.setattr(venue, "_close_listeners", [listener])
    venue.register_close_listener(listener)  # registering twice is a no-op
    portfolio = fee_world.leader()
    subs = [fee_world.follower(portfolio) for _ in range(3)]
    fee_world.price("3200")
    leader_position_id = fee_world.open(portfolio)
    assert calls == []  # opens close nothing
    fee_world.price("3400")
    fee_world.close(portfolio, leader_position_id, "0.5")
    assert calls == []  # a partial close is not a close

    fee_world.close(portfolio, leader_position_id)

    leader_call, chunk_call = calls  # the leader's own close, then the whole chunk in one call
    assert [(c.position_id, c.subscription_id, c.realized_pnl) for c in leader_call] == [
        (leader_position_id, None, D("200"))
    ]
    mirrors = {mirror_of(s).pk: s for s in subs}
    assert sorted((c.position_id, c.account_id, c.subscription_id) for c in chunk_call) == sorted(
        (pk, s.copy_account_id, s.pk) for pk, s in mirrors.items()
    )
    assert {c.realized_pnl for c in chunk_call} == {D("100")}
