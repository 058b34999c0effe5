"""Judging marks from a feed, and the feed's back-off. Pure: no Django."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

JUMP, STALE = "jump", "stale"  # copytrading.models.MarkFlag values


def judge_mark(*, price: Decimal, previous: Decimal | None, trusted: Decimal | None, band_pct: Decimal) -> str:
    """``JUMP`` when ``price`` lies beyond ``band_pct`` percent of both the
    previous mark and the last trusted one, else ``""``. Against both: a spike
    and the return from it are told apart (the return is near the trusted
    mark), and a real move is confirmed by its next mark (near the previous)."""
    if band_pct <= 0:
        return ""
    references = [r for r in (previous, trusted) if r is not None and r > 0]
    if not references:
        return ""
    for reference in references:
        if abs(price - reference) * 100 <= band_pct * reference:
            return ""
    return JUMP


def is_stale(*, at: datetime, now: datetime, stale_seconds: float) -> bool:
    """A mark the exchange stamped more than ``stale_seconds`` ago."""
    return now - at > timedelta(seconds=stale_seconds)


def backoff_seconds(*, failures: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failed polls: doubling
    from ``base``, at most ``cap``; never less than an exchange's Retry-After."""
    delay = min(cap, base * (2 ** max(0, failures - 1)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
