"""Live settings and kill switches (issue #16 §2; docs/decisions.md §72).

What staff change without a deploy lives in one record (``LiveSettings``,
edited in the admin at /admin/copytrading/livesettings/, audited) and in the
per-portfolio halts (``PortfolioHalt``). Code reads both through ONE
accessor, ``current()``: a frozen ``LiveSettingsView`` cached per process for
``CACHE_SECONDS``. A save through the services (or the admin) drops this
process's copy at once and again after its commit; other processes see it
within ``CACHE_SECONDS``.

Writes: copytrading/live/services.py. Rows: copytrading/live/models.py.
"""

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

# How long a process keeps the record it read (seconds). Short: a kill switch
# reaches every worker within this.
CACHE_SECONDS = 3.0


@dataclass(frozen=True)
class LiveSettingsView:
    copying_halted: bool
    copying_halted_reason: str
    margin_call_level_pct: Decimal
    min_investment: Decimal
    notify_trade_copied: bool
    default_max_profit_share_pct: Decimal
    default_platform_cut_pct: Decimal
    default_max_followers: int
    catalog_cache_seconds: int
    # portfolio id -> the staff's reason, for every halted portfolio
    portfolio_halts: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))

    def halt_reason(self, portfolio_id: int | None) -> str | None:
        """Why copying of ``portfolio_id`` is halted (the global switch
        first), or None while it copies."""
        if self.copying_halted:
            return self.copying_halted_reason
        if portfolio_id is None:
            return None
        return self.portfolio_halts.get(portfolio_id)

    def is_halted(self, portfolio_id: int | None) -> bool:
        return self.halt_reason(portfolio_id) is not None


_lock = threading.Lock()
_cached: tuple[float, LiveSettingsView] | None = None


def current() -> LiveSettingsView:
    """The live settings, at most ``CACHE_SECONDS`` old (one or two queries
    when the cache is cold, none when warm)."""
    global _cached
    entry = _cached
    now = time.monotonic()
    if entry is not None and now - entry[0] < CACHE_SECONDS:
        return entry[1]
    view = load()
    with _lock:
        _cached = (now, view)
    return view


def invalidate() -> None:
    """Forget this process's copy: the next ``current()`` reads the database."""
    global _cached
    with _lock:
        _cached = None


def load() -> LiveSettingsView:
    """Read the record and the halts now (no cache)."""
    from copytrading.live.models import LiveSettings, PortfolioHalt, initial_values

    record = LiveSettings.objects.filter(pk=LiveSettings.singleton_instance_id).first()
    if record is None:  # never saved: the defaults (a read never writes)
        record = LiveSettings(**initial_values())
    halts = dict(PortfolioHalt.objects.values_list("portfolio_id", "reason"))
    return LiveSettingsView(
        copying_halted=record.copying_halted,
        copying_halted_reason=record.copying_halted_reason,
        margin_call_level_pct=record.margin_call_level_pct,
        min_investment=record.min_investment,
        notify_trade_copied=record.notify_trade_copied,
        default_max_profit_share_pct=record.default_max_profit_share_pct,
        default_platform_cut_pct=record.default_platform_cut_pct,
        default_max_followers=record.default_max_followers,
        catalog_cache_seconds=record.catalog_cache_seconds,
        portfolio_halts=MappingProxyType(halts),
    )
