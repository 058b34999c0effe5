"""The leader-event outbox. An event is written in the same transaction as the
leader's change and dispatched only once that transaction commits."""

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Max

from copytrading import trade_math
from copytrading.errors import DomainError
from copytrading.models import ChunkStatus, LeaderEvent, LeaderEventKind, LeaderEventStatus, PropagationChunk
from copytrading.outages import dispatch_on_commit


def leader_event_record(*, portfolio_id: int, kind: str, payload: dict[str, Any]) -> LeaderEvent:
    """Append the next event of the portfolio. The caller holds the portfolio's
    row lock, which serializes sequence numbers; the unique (portfolio, seq)
    constraint backs it up."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("leader events must be recorded inside the leader change's transaction")
    last = LeaderEvent.objects.filter(portfolio_id=portfolio_id).aggregate(m=Max("seq"))["m"] or 0
    event = LeaderEvent.objects.create(portfolio_id=portfolio_id, seq=last + 1, kind=kind, payload=payload)
    dispatch_on_commit(lambda: dispatch(event.pk), what=f"leader event {event.pk}; the outbox relay redelivers it")
    return event


def dispatch(event_id: int) -> None:
    from copytrading.tasks import propagate_event

    propagate_event.delay(event_id)


def next_pending_event(portfolio_id: int) -> LeaderEvent | None:
    return (
        LeaderEvent.objects.filter(portfolio_id=portfolio_id)
        .exclude(status=LeaderEventStatus.DONE)
        .order_by("seq")
        .first()
    )


_KIND_FOR_ACTION = {
    trade_math.OPEN: LeaderEventKind.POSITION_OPEN,
    trade_math.INCREASE: LeaderEventKind.POSITION_OPEN,
    trade_math.REDUCE: LeaderEventKind.POSITION_REDUCE,
    trade_math.CLOSE: LeaderEventKind.POSITION_CLOSE,
}


def _closed_part(quantity: Decimal, quantity_before: Decimal) -> dict[str, str]:
    """What a reduce, close or sell carries for the followers: the leader's
    quantity and what it held before, exact, so a follower's share is sized
    as mirror x quantity ÷ quantity_before with one division
    (decisions.Share). ``fraction`` (a quotient rounded to 28
    digits) is for people reading the event; events recorded before the
    quantities were added carry only it, and are still sized from it."""
    return {
        "quantity": str(quantity),
        "quantity_before": str(quantity_before),
        "fraction": str(quantity / quantity_before),
    }


def position_step_event(
    *,
    portfolio_id: int,
    instrument,
    action: str,
    fill,
    quantity_before: Decimal,
    equity: Decimal,
    extra: dict[str, Any] | None = None,
) -> LeaderEvent:
    """The leader event of one venue step on a leader's margin position
    (``fill`` is a ``venue.Fill`` already applied). Market orders, limit fills
    and TP/SL/liquidation triggers all describe their steps this way, so the
    followers' side reads one format."""
    payload: dict[str, Any] = {
        "instrument_id": instrument.pk,
        "symbol": instrument.symbol,
        "order_side": fill.order_side,
        "price": str(fill.price),
        "leader_position_id": fill.position.pk,
        "order_id": fill.order.pk,
    }
    if action in (trade_math.OPEN, trade_math.INCREASE):
        payload |= {"quantity": str(fill.quantity), "leverage": fill.leverage, "leader_equity": str(equity)}
    else:
        payload |= _closed_part(fill.quantity, quantity_before)
    payload |= extra or {}
    return leader_event_record(portfolio_id=portfolio_id, kind=_KIND_FOR_ACTION[action], payload=payload)


def spot_step_event(
    *,
    portfolio_id: int,
    fill,
    quantity_before: Decimal,
    equity: Decimal,
    extra: dict[str, Any] | None = None,
) -> LeaderEvent:
    """The leader event of a leader's spot fill (``fill`` already applied;
    ``quantity_before`` is the base holding before it): a buy carries its
    quantity for sizing, a sell its quantity and the holding before it (the
    followers sell the same share of theirs). Market orders and limit fills
    both describe their fills this way."""
    instrument = fill.instrument
    payload: dict[str, Any] = {
        "instrument_id": instrument.pk,
        "symbol": instrument.symbol,
        "order_side": fill.order_side,
        "price": str(fill.price),
        "order_id": fill.order.pk,
    }
    if fill.order_side == trade_math.BUY:
        payload |= {"quantity": str(fill.quantity), "leader_equity": str(equity)}
        kind = LeaderEventKind.SPOT_BUY
    else:
        payload |= _closed_part(fill.quantity, quantity_before)
        kind = LeaderEventKind.SPOT_SELL
    payload |= extra or {}
    return leader_event_record(portfolio_id=portfolio_id, kind=kind, payload=payload)


# The order types that are never copied (SPEC.md §4), and why.
ADVANCED_ORDER_TYPES = ("twap", "iceberg", "scaled", "oco", "oto", "oso")
STOP_ORDER_TYPES = ("stop", "stop_market", "stop_limit")
NOT_COPIED_TYPES = (*ADVANCED_ORDER_TYPES, *STOP_ORDER_TYPES)


def not_copied_reason(order_type: str) -> str:
    """The reason code followers see for a leader order of ``order_type``."""
    if order_type in ADVANCED_ORDER_TYPES:
        return "ADVANCED_ORDER_NOT_SUPPORTED"
    if order_type in STOP_ORDER_TYPES:
        return "STOP_ORDER_NOT_SUPPORTED_FOR_COPY"
    raise ValueError(f"{order_type!r} orders are copied")


def order_not_copied_event(
    *,
    portfolio_id: int,
    instrument,
    order_side: str,
    order_type: str,
    quantity: Decimal,
    price: Decimal | None = None,
) -> LeaderEvent:
    """Record a leader order that is never copied (placed outside the paper
    venue and reported by a signal). Propagation gives every follower one
    SKIPPED execution row with the reason code, and nothing else. The caller
    holds the portfolio's row lock."""
    payload: dict[str, Any] = {
        "instrument_id": instrument.pk,
        "symbol": instrument.symbol,
        "order_side": order_side,
        "order_type": order_type,
        "quantity": str(quantity),
        "reason_code": not_copied_reason(order_type),
    }
    if price is not None:
        payload["price"] = str(price)
    return leader_event_record(portfolio_id=portfolio_id, kind=LeaderEventKind.ORDER_NOT_COPIED, payload=payload)


@transaction.atomic
def leader_event_replay(*, event_id: int) -> int:
    """Run an event's propagation again (a staff action after a repair).

    Safe at any time: each chunk serves only the subscriptions of its original
    range that have no execution row for the event yet (one row per event and
    subscription), so for an event that went through it changes nothing. A
    pending event is simply dispatched again. Returns the chunks re-queued."""
    event = LeaderEvent.objects.select_for_update().filter(pk=event_id).first()
    if event is None:
        raise DomainError("NOT_FOUND", "No such leader event.", status=404)
    if event.status == LeaderEventStatus.PENDING:
        dispatch_on_commit(lambda: dispatch(event.pk), what=f"replay of leader event {event.pk}; the outbox relay")
        return 0
    chunks = PropagationChunk.objects.filter(event_id=event.pk)
    chunk_ids = list(chunks.order_by("index").values_list("pk", flat=True))
    if not chunk_ids:
        return 0
    chunks.update(status=ChunkStatus.PENDING)
    LeaderEvent.objects.filter(pk=event.pk).update(status=LeaderEventStatus.PROPAGATING, completed_at=None)

    def enqueue() -> None:
        from copytrading.tasks import propagate_chunk

        for chunk_id in chunk_ids:
            propagate_chunk.delay(chunk_id)

    dispatch_on_commit(enqueue, what=f"replay of leader event {event.pk}; the reconciler resumes its chunks")
    return len(chunk_ids)
