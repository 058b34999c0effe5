"""Every fill that realizes PnL records it on its order, with the time it
filled: margin reduces and closes (the settled part), spot sells (proceeds
less the average cost of what was sold). The watchdog and the fees read a
spot wallet's realized result from these columns."""

from decimal import Decimal

import pytest

from copytrading.models import Order, Position
from tests.copytrading.world import World, mirrors_of

D = Decimal
ETH_PERP, ETH = "ETH/USDT:USDT", "ETH/USDT"


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def orders(account_id: int) -> list[tuple]:
    """(side, quantity, price, realized, filled) of the wallet's orders."""
    return [
        (*row[:4], row[4] is not None)
        for row in Order.objects.filter(account_id=account_id)
        .order_by("pk")
        .values_list("side", "quantity", "price", "realized_pnl", "filled_at")
    ]


def test_spot_sells_record_their_realized_pnl_at_average_cost(world):
    leader = world.leader(mode="spot")
    sub = world.follower(leader, amount="10000", multiplier="1")
    world.price(ETH, "3000")
    world.trade(leader, ETH, "buy", "1")
    world.price(ETH, "2000")
    world.trade(leader, ETH, "buy", "1")  # 2 ETH at an average cost of 2500
    world.price(ETH, "2600")
    world.trade(leader, ETH, "sell", "0.5")  # realizes 0.5 x (2600 - 2500)
    world.price(ETH, "2400")
    world.trade(leader, ETH, "sell", "1.5")  # realizes 1.5 x (2400 - 2500)
    for account_id in (leader.trading_account_id, sub.copy_account_id):
        assert orders(account_id) == [
            ("buy", D("1"), D("3000"), None, True),
            ("buy", D("1"), D("2000"), None, True),
            ("sell", D("0.5"), D("2600"), D("50"), True),
            ("sell", D("1.5"), D("2400"), D("-150"), True),
        ]


def test_margin_reduces_and_closes_record_the_settled_pnl(world):
    leader = world.leader()
    sub = world.follower(leader, amount="10000", multiplier="1")
    world.price(ETH_PERP, "3000")
    world.trade(leader, ETH_PERP, "buy", "1")
    position = Position.objects.get(account_id=leader.trading_account_id)
    world.price(ETH_PERP, "3100")
    world.close(leader, position.pk, "0.4")
    world.price(ETH_PERP, "2900")
    world.close(leader, position.pk)
    assert mirrors_of(sub).get().status == "closed"
    for account_id in (leader.trading_account_id, sub.copy_account_id):
        assert [row[3] for row in orders(account_id)] == [None, D("40"), D("-60")]


def test_a_resting_spot_sell_records_what_it_realized_when_it_fills(world):
    leader = world.leader(mode="spot")
    world.price(ETH, "2000")
    world.trade(leader, ETH, "buy", "1")
    world.limit(leader, ETH, "sell", "1", "2500")
    order = Order.objects.get(account_id=leader.trading_account_id, status="open")
    assert (order.status, order.realized_pnl, order.filled_at) == ("open", None, None)
    world.price(ETH, "2500")
    order.refresh_from_db()
    assert (order.status, order.realized_pnl) == ("filled", D("500"))
    assert order.filled_at is not None and order.filled_at >= order.created_at
