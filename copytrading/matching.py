"""Price-driven matching on the paper venue: what a new mark price does.

``services.price_set`` runs ``match_instrument`` in the price update's
transaction. In order:

1. Resting limit orders of own accounts (leaders) that the mark crosses fill
   at their limit price, netted like a market order (``trade_math.plan_order``).
2. Mirror limit orders fill with them: a mirror fills here only together with
   its leader order (same pass, the mark crossing both). A mirror never fills
   ahead of its leader, so a mirror whose leader was re-priced away (and whose
   re-price is still propagating) does not trade; a mirror left resting when
   its leader filled is filled by the propagation of the leader's fill event
   instead. Either way the follower gets the position once.
3. Open positions whose take-profit, stop-loss or liquidation level the mark
   reaches close at market (isolated margin: the loss is capped at the margin).

Set-based: one query per kind finds the candidates, every batch of fills goes
through ``venue.apply_fills``. A leader's fill or trigger commits its leader
event in the same transaction, so followers follow. Running it twice at the
same price finds nothing the second time: filled orders no longer rest and
closed positions are no longer open.

Lock order (no deadlock with the leader API or propagation): portfolios, then
accounts, then positions, then orders, each in primary-key order.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.db.models import Case, DecimalField, F, Q, Value, When

from copytrading import bulk, decisions, ledger, trade_math
from copytrading.decisions import LeaderStep
from copytrading.events import leader_event_record, position_step_event
from copytrading.models import (
    MONEY,
    Instrument,
    LeaderEvent,
    LeaderEventKind,
    Order,
    OrderStatus,
    OrderType,
    Position,
    PositionStatus,
)
from copytrading.money import ZERO
from copytrading.sizing import Constraints
from copytrading.venue import Fill, PositionState, apply_fills


class LeaderBook(Protocol):
    def lock_portfolios(self, account_ids: list[int]) -> dict[int, int]:
        """Row-lock, in primary-key order, the portfolios that trade from these
        accounts; returns {trading account id: portfolio id}. One query."""


_book: LeaderBook | None = None


def register_leader_book(book: LeaderBook) -> None:
    global _book
    _book = book


def leader_book() -> LeaderBook:
    if _book is None:
        raise RuntimeError("no LeaderBook registered (is the portfolios app installed?)")
    return _book


RESTING_FIELDS = (
    "pk", "account_id", "side", "quantity", "price", "leverage", "reserved", "leader_order_id", "subscription_id",
)  # fmt: skip


@dataclass(slots=True)
class Resting:
    pk: int
    account_id: int
    side: str
    quantity: Decimal
    price: Decimal
    leverage: int
    reserved: Decimal
    leader_order_id: int | None
    subscription_id: int | None


@dataclass
class LeaderFill:
    """How a leader's limit order filled: what its mirrors follow."""

    steps: list[LeaderStep]
    before_position_id: int | None  # the leader position the fill netted against
    open_position_id: int | None  # the leader position it opened or increased
    order_quantity: Decimal


@dataclass
class MatchResult:
    filled: list[int] = field(default_factory=list)  # order ids
    ended: dict[int, str] = field(default_factory=dict)  # order id -> cancelled / rejected
    triggered: dict[int, str] = field(default_factory=dict)  # position id -> trigger
    events: list[LeaderEvent] = field(default_factory=list)


def constraints_of(instrument: Instrument) -> Constraints:
    return Constraints(
        qty_step=instrument.qty_step,
        min_qty=instrument.min_qty,
        max_qty=instrument.max_qty,
        min_notional=instrument.min_notional,
    )


# The database only pre-selects liquidation candidates (SQLite computes in
# binary floats): a hair looser than exact, then decided exactly in Python.
_LOOSE = Decimal("0.99999999")


def _trigger_filter(mark: Decimal) -> tuple[dict, Q]:
    money = DecimalField(**MONEY)
    price = Value(mark, output_field=money)
    loss = Case(
        When(side=trade_math.LONG, then=(F("entry_price") - price) * F("quantity")),
        default=(price - F("entry_price")) * F("quantity"),
        output_field=money,
    )
    long, short = Q(side=trade_math.LONG), Q(side=trade_math.SHORT)
    condition = (
        (long & Q(take_profit__lte=mark))
        | (short & Q(take_profit__gte=mark))
        | (long & Q(stop_loss__gte=mark))
        | (short & Q(stop_loss__lte=mark))
        | Q(margin__gt=0, loss__gte=F("margin") * Value(_LOOSE, output_field=money))
    )
    return {"loss": loss}, condition


def _rounds(orders: list[Resting]) -> list[list[Resting]]:
    """Split orders so an account appears at most once per batch (each batch
    nets against the positions the previous one left), in id order."""
    rounds: list[list[Resting]] = []
    seen: dict[int, int] = defaultdict(int)
    for order in orders:
        n = seen[order.account_id]
        seen[order.account_id] += 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(order)
    return rounds


def match_instrument(instrument: Instrument) -> MatchResult:
    """Fill, trigger and liquidate at the instrument's current mark. Runs
    inside the caller's transaction (the price update)."""
    result = MatchResult()
    mark = instrument.mark_price
    if mark is None:
        return result
    crossing = Q(side=trade_math.BUY, price__gte=mark) | Q(side=trade_math.SELL, price__lte=mark)
    order_rows = list(
        Order.objects.filter(instrument=instrument, status=OrderStatus.OPEN)
        .filter(crossing)
        .values_list("pk", "account_id", "leader_order_id")
    )
    own_ids = {pk for pk, _, leader_order_id in order_rows if leader_order_id is None}
    order_rows = [row for row in order_rows if row[2] is None or row[2] in own_ids]
    alias, condition = _trigger_filter(mark)
    trigger_rows = list(
        Position.objects.filter(instrument=instrument, status=PositionStatus.OPEN)
        .alias(**alias)
        .filter(condition)
        .values_list("pk", "account_id")
    )
    if not order_rows and not trigger_rows:
        return result

    order_accounts = sorted({account_id for _, account_id, _ in order_rows})
    accounts = sorted(set(order_accounts) | {account_id for _, account_id in trigger_rows})
    portfolios = leader_book().lock_portfolios(accounts)
    balances = ledger.lock_balances(accounts)
    wanted = Q(pk__any=[pk for pk, _ in trigger_rows]) if trigger_rows else Q(pk__in=[])
    if order_accounts:
        wanted |= Q(account_id__any=order_accounts)
    positions = {
        state.pk: state
        for state in (
            PositionState(*row)
            for row in Position.objects.select_for_update()
            .filter(wanted, instrument=instrument, status=PositionStatus.OPEN)
            .order_by("pk")
            .values_list(*PositionState.MATCH_FIELDS)
        )
    }
    orders = (
        [
            Resting(*row)
            for row in Order.objects.select_for_update()
            .filter(pk__any=[row[0] for row in order_rows], status=OrderStatus.OPEN)
            .order_by("pk")
            .values_list(*RESTING_FIELDS)
        ]
        if order_rows
        else []
    )

    # Re-checked under the lock: a re-price may have moved an order since the
    # candidate query.
    orders = [o for o in orders if trade_math.crossed(o.side, o.price, mark)]
    matcher = _Matcher(instrument, mark, portfolios, balances, positions, result)
    leader_fills = matcher.fill_own_orders([o for o in orders if o.leader_order_id is None])
    matcher.fill_mirror_orders([o for o in orders if o.leader_order_id in leader_fills], leader_fills)
    matcher.trigger_positions()
    return result


class _Matcher:
    def __init__(self, instrument, mark, portfolios, balances, positions, result: MatchResult):
        self.instrument = instrument
        self.mark = mark
        self.portfolios: dict[int, int] = portfolios
        self.balances: dict[int, tuple[Decimal, Decimal]] = balances
        self.positions: dict[int, PositionState] = positions
        self.result = result
        self.constraints = constraints_of(instrument)

    # --- helpers ------------------------------------------------------------

    def _free(self, account_id: int) -> Decimal:
        balance, locked = self.balances[account_id]
        return balance - locked

    def _end_orders(self, ended: list[tuple[Resting, str]]) -> None:
        """Orders that stop resting without a fill: release their margin."""
        if not ended:
            return
        bulk.update_rows(Order, ["status", "reserved"], [(o.pk, status, ZERO) for o, status in ended])
        deltas: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for o, status in ended:
            deltas[o.account_id] -= o.reserved
            self.result.ended[o.pk] = status
        ledger.apply_transfers([], locked_deltas={k: v for k, v in deltas.items() if v})

    def _refresh(self, account_ids) -> None:
        self.balances.update(ledger.lock_balances(account_ids))

    def _plan(
        self, order: Resting, steps: list[tuple[str, Decimal]], position: PositionState | None, leader_position_id
    ) -> list[tuple[Fill, Decimal]] | None:
        """Fills for ``steps`` (action, quantity) of a resting order at its
        price, or None if an opening step needs more margin than is free
        (the order's own reservation counts as free)."""
        free = self._free(order.account_id) + order.reserved
        planned: list[tuple[Fill, Decimal]] = []
        for action, quantity in steps:
            if action in (trade_math.REDUCE, trade_math.CLOSE):
                closing = trade_math.close_part(
                    side=position.side,
                    quantity=position.quantity,
                    closed=quantity,
                    entry=position.entry_price,
                    margin=position.margin,
                    exit_price=order.price,
                )
                free += closing.released_margin + closing.settled
                fill = Fill(
                    order.account_id, self.instrument, order.side, action, quantity, order.price,
                    position.leverage, position,
                )  # fmt: skip
                planned.append((fill, position.quantity))
                continue
            existing = position if action == trade_math.INCREASE else None
            leverage = existing.leverage if existing else order.leverage
            margin = trade_math.margin_for(quantity, order.price, leverage)
            if margin > free:
                return None
            free -= margin
            fill = Fill(
                order.account_id, self.instrument, order.side, action, quantity, order.price, leverage, existing,
                leader_position_id=leader_position_id,
            )  # fmt: skip
            planned.append((fill, existing.quantity if existing else ZERO))
        for n, (fill, _) in enumerate(planned):
            fill.order_type = OrderType.LIMIT
            fill.resting_order_id = order.pk
            fill.subscription_id = order.subscription_id
            fill.reserved_release = order.reserved if n == 0 else ZERO
        return planned

    def _track(self, fill: Fill) -> PositionState:
        """Keep the in-memory positions current after a batch."""
        if fill.action == trade_math.OPEN:
            state = PositionState.opened(fill.position, fill.leader_position_id)
            state.subscription_id = fill.subscription_id
            self.positions[state.pk] = state
            return state
        return fill.position

    # --- 1. leaders' own limit orders -----------------------------------------

    def fill_own_orders(self, orders: list[Resting]) -> dict[int, LeaderFill]:
        filled: dict[int, LeaderFill] = {}
        own = {p.account_id: p for p in self.positions.values() if p.leader_position_id is None}
        for batch in _rounds(orders):
            fills: list[Fill] = []
            plans: list[tuple[Resting, list[tuple[Fill, Decimal]], PositionState | None]] = []
            ended: list[tuple[Resting, str]] = []
            for order in batch:
                position = own.get(order.account_id)
                steps = trade_math.plan_order(
                    position.side if position else None,
                    position.quantity if position else ZERO,
                    order.side,
                    order.quantity,
                )
                planned = self._plan(order, [(s.action, s.quantity) for s in steps], position, None)
                if planned is None:
                    ended.append((order, OrderStatus.REJECTED))
                    continue
                fills.extend(fill for fill, _ in planned)
                plans.append((order, planned, position))
            apply_fills(fills)
            self._end_orders(ended)
            for order, planned, before in plans:
                leader_steps, open_position_id = [], None
                for fill, quantity_before in planned:
                    state = self._track(fill)
                    if fill.action in (trade_math.OPEN, trade_math.INCREASE):
                        leader_steps.append(LeaderStep(decisions.POSITION_OPEN, quantity=fill.quantity))
                        open_position_id = state.pk
                        own[order.account_id] = state
                    elif fill.action == trade_math.REDUCE:
                        fraction = fill.quantity / quantity_before
                        leader_steps.append(LeaderStep(decisions.POSITION_REDUCE, fraction=fraction))
                    else:
                        leader_steps.append(LeaderStep(decisions.POSITION_CLOSE))
                        own.pop(order.account_id, None)
                filled[order.pk] = LeaderFill(
                    leader_steps, before.pk if before else None, open_position_id, order.quantity
                )
                self.result.filled.append(order.pk)
                self._record_fill_events(order, planned)
            for order, status in ended:
                self._record_rejection(order, status)
            self._refresh({o.account_id for o in batch})
        return filled

    def _record_fill_events(self, order: Resting, planned: list[tuple[Fill, Decimal]]) -> None:
        portfolio_id = self.portfolios.get(order.account_id)
        if portfolio_id is None:
            return
        equity = self.balances[order.account_id][0]
        for n, (fill, quantity_before) in enumerate(planned):
            extra = {
                "trigger": "limit",
                "limit_order_id": order.pk,
                "order_quantity": str(order.quantity),
                "limit_final": n == len(planned) - 1,
            }
            self.result.events.append(
                position_step_event(
                    portfolio_id=portfolio_id,
                    instrument=self.instrument,
                    action=fill.action,
                    fill=fill,
                    quantity_before=quantity_before,
                    equity=equity,
                    extra=extra,
                )
            )

    def _record_rejection(self, order: Resting, status: str) -> None:
        # The leader's order is gone without a fill: its mirrors must go too.
        portfolio_id = self.portfolios.get(order.account_id)
        if portfolio_id is None:
            return
        self.result.events.append(
            leader_event_record(
                portfolio_id=portfolio_id,
                kind=LeaderEventKind.LIMIT_CANCELLED,
                payload={
                    "instrument_id": self.instrument.pk,
                    "symbol": self.instrument.symbol,
                    "order_side": order.side,
                    "price": str(order.price),
                    "quantity": str(order.quantity),
                    "leader_order_id": order.pk,
                    "reason": decisions.INSUFFICIENT_MARGIN,
                },
            )
        )

    # --- 2. mirrors filling with their leader ----------------------------------

    def fill_mirror_orders(self, orders: list[Resting], leader_fills: dict[int, LeaderFill]) -> None:
        mirror_of = {
            (p.account_id, p.leader_position_id): p
            for p in self.positions.values()
            if p.leader_position_id is not None and p.status == PositionStatus.OPEN
        }
        for batch in _rounds(orders):
            fills: list[Fill] = []
            ended: list[tuple[Resting, str]] = []
            for order in batch:
                lf = leader_fills[order.leader_order_id]
                mirror = mirror_of.get((order.account_id, lf.before_position_id)) if lf.before_position_id else None
                steps, _ = decisions.mirror_limit_steps(
                    lf.steps,
                    order_quantity=lf.order_quantity,
                    mirror_order_quantity=order.quantity,
                    mirror_quantity=mirror.quantity if mirror else None,
                    price=order.price,
                    constraints=self.constraints,
                )
                if not steps:
                    ended.append((order, OrderStatus.CANCELLED))
                    continue
                planned = self._plan(order, [(s.action, s.quantity) for s in steps], mirror, lf.open_position_id)
                if planned is None:
                    ended.append((order, OrderStatus.REJECTED))
                    continue
                fills.extend(fill for fill, _ in planned)
                self.result.filled.append(order.pk)
            apply_fills(fills)
            self._end_orders(ended)
            for fill in fills:
                state = self._track(fill)
                key = (state.account_id, state.leader_position_id)
                if state.status == PositionStatus.OPEN:
                    mirror_of[key] = state
                else:
                    mirror_of.pop(key, None)
            self._refresh({o.account_id for o in batch})

    # --- 3. TP / SL / liquidation ------------------------------------------------

    def trigger_positions(self) -> None:
        closing: list[tuple[PositionState, str]] = []
        for position in self.positions.values():
            if position.status != PositionStatus.OPEN:
                continue
            trigger = trade_math.trigger_for(
                side=position.side,
                quantity=position.quantity,
                entry=position.entry_price,
                margin=position.margin,
                take_profit=position.take_profit,
                stop_loss=position.stop_loss,
                mark=self.mark,
            )
            if trigger:
                closing.append((position, trigger))
        if not closing:
            return
        fills = []
        for position, trigger in sorted(closing, key=lambda c: c[0].pk):
            side = trade_math.closing_side(position.side)
            price = trade_math.fill_price(self.mark, side, settings.PAPER_SPREAD_BPS, self.instrument.price_tick)
            fill = Fill(
                position.account_id, self.instrument, side, trade_math.CLOSE, position.quantity, price,
                position.leverage, position, subscription_id=position.subscription_id, order_type=trigger,
            )  # fmt: skip
            fills.append((fill, position.quantity, trigger))
        apply_fills([f for f, _, _ in fills])
        for fill, quantity_before, trigger in fills:
            position = fill.position
            self.result.triggered[position.pk] = trigger
            portfolio_id = self.portfolios.get(position.account_id)
            if portfolio_id is None or position.leader_position_id is not None:
                continue
            self.result.events.append(
                position_step_event(
                    portfolio_id=portfolio_id,
                    instrument=self.instrument,
                    action=trade_math.CLOSE,
                    fill=fill,
                    quantity_before=quantity_before,
                    equity=ZERO,
                    extra={"trigger": trigger},
                )
            )
