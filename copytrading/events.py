"""The leader-event outbox. An event is written in the same transaction as the
leader's change and dispatched only once that transaction commits."""

from typing import Any

from django.db import transaction
from django.db.models import Max

from copytrading.models import LeaderEvent, LeaderEventStatus


def leader_event_record(*, portfolio_id: int, kind: str, payload: dict[str, Any]) -> LeaderEvent:
    """Append the next event of the portfolio. The caller holds the portfolio's
    row lock, which serializes sequence numbers; the unique (portfolio, seq)
    constraint backs it up."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("leader events must be recorded inside the leader change's transaction")
    last = LeaderEvent.objects.filter(portfolio_id=portfolio_id).aggregate(m=Max("seq"))["m"] or 0
    event = LeaderEvent.objects.create(portfolio_id=portfolio_id, seq=last + 1, kind=kind, payload=payload)
    transaction.on_commit(lambda: dispatch(event.pk))
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
