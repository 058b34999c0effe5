"""The write half of a propagation chunk: what the chunk's decisions do,
written set-based in one pass.

The decisions become one ``OrderBatch`` per venue (fills, mirror limit
orders, their re-prices and cancellations, copied TP/SL) that the venue
applies in one call (copytrading.venues; the paper venue writes one
statement per table); the execution log is one insert. The number of
statements does not depend on the chunk's size.
"""

from dataclasses import dataclass
from decimal import Decimal

from copytrading import bulk, decisions, trade_math, venues
from copytrading.decisions import Decision, EventView, MirrorOrderView, TargetView
from copytrading.leader_events import LeaderEventData
from copytrading.matching import constraints_of
from copytrading.models import Execution, Instrument, LeaderEvent, OrderType
from copytrading.money import ZERO, q_fraction
from copytrading.venue import SPOT_BUY, SPOT_SELL
from copytrading.venues.port import REST, AmendOrder, CancelOrder, OrderBatch, PlaceOrder, SetTpsl

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
    # What the decision saw (Decision.seen: the detail, free balance, price
    # used and attempted size; the instrument's minimums beside a size).
    "reason_detail",
    "free_balance",
    "price_used",
    "attempted_quantity",
    "min_quantity",
    "min_notional",
    "quantity_step",
]

# A raw size the execution row's column cannot hold (20 integer digits: a
# fixed notional over a near-zero price) is not recorded, rather than fail
# the follower's copy on a display column.
ATTEMPTED_MAX = Decimal("1e19")
UNSIZED = (None, None, None, None)  # attempted quantity and the minimums
NOTHING_SEEN = ("", None, None, *UNSIZED)  # reason detail, free balance, price used, ...

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
    """Collects what a chunk's decisions ask of the venue (one ``OrderBatch``
    per venue, usually one), hands each batch to its venue in one call, and
    writes the execution log with the order ids the venues acknowledge."""

    def __init__(
        self,
        event: LeaderEvent,
        data: LeaderEventData,
        view: EventView,
        instrument: Instrument,
        *,
        halt_reason: str | None = None,
    ):
        self.event = event
        # The staff's reason of a halt on, for the rows it skips (reason_detail).
        self.halt_reason = halt_reason
        self.data = data
        self.view = view
        self.instrument = instrument
        self.rows: list[tuple[TargetView, Decision, int | None]] = []  # order id per row, once known
        # venue name -> (its batch, the row of each of its places)
        self.batches: dict[str, tuple[OrderBatch, list[int]]] = {}

    def _batch(self, venue: str) -> tuple[OrderBatch, list[int]]:
        entry = self.batches.get(venue)
        if entry is None:
            entry = self.batches[venue] = (OrderBatch(self.instrument), [])
        return entry

    def add(self, target, decision: Decision, mirror, mirror_order: MirrorOrder | None, holding, leader_position_id):
        row = len(self.rows)
        order_id = None
        action = decision.action
        account_id = target.account_id
        copied = decision.outcome == decisions.COPIED
        if copied and action in FILL_ACTIONS:
            via_limit = (
                mirror_order is not None
                and self.view.limit_order_id is not None
                and mirror_order.view.status == decisions.ORDER_OPEN
            )
            final = via_limit and decision.order_status == decisions.ORDER_FILLED
            batch, placed = self._batch(target.venue)
            batch.places.append(
                PlaceOrder(
                    account_id=account_id,
                    side=decision.order_side,
                    action=action,
                    quantity=decision.quantity,
                    price=decision.price,
                    leverage=decision.leverage,
                    order_type=OrderType.LIMIT if via_limit else OrderType.MARKET,
                    subscription_id=target.subscription_id,
                    # The mirror limit's own row becomes the filled order (it
                    # already names its limit_placed event); any other fill is
                    # a new order of this event.
                    leader_event_id=None if final else self.event.pk,
                    leader_position_id=leader_position_id,
                    position=mirror if action != trade_math.OPEN else None,
                    holding=holding,
                    executes_order_id=mirror_order.pk if final else None,
                    release=mirror_order.view.reserved if final else ZERO,
                )
            )
            placed.append(row)
        elif copied and action == decisions.LIMIT_PLACE:
            batch, placed = self._batch(target.venue)
            batch.places.append(
                PlaceOrder(
                    account_id=account_id,
                    side=decision.order_side,
                    action=REST,
                    quantity=decision.quantity,
                    price=decision.price,
                    leverage=decision.leverage,
                    order_type=OrderType.LIMIT,
                    subscription_id=target.subscription_id,
                    leader_event_id=self.event.pk,
                    leader_order_id=self.data.leader_order_id,
                    holding=holding,
                    reserve=decision.reserved,
                )
            )
            placed.append(row)
        elif copied and action == decisions.LIMIT_REPRICE:
            order_id = mirror_order.pk
            self._batch(target.venue)[0].amends.append(
                AmendOrder(
                    order_id, account_id, self.view.order_side, decision.price,
                    decision.reserved, mirror_order.view.reserved, holding,
                )
            )  # fmt: skip
        elif copied and action == decisions.TPSL:
            self._batch(target.venue)[0].tpsl.append(SetTpsl(mirror.pk, self.data.take_profit, self.data.stop_loss))
        if decision.order_status in (decisions.ORDER_CANCELLED, decisions.ORDER_REJECTED) and mirror_order:
            # The mirror limit stops resting without a (further) fill.
            order_id = mirror_order.pk
            view = mirror_order.view
            self._batch(target.venue)[0].cancels.append(
                CancelOrder(
                    order_id, account_id, self.view.order_side, view.price, view.reserved, decision.order_status,
                    holding,
                )
            )  # fmt: skip
        self.rows.append((target, decision, order_id))

    def write(self) -> None:
        for venue, (batch, placed) in self.batches.items():
            if not batch:
                continue
            acks = venues.venue_named(venue).execute(batch)
            for row, ack in zip(placed, acks, strict=True):
                target, decision, _ = self.rows[row]
                self.rows[row] = (target, decision, ack.order_id)
        # The event's time, not now: the partition key of the execution log
        # (models.Execution.created_at), the same on every retry.
        at = self.event.created_at
        view = self.view
        # What the leader did is the same on every row of the event.
        leader_quantity, fraction, leader_price = view.quantity or None, leader_fraction(view), view.price or None
        # What the decision saw (Decision.seen), and the instrument's minimums
        # beside a size it computed: the same for every row, read once.
        c = constraints_of(self.instrument)
        minimums = (c.min_qty, c.min_notional, c.qty_step)
        halt_reason = self.halt_reason
        rows = []
        for target, decision, order_id in self.rows:
            seen = decision.seen
            if seen:
                attempted = seen[0]
                sized = (attempted, *minimums) if attempted is not None and attempted < ATTEMPTED_MAX else UNSIZED
                context = (seen[3] if len(seen) > 3 else "", seen[1], seen[2], *sized)
            else:
                context = NOTHING_SEEN
            if decision.reason == decisions.COPYING_HALTED:
                context = (halt_reason or "", *context[1:])  # the staff's reason beside the code
            rows.append((
                self.event.pk, target.subscription_id, self.event.portfolio_id, decision.outcome, decision.reason,
                leader_quantity, fraction, leader_price, decision.quantity or None, decision.price, order_id, at,
                *context,
            ))  # fmt: skip
        bulk.insert_rows(Execution, EXECUTION_FIELDS, rows)
