"""Reads of the core that the API layers above it share."""

from collections import defaultdict
from collections.abc import Sequence

from django.db.models import Count, Q, QuerySet

from copytrading.models import ChunkStatus, Execution, LeaderEvent, Outcome, PropagationChunk


def leader_events_of(*, portfolio_id: int) -> QuerySet[LeaderEvent]:
    """A portfolio's leader events (the outbox), any status."""
    return LeaderEvent.objects.filter(portfolio_id=portfolio_id)


def event_outcomes(event_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Execution rows per event and outcome (one grouped query for a whole
    page, never one per event); every outcome present, 0 when none."""
    counts: dict[int, dict[str, int]] = {pk: dict.fromkeys(Outcome.values, 0) for pk in event_ids}
    rows = (
        Execution.objects.filter(event_id__in=list(event_ids))
        .values_list("event_id", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    for event_id, outcome, n in rows:
        counts[event_id][outcome] = n
    return counts


def event_chunks(event_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(done, total) propagation chunks per event (one grouped query)."""
    found: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
    rows = (
        PropagationChunk.objects.filter(event_id__in=list(event_ids))
        .values_list("event_id")
        .annotate(total=Count("id"), done=Count("id", filter=Q(status=ChunkStatus.DONE)))
        .order_by()
    )
    for event_id, total, done in rows:
        found[event_id] = (done, total)
    return found
