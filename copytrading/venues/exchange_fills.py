"""The engine applier of the exchange venue: what an exchange said about
the orders of exchange-bound copies becomes positions, ledger transfers and
execution rows (registered with ``copytrading.exchanges.outcomes``, which
calls it in the transaction that recorded the outcomes, with the moved rows
locked).

Set-based over the moved rows (a constant number of statements):
- a fill (partial or whole) is applied as the increment since the last one
  (``ExchangeOrder.applied_quantity``) at the increment's own price (from
  the exchange's cumulative average and ``applied_cost``), through the paper
  engine's fill code (``copytrading.venue.apply_fills``), exactly as a
  resting mirror limit executing: the pending ``Order`` row becomes the
  filled order and gives back its reservation in proportion, so positions,
  margin, ledger, profit-share accrual (close listeners) and the live
  stream's change marks all happen as on the paper venue;
- an order that ends without any fill (rejected, cancelled, failed) becomes
  a REJECTED order, gives back its reservation, and its execution row
  becomes REJECTED (FAILED for a failure) with the ``EXCHANGE_*`` code
  (copytrading.exchanges.errors); a rejected close leaves the mirror open;
- an order that ends after a partial fill is FILLED for what filled;
- once an event's last exchange order is final, the event completes and its
  portfolio's next event is dispatched (``propagation.events_settle``).

An outcome already applied changes nothing: ``record_outcomes`` hands over
only rows it moved, and the increment of a repeated fill is zero.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from copytrading import bulk, decisions, ledger, reservations, trade_math
from copytrading.exchanges import errors
from copytrading.exchanges.models import EXCHANGE_ORDER_FINAL, ExchangeOrder, ExchangeOrderStatus
from copytrading.exchanges.outcomes import OrderOutcome
from copytrading.models import (
    Execution,
    Holding,
    LeaderEvent,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Product,
)
from copytrading.money import ZERO, q8, q8_down
from copytrading.outages import after_commit
from copytrading.venue import SPOT_BUY, SPOT_SELL, Fill, PositionState, apply_fills

log = logging.getLogger(__name__)

S = ExchangeOrderStatus
FILLING = (S.PARTIALLY_FILLED, S.FILLED)
ENDING = (S.CANCELLED, S.REJECTED, S.FAILED)
ORDER_CHANGES = ["status", "quantity", "price", "reserved", "filled_at", "realized_pnl"]
EXECUTION_CHANGES = ["outcome", "reason_code", "follower_quantity", "follower_price"]


def _contract_size(instrument) -> Decimal:
    return Decimal(1) if instrument.product == Product.SPOT else instrument.contract_size


# Called after commit with the accounts whose last pending exchange order an
# applier run ended (the followers app finishes an unfollow that waited).
SettledListener = Callable[[list[int]], object]
_settled_listeners: list[SettledListener] = []


def register_settled_listener(listener: SettledListener) -> None:
    if listener not in _settled_listeners:
        _settled_listeners.append(listener)


def apply_outcomes(moved: list[tuple[ExchangeOrder, OrderOutcome]]) -> None:
    """The applier (see the module's docstring)."""
    rows = {row.order_id: row for row, _ in moved if row.order_id is not None and row.status in (*FILLING, *ENDING)}
    if rows:
        accounts = _apply(rows)
        if accounts and _settled_listeners:
            busy = Order.objects.filter(account_id__in=accounts, status=OrderStatus.PENDING).values_list(
                "account_id", flat=True
            )
            settled = sorted(set(accounts) - set(busy))
            if settled:
                _tell_settled(settled)
    settled = sorted(
        {row.leader_event_id for row, _ in moved if row.leader_event_id and row.status in EXCHANGE_ORDER_FINAL}
    )
    if settled:
        from copytrading.propagation import events_settle  # the engine imports the venues: import late

        events_settle(settled)


def _tell_settled(account_ids: list[int]) -> None:
    def run() -> None:
        for listener in _settled_listeners:
            try:
                listener(account_ids)
            except Exception:
                log.exception("settled listener %r failed for accounts %s", listener, account_ids)

    after_commit(run, what=f"settled listeners of accounts {account_ids}")


def _apply(rows: dict[int, ExchangeOrder]) -> list[int]:
    """Apply the moved rows; returns the accounts whose orders ended."""
    heads = list(
        Order.objects.filter(pk__in=list(rows), status=OrderStatus.PENDING).values_list(
            "pk", "account_id", "position_id"
        )
    )
    if not heads:
        return []
    # Lock order as everywhere: accounts, positions, orders, holdings.
    ledger.lock_accounts(a for _, a, _ in heads)
    position_ids = sorted({p for _, _, p in heads if p is not None})
    positions = {
        state.pk: state
        for state in (
            PositionState(*r)
            for r in Position.objects.select_for_update()
            .filter(pk__in=position_ids)
            .order_by("pk")
            .values_list(*PositionState.MATCH_FIELDS)
        )
    }
    orders = list(
        Order.objects.select_for_update(of=("self",))
        .select_related("instrument")
        .filter(pk__in=[pk for pk, _, _ in heads], status=OrderStatus.PENDING)
        .order_by("pk")
    )
    spot = [o for o in orders if o.instrument.product == Product.SPOT]
    holdings: dict[tuple[int, str], Holding] = {}
    if spot:
        wanted = Q()
        for o in spot:
            wanted |= Q(account_id=o.account_id, asset__in=[o.instrument.base, o.instrument.quote])
        for h in Holding.objects.select_for_update().filter(wanted).order_by("pk"):
            holdings[(h.account_id, h.asset)] = h
    event_ids = sorted({o.leader_event_id for o in orders if o.leader_event_id is not None})
    events = {e.pk: e for e in LeaderEvent.objects.filter(pk__in=event_ids)}

    now = timezone.now()
    fills: list[Fill] = []
    releases = []  # reservations given back without a fill
    order_changes: dict[int, list] = {}
    row_changes = []
    ended_without_fill: list[tuple[Order, ExchangeOrder]] = []
    ended_with_fill: list[tuple[Order, ExchangeOrder, Decimal, Decimal]] = []  # (order, row, quantity, price)
    for o in orders:
        row = rows[o.pk]
        instrument = o.instrument
        size = _contract_size(instrument)
        final = row.status in EXCHANGE_ORDER_FINAL
        filled = q8_down(row.filled_quantity * size)
        applied = q8_down(row.applied_quantity * size)
        increment = filled - applied
        average = row.average_price if row.average_price else o.price
        reserved_left = o.reserved
        realized = o.realized_pnl
        if increment > 0:
            cost = average * filled - row.applied_cost
            price = q8(cost / increment) if cost > 0 else q8(average)
            left = o.quantity - applied
            release = reserved_left if final or increment >= left else q8_down(reserved_left * increment / left)
            fill = _fill(o, row, increment, price, release, positions, holdings, events)
            if fill is None:
                increment = ZERO  # nothing it could apply to: reported, left to the reconciler
            else:
                fills.append(fill)
                reserved_left -= release
                row.applied_quantity += (increment / size).normalize()
                row.applied_cost += increment * price
                row_changes.append((row.pk, row.applied_quantity, row.applied_cost))
        total = applied + increment
        if not final:
            order_changes[o.pk] = [OrderStatus.PENDING, o.quantity, o.price, reserved_left, None, realized]
        elif total > 0:
            if reserved_left:
                releases.append((o.account_id, instrument, o.side, reserved_left))
            average_price = q8(row.applied_cost / total) if row.applied_cost else q8(average)
            order_changes[o.pk] = [OrderStatus.FILLED, total, average_price, ZERO, row.filled_at or now, realized]
            ended_with_fill.append((o, row, total, average_price))
        else:
            if reserved_left:
                releases.append((o.account_id, instrument, o.side, reserved_left))
            order_changes[o.pk] = [OrderStatus.REJECTED, o.quantity, o.price, ZERO, None, None]
            ended_without_fill.append((o, row))

    for f in apply_fills(fills):
        if f.realizes:  # the order's realized PnL is the sum of its increments'
            change = order_changes[f.resting_order_id]
            change[5] = (change[5] or ZERO) + f.realized_pnl
    reservations.release(releases, holdings=holdings)
    bulk.update_rows(Order, ORDER_CHANGES, [(pk, *change) for pk, change in order_changes.items()])
    bulk.update_rows(ExchangeOrder, ["applied_quantity", "applied_cost"], row_changes)
    _executions(ended_without_fill, ended_with_fill, events)
    return sorted({o.account_id for o, *_ in ended_without_fill} | {o.account_id for o, *_ in ended_with_fill})


def _fill(
    o: Order, row: ExchangeOrder, quantity: Decimal, price: Decimal, release: Decimal, positions, holdings, events
):
    """The paper engine's fill for ``quantity`` of order ``o`` at ``price``;
    None if the mirror it reduces is gone (reported)."""
    instrument = o.instrument
    common = {
        "account_id": o.account_id, "instrument": instrument, "order_side": o.side, "quantity": quantity,
        "price": price, "leverage": o.leverage, "subscription_id": o.subscription_id,
        "event_id": o.leader_event_id, "order_type": o.order_type, "resting_order_id": o.pk,
        "reserved_release": release,
    }  # fmt: skip
    if instrument.product == Product.SPOT:
        action = SPOT_BUY if o.side == trade_math.BUY else SPOT_SELL
        cross = instrument.quote != settings.PRIMARY_CURRENCY
        return Fill(
            action=action,
            holding=holdings.get((o.account_id, instrument.base)),
            quote_holding=holdings.get((o.account_id, instrument.quote)) if cross else None,
            **common,
        )
    position = positions.get(o.position_id) if o.position_id is not None else None
    if row.reduce_only:
        if position is None or position.status != PositionStatus.OPEN or position.quantity <= 0:
            log.error(
                "exchange order %s filled a reduce of a mirror that is not open: left to the reconciler",
                row.client_order_id,
            )
            return None
        quantity = min(quantity, position.quantity)
        common["quantity"] = quantity
        action = trade_math.CLOSE if quantity == position.quantity else trade_math.REDUCE
        return Fill(action=action, position=position, **common)
    if position is None:
        event = events.get(o.leader_event_id)
        leader_position_id = getattr(event.data, "leader_position_id", None) if event is not None else None
        return Fill(action=trade_math.OPEN, leader_position_id=leader_position_id, **common)
    return Fill(action=trade_math.INCREASE, position=position, **common)


def _executions(ended_without_fill, ended_with_fill, events) -> None:
    """The execution rows of the orders that ended: a rejection's outcome
    and code, a fill's real quantity and price."""
    keyed = {}
    for o, row in ended_without_fill:
        if o.leader_event_id is not None:
            outcome = decisions.FAILED if row.status == S.FAILED else decisions.REJECTED
            keyed[(o.leader_event_id, o.subscription_id)] = (
                outcome, errors.code_for_status(row.status, row.reject_code), o.quantity, o.price,
            )  # fmt: skip
    for o, _, quantity, price in ended_with_fill:
        if o.leader_event_id is not None:
            keyed[(o.leader_event_id, o.subscription_id)] = (decisions.COPIED, "", quantity, price)
    if not keyed:
        return
    found = Execution.objects.filter(
        event_id__in=sorted({e for e, _ in keyed}), subscription_id__in=sorted({s for _, s in keyed})
    ).values_list("pk", "event_id", "subscription_id")
    bulk.update_rows(
        Execution,
        EXECUTION_CHANGES,
        [(pk, *keyed[(e, s)]) for pk, e, s in found if (e, s) in keyed],
    )
    _tell_listeners(ended_without_fill, events)


def _tell_listeners(ended_without_fill, events) -> None:
    """The execution listeners (a follower's copy-error notice) hear of a
    copy the exchange refused, as of one the engine refused."""
    from copytrading.propagation import ExecutionOutcome, tell_execution_listeners

    by_event = defaultdict(list)
    for o, row in ended_without_fill:
        if o.leader_event_id is not None and o.leader_event_id in events:
            outcome = decisions.FAILED if row.status == S.FAILED else decisions.REJECTED
            by_event[o.leader_event_id].append(
                ExecutionOutcome(o.subscription_id, outcome, errors.code_for_status(row.status, row.reject_code))
            )
    for event_id, outcomes in by_event.items():
        tell_execution_listeners(events[event_id], outcomes)
