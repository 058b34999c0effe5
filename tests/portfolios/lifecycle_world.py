"""A closing-portfolio scene shared by the lifecycle tests: a leader with a
profit share, followers holding open mirrors and resting mirror orders."""

from decimal import Decimal

from django.db.models import Sum

from copytrading import ledger
from copytrading.models import (
    Account,
    Notification,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Transfer,
    TransferKind,
)
from followers.models import Subscription, SubscriptionStatus
from tests.copytrading.world import ETH_PERP, World

D = Decimal


def closing_scene(world: World, followers: int = 3):
    portfolio = world.leader(fund="20000")
    portfolio.profit_share_pct = D("10.00")
    portfolio.save(update_fields=["profit_share_pct"])
    subs = [world.follower(portfolio, amount="5000", multiplier="0.5") for _ in range(followers)]
    world.price(ETH_PERP, "3000")
    world.trade(portfolio, ETH_PERP, "buy", "2")
    world.limit(portfolio, ETH_PERP, "buy", "1", "2500")
    world.price(ETH_PERP, "3100")  # every mirror in profit: profit share is due on close
    for sub in subs:
        assert Position.objects.filter(account_id=sub.copy_account_id, status=PositionStatus.OPEN).count() == 1
        assert Order.objects.filter(account_id=sub.copy_account_id, status=OrderStatus.OPEN).count() == 1
    return portfolio, subs


def assert_detached_exactly_once(portfolio, subs, reason: str) -> None:
    for sub in subs:
        sub = Subscription.objects.get(pk=sub.pk)
        assert (sub.status, sub.end_reason) == (SubscriptionStatus.ENDED, reason)
        wallet = Account.objects.get(pk=sub.copy_account_id)
        assert (wallet.balance, wallet.locked, wallet.is_closed) == (0, 0, True)
        returns = Transfer.objects.filter(debit_id=sub.copy_account_id, kind=TransferKind.COPY_RETURN)
        assert returns.count() == 1
        assert not Position.objects.filter(account_id=sub.copy_account_id, status=PositionStatus.OPEN).exists()
        assert not Order.objects.filter(account_id=sub.copy_account_id, status=OrderStatus.OPEN).exists()
        # Told once, with the whole wallet's return.
        (note,) = Notification.objects.filter(user_id=sub.follower_id, kind="portfolio_closed")
        assert D(note.data["returned"]) == returns.get().amount
        # Every closed mirror shows exactly one closing order.
        for mirror in Position.objects.filter(account_id=sub.copy_account_id):
            assert Order.objects.filter(position_id=mirror.pk, side="sell").count() == 1
    account_id = portfolio.trading_account_id
    assert not Position.objects.filter(account_id=account_id, status=PositionStatus.OPEN).exists()
    assert not Order.objects.filter(account_id=account_id, status=OrderStatus.OPEN).exists()
    report = ledger.ledger_check()
    assert report.ok, report


def returned_total(subs) -> Decimal:
    ids = [s.copy_account_id for s in subs]
    total = Transfer.objects.filter(debit_id__in=ids, kind=TransferKind.COPY_RETURN).aggregate(s=Sum("amount"))["s"]
    return D(total or 0)
