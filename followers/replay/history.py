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
from django.db import connection

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


_HOURLY_SQL = """
SELECT instrument_id, close, last_at, low, high FROM (
    SELECT instrument_id, close, last_at, MIN(low) OVER hour AS low, MAX(high) OVER hour AS high,
           ROW_NUMBER() OVER (PARTITION BY instrument_id, date_trunc('hour', minute) ORDER BY minute DESC) AS n
    FROM {table}
    WHERE instrument_id = ANY(%s) AND minute >= %s AND last_at <= %s
    WINDOW hour AS (PARTITION BY instrument_id, date_trunc('hour', minute))
) hourly
WHERE n = 1
"""


def hourly_marks(instrument_ids: list[int], since: datetime, until: datetime) -> list[MarkStep]:
    """Each hour's last candle close per instrument, at the time it was
    marked, with the hour's low and high (one query on PostgreSQL)."""
    if not instrument_ids:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_HOURLY_SQL.format(table=PriceCandle._meta.db_table), [instrument_ids, since, until])
            rows = cursor.fetchall()
    else:
        rows = _hourly_rows_orm(instrument_ids, since, until)
    by_time: dict[datetime, MarkStep] = {}
    for instrument_id, close, last_at, low, high in rows:
        step = by_time.setdefault(last_at, MarkStep(last_at, {}, {}))
        step.marks[instrument_id] = close
        step.ranges[instrument_id] = (low, high)
    return [by_time[at] for at in sorted(by_time)]


def _hourly_rows_orm(instrument_ids: list[int], since: datetime, until: datetime) -> list[tuple]:
    """The same rows on SQLite (embedded mode, small): each candle read once, in
    minute order, folded per hour in Python. (Matching minutes by equality would
    miss candles written by the upsert's raw SQL, stored in another text form.)"""
    rows = []
    for instrument_id in instrument_ids:
        hours: dict[datetime, tuple] = {}
        candles = PriceCandle.objects.filter(instrument_id=instrument_id, minute__gte=since, last_at__lte=until)
        for minute, close, last_at, low, high in candles.order_by("minute").values_list(
            "minute", "close", "last_at", "low", "high"
        ):
            hour = minute.replace(minute=0, second=0, microsecond=0)
            before = hours.get(hour)
            if before is not None:
                low, high = min(before[3], low), max(before[4], high)
            hours[hour] = (instrument_id, close, last_at, low, high)
        rows.extend(hours.values())
    return rows


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
    return History(steps, markets, len(parsed))


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
