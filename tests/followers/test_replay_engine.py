"""The replay engine on hand-made histories (pure: no database): the
watchdog's pauses and the midnight reset, the drawdown stop that stays, the
profit share per trade and above the high-water mark, and the equity curve
thinned without losing its lows."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from copytrading import decisions, trade_math
from copytrading.decisions import MarketView, TargetView
from copytrading.leader_events import PositionClose, PositionOpen, PositionReduce, TpslSet
from copytrading.sizing import Constraints
from followers.replay.book import Market
from followers.replay.engine import EventStep, Follower, MarkStep, Result, replay
from followers.replay.simulator import curve_points
from risk import rules

D = Decimal
ETH = 7
DAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _view(mark: Decimal) -> MarketView:
    return MarketView(
        product="margin", quote="USDT", primary_currency="USDT", fill_price_buy=mark, fill_price_sell=mark,
        max_leverage=100, constraints=Constraints(D("0.01"), D("0.01"), D("1000"), D("5")),
    )  # fmt: skip


MARKETS = {ETH: Market(ETH, False, "ETH", "USDT", "USDT", D("0.01"), _view)}
TARGET = TargetView(0, 0, True, "progressive", multiplier=D("1"))


class History:
    """A leader's round trips on ETH, one position id per trip, one second apart."""

    def __init__(self):
        self.steps: list = []
        self.seq = 0
        self.position = 100

    def _event(self, at, data, mark):
        self.seq += 1
        self.steps.append(EventStep(at, self.seq, data, D(mark)))

    def open(self, at, price: str, quantity: str = "1"):
        self.position += 1
        common = {"instrument_id": ETH, "symbol": "ETH", "order_side": "buy", "price": D(price), "order_id": self.seq}
        data = PositionOpen(**common, leader_position_id=self.position, quantity=D(quantity), leverage=5,
                            leader_equity=D("10000"))  # fmt: skip
        self._event(at, data, price)

    def close(self, at, price: str):
        common = {"instrument_id": ETH, "symbol": "ETH", "order_side": "sell", "price": D(price), "order_id": self.seq}
        self._event(at, PositionClose(**common, leader_position_id=self.position), price)

    def reduce(self, at, price: str, quantity: str, before: str):
        common = {"instrument_id": ETH, "symbol": "ETH", "order_side": "sell", "price": D(price), "order_id": self.seq}
        data = PositionReduce(**common, leader_position_id=self.position, quantity=D(quantity),
                              quantity_before=D(before))  # fmt: skip
        self._event(at, data, price)

    def tpsl(self, at, take_profit: str | None, stop_loss: str | None):
        data = TpslSet(instrument_id=ETH, symbol="ETH", leader_position_id=self.position,
                       take_profit=D(take_profit) if take_profit else None,
                       stop_loss=D(stop_loss) if stop_loss else None)  # fmt: skip
        self.seq += 1
        self.steps.append(EventStep(at, self.seq, data, None))

    def mark(self, at, price: str, low: str | None = None, high: str | None = None):
        ranges = {ETH: (D(low or price), D(high or price))}
        self.steps.append(MarkStep(at, {ETH: D(price)}, ranges))


def _follower(**kw) -> Follower:
    return Follower(TARGET, D("10000"), **kw)


def test_a_realized_daily_loss_pauses_until_midnight():
    h = History()
    h.open(DAY, "3200")
    h.close(DAY + timedelta(minutes=1), "3100")  # -100 realized today
    h.open(DAY + timedelta(minutes=2), "3100")  # paused: not copied
    h.close(DAY + timedelta(minutes=3), "3150")
    h.open(DAY + timedelta(days=1), "3150")  # the next day: copied again
    watch = rules.Limits(daily_loss_realized=D("50"), margin_call_level_pct=None)
    result = replay(h.steps, _follower(watch=watch), MARKETS)
    outcomes = [(c.outcome, c.reason) for c in result.copies]
    assert outcomes == [
        ("COPIED", ""),
        ("COPIED", ""),
        ("SKIPPED", decisions.SUBSCRIPTION_PAUSED),
        ("SKIPPED", decisions.NO_MIRROR_POSITION),
        ("COPIED", ""),
    ]
    (pause,) = result.pauses
    assert (pause.rule, pause.measured, pause.closed) == (rules.DAILY_LOSS_REALIZED, D("100"), False)
    assert pause.resumed_at == datetime(2026, 11, 3, tzinfo=UTC)  # the reset runs at 00:00 UTC
    assert result.balance == D("9900")


def test_a_drawdown_stop_stays_paused():
    h = History()
    h.open(DAY, "3200", quantity="2")
    h.mark(DAY + timedelta(hours=1), "2900")  # -600 of 10,000: 6 %
    h.close(DAY + timedelta(hours=2), "2900")  # a paused copy still closes
    h.open(DAY + timedelta(days=2), "2900")
    watch = rules.Limits(max_drawdown_pct=D("5"), margin_call_level_pct=None)
    result = replay(h.steps, _follower(watch=watch), MARKETS)
    assert [c.outcome for c in result.copies] == ["COPIED", "COPIED", "SKIPPED"]
    (pause,) = result.pauses
    assert (pause.rule, pause.measured, pause.resumed_at) == (rules.MAX_DRAWDOWN, D("6"), None)
    assert result.equity == D("9400")
    assert result.max_drawdown_pct == D("6")


def test_the_profit_share_per_trade_and_above_the_high_water_mark():
    h = History()
    h.open(DAY, "3000")
    h.close(DAY + timedelta(minutes=1), "3100")  # +100
    h.open(DAY + timedelta(minutes=2), "3100")
    h.close(DAY + timedelta(minutes=3), "3000")  # -100
    h.open(DAY + timedelta(minutes=4), "3000")
    h.close(DAY + timedelta(minutes=5), "3150")  # +150
    off = rules.Limits(margin_call_level_pct=None)
    per_trade = replay(h.steps, _follower(watch=off, profit_share_pct=D("20")), MARKETS)
    assert per_trade.fees == D("50")  # 20 + 30
    high_water = replay(h.steps, _follower(watch=off, profit_share_pct=D("20"), fee_model="high_water_mark"), MARKETS)
    assert high_water.fees == D("30")  # 20 on the first 100, then 10 on the 150 - 100 above the mark
    assert high_water.balance == D("10000") + D("150") - D("30")


def test_the_curve_keeps_its_first_last_and_lowest_points():
    start = DAY
    curve = [(start + timedelta(hours=n), D(1000 + (n % 50) - (300 if n == 777 else 0))) for n in range(2000)]
    result = Result(amount=D("1000"), curve=curve)
    points = curve_points(result, limit=200)
    assert len(points) <= 200
    assert points[0] == curve[0] and points[-1] == curve[-1]
    assert min(points, key=lambda p: p[1]) == curve[777]


def test_a_close_at_the_mark_charges_the_isolated_loss_only():
    h = History()
    h.open(DAY, "3200")  # 1 ETH at 5x: 640 of margin
    h.close(DAY + timedelta(minutes=1), "2000")  # -1,200 on paper: the margin is all it can lose
    result = replay(h.steps, _follower(watch=rules.Limits(margin_call_level_pct=None)), MARKETS)
    assert result.balance == D("10000") - trade_math.margin_for(D("1"), D("3200"), 5)


def test_a_partial_reduce_at_a_loss_counts_toward_the_days_realized_loss():
    h = History()
    h.open(DAY, "3200", quantity="2")
    h.reduce(DAY + timedelta(minutes=1), "3100", "1", "2")  # -100 settled, the position still open
    h.open(DAY + timedelta(minutes=2), "3100")
    watch = rules.Limits(daily_loss_realized=D("50"), margin_call_level_pct=None)
    result = replay(h.steps, _follower(watch=watch), MARKETS)
    assert [(c.outcome, c.reason) for c in result.copies][-1] == ("SKIPPED", decisions.SUBSCRIPTION_PAUSED)
    assert result.pauses[0].rule == rules.DAILY_LOSS_REALIZED


def test_a_paused_copy_is_still_closed_out_by_the_unrealized_daily_limit():
    h = History()
    h.open(DAY, "3200", quantity="2")
    h.mark(DAY + timedelta(hours=1), "3000")  # -400: past the 3 % drawdown stop, not the 600 limit
    h.mark(DAY + timedelta(hours=2), "2800")  # -800 while paused
    watch = rules.Limits(max_drawdown_pct=D("3"), daily_loss_unrealized=D("600"), margin_call_level_pct=None)
    result = replay(h.steps, _follower(watch=watch), MARKETS)
    assert [(p.rule, p.closed) for p in result.pauses] == [
        (rules.MAX_DRAWDOWN, False),
        (rules.DAILY_LOSS_UNREALIZED, True),
    ]
    assert result.balance == D("9200") and result.locked == 0


def test_a_stop_inside_the_hour_closes_at_its_level():
    h = History()
    h.open(DAY, "3200")
    h.tpsl(DAY + timedelta(minutes=1), None, "3100")
    h.mark(DAY + timedelta(hours=1), "3250", low="3050", high="3260")  # dipped through the stop, came back
    h.close(DAY + timedelta(hours=2), "3260")  # the leader's close finds no mirror
    result = replay(h.steps, _follower(watch=rules.Limits(margin_call_level_pct=None)), MARKETS)
    assert [(c.outcome, c.reason) for c in result.copies][-1] == ("SKIPPED", decisions.NO_MIRROR_POSITION)
    assert result.balance == D("9900")  # closed at 3,100, not at the hour's close


def test_a_liquidation_inside_the_hour_loses_the_margin_only():
    h = History()
    h.open(DAY, "3200")  # 5x: liquidated 640 below the entry
    h.mark(DAY + timedelta(hours=1), "3200", low="2500", high="3200")
    result = replay(h.steps, _follower(watch=rules.Limits(margin_call_level_pct=None)), MARKETS)
    assert (result.balance, result.locked) == (D("9360"), 0)
