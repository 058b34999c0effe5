"""Paused copies are still protected (issue #12, point 4): a copy paused by
its follower, by support, by margin-call protection or by a realized-loss
pause keeps its open mirrors and holdings, so the watchdog keeps watching
it; over its unrealized daily loss limit it is closed out and stays paused.
A follower's own pause is never turned into one the midnight reset lifts.

The leader and the follower both trade 5,000 with progressive 1.0; the
paper spread is 0."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from copytrading.ledger import ledger_check
from copytrading.models import Holding, Notification, Order, OrderStatus, Position, PositionStatus
from followers.models import SubscriptionStatus
from followers.services import subscription_pause, subscription_resume, subscription_unfollow
from risk import services, watchdog
from risk.hooks import subscription_hooks
from risk.models import RiskEvent, RiskState
from tests.risk.conftest import BTC_PERP, ETH_PERP, status_of

D = Decimal
ETH, BTC = "ETH/USDT", "BTC/USDT"
NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2025, 3, 11, 0, 0, tzinfo=UTC)
PAUSED = SubscriptionStatus.PAUSED


@pytest.fixture
def clock():
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


def tick(clock) -> watchdog.TickReport:
    clock.shift(timedelta(seconds=30))
    return watchdog.watchdog_tick()


class Copy:
    """A follower holding two things of one product line, one of them (BTC)
    already sold or closed at a loss of 40 today, the other (ETH) open."""

    def __init__(self, world, product: str):
        self.world, self.product = world, product
        self.eth, self.btc = (ETH, BTC) if product == "spot" else (ETH_PERP, BTC_PERP)
        world.price(self.eth, "3200")
        world.price(self.btc, "64000")
        self.portfolio = world.leader(fund="5000", mode=product)
        self.sub = world.follower(self.portfolio, amount="5000", multiplier="1")
        # Margin: 5 ETH at 10x (margin 1,600); spot: 1 ETH. Either way a
        # fall of 100 in value is 20 (margin) or 100 (spot) on the mark.
        self.trade(self.btc, "buy", "0.01")
        self.trade(self.eth, "buy", "5" if product == "margin" else "1")
        world.price(self.btc, "60000")
        if product == "spot":
            self.trade(self.btc, "sell", "0.01")
        else:
            leader_btc = Position.objects.get(
                account_id=self.portfolio.trading_account_id, instrument__symbol=BTC_PERP, status=PositionStatus.OPEN
            )
            world.close(self.portfolio, leader_btc.pk)
        assert self.exposure() == 1

    def trade(self, symbol: str, side: str, quantity: str) -> None:
        self.world.trade(self.portfolio, symbol, side, quantity, leverage=10 if self.product == "margin" else 1)

    def exposure(self) -> int:
        """Open mirrors and holdings of the copy wallet."""
        account = self.sub.copy_account_id
        return (
            Position.objects.filter(account_id=account, status=PositionStatus.OPEN).count()
            + Holding.objects.filter(account_id=account, quantity__gt=0).count()
        )

    def lose_100(self) -> None:
        self.world.price(self.eth, "3180" if self.product == "margin" else "3100")


def pause(copy: Copy, kind: str, clock) -> str:
    """Pause the copy the way ``kind`` says; returns its pause reason."""
    sub = copy.sub
    if kind in ("manual", "staff"):
        subscription_pause(subscription=sub, reason=kind)
        return kind
    if kind == "daily_loss_realized":
        services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=D("1"))
    else:  # margin call: equity 4,960 is 310 % of the 1,600 margin in use
        services.risk_limits_set(subscription_id=sub.pk, margin_call_level_pct=D("400"))
    tick(clock)
    assert status_of(sub) == (PAUSED, f"risk:{kind}")
    return f"risk:{kind}"


KINDS = [
    ("margin", "manual"),
    ("margin", "staff"),
    ("margin", "margin_call"),
    ("margin", "daily_loss_realized"),
    ("spot", "manual"),
    ("spot", "staff"),
    ("spot", "daily_loss_realized"),
]


@pytest.mark.parametrize(("product", "kind"), KINDS)
def test_a_paused_copy_over_its_unrealized_limit_is_closed_and_stays_paused(world, clock, product, kind):
    copy = Copy(world, product)
    sub = copy.sub
    reason = pause(copy, kind, clock)
    paused_by = RiskState.objects.filter(pk=sub.pk).values_list("paused_by_rule", flat=True).first() or ""
    notes_before = Notification.objects.filter(user_id=sub.follower_id, kind__startswith="risk.").count()

    # Still paused and watched: a tick that finds nothing new changes nothing
    # (a watchdog pause still paused is no resume: its state stays).
    report = tick(clock)
    assert report.checked == 1 and report.paused == []
    assert status_of(sub) == (PAUSED, reason)
    assert (RiskState.objects.filter(pk=sub.pk).values_list("paused_by_rule", flat=True).first() or "") == paused_by

    # The reproduction: -100 unrealized against a limit of 10.
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("10"))
    copy.lose_100()
    report = tick(clock)

    assert report.paused == [sub.pk]
    assert copy.exposure() == 0
    # The follower's own pause stays the follower's; a watchdog pause becomes
    # the unrealized one (never lifted at midnight).
    stays = reason if kind in ("manual", "staff") else "risk:daily_loss_unrealized"
    assert status_of(sub) == (PAUSED, stays)
    event = RiskEvent.objects.filter(subscription_id=sub.pk).latest("pk")
    assert (event.rule, event.measured, event.threshold, event.action) == (
        "daily_loss_unrealized",
        D("100"),
        D("10"),
        "pause_and_close",
    )
    assert (event.closed_positions, event.sold_holdings) == ((1, 0) if product == "margin" else (0, 1))
    assert ledger_check().ok
    notes = Notification.objects.filter(user_id=sub.follower_id, kind__startswith="risk.").order_by("pk")
    assert notes.count() == notes_before + 1
    assert notes.last().kind == "risk.daily_loss_unrealized"
    assert RiskState.objects.get(pk=sub.pk).paused_by_rule == "daily_loss_unrealized"

    # Midnight lifts no pause here, and a closed-out paused copy is no longer watched.
    assert services.daily_reset_apply(now=MIDNIGHT) == []
    assert status_of(sub) == (PAUSED, stays)
    clock.move_to(MIDNIGHT + timedelta(minutes=1))
    assert tick(clock).checked == 0


def test_a_follower_paused_copy_is_not_paused_for_a_realized_loss_nor_resumed_at_midnight(world, clock):
    copy = Copy(world, "spot")
    sub = copy.sub
    subscription_pause(subscription=sub)
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=D("1"))  # 40 lost today

    report = tick(clock)

    assert report.checked == 1 and report.paused == []
    assert not RiskEvent.objects.filter(subscription_id=sub.pk).exists()
    assert RiskState.objects.get(pk=sub.pk).paused_by_rule == ""
    assert services.daily_reset_apply(now=MIDNIGHT) == []
    assert status_of(sub) == (PAUSED, "manual")
    assert copy.exposure() == 1  # pausing stops new copies; nothing was sold


def test_a_closed_out_copy_the_follower_resumes_is_judged_afresh(world, clock):
    copy = Copy(world, "margin")
    sub = copy.sub
    subscription_pause(subscription=sub)
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("10"))
    copy.lose_100()
    tick(clock)
    assert status_of(sub) == (PAUSED, "manual")
    subscription_resume(subscription=sub)
    tick(clock)  # resumed by the follower: the watchdog forgets its pause
    assert status_of(sub) == (SubscriptionStatus.ACTIVE, "")
    assert RiskState.objects.get(pk=sub.pk).paused_by_rule == ""


def test_only_copies_with_open_exposure_are_watched_when_paused(world, clock):
    holding_copy = Copy(world, "spot")
    margin_copy = Copy(world, "margin")
    empty = world.follower(holding_copy.portfolio, amount="5000", multiplier="1")  # joined after the trades
    resting = world.follower(holding_copy.portfolio, amount="5000", multiplier="1")
    world.limit(holding_copy.portfolio, ETH, "buy", "0.1", "3000", leverage=1)
    assert Order.objects.filter(account_id=resting.copy_account_id, status=OrderStatus.OPEN).exists()
    for sub in (holding_copy.sub, margin_copy.sub, empty, resting):
        subscription_pause(subscription=sub)
    active = world.follower(holding_copy.portfolio, amount="5000", multiplier="1")  # active, nothing held
    ended = Copy(world, "spot").sub
    subscription_unfollow(subscription=ended)

    watched = subscription_hooks().watched_subscription_ids()

    assert watched == sorted([holding_copy.sub.pk, margin_copy.sub.pk, active.pk])
    flags = {s.subscription_id: s.active for s in subscription_hooks().watched_subscriptions(0, 10**12)}
    assert flags == {holding_copy.sub.pk: False, margin_copy.sub.pk: False, active.pk: True}


def test_a_close_out_that_leaves_unsellable_dust_is_not_repeated_every_tick(world, clock):
    """What the forced sale cannot sell (below the pair's minimum here) stays
    in the paused copy, still over the limit: the next ticks find nothing to
    close or sell, so they record no new event and send no new notification."""
    from copytrading.models import Instrument
    from tests.risk.test_spot import buy, spot_pair

    portfolio, sub = spot_pair(world)
    buy(world, portfolio, ETH, "1")
    Instrument.objects.filter(symbol=ETH).update(min_qty=D("2"))  # the holding cannot be sold
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("10"))
    world.price(ETH, "3100")

    assert tick(clock).paused == [sub.pk]  # active: paused (and the dust recorded)
    assert RiskEvent.objects.filter(subscription_id=sub.pk).get().dust == {"ETH": "1.00000000"}
    notes = Notification.objects.filter(user_id=sub.follower_id).count()
    for _ in range(3):
        report = tick(clock)
        assert report.checked == 1 and report.paused == []
    assert RiskEvent.objects.filter(subscription_id=sub.pk).count() == 1
    assert Notification.objects.filter(user_id=sub.follower_id).count() == notes
    assert status_of(sub) == (PAUSED, "risk:daily_loss_unrealized")
