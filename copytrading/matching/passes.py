"""The three passes of a match at one mark price, over rows already locked
by ``match_instrument``: leaders' own limit orders, the mirror limits that
fill with them, then TP/SL and liquidation triggers."""

from collections import defaultdict
from decimal import Decimal

from django.conf import settings

from copytrading import bulk, decisions, leader_events, ledger, reservations, trade_math
from copytrading.decisions import LeaderStep
from copytrading.events import LimitFillOf, leader_event_record, position_step_event
from copytrading.matching.common import LeaderFill, MatchResult, Resting, constraints_of
from copytrading.models import Holding, Order, OrderStatus, OrderType, PositionStatus
from copytrading.money import ZERO
from copytrading.venue import Fill, PositionState, apply_fills


def account_rounds(orders: list[Resting]) -> list[list[Resting]]:
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


class Matcher:
    """One match at one mark price; the passes run in order on the same
    in-memory positions and balances, each batch through ``apply_fills``."""

    def __init__(self, instrument, mark, portfolios, balances, positions, result: MatchResult, holdings=None):
        self.instrument = instrument
        self.mark = mark
        self.portfolios: dict[int, int] = portfolios
        self.balances: dict[int, tuple[Decimal, Decimal]] = balances
        self.positions: dict[int, PositionState] = positions
        self.result = result
        self.constraints = constraints_of(instrument)
        # Spot only: the locked holdings of the accounts, by (account id, asset).
        self.holdings: dict[tuple[int, str], Holding] = holdings or {}

    # --- helpers ------------------------------------------------------------

    def _free(self, account_id: int) -> Decimal:
        balance, locked = self.balances[account_id]
        return balance - locked

    def _end_orders(self, ended: list[tuple[Resting, str]]) -> None:
        """Orders that stop resting without a fill: give back what they held."""
        if not ended:
            return
        bulk.update_rows(Order, ["status", "reserved"], [(o.pk, status, ZERO) for o, status in ended])
        reservations.release(
            [(o.account_id, self.instrument, o.side, o.reserved) for o, _ in ended], holdings=self.holdings
        )
        for o, status in ended:
            self.result.ended[o.pk] = status

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
        for batch in account_rounds(orders):
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
                        leader_steps.append(
                            LeaderStep(decisions.POSITION_REDUCE, fill.quantity, quantity_before=quantity_before)
                        )
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
            limit = LimitFillOf(order.pk, order.quantity, final=n == len(planned) - 1)
            self.result.events.append(
                position_step_event(
                    portfolio_id=portfolio_id,
                    instrument=self.instrument,
                    action=fill.action,
                    fill=fill,
                    quantity_before=quantity_before,
                    equity=equity,
                    trigger="limit",
                    limit=limit,
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
                data=leader_events.LimitCancelled(
                    instrument_id=self.instrument.pk,
                    symbol=self.instrument.symbol,
                    order_side=order.side,
                    price=order.price,
                    quantity=order.quantity,
                    leader_order_id=order.pk,
                    reason=decisions.INSUFFICIENT_MARGIN,
                ),
            )
        )

    # --- 2. mirrors filling with their leader ----------------------------------

    def fill_mirror_orders(self, orders: list[Resting], leader_fills: dict[int, LeaderFill]) -> None:
        mirror_of = {
            (p.account_id, p.leader_position_id): p
            for p in self.positions.values()
            if p.leader_position_id is not None and p.status == PositionStatus.OPEN
        }
        for batch in account_rounds(orders):
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

    def _close_on_exchanges(self, closing: list[tuple[PositionState, str]]) -> list[tuple[PositionState, str]]:
        """Mirrors on accounts bound to an exchange close there: a pending
        reduce-only order each (set-based, one per position however often the
        mark crosses its trigger), applied when the exchange fills it
        (copytrading.venues.exchange). Returns the triggers left to fill here."""
        from copytrading.venues import exchange_bound
        from copytrading.venues.exchange import Pending, closes_refused_recently, positions_closing, write_pending

        bound = exchange_bound({p.account_id for p, _ in closing})
        if not bound:
            return closing
        on_exchange = [(p, t) for p, t in closing if p.account_id in bound]
        ids = [p.pk for p, _ in on_exchange]
        already = set(positions_closing(ids)) | closes_refused_recently(position_ids=ids)
        orders = []
        for position, trigger in sorted(on_exchange, key=lambda c: c[0].pk):
            if position.pk in already:
                continue
            side = trade_math.closing_side(position.side)
            price = trade_math.fill_price(self.mark, side, settings.PAPER_SPREAD_BPS, self.instrument.price_tick)
            orders.append(
                Pending(
                    position.account_id, side, trade_math.CLOSE, position.quantity, price, position.leverage,
                    position.pk, None, position.subscription_id, None, None,
                )
            )  # fmt: skip
            self.result.triggered[position.pk] = trigger
        write_pending(self.instrument, orders)
        return [(p, t) for p, t in closing if p.account_id not in bound]

    def trigger_positions(self) -> None:
        closing: list[tuple[PositionState, str]] = []
        for position in self.positions.values():
            if position.status != PositionStatus.OPEN:
                continue
            trigger = trade_math.trigger_for(
                side=position.side,
                quantity=position.quantity,
                entry=position.entry_price,
                # Without margin no liquidation: a flagged mark only takes profit or stops losses.
                margin=position.margin if self.instrument.mark_trusted else ZERO,
                take_profit=position.take_profit,
                stop_loss=position.stop_loss,
                mark=self.mark,
            )
            if trigger:
                closing.append((position, trigger))
        if not closing:
            return
        closing = self._close_on_exchanges(closing)
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
                    trigger=trigger,
                )
            )
