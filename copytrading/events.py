"""The leader-event outbox. An event is written in the same transaction as the
leader's change and dispatched only once that transaction commits."""

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, F, Max, Q, Sum

from copytrading import audit, leader_events, partitions, trade_math
from copytrading.enqueue import dispatch, dispatch_chunk
from copytrading.errors import DomainError
from copytrading.leader_events import LeaderEventData
from copytrading.models import ChunkStatus, Instrument, LeaderEvent, LeaderEventStatus, PropagationChunk
from copytrading.observability import record
from copytrading.outages import dispatch_on_commit


def leader_event_record(*, portfolio_id: int, data: LeaderEventData) -> LeaderEvent:
    """Append the next event of the portfolio. The caller holds the portfolio's
    row lock (``portfolios.locks``), which serializes sequence numbers; the
    unique (portfolio, seq) constraint backs it up."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("leader events must be recorded inside the leader change's transaction")
    if not isinstance(data, LeaderEventData):
        raise TypeError(f"a leader event is recorded from its typed data, not {type(data).__name__}")
    if data.mark is None:
        mark = Instrument.objects.filter(pk=data.instrument_id).values_list("mark_price", flat=True).first()
        if mark is not None:
            data = replace(data, mark=mark)
    last = LeaderEvent.objects.filter(portfolio_id=portfolio_id).aggregate(m=Max("seq"))["m"] or 0
    event = LeaderEvent.objects.create(
        portfolio_id=portfolio_id, seq=last + 1, kind=data.KIND.value, payload=data.to_payload()
    )
    dispatch_on_commit(lambda: dispatch(event.pk), what=f"leader event {event.pk}; the outbox relay redelivers it")
    record.event_accepted(event.pk, portfolio_id, event.kind)
    return event


def next_pending_event(portfolio_id: int) -> LeaderEvent | None:
    return (
        LeaderEvent.objects.filter(portfolio_id=portfolio_id)
        .exclude(status=LeaderEventStatus.DONE)
        .order_by("seq")
        .first()
    )


# --- typed constructors for the venue's steps -----------------------------------------


@dataclass(frozen=True, slots=True)
class LimitFillOf:
    """A step of the leader's limit order filling (the matching passes)."""

    order_id: int
    order_quantity: Decimal
    final: bool


def _fill_extras(trigger: str | None, limit: LimitFillOf | None) -> dict:
    if limit is None:
        return {"trigger": trigger}
    return {
        "trigger": trigger,
        "limit_order_id": limit.order_id,
        "order_quantity": limit.order_quantity,
        "limit_final": limit.final,
    }


def _closed_part(quantity: Decimal, quantity_before: Decimal) -> dict:
    """What a reduce, close or sell carries for the followers: the leader's
    quantity and what it held before, exact, so a follower's share is sized
    as mirror x quantity ÷ quantity_before with one division (decisions.Share);
    ``fraction`` is for people reading the event."""
    return {"quantity": quantity, "quantity_before": quantity_before, "fraction": quantity / quantity_before}


def position_step_data(
    *,
    instrument,
    action: str,
    fill,
    quantity_before: Decimal,
    equity: Decimal,
    trigger: str | None = None,
    limit: LimitFillOf | None = None,
) -> leader_events.PositionOpen | leader_events.PositionReduce | leader_events.PositionClose:
    """The event of one venue step on a leader's margin position (``fill`` is
    a ``venue.Fill`` already applied). Market orders, limit fills and
    TP/SL/liquidation triggers all describe their steps this way, so the
    followers' side reads one format."""
    common = {
        "instrument_id": instrument.pk,
        "symbol": instrument.symbol,
        "mark": instrument.mark_price,  # at hand: spares leader_event_record its read
        "order_side": fill.order_side,
        "price": fill.price,
        "leader_position_id": fill.position.pk,
        "order_id": fill.order.pk,
        **_fill_extras(trigger, limit),
    }
    if action in (trade_math.OPEN, trade_math.INCREASE):
        return leader_events.PositionOpen(
            **common, quantity=fill.quantity, leverage=fill.leverage, leader_equity=equity
        )
    cls = leader_events.PositionReduce if action == trade_math.REDUCE else leader_events.PositionClose
    return cls(**common, **_closed_part(fill.quantity, quantity_before))


def position_step_event(*, portfolio_id: int, **step) -> LeaderEvent:
    """Record ``position_step_data(**step)`` for the portfolio."""
    return leader_event_record(portfolio_id=portfolio_id, data=position_step_data(**step))


def spot_step_data(
    *,
    fill,
    quantity_before: Decimal,
    equity: Decimal,
    trigger: str | None = None,
    limit: LimitFillOf | None = None,
) -> leader_events.SpotBuy | leader_events.SpotSell:
    """The event of a leader's spot fill (``fill`` already applied;
    ``quantity_before`` is the base holding before it): a buy carries its
    quantity for sizing, a sell its quantity and the holding before it (the
    followers sell the same share of theirs)."""
    instrument = fill.instrument
    common = {
        "instrument_id": instrument.pk,
        "symbol": instrument.symbol,
        "mark": instrument.mark_price,  # at hand: spares leader_event_record its read
        "order_side": fill.order_side,
        "price": fill.price,
        "order_id": fill.order.pk,
        **_fill_extras(trigger, limit),
    }
    if fill.order_side == trade_math.BUY:
        return leader_events.SpotBuy(**common, quantity=fill.quantity, leader_equity=equity)
    return leader_events.SpotSell(**common, **_closed_part(fill.quantity, quantity_before))


def spot_step_event(*, portfolio_id: int, **step) -> LeaderEvent:
    """Record ``spot_step_data(**step)`` for the portfolio."""
    return leader_event_record(portfolio_id=portfolio_id, data=spot_step_data(**step))


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
    data = leader_events.OrderNotCopied(
        instrument_id=instrument.pk,
        symbol=instrument.symbol,
        order_side=order_side,
        order_type=order_type,
        quantity=quantity,
        reason_code=not_copied_reason(order_type),
        price=price,
    )
    return leader_event_record(portfolio_id=portfolio_id, data=data)


@transaction.atomic
def leader_event_replay(*, event_id: int, actor=None) -> int:
    """Run an event's propagation again (a staff action after a repair).
    Refused (``EVENT_ARCHIVED``) for an event whose executions may be archived.

    Safe at any time: each chunk serves only the subscriptions of its original
    range that have no execution row for the event yet (one row per event and
    subscription), so for an event that went through it changes nothing. A
    pending event is simply dispatched again. Returns the chunks re-queued."""
    event = LeaderEvent.objects.select_for_update().filter(pk=event_id).first()
    if event is None:
        raise DomainError("NOT_FOUND", "No such leader event.", status=404)
    refusal = partitions.replay_refusal(event.created_at)
    if refusal:
        raise DomainError("EVENT_ARCHIVED", f"Leader event {event.pk} cannot be replayed: {refusal}.", status=409)
    audit.record(actor=actor, action="replay", target=event)
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
        for chunk_id in chunk_ids:
            dispatch_chunk(chunk_id)

    dispatch_on_commit(enqueue, what=f"replay of leader event {event.pk}; the reconciler resumes its chunks")
    return len(chunk_ids)


@dataclass(frozen=True)
class EventProgress:
    """Where an event's propagation stands (``manage.py replay_event``)."""

    event_id: int
    portfolio_id: int
    kind: str
    status: str
    chunks: int
    chunks_done: int
    executions: int  # the rows its chunks wrote
    created_at: datetime


def leader_event_progress(*, event_id: int) -> EventProgress | None:
    event = LeaderEvent.objects.filter(pk=event_id).values("pk", "portfolio_id", "kind", "status", "created_at").first()
    if event is None:
        return None
    figures = PropagationChunk.objects.filter(event_id=event_id).aggregate(
        chunks=Count("pk"),
        done=Count("pk", filter=Q(status=ChunkStatus.DONE)),
        executions=Sum(F("copied") + F("skipped") + F("rejected") + F("failed")),
    )
    return EventProgress(
        event["pk"],
        event["portfolio_id"],
        event["kind"],
        event["status"],
        figures["chunks"],
        figures["done"],
        figures["executions"] or 0,
        event["created_at"],
    )
