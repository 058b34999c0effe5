"""Reads of the core that the API layers above it share."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum

from copytrading.models import ChunkStatus, Instrument, LeaderEvent, Product, PropagationChunk


def primary_pairs(assets: Iterable[str] | None = None) -> dict[str, tuple[Decimal, Decimal]]:
    """(mark, minimum quantity) of each asset's priced spot pair quoted in the
    primary currency (the lowest id if there are several), in one query; only
    of ``assets`` when given. A holding is valued at this mark; an asset
    missing here (no such pair, or not priced yet) has no mark."""
    rows = Instrument.objects.filter(product=Product.SPOT, quote=settings.PRIMARY_CURRENCY, mark_price__isnull=False)
    if assets is not None:
        wanted = sorted(set(assets))
        if not wanted:
            return {}
        rows = rows.filter(base__in=wanted)
    pairs: dict[str, tuple[Decimal, Decimal]] = {}
    for base, mark, min_qty in rows.order_by("pk").values_list("base", "mark_price", "min_qty"):
        pairs.setdefault(base, (mark, min_qty))
    return pairs


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
