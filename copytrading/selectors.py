"""Reads of the core that the API layers above it share."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet, Sum

from copytrading.models import ChunkStatus, LeaderEvent, PropagationChunk


def leader_events_of(*, portfolio_id: int) -> QuerySet[LeaderEvent]:
    """A portfolio's leader events (the outbox), any status."""
    return LeaderEvent.objects.filter(portfolio_id=portfolio_id)


@dataclass(frozen=True)
class EventProgress:
    chunks_done: int = 0
    chunks_total: int = 0
    copied: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0


def event_progress(event_ids: Sequence[int]) -> dict[int, EventProgress]:
    """Propagation chunks (done / total) and execution outcomes per event, in
    one grouped query over the events' chunks (each chunk counts the rows it
    wrote), never a query per event nor a count over every follower's row."""
    rows = (
        PropagationChunk.objects.filter(event_id__in=list(event_ids))
        .values("event_id")
        .annotate(
            chunks_total=Count("id"),
            chunks_done=Count("id", filter=Q(status=ChunkStatus.DONE)),
            copied=Sum("copied"),
            skipped=Sum("skipped"),
            rejected=Sum("rejected"),
            failed=Sum("failed"),
        )
        .order_by()
    )
    found = {pk: EventProgress() for pk in event_ids}
    for row in rows:
        event_id = row.pop("event_id")
        found[event_id] = EventProgress(**row)
    return found
