"""The watchdog over real wallets, mirrors and prices: each rule at, just below
and just above its threshold, with frozen time; the midnight reset and a tick
that straddles midnight; what a pause records and notifies."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from copytrading import ledger
from copytrading.errors import DomainError
from copytrading.models import Notification, Order, Position, PositionStatus, TransferKind
from followers.models import Subscription, SubscriptionStatus
from risk import selectors, services, tasks, watchdog
from risk.models import RiskEvent, RiskLimits, RiskState, WatchdogChunk, WatchdogTick
from tests.risk.conftest import BTC_PERP, ETH_PERP, equity, open_mirrors, status_of

D = Decimal
TICK = D("0.00000001")
NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2025, 3, 11, 0, 0, tzinfo=UTC)
ACTIVE = (SubscriptionStatus.ACTIVE, "")


def paused(rule: str) -> tuple[str, str]:
    return SubscriptionStatus.PAUSED, f"risk:{rule}"


def events_of(sub) -> list[tuple]:
    return list(
        RiskEvent.objects.filter(subscription_id=sub.pk)
        .order_by("pk")
        .values_list("rule", "measured", "threshold", "action", "closed_positions")
    )


@pytest.fixture
def clock():
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


def tick(clock, seconds: int = 30, **kwargs) -> watchdog.TickReport:
    """Move the frozen clock to the next 30-second slot and run a whole tick."""
    clock.shift(timedelta(seconds=seconds))
    return watchdog.watchdog_tick(**kwargs)


# --- daily loss limit on realized PnL ----------------------------------------------


def realized_loss_today(world, clock):
    """A follower whose mirror closed at a loss today; returns (sub, loss)."""
    world.price(ETH_PERP, "3200")
    portfolio = world.leader()
    sub = world.follower(portfolio)
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    (mirror,) = open_mirrors(sub)
    tick(clock)  # the watchdog knows the wallet before the loss
    world.price(ETH_PERP, "3000")
    world.close(portfolio, event.payload["leader_position_id"])
    mirror.refresh_from_db()
    assert mirror.status == PositionStatus.CLOSED and mirror.realized_pnl < 0
    return sub, -mirror.realized_pnl


@pytest.mark.parametrize(("offset", "breached"), [(-TICK, True), (D(0), True), (TICK, False)])
def test_daily_realized_loss_pauses_from_the_limit_on(world, clock, offset, breached):
    sub, loss = realized_loss_today(world, clock)
    limit = loss + offset  # the loss is above, at, or just below the limit
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=limit)

    report = tick(clock)

    if not breached:
        assert status_of(sub) == ACTIVE
        assert events_of(sub) == []
        assert report.paused == []
        return
    assert status_of(sub) == paused("daily_loss_realized")
    assert report.paused == [sub.pk]
    assert events_of(sub) == [("daily_loss_realized", loss, limit, "pause", 0)]
    state = RiskState.objects.get(pk=sub.pk)
    assert (state.paused_by_rule, state.paused_day) == ("daily_loss_realized", NOON.date())
    follower_note = Notification.objects.get(user_id=sub.follower_id, kind__startswith="risk.")
    assert (follower_note.kind, follower_note.severity) == ("risk.daily_loss_realized", "high")
    assert str(loss.quantize(D("0.01"))) in follower_note.body and "00:00 UTC" in follower_note.body
    leader_note = Notification.objects.get(user_id=sub.portfolio.leader_id, kind__startswith="risk.")
    assert leader_note.kind == "risk.follower_daily_loss_limit"
    assert leader_note.data["subscription_id"] == sub.pk


def test_only_todays_realized_loss_counts(world, clock):
    sub, loss = realized_loss_today(world, clock)
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=loss)
    clock.move_to(MIDNIGHT + timedelta(hours=1))  # the loss was yesterday
    watchdog.watchdog_tick()
    assert status_of(sub) == ACTIVE
    assert events_of(sub) == []


# --- daily loss limit on unrealized PnL --------------------------------------------


@pytest.mark.parametrize(("offset", "breached"), [(-TICK, True), (D(0), True), (TICK, False)])
def test_daily_unrealized_loss_pauses_and_closes_every_mirror(world, clock, offset, breached):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    other = world.follower(portfolio)  # no limit: untouched
    world.trade(portfolio, ETH_PERP, "buy", "1")
    world.trade(portfolio, BTC_PERP, "sell", "0.1")
    tick(clock)
    world.price(ETH_PERP, "3100")
    world.price(BTC_PERP, "64500")
    mirrors = open_mirrors(sub)
    assert len(mirrors) == 2
    loss = -(equity(sub) - ledger_balance(sub))
    assert loss > 0
    limit = loss + offset
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=limit)

    report = tick(clock)

    assert status_of(other) == ACTIVE and len(open_mirrors(other)) == 2
    if not breached:
        assert status_of(sub) == ACTIVE
        assert open_mirrors(sub) == mirrors
        assert events_of(sub) == []
        return
    assert status_of(sub) == paused("daily_loss_unrealized")
    assert open_mirrors(sub) == []
    for mirror in mirrors:
        # Closed once, at market: one closing order per mirror.
        closing = "sell" if mirror.side == "long" else "buy"
        assert Order.objects.filter(position_id=mirror.pk, side=closing).count() == 1
    assert events_of(sub) == [("daily_loss_unrealized", loss, limit, "pause_and_close", 2)]
    assert report.closed_positions == 2
    note = Notification.objects.get(user_id=sub.follower_id, kind__startswith="risk.")
    assert (note.kind, note.severity) == ("risk.daily_loss_unrealized", "critical")
    assert ledger.ledger_check().ok


def ledger_balance(sub) -> Decimal:
    return sub.copy_account.__class__.objects.get(pk=sub.copy_account_id).balance


# --- margin-call protection ----------------------------------------------------------


def margin_heavy_follower(world, clock):
    """1,000 in the wallet, 800 of it margin (0.5 ETH at 3,200, leverage 2)."""
    world.price(ETH_PERP, "3200")
    portfolio = world.leader()
    sub = world.follower(portfolio, amount="1000")
    world.trade(portfolio, ETH_PERP, "buy", "1", leverage=2)
    (mirror,) = open_mirrors(sub)
    assert mirror.margin == D("800")
    tick(clock)  # 125 %: nothing to do, but the watchdog knows the wallet
    assert status_of(sub) == ACTIVE
    return sub


@pytest.mark.parametrize(
    ("price", "breached"),
    [
        ("2960.01", False),  # equity 880.005: 110.000625 %
        ("2960", True),  # equity 880: exactly the default 110 %
        ("2959.99", True),
    ],
)
def test_margin_call_pauses_at_or_below_the_default_110_percent_only(world, clock, price, breached):
    sub = margin_heavy_follower(world, clock)
    world.price(ETH_PERP, price)

    tick(clock)

    (mirror,) = open_mirrors(sub)  # margin-call protection never closes
    if not breached:
        assert status_of(sub) == ACTIVE
        assert events_of(sub) == []
        return
    assert status_of(sub) == paused("margin_call")
    level = (equity(sub) * 100 / mirror.margin).quantize(TICK)
    assert events_of(sub) == [("margin_call", level, D("110"), "pause", 0)]
    assert Notification.objects.get(user_id=sub.follower_id, kind__startswith="risk.").kind == "risk.margin_call"


@pytest.mark.parametrize(("level", "breached"), [("112.49", False), ("112.50", True), ("112.51", True)])
def test_margin_call_override_per_subscription(world, clock, level, breached):
    sub = margin_heavy_follower(world, clock)
    world.price(ETH_PERP, "3000")  # equity 900 on 800 of margin: 112.5 %
    services.risk_limits_set(subscription_id=sub.pk, margin_call_level_pct=D(level))
    tick(clock)
    assert status_of(sub) == (paused("margin_call") if breached else ACTIVE)


# --- max drawdown --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "breached"),
    [
        ("3196.01", False),  # equity 4,998.005: 1.9999 % below the 5,100 peak
        ("3196", True),  # equity 4,998: exactly 2 %
        ("3195.99", True),
    ],
)
def test_max_drawdown_counts_from_the_peak_equity(world, clock, price, breached):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("2"))
    tick(clock)
    world.price(ETH_PERP, "3400")  # the peak: 5,100
    tick(clock)
    assert RiskState.objects.get(pk=sub.pk).peak_equity == D("5100")
    world.price(ETH_PERP, price)

    tick(clock)

    if not breached:
        assert status_of(sub) == ACTIVE
        assert events_of(sub) == []
        return
    assert status_of(sub) == paused("max_drawdown")
    drawdown = ((D("5100") - equity(sub)) * 100 / D("5100")).quantize(TICK)
    assert events_of(sub) == [("max_drawdown", drawdown, D("2"), "pause", 0)]
    assert len(open_mirrors(sub)) == 1


def test_a_drawdown_stop_counts_from_the_peak_since_it_was_set(world, clock):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    world.price(ETH_PERP, "3400")  # a high of 5,100 before any stop is set
    tick(clock)
    world.price(ETH_PERP, "3200")
    tick(clock)
    services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("2"))  # 5,000 is 1.96 % below 5,100
    tick(clock)
    assert status_of(sub) == ACTIVE
    assert RiskState.objects.get(pk=sub.pk).peak_equity == D("5000")
    # Switched off and on again, it forgets the peak once more.
    world.price(ETH_PERP, "3300")
    tick(clock)
    services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=None)
    assert RiskState.objects.get(pk=sub.pk).peak_equity is None
    world.price(ETH_PERP, "3200")
    services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("0.5"))  # 0.99 % below 5,050
    tick(clock)
    assert status_of(sub) == ACTIVE
    assert RiskState.objects.get(pk=sub.pk).peak_equity == D("5000")


def test_a_withdrawal_is_not_a_drawdown(world, clock):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("3"))
    tick(clock)  # peak 5,000
    main = ledger.main_account_for(sub.follower)
    ledger.transfer(
        debit_id=sub.copy_account_id, credit_id=main.pk, amount=D("2000"), kind=TransferKind.COPY_RETURN, key="w1"
    )
    world.price(ETH_PERP, "3000")  # equity 2,900 on a 3,000 peak: 3.33 %, not 42 %
    tick(clock)
    assert status_of(sub) == paused("max_drawdown")
    assert events_of(sub)[0][1] == (D("100") * 100 / D("3000")).quantize(TICK)


def test_resuming_after_a_drawdown_stop_counts_from_the_equity_of_then(world, clock):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("1"))
    tick(clock)
    world.price(ETH_PERP, "3000")
    tick(clock)
    assert status_of(sub) == paused("max_drawdown")
    # The follower resumes (the followers app's manual resume).
    Subscription.objects.filter(pk=sub.pk).update(status=SubscriptionStatus.ACTIVE, pause_reason="")

    tick(clock)

    assert status_of(sub) == ACTIVE
    state = RiskState.objects.get(pk=sub.pk)
    assert (state.paused_by_rule, state.peak_equity) == ("", equity(sub))
    assert len(events_of(sub)) == 1


# --- the midnight reset ----------------------------------------------------------------


def test_the_midnight_reset_lifts_realized_loss_pauses_only(world, clock):
    sub, loss = realized_loss_today(world, clock)
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=loss)
    margin_sub = margin_heavy_follower(world, clock)
    world.price(ETH_PERP, "2900")
    clock.move_to(datetime(2025, 3, 10, 23, 50, tzinfo=UTC))
    watchdog.watchdog_tick()
    assert status_of(sub) == paused("daily_loss_realized")
    assert status_of(margin_sub) == paused("margin_call")

    clock.move_to(MIDNIGHT)
    assert tasks.daily_reset.delay().get() == 1
    assert status_of(sub) == ACTIVE
    assert status_of(margin_sub) == paused("margin_call")
    assert events_of(sub)[-1] == ("daily_loss_realized", None, None, "resume", 0)
    assert Notification.objects.filter(user_id=sub.follower_id, kind="risk.daily_loss_reset").count() == 1
    assert RiskState.objects.get(pk=sub.pk).paused_by_rule == ""
    # Run twice, it changes nothing more.
    assert services.daily_reset_apply() == []

    clock.shift(timedelta(seconds=30))
    watchdog.watchdog_tick()  # yesterday's loss no longer counts
    assert status_of(sub) == ACTIVE
    assert len(events_of(sub)) == 2


def test_a_follower_resumed_by_hand_is_not_touched_by_the_reset(world, clock):
    sub, loss = realized_loss_today(world, clock)
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=loss)
    tick(clock)
    # Resumed by hand, then paused by hand for another reason.
    Subscription.objects.filter(pk=sub.pk).update(status=SubscriptionStatus.PAUSED, pause_reason="manual")
    clock.move_to(MIDNIGHT)
    services.daily_reset_apply()
    assert status_of(sub) == (SubscriptionStatus.PAUSED, "manual")
    assert [e[3] for e in events_of(sub)] == ["pause"]


def test_a_tick_that_straddles_midnight(world, clock, settings):
    """Chunk one runs before midnight (yesterday's loss pauses), the reset runs,
    chunk two runs after midnight (yesterday's loss no longer counts)."""
    first, loss_first = realized_loss_today(world, clock)
    second, loss_second = realized_loss_today(world, clock)
    for sub, loss in ((first, loss_first), (second, loss_second)):
        services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=loss)

    clock.move_to(datetime(2025, 3, 10, 23, 59, 50, tzinfo=UTC))
    tick_row, planned = watchdog.watchdog_tick_plan(chunk_size=1)
    assert planned and tick_row.chunk_count == 2
    clock.move_to(datetime(2025, 3, 10, 23, 59, 55, tzinfo=UTC))
    watchdog.watchdog_drain(tick_id=tick_row.pk, max_chunks=1)
    assert status_of(first) == paused("daily_loss_realized")
    assert status_of(second) == ACTIVE

    clock.move_to(MIDNIGHT)
    assert services.daily_reset_apply() == [first.pk]
    clock.move_to(MIDNIGHT + timedelta(seconds=5))
    watchdog.watchdog_drain(tick_id=tick_row.pk)

    assert status_of(first) == ACTIVE
    assert status_of(second) == ACTIVE
    assert events_of(second) == []
    tick_row.refresh_from_db()
    assert tick_row.completed_at == MIDNIGHT + timedelta(seconds=5)
    assert set(WatchdogChunk.objects.filter(tick=tick_row).values_list("status", flat=True)) == {"done"}


def test_a_pause_for_yesterday_that_lands_after_the_reset_is_lifted_by_the_next_tick(world, clock):
    """The reset ran at midnight, but a chunk whose clock still read 23:59:59
    committed its pause after: the next tick's planner lifts it."""
    sub, loss = realized_loss_today(world, clock)
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_realized=loss)
    clock.move_to(MIDNIGHT)
    assert services.daily_reset_apply() == []
    clock.move_to(MIDNIGHT - timedelta(seconds=1))
    watchdog.watchdog_tick()
    assert status_of(sub) == paused("daily_loss_realized")

    clock.move_to(MIDNIGHT + timedelta(seconds=30))
    watchdog.watchdog_tick()

    assert status_of(sub) == ACTIVE
    assert [e[3] for e in events_of(sub)] == ["pause", "resume"]


# --- the tick itself -------------------------------------------------------------------


def test_a_tick_runs_once_per_slot_and_acts_once_on_a_paused_subscription(world, clock):
    sub = margin_heavy_follower(world, clock)
    world.price(ETH_PERP, "2900")
    first = tick(clock)
    assert first.planned and first.paused == [sub.pk]
    again = watchdog.watchdog_tick()  # the same 30-second slot
    assert (again.planned, again.chunks, again.paused) == (False, 0, [])
    # The next slot: the paused subscription keeps its open mirror, so it is
    # still watched, but its margin call (a pause) does nothing more.
    later = tick(clock)
    assert (later.planned, later.checked, later.paused) == (True, 1, [])
    assert len(events_of(sub)) == 1
    assert WatchdogTick.objects.filter(number__in=[first.number, later.number]).count() == 2


def test_the_celery_task_runs_a_whole_tick(world, clock, settings):
    settings.RISK_WATCHDOG_CHUNK_SIZE = 1
    subs = [margin_heavy_follower(world, clock) for _ in range(3)]
    world.price(ETH_PERP, "2900")
    clock.shift(timedelta(seconds=30))
    tasks.watchdog_tick.delay()
    assert [status_of(s) for s in subs] == [paused("margin_call")] * 3
    tick_row = WatchdogTick.objects.latest("number")
    assert (tick_row.chunk_count, tick_row.subscription_count) == (3, 3)
    assert tick_row.completed_at is not None


def test_a_chunk_costs_the_same_queries_for_two_or_twelve_subscriptions(world, clock):
    portfolio = world.leader()
    few = [world.follower(portfolio) for _ in range(2)]
    world.trade(portfolio, ETH_PERP, "buy", "1")
    for sub in few:
        services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("50"))
    tick(clock)  # creates the risk states

    def one_tick() -> int:
        clock.shift(timedelta(seconds=30))
        tick_row, _ = watchdog.watchdog_tick_plan()
        with CaptureQueriesContext(connection) as ctx:
            watchdog.watchdog_drain(tick_id=tick_row.pk)
        return len(ctx.captured_queries)

    with_few = one_tick()
    more = [world.follower(portfolio) for _ in range(10)]
    world.trade(portfolio, ETH_PERP, "buy", "1")
    for sub in more:
        services.risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("50"))
    tick(clock)
    assert one_tick() == with_few


def test_wallet_figures_value_positions_and_spot_holdings_at_the_marks(world, clock):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    world.trade(portfolio, BTC_PERP, "sell", "0.1")
    world.price(ETH_PERP, "3100.5")
    world.price(BTC_PERP, "63000")
    figures = selectors.wallet_figures([sub.copy_account_id])[sub.copy_account_id]
    mirrors = open_mirrors(sub)
    assert figures.open_positions == 2
    assert figures.used_margin == sum(m.margin for m in mirrors)
    assert figures.equity == equity(sub)
    marks = {ETH_PERP: D("3100.5"), BTC_PERP: D("63000")}
    assert figures.exposure == sum(m.quantity * marks[m.instrument.symbol] for m in mirrors)


# --- limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("daily_loss_limit_realized", D("0"), "OUT_OF_RANGE"),
        ("daily_loss_limit_unrealized", D("-5"), "OUT_OF_RANGE"),
        ("margin_call_level_pct", D("99.99"), "OUT_OF_RANGE"),
        ("margin_call_level_pct", D("1000.01"), "OUT_OF_RANGE"),
        ("max_drawdown_pct", D("100.01"), "OUT_OF_RANGE"),
        ("max_drawdown_pct", D("5.001"), "INVALID_PRECISION"),
        ("max_open_positions", 0, "OUT_OF_RANGE"),
        ("max_exposure_pct", D("NaN"), "INVALID_NUMBER"),
        ("leverage", 3, "UNKNOWN_FIELD"),
    ],
)
def test_limits_out_of_range_are_refused_with_the_field(db, field, value, code):
    with pytest.raises(DomainError) as caught:
        services.risk_limits_set(subscription_id=1, **{field: value})
    assert (caught.value.code, caught.value.field) == (code, field)
    assert not RiskLimits.objects.exists()


def test_limits_change_only_the_fields_given(db):
    services.risk_limits_set(subscription_id=7, max_open_positions=3, margin_call_level_pct=D("103"))
    services.risk_limits_set(subscription_id=7, margin_call_level_pct=None, max_exposure_pct=D("250"))
    limits = RiskLimits.objects.get(pk=7)
    assert (limits.max_open_positions, limits.margin_call_level_pct, limits.max_exposure_pct) == (3, None, D("250"))
    assert selectors.pretrade_limits([7, 8]) == {
        7: selectors.rules.PreTradeLimits(max_open_positions=3, max_exposure_pct=D("250"))
    }


def test_positions_closed_by_the_watchdog_stay_closed_on_the_next_tick(world, clock):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    services.risk_limits_set(subscription_id=sub.pk, daily_loss_limit_unrealized=D("10"))
    world.price(ETH_PERP, "3100")
    tick(clock)
    closed = Position.objects.filter(account_id=sub.copy_account_id, status=PositionStatus.CLOSED).count()
    orders = Order.objects.count()
    Subscription.objects.filter(pk=sub.pk).update(status=SubscriptionStatus.ACTIVE, pause_reason="")
    tick(clock)
    assert status_of(sub) == ACTIVE
    assert (closed, Order.objects.count()) == (1, orders)
