"""Spot counts in risk (issue #12, points 1-3): the daily loss limits measure
spot sells (realized, against the average cost of what was sold) and spot
holdings at the mark against their cost basis (unrealized); the unrealized
limit sells the holdings down to the step and records the dust; the
pre-trade limits count spot holdings as positions and exposure.

The leader and the follower both trade 5,000 with progressive 1.0, so every
follower copy has the leader's quantity; the paper spread is 0."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import F

from copytrading.ledger import ledger_check
from copytrading.models import Account, Execution, Holding, Instrument, LeaderEvent, Notification, Order, OrderStatus
from followers.models import SubscriptionStatus
from followers.selectors import risk_views
from risk import rules, selectors, services, watchdog
from risk.models import RiskEvent, RiskLimits
from tests.risk.conftest import ETH_PERP, status_of

D = Decimal
ETH, BTC = "ETH/USDT", "BTC/USDT"
TICK = D("0.00000001")
NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
ACTIVE = (SubscriptionStatus.ACTIVE, "")


def paused(rule: str) -> tuple[str, str]:
    return SubscriptionStatus.PAUSED, f"risk:{rule}"


@pytest.fixture
def clock():
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


def tick(clock) -> watchdog.TickReport:
    clock.shift(timedelta(seconds=30))
    return watchdog.watchdog_tick()


def spot_pair(world, *, mode: str = "spot", **options):
    """A spot leader and a follower copying it one to one."""
    world.price(ETH, "3200")
    world.price(BTC, "64000")
    portfolio = world.leader(fund="5000", mode=mode)
    sub = world.follower(portfolio, amount="5000", multiplier="1", **options)
    return portfolio, sub


def buy(world, portfolio, symbol: str, quantity: str) -> list[LeaderEvent]:
    return world.trade(portfolio, symbol, "buy", quantity, leverage=1)


def sell(world, portfolio, symbol: str, quantity: str) -> list[LeaderEvent]:
    return world.trade(portfolio, symbol, "sell", quantity, leverage=1)


def holding(sub, asset: str) -> Holding | None:
    return Holding.objects.filter(account_id=sub.copy_account_id, asset=asset).first()


def last_event(sub) -> RiskEvent:
    return RiskEvent.objects.filter(subscription_id=sub.pk).latest("pk")


# --- realized: spot sells count against the daily loss limit ------------------------------


@pytest.mark.parametrize(
    ("limit", "breached"),
    [
        ("10", True),  # the reproduction: -400 against 10 left the copy active
        ("400", True),  # exactly at the limit
        ("400.00000001", False),  # a unit of 1e-8 on the safe side
    ],
)
def test_a_realized_spot_loss_trips_the_realized_daily_limit(world, clock, limit, breached):
    portfolio, sub = spot_pair(world)
    buy(world, portfolio, ETH, "1")
    world.price(ETH, "2800")
    sell(world, portfolio, ETH, "1")  # realizes 1 x (2800 - 3200)
    assert Order.objects.get(account_id=sub.copy_account_id, side="sell").realized_pnl == D("-400")
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=D(limit))

    report = tick(clock)

    assert status_of(sub) == (paused("daily_loss_realized") if breached else ACTIVE)
    if breached:
        event = last_event(sub)
        assert (event.rule, event.measured, event.action) == ("daily_loss_realized", D("400"), "pause")
        # Realized: a pause until 00:00 UTC, the wallet is left as it is.
        assert services.daily_reset_apply(now=datetime(2025, 3, 11, 0, 0, tzinfo=UTC)) == [sub.pk]
        assert status_of(sub) == ACTIVE
    else:
        assert report.paused == [] and not RiskEvent.objects.exists()


def test_a_spot_loss_of_an_earlier_day_does_not_count(world, clock):
    portfolio, sub = spot_pair(world)
    buy(world, portfolio, ETH, "1")
    world.price(ETH, "2800")
    sell(world, portfolio, ETH, "1")
    clock.move_to(datetime(2025, 3, 11, 0, 0, 30, tzinfo=UTC))
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=D("10"))
    tick(clock)
    assert status_of(sub) == ACTIVE


@pytest.mark.parametrize("path", ["postgres_or_sqlite", "python"])
def test_margin_and_spot_realized_results_add_up_without_double_counting(world, clock, path, monkeypatch):
    """A wallet that copies both product lines: margin closes are read from
    the ledger, spot sells from their orders, each once."""
    world.price(ETH_PERP, "3200")
    portfolio, sub = spot_pair(world, mode="all")
    world.trade(portfolio, ETH_PERP, "buy", "1", leverage=10)
    buy(world, portfolio, ETH, "1")
    world.price(ETH_PERP, "3100")
    world.price(ETH, "3050")
    leader_position = LeaderEvent.objects.filter(kind="position_open").get().payload["leader_position_id"]
    world.close(portfolio, leader_position)  # margin: -100
    sell(world, portfolio, ETH, "0.5")  # spot: 0.5 x (3050 - 3200) = -75
    buy(world, portfolio, BTC, "0.01")
    world.price(BTC, "63000")  # spot unrealized: 0.5 x -150 on ETH, 0.01 x -1000 on BTC
    if path == "python":
        monkeypatch.setattr(selectors.connection, "vendor", "sqlite")
    figures = selectors.watchdog_figures([sub.copy_account_id], day_start=NOON)[sub.copy_account_id]
    assert figures.realized_today == D("-175")
    assert figures.spot_unrealized == D("-85")
    assert figures.total_unrealized == D("-85")  # no margin position left
    assert figures.held_assets == 2
    assert figures.holdings_value == D("0.5") * 3050 + D("0.01") * 63000


# --- unrealized: holdings at the mark; the forced sale ----------------------------------


@pytest.mark.parametrize(
    ("limit", "breached"),
    [("10", True), ("100", True), ("100.00000001", False)],
)
def test_an_unrealized_spot_loss_pauses_and_sells_the_holding(world, clock, limit, breached):
    portfolio, sub = spot_pair(world)
    buy(world, portfolio, ETH, "1")
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D(limit))
    world.price(ETH, "3100")  # 1 ETH at 3100 against a cost of 3200: -100

    tick(clock)

    if not breached:
        assert status_of(sub) == ACTIVE
        assert holding(sub, "ETH").quantity == D("1")
        return
    assert status_of(sub) == paused("daily_loss_unrealized")
    assert (holding(sub, "ETH").quantity, holding(sub, "ETH").cost_basis) == (D("0"), D("0"))
    sale = Order.objects.filter(account_id=sub.copy_account_id, side="sell").get()
    assert (sale.quantity, sale.price, sale.realized_pnl) == (D("1"), D("3100"), D("-100"))
    assert Account.objects.get(pk=sub.copy_account_id).balance == D("4900")
    assert ledger_check().ok
    event = last_event(sub)
    assert (event.rule, event.measured, event.action) == ("daily_loss_unrealized", D("100"), "pause_and_close")
    assert (event.closed_positions, event.sold_holdings, event.dust) == (0, 1, {})
    note = Notification.objects.get(user_id=sub.follower_id, kind__startswith="risk.")
    assert note.severity == "critical" and "1 spot holding(s) sold" in note.body
    assert note.data["sold_holdings"] == 1 and note.data["dust"] == {}
    # Sold out, still paused: no exposure left, so the next tick leaves it be.
    assert tick(clock).checked == 0


@pytest.mark.parametrize(
    ("extra", "min_qty", "sold", "dust"),
    [
        (D("0"), None, D("1"), {}),  # a whole number of steps: all of it
        (D("0.00005"), None, D("1"), {"ETH": "0.00005000"}),  # half a step: rounded down
        (D("0.00019"), None, D("1.0001"), {"ETH": "0.00009000"}),
        (D("0"), D("2"), D("0"), {"ETH": "1.00000000"}),  # below the pair's minimum: nothing can go
    ],
)
def test_the_forced_sale_rounds_down_to_the_step_and_records_the_dust(world, clock, extra, min_qty, sold, dust):
    portfolio, sub = spot_pair(world)
    buy(world, portfolio, ETH, "1")
    # What an exchange's fee in the base asset leaves: less than a step.
    Holding.objects.filter(account_id=sub.copy_account_id, asset="ETH").update(
        quantity=F("quantity") + extra, cost_basis=F("cost_basis") + extra * 3200
    )
    if min_qty is not None:
        Instrument.objects.filter(symbol=ETH).update(min_qty=min_qty)
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("10"))
    world.price(ETH, "3100")

    tick(clock)

    assert status_of(sub) == paused("daily_loss_unrealized")
    sales = list(Order.objects.filter(account_id=sub.copy_account_id, side="sell").values_list("quantity", flat=True))
    assert sales == ([sold] if sold else [])
    left = holding(sub, "ETH").quantity
    assert left == D(1) + extra - sold == sum((D(q) for q in dust.values()), D(0))
    event = last_event(sub)
    assert event.dust == dust and event.sold_holdings == (1 if sold else 0)
    assert ledger_check().ok
    # The follower sees it on the subscription and in the notification.
    pause_event = risk_views([sub.pk])[sub.pk]["pause_event"]
    assert (pause_event["dust"], pause_event["sold_holdings"]) == (dust, event.sold_holdings)
    note = Notification.objects.get(user_id=sub.follower_id, kind__startswith="risk.")
    assert note.data["dust"] == dust
    assert ("left in the wallet" in note.body) == bool(dust)


def test_the_forced_sale_cancels_resting_orders_first(world, clock):
    """A resting spot sell holds part of the holding, a resting buy holds
    cash: the close-out cancels both (a venue would), then sells everything."""
    portfolio, sub = spot_pair(world)
    buy(world, portfolio, ETH, "1")
    world.limit(portfolio, ETH, "sell", "1", "3500", leverage=1)
    world.limit(portfolio, BTC, "buy", "0.01", "60000", leverage=1)
    resting = Order.objects.filter(account_id=sub.copy_account_id, status=OrderStatus.OPEN)
    assert resting.count() == 2
    assert holding(sub, "ETH").reserved == D("1")
    assert Account.objects.get(pk=sub.copy_account_id).locked == D("600")
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("10"))
    world.price(ETH, "3100")

    tick(clock)

    assert not resting.exists()
    assert set(
        Order.objects.filter(account_id=sub.copy_account_id, order_type="limit").values_list("status", "reserved")
    ) == {(OrderStatus.CANCELLED, D(0))}
    eth = holding(sub, "ETH")
    assert (eth.quantity, eth.reserved) == (D(0), D(0))
    wallet = Account.objects.get(pk=sub.copy_account_id)
    assert (wallet.balance, wallet.locked) == (D("4900"), D(0))
    assert last_event(sub).sold_holdings == 1


# --- pre-trade limits count spot ------------------------------------------------------


def _dust_eth(sub) -> None:
    Holding.objects.filter(account_id=sub.copy_account_id, asset="ETH").update(
        quantity=D("0.00005"), cost_basis=D("0.16")
    )


@pytest.mark.parametrize(
    ("held", "limits", "symbol", "quantity", "expected"),
    [
        # The reproduction: 0.5 ETH is 32 % of 5,000, the cap 1 %.
        ([], {"max_exposure_pct": D("1")}, ETH, "0.5", ("REJECTED", rules.MAX_EXPOSURE_EXCEEDED)),
        ([], {"max_exposure_pct": D("32")}, ETH, "0.5", ("COPIED", "")),  # exactly at the cap
        # Holdings count toward exposure at the mark: 32 % held plus 32 %.
        ([(ETH, "0.5")], {"max_exposure_pct": D("63.99")}, ETH, "0.5", ("REJECTED", rules.MAX_EXPOSURE_EXCEEDED)),
        ([(ETH, "0.5")], {"max_exposure_pct": D("64")}, ETH, "0.5", ("COPIED", "")),
        # Each asset held is an open position...
        ([(ETH, "0.5")], {"max_open_positions": 1}, BTC, "0.01", ("REJECTED", rules.MAX_OPEN_POSITIONS_REACHED)),
        ([(ETH, "0.5")], {"max_open_positions": 2}, BTC, "0.01", ("COPIED", "")),
        # ...buying more of one held opens none...
        ([(ETH, "0.5")], {"max_open_positions": 1}, ETH, "0.1", ("COPIED", "")),
        # ...and dust (below the minimum quantity) is no position.
        ([(ETH, "dust")], {"max_open_positions": 1}, BTC, "0.01", ("COPIED", "")),
    ],
)
def test_the_pre_trade_limits_refuse_spot_buys(world, clock, held, limits, symbol, quantity, expected):
    portfolio, sub = spot_pair(world)
    for held_symbol, held_quantity in held:
        buy(world, portfolio, held_symbol, "0.5" if held_quantity == "dust" else held_quantity)
        if held_quantity == "dust":
            _dust_eth(sub)
    services.risk_limits_set(subscription_id=sub.pk, **limits)

    (event,) = buy(world, portfolio, symbol, quantity)

    execution = Execution.objects.get(event=event, subscription_id=sub.pk)
    assert (execution.outcome, execution.reason_code) == expected
    bought = Order.objects.filter(account_id=sub.copy_account_id, leader_event=event).exists()
    assert bought == (expected[0] == "COPIED")


def test_a_spot_buy_is_refused_with_the_reason_code_margin_uses(world, clock):
    """Same cap, one margin and one spot follower: the same code."""
    world.price(ETH_PERP, "3200")
    portfolio, spot_sub = spot_pair(world, mode="all")
    margin_sub = world.follower(portfolio, amount="5000", multiplier="1")
    services.risk_limits_set(subscription_id=spot_sub.pk, max_exposure_pct=D("1"))
    services.risk_limits_set(subscription_id=margin_sub.pk, max_exposure_pct=D("1"))
    (spot_event,) = buy(world, portfolio, ETH, "0.5")
    (margin_event,) = world.trade(portfolio, ETH_PERP, "buy", "0.5", leverage=10)
    codes = {
        Execution.objects.get(event=e, subscription_id=s.pk).reason_code
        for e, s in ((spot_event, spot_sub), (margin_event, margin_sub))
    }
    assert codes == {rules.MAX_EXPOSURE_EXCEEDED}


def test_a_spot_limit_buy_is_refused_when_it_is_placed(world, clock):
    portfolio, sub = spot_pair(world)
    services.risk_limits_set(subscription_id=sub.pk, max_exposure_pct=D("1"))
    event = world.limit(portfolio, ETH, "buy", "0.5", "3100", leverage=1)
    execution = Execution.objects.get(event=event, subscription_id=sub.pk)
    assert (execution.outcome, execution.reason_code) == ("REJECTED", rules.MAX_EXPOSURE_EXCEEDED)
    assert not Order.objects.filter(account_id=sub.copy_account_id, status=OrderStatus.OPEN).exists()
    assert Account.objects.get(pk=sub.copy_account_id).locked == 0


# --- the Conservative template: its daily loss limits now fire on spot -------------------


@pytest.mark.parametrize(
    ("close_price", "sell_first", "rule"),
    [
        ("2950", False, "daily_loss_unrealized"),  # -250 held: 5 % of 5,000
        ("3025", True, "daily_loss_realized"),  # -175 sold: beyond 3 % of 5,000
    ],
)
def test_the_conservative_template_protects_a_spot_follower(world, clock, close_price, sell_first, rule):
    world.price(ETH, "3200")
    portfolio = world.leader(fund="20000", mode="spot")
    sub = world.follower(portfolio, amount="5000", multiplier=None, template="conservative")
    limits = RiskLimits.objects.get(pk=sub.pk)
    assert (limits.daily_loss_limit_realized, limits.daily_loss_limit_unrealized) == (D("150"), D("250"))
    buy(world, portfolio, ETH, "4")
    assert holding(sub, "ETH").quantity == D("1")  # a quarter of the leader's size
    tick(clock)
    assert status_of(sub) == ACTIVE
    world.price(ETH, close_price)
    if sell_first:
        sell(world, portfolio, ETH, "4")
    tick(clock)
    assert status_of(sub) == paused(rule)
    assert holding(sub, "ETH").quantity == 0
