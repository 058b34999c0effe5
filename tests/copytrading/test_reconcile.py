"""The reconciler closes mirrors left open behind their leader and cancels
mirror orders left resting behind a cancelled leader order — once."""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest

from copytrading import decisions, tasks
from copytrading.ledger import ledger_check
from copytrading.models import Account, Holding, Order, OrderStatus, Position, PositionStatus, Transfer
from copytrading.reconcile import orphans_repair
from tests.copytrading.world import ETH_PERP, World

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def failing_for(subscription_id: int):
    """decisions.decide, except that one follower's decision fails (a bug, a lost message)."""
    real = decisions.decide

    def decide(event, target, **kwargs):
        if target.subscription_id == subscription_id:
            return decisions.Decision(decisions.REJECTED, "SIMULATED_FAILURE")
        return real(event, target, **kwargs)

    return mock.patch.object(decisions, "decide", decide)


@pytest.mark.django_db(transaction=True)
def test_a_mirror_left_open_behind_a_closed_leader_position_is_closed_once(world):
    portfolio = world.leader()
    kept, stranded = world.follower(portfolio), world.follower(portfolio)
    world.price(ETH_PERP, "3000")
    world.trade(portfolio, ETH_PERP, "buy", "2")
    leader_position = Position.objects.get(account_id=portfolio.trading_account_id)
    world.price(ETH_PERP, "3100")
    with failing_for(stranded.pk):
        world.close(portfolio, leader_position.pk)
    orphan = Position.objects.get(subscription_id=stranded.pk)
    assert orphan.status == PositionStatus.OPEN
    assert Position.objects.get(subscription_id=kept.pk).status == PositionStatus.CLOSED

    # Within the grace period nothing is touched: the close may still be on its way.
    assert tasks.reconcile_propagations()["orphaned_mirrors_closed"] == 0
    assert orphans_repair(older_than=timedelta(0)).closed_positions == 1

    orphan.refresh_from_db()
    assert (orphan.status, orphan.quantity) == (PositionStatus.CLOSED, D("0"))
    # Closed at the mark like any close: 1 ETH x (3100 - 3000).
    assert orphan.realized_pnl == D("100")
    wallet = Account.objects.get(pk=stranded.copy_account_id)
    assert (wallet.balance, wallet.locked) == (D("5100"), D("0"))
    transfers = Transfer.objects.count()
    assert orphans_repair(older_than=timedelta(0)).closed_positions == 0
    assert Transfer.objects.count() == transfers
    assert ledger_check().ok


@pytest.mark.django_db(transaction=True)
def test_a_mirror_order_left_resting_behind_a_cancelled_leader_order_is_cancelled(world):
    portfolio = world.leader()
    kept, stranded = world.follower(portfolio), world.follower(portfolio)
    world.price(ETH_PERP, "3000")
    world.limit(portfolio, ETH_PERP, "buy", "2", "2900")
    leader_order = Order.objects.get(account_id=portfolio.trading_account_id)
    with failing_for(stranded.pk):
        world.cancel(portfolio, leader_order.pk)
    orphan = Order.objects.get(subscription_id=stranded.pk)
    assert orphan.status == OrderStatus.OPEN
    assert Account.objects.get(pk=stranded.copy_account_id).locked == orphan.reserved > 0

    assert orphans_repair().cancelled_orders == 0  # the grace period
    assert orphans_repair(older_than=timedelta(0)).cancelled_orders == 1

    orphan.refresh_from_db()
    assert (orphan.status, orphan.reserved) == (OrderStatus.CANCELLED, D("0"))
    assert Account.objects.get(pk=stranded.copy_account_id).locked == D("0")
    assert Order.objects.get(subscription_id=kept.pk).status == OrderStatus.CANCELLED
    assert orphans_repair(older_than=timedelta(0)).cancelled_orders == 0
    assert ledger_check().ok


@pytest.mark.django_db(transaction=True)
def test_a_spot_mirror_sell_left_resting_behind_a_cancelled_leader_order_gives_its_holding_back(world):
    portfolio = world.leader(mode="spot")
    kept, stranded = world.follower(portfolio), world.follower(portfolio)
    world.trade(portfolio, "ETH/USDT", "buy", "2", leverage=1)  # 1 ETH each
    world.limit(portfolio, "ETH/USDT", "sell", "1", "3300", leverage=1)  # half of it, resting
    leader_order = Order.objects.get(account_id=portfolio.trading_account_id, status=OrderStatus.OPEN)
    with failing_for(stranded.pk):
        world.cancel(portfolio, leader_order.pk)
    orphan = Order.objects.get(subscription_id=stranded.pk, status=OrderStatus.OPEN)
    holding = Holding.objects.get(account_id=stranded.copy_account_id, asset="ETH")
    assert (holding.quantity, holding.reserved, orphan.reserved) == (D("1"), D("0.5"), D("0.5"))

    assert orphans_repair(older_than=timedelta(0)).cancelled_orders == 1
    orphan.refresh_from_db()
    holding.refresh_from_db()
    assert (orphan.status, orphan.reserved) == (OrderStatus.CANCELLED, D("0"))
    assert (holding.quantity, holding.reserved) == (D("1"), D("0"))
    assert Holding.objects.get(account_id=kept.copy_account_id, asset="ETH").reserved == D("0")
    assert orphans_repair(older_than=timedelta(0)).cancelled_orders == 0
    assert ledger_check().ok
