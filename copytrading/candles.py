"""Price history: 1-minute candles of the marks, for charts and replays.

Written by a price listener (``services.register_price_listener``), after the
mark's commit, rather than inside ``price_set``'s transaction: the candle is
history derived from the mark, so its write must neither hold the
instrument's row lock longer (matching of that market waits on it) nor be able
to undo a price. The cost: a process that dies between the commit and the
listener loses that tick from its candle (the next tick of the minute still
lands; the mark itself is safe).

One upsert per mark, in SQL, so concurrent writers (the feed, the staff API,
the simulator) merge instead of overwriting: high and low widen, the open is
the earliest mark's and the close the latest's (by their mark times).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from copytrading.models import PriceCandle
from copytrading.services import Mark

_UPSERT = """
INSERT INTO {table} (instrument_id, minute, open, high, low, close, first_at, last_at, ticks)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1)
ON CONFLICT (instrument_id, minute) DO UPDATE SET
    open = CASE WHEN excluded.first_at < {table}.first_at THEN excluded.open ELSE {table}.open END,
    high = {greatest}({table}.high, excluded.high),
    low = {least}({table}.low, excluded.low),
    close = CASE WHEN excluded.last_at >= {table}.last_at THEN excluded.close ELSE {table}.close END,
    first_at = {least}({table}.first_at, excluded.first_at),
    last_at = {greatest}({table}.last_at, excluded.last_at),
    ticks = {table}.ticks + 1
"""


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def candle_record(mark: Mark) -> None:
    """Fold one committed mark into its instrument's candle of that minute."""
    greatest, least = ("MAX", "MIN") if connection.vendor == "sqlite" else ("GREATEST", "LEAST")
    sql = _UPSERT.format(table=PriceCandle._meta.db_table, greatest=greatest, least=least)
    price = mark.price
    with connection.cursor() as cursor:
        cursor.execute(sql, [mark.instrument_id, minute_of(mark.at), price, price, price, price, mark.at, mark.at])


def candles_purge(*, now: datetime | None = None) -> int:
    """Drop candles older than ``CANDLE_RETENTION_DAYS`` (0 keeps them all)."""
    days = settings.CANDLE_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = PriceCandle.objects.filter(minute__lt=cutoff).delete()
    return deleted
