"""A hypothetical copy wallet, in memory: what the paper venue would write for
one follower's decisions, without a row or a transfer. Pure: no Django.

The arithmetic is the venue's own (``copytrading.trade_math``: margin,
average entry, partial closes, spot cost, proceeds and basis); only the
bookkeeping (which dict holds what) is this module's. Mirrors are keyed by the
leader's position they follow, resting mirror limits by the leader's order,
holdings by asset, as the fan-out finds them (``propagation._load_mirrors``).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from copytrading import decisions, trade_math
from copytrading.decisions import Decision, MarketView, MirrorOrderView, MirrorView
from copytrading.money import ZERO
from copytrading.valuation import position_unrealized

# What a fill decision's ``action`` may be (the spot ones are spelled as the event kinds).
FILL_ACTIONS = (
    trade_math.OPEN, trade_math.INCREASE, trade_math.REDUCE, trade_math.CLOSE, decisions.SPOT_BUY, decisions.SPOT_SELL,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Market:
    """An instrument as the replay needs it: ``view_at(mark)`` is the market a
    decision reads at that mark (``propagation.market_view_at``)."""

    instrument_id: int
    spot: bool
    base: str
    quote: str
    primary: str
    min_qty: Decimal  # below it a holding is dust, not an open position
    view_at: Callable[[Decimal], MarketView]

    def reserved_asset(self, side: str) -> str | None:
        return trade_math.reserved_asset(
            spot=self.spot, side=side, base=self.base, quote=self.quote, primary=self.primary
        )


@dataclass(slots=True)
class Mirror:
    instrument_id: int
    side: str
    quantity: Decimal
    entry_price: Decimal
    leverage: int
    margin: Decimal
    realized_pnl: Decimal = ZERO
    take_profit: Decimal | None = None  # copied from the leader's (a TPSL decision)
    stop_loss: Decimal | None = None
    # When its size, entry or TP/SL last changed: a price range recorded over an
    # hour that began before then does not apply to it (matching.range_triggers).
    changed_at: object = None

    def view(self) -> MirrorView:
        return MirrorView(self.side, self.quantity, self.leverage)


@dataclass(slots=True)
class Held:
    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO
    reserved: Decimal = ZERO


@dataclass(slots=True)
class Resting:
    """A mirror limit order (open, or filled/cancelled: kept so a later step of
    the leader's order sees what became of it, as the fan-out reads the row)."""

    instrument_id: int
    side: str
    status: str
    quantity: Decimal
    price: Decimal
    leverage: int
    reserved: Decimal

    def view(self) -> MirrorOrderView:
        return MirrorOrderView(self.status, self.quantity, self.price, self.leverage, self.reserved)


@dataclass(frozen=True, slots=True)
class Realized:
    """A fully closed mirror (its whole realized PnL) or a spot sell (the
    sell's result): what the profit share is charged on."""

    pnl: Decimal
    position: bool


@dataclass(frozen=True, slots=True)
class Figures:
    """The wallet at the marks, as the watchdog and the pre-trade checks see it
    (risk.selectors.WalletFigures)."""

    balance: Decimal
    used_margin: Decimal
    unrealized_pnl: Decimal  # margin positions, each loss capped at its margin
    exposure: Decimal
    holdings_value: Decimal
    spot_unrealized: Decimal
    open_positions: int  # margin positions plus assets held above dust

    @property
    def equity(self) -> Decimal:
        return self.balance + self.unrealized_pnl + self.holdings_value


@dataclass
class Book:
    balance: Decimal
    locked: Decimal = ZERO
    positions: dict[int, Mirror] = field(default_factory=dict)  # by the leader's position id
    holdings: dict[str, Held] = field(default_factory=dict)  # by asset
    orders: dict[int, Resting] = field(default_factory=dict)  # by the leader's order id
    # Every result settled so far: each close or reduce of a mirror (its REALIZED_PNL
    # transfer) and each spot sell's proceeds less cost, as the watchdog sums a day's.
    settled: Decimal = ZERO
    now: object = None  # the time of the step being applied (set by the engine)

    @property
    def free(self) -> Decimal:
        return self.balance - self.locked

    def holding(self, asset: str) -> Held:
        return self.holdings.setdefault(asset, Held())

    def _reserve(self, market: Market, side: str, amount: Decimal) -> None:
        asset = market.reserved_asset(side)
        if asset is None:
            self.locked += amount
        else:
            self.holding(asset).reserved += amount

    def apply(
        self,
        decision: Decision,
        market: Market,
        *,
        position_key: int | None,
        order_key: int | None,
        via_limit: bool,
    ) -> list[Realized]:
        """Do what a copied decision asks (the venue's writes for one follower);
        returns what it realized. ``via_limit``: the decision fills this
        follower's resting mirror limit (the leader's limit filled)."""
        if decision.outcome != decisions.COPIED:
            self._order_stops(decision, market, order_key)
            return []
        action = decision.action
        realized: list[Realized] = []
        if action in FILL_ACTIONS:
            order = self.orders.get(order_key) if via_limit and order_key is not None else None
            final = order is not None and decision.order_status == decisions.ORDER_FILLED
            if final:
                self.end(order_key, market, decisions.ORDER_FILLED)
            realized = self._fill(decision, market, position_key)
        elif action == decisions.LIMIT_PLACE:
            self._reserve(market, decision.order_side, decision.reserved)
            self.orders[order_key] = Resting(
                market.instrument_id, decision.order_side, decisions.ORDER_OPEN, decision.quantity, decision.price,
                decision.leverage, decision.reserved,
            )  # fmt: skip
        elif action == decisions.LIMIT_REPRICE:
            order = self.orders[order_key]
            self._reserve(market, order.side, decision.reserved - order.reserved)
            order.price, order.reserved = decision.price, decision.reserved
        self._order_stops(decision, market, order_key)
        return realized

    def _order_stops(self, decision: Decision, market: Market, order_key: int | None) -> None:
        """A mirror limit that stops resting without a (further) fill gives its reservation back."""
        if decision.order_status not in (decisions.ORDER_CANCELLED, decisions.ORDER_REJECTED):
            return
        order = self.orders.get(order_key) if order_key is not None else None
        if order is not None and order.status == decisions.ORDER_OPEN:
            self.end(order_key, market, decision.order_status)

    def cancel(self, order_key: int, markets: dict[int, Market]) -> None:
        """Cancel a resting mirror limit (the watchdog's close-everything)."""
        order = self.orders[order_key]
        if order.status == decisions.ORDER_OPEN:
            self.end(order_key, markets[order.instrument_id], decisions.ORDER_CANCELLED)

    def _fill(self, d: Decision, market: Market, position_key: int | None) -> list[Realized]:
        action, quantity, price = d.action, d.quantity, d.price
        if action == trade_math.OPEN:
            self.open(position_key, market, d.order_side, quantity, price, d.leverage)
            return []
        if action == trade_math.INCREASE:
            self.increase(position_key, quantity, price)
            return []
        if action in (trade_math.REDUCE, trade_math.CLOSE):
            return self.close(position_key, quantity, price)
        if action == decisions.SPOT_BUY:
            h = self.holding(market.base)
            cost = trade_math.spot_cost(quantity, price)
            h.quantity += quantity
            if market.quote == market.primary:
                h.cost_basis += cost
                self.balance -= cost
            else:  # paid from the quote asset: its basis moves to the base
                h.cost_basis += self._take(self.holding(market.quote), cost)
            return []
        if action == decisions.SPOT_SELL:
            h = self.holding(market.base)
            proceeds = trade_math.spot_proceeds(quantity, price)
            basis = self._take(h, quantity)
            if market.quote != market.primary:
                got = self.holding(market.quote)
                got.quantity += proceeds
                got.cost_basis += basis
                return []
            self.balance += proceeds
            self.settled += proceeds - basis
            return [Realized(proceeds - basis, position=False)]
        raise ValueError(f"unknown fill action {action!r}")

    def open(self, key: int, market: Market, order_side: str, quantity: Decimal, price: Decimal, leverage: int) -> None:
        margin = trade_math.margin_for(quantity, price, leverage)
        side = trade_math.side_of(order_side)
        self.positions[key] = Mirror(market.instrument_id, side, quantity, price, leverage, margin, changed_at=self.now)
        self.locked += margin

    def increase(self, key: int, quantity: Decimal, price: Decimal) -> None:
        p = self.positions[key]
        margin = trade_math.margin_for(quantity, price, p.leverage)
        p.entry_price = trade_math.average_entry(p.quantity, p.entry_price, quantity, price)
        p.quantity += quantity
        p.margin += margin
        p.changed_at = self.now
        self.locked += margin

    def end(self, order_key: int, market: Market, status: str) -> None:
        """A mirror limit stops resting (filled, cancelled or rejected): its
        reservation goes back (a fill then pays from the free balance)."""
        order = self.orders[order_key]
        self._reserve(market, order.side, -order.reserved)
        order.reserved, order.status = ZERO, status

    def close(self, position_key: int, quantity: Decimal, price: Decimal) -> list[Realized]:
        p = self.positions[position_key]
        result = trade_math.close_part(
            side=p.side, quantity=p.quantity, closed=quantity, entry=p.entry_price, margin=p.margin, exit_price=price
        )
        p.quantity -= quantity
        p.changed_at = self.now
        p.margin -= result.released_margin
        p.realized_pnl += result.settled
        self.locked -= result.released_margin
        self.balance += result.settled
        self.settled += result.settled
        if p.quantity != 0:
            return []
        del self.positions[position_key]
        return [Realized(p.realized_pnl, position=True)]

    @staticmethod
    def _take(h: Held, quantity: Decimal) -> Decimal:
        basis = trade_math.basis_taken(h.quantity, h.cost_basis, quantity)
        h.quantity -= quantity
        h.cost_basis -= basis
        return basis

    def debit(self, amount: Decimal) -> None:
        """A fee leaving the wallet."""
        self.balance -= amount

    # --- reads ---------------------------------------------------------------

    def figures(self, marks: dict[int, Decimal], pairs: dict[str, Market]) -> Figures:
        """The wallet valued at ``marks`` (by instrument); a holding at the
        mark of its primary-currency pair (``pairs``: asset -> that market)."""
        used = unrealized = exposure = holdings_value = spot_unrealized = ZERO
        open_positions = 0
        for p in self.positions.values():
            mark = marks.get(p.instrument_id, p.entry_price)
            open_positions += 1
            used += p.margin
            unrealized += position_unrealized(p.side, p.quantity, p.entry_price, mark, p.margin)
            exposure += p.quantity * mark
        for asset, h in self.holdings.items():
            if h.quantity <= 0:
                continue
            pair = pairs.get(asset)
            mark = marks.get(pair.instrument_id) if pair is not None else None
            if mark is None:  # no priced pair: held at what it cost
                holdings_value += h.cost_basis
                open_positions += 1
                continue
            min_qty = pair.min_qty
            holdings_value += h.quantity * mark
            spot_unrealized += h.quantity * mark - h.cost_basis
            open_positions += int(h.quantity >= min_qty)
        return Figures(self.balance, used, unrealized, exposure, holdings_value, spot_unrealized, open_positions)
