"""The write half of a propagation chunk: what the chunk's decisions do,
written set-based in one pass.

Fills go through ``venue.apply_fills``; mirror limit orders, their re-prices
and cancellations, and copied TP/SL are one statement per table; margin
reservations of resting mirrors one update of the wallets; the execution log
one insert. The number of statements does not depend on the chunk's size.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from copytrading import bulk, decisions, ledger, trade_math
from copytrading.decisions import Decision, EventView, MirrorOrderView, TargetView
from copytrading.leader_events import LeaderEventData
from copytrading.models import Execution, Holding, Instrument, LeaderEvent, Order, OrderStatus, OrderType, Position
from copytrading.money import ZERO, q_fraction
from copytrading.venue import SPOT_BUY, SPOT_SELL, Fill, apply_fills

EXECUTION_FIELDS = [
    "event",
    "subscription_id",
    "portfolio_id",
    "outcome",
    "reason_code",
    "leader_quantity",
    "leader_fraction",
    "leader_price",
    "follower_quantity",
    "follower_price",
    "order",
    "created_at",
]

FILL_ACTIONS = (trade_math.OPEN, trade_math.INCREASE, trade_math.REDUCE, trade_math.CLOSE, SPOT_BUY, SPOT_SELL)


@dataclass(slots=True)
class MirrorOrder:
    pk: int
    view: MirrorOrderView


def leader_fraction(view: EventView) -> Decimal | None:
    """The share of its position or holding the leader reduced, closed or
    sold, for the execution log (display only, rounded): quantity ÷ quantity
    before; events recorded before those were carried give their stored
    fraction (a close: all of it)."""
    if view.quantity_before > 0:
        return q_fraction(view.quantity / view.quantity_before)
    if view.fraction > 0:
        return q_fraction(view.fraction)
    if view.kind == decisions.POSITION_CLOSE:
        return q_fraction(Decimal(1))
    return None


class ChunkWriter:
    """Collects what a chunk's decisions do and writes it set-based: fills
    through ``apply_fills``, mirror limit orders and TP/SL with one statement
    per table, margin reservations with one update of the wallets."""

    def __init__(self, event: LeaderEvent, data: LeaderEventData, view: EventView, instrument: Instrument):
        self.event = event
        self.data = data
        self.view = view
        self.instrument = instrument
        self.rows: list[tuple[TargetView, Decision, int | None]] = []  # order id per row, once known
        self.fills: list[tuple[int, Fill]] = []  # (row index, fill)
        self.new_orders: list[tuple[int, tuple]] = []  # (row index, order row)
        self.order_changes: list[tuple] = []  # (pk, price, reserved, status)
        self.tpsl: list[tuple] = []  # (position pk, take profit, stop loss)
        self.reserved: dict[int, Decimal] = defaultdict(lambda: ZERO)  # account -> locked delta
        self.holdings: dict[int, Holding] = {}  # holdings whose reserved part changed (spot sells)
        self.reserves_holding = instrument.reserved_asset(view.order_side) is not None

    def _reserve(self, account_id: int, holding: Holding | None, amount: Decimal) -> None:
        """Hold (negative: give back) a mirror limit's reservation, in the
        ledger or, for a spot sell, in the holding (copytrading.reservations)."""
        if self.reserves_holding:
            holding.reserved += amount
            self.holdings[holding.pk] = holding
        else:
            self.reserved[account_id] += amount

    def add(self, target, decision: Decision, mirror, mirror_order: MirrorOrder | None, holding, leader_position_id):
        row = len(self.rows)
        order_id = None
        action = decision.action
        account_id = target.account_id
        if decision.outcome == decisions.COPIED and action in FILL_ACTIONS:
            via_limit = (
                mirror_order is not None
                and self.view.limit_order_id is not None
                and mirror_order.view.status == decisions.ORDER_OPEN
            )
            final = via_limit and decision.order_status == decisions.ORDER_FILLED
            fill = Fill(
                account_id=account_id,
                instrument=self.instrument,
                order_side=decision.order_side,
                action=action,
                quantity=decision.quantity,
                price=decision.price,
                leverage=decision.leverage,
                position=mirror if action != trade_math.OPEN else None,
                holding=holding,
                leader_position_id=leader_position_id,
                subscription_id=target.subscription_id,
                # The mirror limit's own row becomes the filled order (it
                # already names its limit_placed event); any other fill is a
                # new order of this event.
                event_id=None if final else self.event.pk,
                order_type=OrderType.LIMIT if via_limit else OrderType.MARKET,
                resting_order_id=mirror_order.pk if final else None,
                reserved_release=mirror_order.view.reserved if final else ZERO,
            )
            self.fills.append((row, fill))
        elif decision.outcome == decisions.COPIED and action == decisions.LIMIT_PLACE:
            self.new_orders.append(
                (
                    row,
                    (
                        account_id, self.instrument.pk, decision.order_side, OrderType.LIMIT, decision.quantity,
                        decision.price, decision.leverage, OrderStatus.OPEN, None, self.event.pk,
                        target.subscription_id, decision.reserved, self.data.leader_order_id,
                    ),
                )
            )  # fmt: skip
            self._reserve(account_id, holding, decision.reserved)
        elif action == decisions.LIMIT_REPRICE and decision.outcome == decisions.COPIED:
            order_id = mirror_order.pk
            self.order_changes.append((order_id, decision.price, decision.reserved, OrderStatus.OPEN))
            self._reserve(account_id, holding, decision.reserved - mirror_order.view.reserved)
        elif action == decisions.TPSL and decision.outcome == decisions.COPIED:
            self.tpsl.append((mirror.pk, self.data.take_profit, self.data.stop_loss))
        if decision.order_status in (decisions.ORDER_CANCELLED, decisions.ORDER_REJECTED) and mirror_order:
            # The mirror limit stops resting without a (further) fill.
            order_id = mirror_order.pk
            view = mirror_order.view
            self.order_changes.append((order_id, view.price, ZERO, decision.order_status))
            self._reserve(account_id, holding, -view.reserved)
        self.rows.append((target, decision, order_id))

    def write(self) -> None:
        now = timezone.now()
        ledger.apply_transfers([], locked_deltas={k: v for k, v in self.reserved.items() if v})
        # Before the fills: apply_fills writes the holdings it touches whole.
        bulk.update_rows(Holding, ["reserved"], [(h.pk, h.reserved) for h in self.holdings.values()])
        bulk.update_rows(Order, ["price", "reserved", "status"], self.order_changes)
        bulk.update_rows(Position, ["take_profit", "stop_loss"], self.tpsl)
        if self.new_orders:
            ids = bulk.insert_rows(Order, MIRROR_ORDER_INSERT, [(*r, now) for _, r in self.new_orders], returning=True)
            for (row, _), pk in zip(self.new_orders, ids, strict=True):
                target, decision, _ = self.rows[row]
                self.rows[row] = (target, decision, pk)
        apply_fills([fill for _, fill in self.fills])
        for row, fill in self.fills:
            target, decision, _ = self.rows[row]
            self.rows[row] = (target, decision, fill.order.pk)
        view = self.view
        # What the leader did is the same on every row of the event.
        leader_quantity, fraction, leader_price = view.quantity or None, leader_fraction(view), view.price or None
        bulk.insert_rows(
            Execution,
            EXECUTION_FIELDS,
            [
                (
                    self.event.pk, target.subscription_id, self.event.portfolio_id, decision.outcome, decision.reason,
                    leader_quantity, fraction, leader_price, decision.quantity or None, decision.price, order_id, now,
                )
                for target, decision, order_id in self.rows
            ],
        )  # fmt: skip


MIRROR_ORDER_INSERT = [
    "account", "instrument", "side", "order_type", "quantity", "price", "leverage", "status", "position",
    "leader_event", "subscription_id", "reserved", "leader_order", "created_at",
]  # fmt: skip
