"""What a replay reads: a portfolio's recorded leader events of a period, the
instruments they name, and the recorded marks between them (one per hour and
instrument: the close of the hour's last 1-minute candle).

An event is priced at the mark recorded on it (``LeaderEventData.mark``);
older events, recorded before the mark was, at the last hourly mark before
them, else at the leader's own price (a fill's or a limit's), else at the
instrument's mark now.
"""

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Max
from django.db.models.functions import TruncHour

from copytrading import decisions
from copytrading.leader_events import EventPayloadError, LeaderEventData
from copytrading.models import Instrument, LeaderEvent, PriceCandle, Product
from copytrading.propagation import market_view_at
from followers.replay.book import Market
from followers.replay.engine import EventStep, MarkStep


@dataclass(frozen=True)
class History:
    steps: list[EventStep | MarkStep]
    markets: dict[int, Market]
    events: int  # how many events the period holds (the broken ones not counted)
    last_event_id: int | None  # the newest event's id: what a cached replay is valid for


def events_count(portfolio_id: int, since: datetime) -> int:
    return LeaderEvent.objects.filter(portfolio_id=portfolio_id, created_at__gte=since).count()


def _market(instrument: Instrument) -> Market:
    return Market(
        instrument_id=instrument.pk,
        spot=instrument.product == Product.SPOT,
        base=instrument.base,
        quote=instrument.quote,
        primary=settings.PRIMARY_CURRENCY,
        min_qty=instrument.min_qty,
        view_at=lambda mark: market_view_at(instrument, mark),
    )


def hourly_marks(instrument_ids: list[int], since: datetime, until: datetime) -> list[MarkStep]:
    """The close of each hour's last candle, per instrument, at the time it
    was marked (two queries whatever the period)."""
    if not instrument_ids:
        return []
    candles = PriceCandle.objects.filter(instrument_id__in=instrument_ids, minute__gte=since, last_at__lte=until)
    last = (
        candles.annotate(hour=TruncHour("minute"))
        .values("instrument_id", "hour")
        .annotate(last=Max("minute"))
        .values_list("last", flat=True)
    )
    by_time: dict[datetime, dict[int, Decimal]] = {}
    seen: set[tuple[int, datetime]] = set()
    # Latest first: where another instrument's last minute of an hour is not
    # this one's, only this one's own last minute of the hour is kept.
    rows = candles.filter(minute__in=last).order_by("-minute")
    for instrument_id, minute, close, last_at in rows.values_list("instrument_id", "minute", "close", "last_at"):
        hour = (instrument_id, minute.replace(minute=0))
        if hour in seen:
            continue
        seen.add(hour)
        by_time.setdefault(last_at, {})[instrument_id] = close
    return [MarkStep(at, marks) for at, marks in sorted(by_time.items())]


def history(portfolio_id: int, since: datetime, until: datetime) -> History:
    rows = list(
        LeaderEvent.objects.filter(portfolio_id=portfolio_id, created_at__gte=since, created_at__lte=until)
        .order_by("seq")
        .values_list("pk", "seq", "kind", "payload", "created_at")
    )
    parsed: list[tuple[int, datetime, LeaderEventData]] = []
    for _, seq, kind, payload, at in rows:
        try:
            data = LeaderEvent(kind=kind, payload=payload).data
        except EventPayloadError:
            continue  # a broken event is copied to nobody (the fan-out refuses it too)
        parsed.append((seq, at, data))
    instruments = {i.pk: i for i in Instrument.objects.filter(pk__in={d.instrument_id for _, _, d in parsed})}
    markets = {pk: _market(i) for pk, i in instruments.items()}
    marks = hourly_marks(sorted(instruments), since, until)
    steps = _merge(parsed, marks, instruments)
    return History(steps, markets, len(parsed), rows[-1][0] if rows else None)


def _merge(
    parsed: list[tuple[int, datetime, LeaderEventData]], marks: list[MarkStep], instruments: dict[int, Instrument]
) -> list[EventStep | MarkStep]:
    """Events and hourly marks in time order; each event priced (see the module's text)."""
    times = [m.at for m in marks]
    steps: list[EventStep | MarkStep] = []
    taken = 0
    for seq, at, data in parsed:
        while taken < len(marks) and marks[taken].at <= at:
            steps.append(marks[taken])
            taken += 1
        if data.instrument_id not in instruments:
            continue  # an event about an instrument since deleted: nothing to price it at
        mark = _event_mark(data, at, marks, times) or instruments[data.instrument_id].mark_price
        steps.append(EventStep(at, seq, data, mark))
    steps.extend(marks[taken:])
    return steps


def _event_mark(data: LeaderEventData, at: datetime, marks: list[MarkStep], times: list[datetime]) -> Decimal | None:
    if data.KIND.value == decisions.ORDER_NOT_COPIED:
        return None  # copied to nobody: needs no price
    if data.mark is not None:
        return data.mark
    for step in reversed(marks[: bisect_right(times, at)]):
        found = step.marks.get(data.instrument_id)
        if found is not None:
            return found
    return getattr(data, "price", None) or None
