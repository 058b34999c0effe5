"""The replay: a portfolio's recorded leader events, in order, decided for one
hypothetical follower by the fan-out's own code, against recorded prices.
Pure: no Django (``history`` loads the inputs, ``simulator`` serves them).

Per event it calls ``copytrading.decisions.decide`` exactly as
``propagation._chunk_apply`` does (the wallet's free balance and balance, the
mirror, holding and mirror limit the event is about, the market at the
event's mark, the pre-trade limits of ``risk.rules``) and applies the result
to an in-memory wallet (``book``). Between events, at every recorded mark, it
values the wallet and runs the watchdog's rules (``risk.rules.evaluate``): a
breach pauses the copy (and, for the unrealized daily loss limit, closes its
mirrors and sells its holdings at the mark), the midnight reset lifts a pause
for the realized daily loss alone. Closes pay the profit share
(``fees.math``: per trade or above the high-water mark).

What it does not model, because the recorded history cannot tell: a mirror's
own TP/SL or liquidation firing before the leader's (the replay closes the
mirror when the leader's close arrives), a price that moved between the
leader's fill and the fan-out (the event's recorded mark is used), and the
watchdog's exact tick times (the marks' times are used).
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from decimal import Decimal

from copytrading import decisions, trade_math
from copytrading.decisions import Decision, TargetView
from copytrading.leader_events import FillEvent, LeaderEventData, LimitCancelled, LimitPlaced, LimitRepriced
from copytrading.money import ZERO, floor_to_step, q8
from fees import math as fee_math
from followers.replay import matching
from followers.replay.book import Book, Market, Realized
from risk import rules

HIGH_WATER_MARK = "high_water_mark"  # fees.models.FeeModel.HIGH_WATER_MARK
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Follower:
    """The hypothetical follower: the copy settings a subscription would hold
    (``target``; its ids are 0), the amount, the limits and the fee terms."""

    target: TargetView
    amount: Decimal
    watch: rules.Limits = field(default_factory=rules.Limits)
    pretrade: rules.PreTradeLimits | None = None
    profit_share_pct: Decimal = ZERO  # what the follower would pay (capped by the leader's fee group)
    fee_model: str = "per_trade"
    # The watchdog ticks at every multiple of this many seconds (risk.watchdog.tick_number):
    # it judges the copy as the last step before each tick left it.
    watch_every: int = 30


@dataclass(frozen=True, slots=True)
class EventStep:
    at: datetime
    seq: int
    data: LeaderEventData
    mark: Decimal | None  # the instrument's mark at the event; None: an order_not_copied event


@dataclass(frozen=True, slots=True)
class MarkStep:
    """Recorded marks at ``at`` (instrument id -> mark), and the range each
    went through since the previous step (instrument id -> (low, high))."""

    at: datetime
    marks: dict[int, Decimal]
    ranges: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Copy:
    """One event's decision for the follower (what an execution row would say)."""

    seq: int
    at: datetime
    kind: str
    outcome: str
    reason: str
    quantity: Decimal
    price: Decimal | None
    seen: tuple = ()


@dataclass(frozen=True, slots=True)
class Pause:
    at: datetime
    rule: str
    measured: Decimal
    threshold: Decimal
    closed: bool  # the rule closed the mirrors and sold the holdings
    resumed_at: datetime | None = None


@dataclass
class Result:
    amount: Decimal
    equity: Decimal = ZERO  # at the last marks
    balance: Decimal = ZERO  # the wallet's at the end, and the part of it locked
    locked: Decimal = ZERO
    fees: Decimal = ZERO
    max_drawdown_pct: Decimal = ZERO
    copies: list[Copy] = field(default_factory=list)
    curve: list[tuple[datetime, Decimal]] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)

    @property
    def pnl(self) -> Decimal:
        return self.equity - self.amount

    @property
    def roi_pct(self) -> Decimal:
        return q8(self.pnl * HUNDRED / self.amount) if self.amount else ZERO

    def counts(self) -> Counter:
        """(outcome, reason) -> how many events."""
        return Counter((c.outcome, c.reason) for c in self.copies)


def _position_key(data: LeaderEventData) -> int | None:
    return getattr(data, "leader_position_id", None)


def _order_key(data: LeaderEventData) -> int | None:
    """The leader's limit order whose mirror the event places, moves or fills."""
    if isinstance(data, LimitPlaced | LimitRepriced | LimitCancelled):
        return data.leader_order_id
    if isinstance(data, FillEvent):
        return data.limit_order_id
    return None


class Replay:
    def __init__(self, follower: Follower, markets: dict[int, Market]):
        self.follower = follower
        self.markets = markets
        # Each asset's primary-currency pair: the holdings' marks.
        self.pairs = {m.base: m for m in markets.values() if m.spot and m.quote == m.primary}
        self.book = Book(balance=follower.amount)
        self.result = Result(amount=follower.amount)
        self.marks: dict[int, Decimal] = {}
        self.paused: Pause | None = None
        self.day = None
        self.settled_at_day_start = ZERO  # Book.settled when the UTC day began
        self.peak: Decimal | None = None
        self.curve_peak = follower.amount
        self.high_water = ZERO  # the fee mark (high-water-mark model)
        self.cumulative = ZERO  # Σ realized of closed mirrors and spot sells

    def run(self, steps: Iterable[EventStep | MarkStep]) -> Result:
        self.steps = list(steps)
        ticks = [int(step.at.timestamp()) // self.follower.watch_every for step in self.steps]
        for n, step in enumerate(self.steps):
            self._new_day(step.at)
            self.book.now = step.at
            if isinstance(step, EventStep):
                if step.mark is not None:
                    self._match(step.data.instrument_id, step.mark, n)
                self._event(step)
            else:
                for instrument_id, mark in step.marks.items():
                    self._match_range(instrument_id, step.ranges.get(instrument_id), step.at)
                    self._match(instrument_id, mark, n)
            figures = self._value(step.at)
            if n + 1 == len(self.steps) or ticks[n + 1] != ticks[n]:
                self._watch(step.at, figures)  # a tick comes before the next step
        self.result.equity = q8(self._figures().equity)
        self.result.balance, self.result.locked = self.book.balance, self.book.locked
        return self.result

    # --- a new mark: the venue's matching ------------------------------------------

    def _match(self, instrument_id: int, mark: Decimal, n: int) -> None:
        """What the mark does before the event at ``n`` (if it is one) is
        copied: the mirror limit filling with the leader's order that made
        the event, then the mirrors' own triggers (copytrading.matching)."""
        self.marks[instrument_id] = mark
        market = self.markets.get(instrument_id)
        if market is None:
            return
        view = market.view_at(mark)
        step = self.steps[n]
        data = step.data if isinstance(step, EventStep) else None
        order_key = data.limit_order_id if isinstance(data, FillEvent) else None
        order = self.book.orders.get(order_key) if order_key is not None else None
        if (
            order is not None
            and order.status == decisions.ORDER_OPEN
            and trade_math.crossed(order.side, order.price, mark)
        ):
            group = self._fill_group(n, order_key)
            self._realized(matching.mirror_fills_with_leader(self.book, market, view, order_key, group))
        self._realized(matching.triggers(self.book, market, view, mark))

    def _match_range(self, instrument_id: int, extremes: tuple[Decimal, Decimal] | None, at: datetime) -> None:
        """The mirrors' stops, take-profits and liquidations the price reached
        inside the hour (of which ``at`` is the last mark), at their levels
        (matching.range_triggers)."""
        market = self.markets.get(instrument_id)
        if market is not None and extremes is not None:
            hour = at.replace(minute=0, second=0, microsecond=0)
            self._realized(matching.range_triggers(self.book, market, *extremes, since=hour))

    def _fill_group(self, n: int, order_key: int) -> list[FillEvent]:
        """The fill events of one leader limit order's fill, from ``n`` on
        (recorded together: a flip is a close and an open)."""
        group: list[FillEvent] = []
        for step in self.steps[n:]:
            if not isinstance(step, EventStep):
                continue
            data = step.data
            if not isinstance(data, FillEvent) or data.limit_order_id != order_key:
                break
            group.append(data)
            if data.limit_final:
                break
        return group

    # --- one event -------------------------------------------------------------

    def _event(self, step: EventStep) -> None:
        data = step.data
        view = decisions.event_view(data)
        market = self.markets.get(data.instrument_id)
        # An event without a mark of its own is priced at the last one known.
        mark = step.mark if step.mark is not None else self.marks.get(data.instrument_id)
        if step.mark is not None:
            self.marks[data.instrument_id] = step.mark
        no_price = market is None or mark is None or data.KIND.value == decisions.ORDER_NOT_COPIED
        market_view = None if no_price else market.view_at(mark)
        position_key, order_key = _position_key(data), _order_key(data)
        book = self.book
        mirror = book.positions.get(position_key) if position_key is not None else None
        order = book.orders.get(order_key) if order_key is not None else None
        held = book.holdings.get(market.base) if market is not None and market.spot else None
        target = self.follower.target
        if self.paused is not None:
            target = replace(target, active=False)
        try:
            decision = decisions.decide(
                view,
                target,
                free=book.free,
                equity=book.balance,
                mirror=mirror.view() if mirror else None,
                holding=held.quantity if held else ZERO,
                holding_reserved=held.reserved if held else ZERO,
                market=market_view,
                mirror_order=order.view() if order else None,
                pretrade=self._pretrade() if target.active else None,
            )
            via_limit = order is not None and view.limit_order_id is not None and order.status == decisions.ORDER_OPEN
            realized = book.apply(decision, market, position_key=position_key, order_key=order_key, via_limit=via_limit)
            if decision.outcome == decisions.COPIED and decision.action == decisions.TPSL:
                mirror.take_profit, mirror.stop_loss = data.take_profit, data.stop_loss
                mirror.changed_at = step.at
        except Exception as exc:  # noqa: BLE001 - as the fan-out isolates a follower whose decision raises
            decision = Decision(decisions.FAILED, decisions.INTERNAL_ERROR, seen=(None, None, None, repr(exc)))
            realized = []
        self._realized(realized)
        self.result.copies.append(
            Copy(step.seq, step.at, data.KIND.value, decision.outcome, decision.reason, decision.quantity,
                 decision.price, decision.seen)
        )  # fmt: skip

    def _pretrade(self):
        limits = self.follower.pretrade
        if limits is None:
            return None
        f = self._figures()
        # As risk.selectors.pretrade_books: spot holdings count as positions and exposure.
        book = rules.Book(open_positions=f.open_positions, exposure=f.exposure + f.holdings_value, equity=f.equity)

        def check(subscription_id: int, *, opens_position: bool, notional: Decimal) -> str | None:
            return rules.pretrade_check(limits, book, opens_position=opens_position, notional=notional)

        return check

    # --- money realized: the day's result and the profit share ---------------------

    def _realized(self, realized: list[Realized]) -> None:
        """Closed mirrors and spot sells: the profit share (the day's result
        counts every settlement, ``Book.settled``)."""
        for r in realized:
            self.cumulative += r.pnl
            self._charge(r.pnl)

    def _charge(self, pnl: Decimal) -> None:
        share = self.follower.profit_share_pct
        if pnl <= 0 or share <= 0:
            return
        if self.follower.fee_model == HIGH_WATER_MARK:
            base = fee_math.high_water_base(mark=self.high_water, total=self.cumulative, batch_pnl=pnl)
            if self.cumulative <= base:
                return
            profit = self.cumulative - base
        else:
            profit = pnl
        due = fee_math.fee_split(profit=profit, share_pct=share, platform_cut_pct=ZERO)
        if due.fee == 0:
            return
        if self.follower.fee_model == HIGH_WATER_MARK:
            self.high_water = self.cumulative
        charged = fee_math.fee_charge(due, available=max(self.book.free, ZERO), platform_cut_pct=ZERO).fee
        self.book.debit(charged)
        self.result.fees += charged

    # --- the watchdog ------------------------------------------------------------

    def _new_day(self, at: datetime) -> None:
        """00:00 UTC: a new day's realized result; the midnight reset lifts a
        pause for the realized daily loss alone (risk.services.daily_reset_apply),
        and a drawdown stop starts afresh from the equity then."""
        day = at.astimezone(UTC).date()
        if day == self.day:
            return
        self.day = day
        self.settled_at_day_start = self.book.settled
        p = self.paused
        if p is not None and p.rule == rules.DAILY_LOSS_REALIZED and p.at.astimezone(UTC).date() < day:
            self.result.pauses[-1] = replace(p, resumed_at=datetime.combine(day, time.min, tzinfo=UTC))
            self.paused = None
            self.peak = None

    def _figures(self):
        return self.book.figures(self.marks, self.pairs)

    def _value(self, at: datetime):
        """The wallet after a step: a point of the equity curve (every recorded
        price and event, not only the watchdog's ticks) and its drawdown."""
        f = self._figures()
        equity = f.equity
        self.result.curve.append((at, q8(equity)))
        self.curve_peak = max(self.curve_peak, equity)
        if self.curve_peak > 0:
            drawdown = (self.curve_peak - equity) * HUNDRED / self.curve_peak
            self.result.max_drawdown_pct = max(self.result.max_drawdown_pct, q8(drawdown))
        return f

    def _watch(self, at: datetime, f) -> None:
        """The watchdog's tick: its rules on the wallet as the last step left it."""
        equity = f.equity
        limits = self.follower.watch
        paused = self.paused is not None
        # No peak is kept while the watchdog holds the copy (risk/watchdog.py).
        if limits.max_drawdown_pct is not None and not paused:
            self.peak = rules.next_peak(self.peak, ZERO, ZERO, equity)
        snap = rules.Snapshot(
            equity=equity,
            used_margin=f.used_margin,
            unrealized_pnl=f.unrealized_pnl + f.spot_unrealized,
            realized_today=self.book.settled - self.settled_at_day_start,
            peak_equity=None if paused else self.peak,
        )
        breaches = rules.evaluate(limits, snap)
        if paused:
            # A paused copy is already paused: only the rule that also closes acts on it.
            breaches = [b for b in breaches if b.action == rules.PAUSE_AND_CLOSE]
        if not breaches:
            return
        main = breaches[0]
        closes = main.action == rules.PAUSE_AND_CLOSE
        self.paused = Pause(at, main.rule, main.measured, main.threshold, closes)
        self.result.pauses.append(self.paused)
        if closes:
            self._close_everything()

    def _close_everything(self) -> None:
        """The unrealized daily loss limit's action (risk.watchdog._force_close):
        every mirror closed at the mark, then the resting mirror limits
        cancelled, then every holding sold down to its step (what is below the
        pair's minimum stays, as dust)."""
        book = self.book
        for key, p in list(book.positions.items()):
            market = self.markets[p.instrument_id]
            view = market.view_at(self.marks.get(p.instrument_id, p.entry_price))
            side = trade_math.closing_side(p.side)
            price = view.fill_price_buy if side == trade_math.BUY else view.fill_price_sell
            self._realized(book.close(key, p.quantity, price))
        for key in list(book.orders):
            book.cancel(key, self.markets)
        for market in self.markets.values():
            held = book.holdings.get(market.base)
            if not market.spot or market.quote != market.primary or held is None or held.quantity <= 0:
                continue
            mark = self.marks.get(market.instrument_id)
            if mark is None:
                continue
            view = market.view_at(mark)
            quantity = floor_to_step(held.quantity - held.reserved, view.constraints.qty_step)
            if quantity <= 0 or quantity < view.constraints.min_qty:
                continue
            sell = Decision(decisions.COPIED, action=decisions.SPOT_SELL, order_side=trade_math.SELL,
                            quantity=quantity, price=view.fill_price_sell)  # fmt: skip
            self._realized(book.apply(sell, market, position_key=None, order_key=None, via_limit=False))


def replay(steps: Iterable[EventStep | MarkStep], follower: Follower, markets: dict[int, Market]) -> Result:
    """Replay ``steps`` (events and marks, in time order) for ``follower``."""
    return Replay(follower, markets).run(steps)
