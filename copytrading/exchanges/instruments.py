"""Instrument sync: an exchange's markets → our instruments (``sync_instruments``).

Idempotent: a second run with the same markets changes nothing. A market the
exchange stops listing (or lists as inactive) halts its instrument
(``is_active`` false: no new orders, nothing deleted); listed again, it
resumes. One instrument per unified symbol: a local instrument (seeded, no
exchange) of the same symbol is adopted; one synced from another exchange is
left alone and reported as a conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from copytrading.errors import DomainError
from copytrading.exchanges.client import exchange_client
from copytrading.exchanges.mapping import InstrumentSpec, Skipped, instrument_spec
from copytrading.models import Instrument

# Unknown maximum leverage of a new perpetual (ccxt reports none for Binance
# without keys): a conservative default the operator can raise in the admin.
DEFAULT_MAX_LEVERAGE = 20

SPEC_FIELDS = (
    "product",
    "base",
    "quote",
    "exchange_symbol",
    "qty_step",
    "min_qty",
    "max_qty",
    "price_tick",
    "min_notional",
    "max_leverage",
    "contract_size",
)


@dataclass
class SyncReport:
    exchange: str
    dry_run: bool
    created: list[str] = field(default_factory=list)
    updated: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    halted: dict[str, str] = field(default_factory=dict)  # symbol → why
    resumed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # symbol → why
    conflicts: dict[str, str] = field(default_factory=dict)  # symbol → the exchange that has it

    def summary(self) -> str:
        return (
            f"{self.exchange}{' (dry run)' if self.dry_run else ''}: {len(self.created)} created, "
            f"{len(self.updated)} updated, {len(self.halted)} halted, {len(self.resumed)} resumed, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped, {len(self.conflicts)} conflicts"
        )

    def lines(self) -> list[str]:
        out = [self.summary()]
        out += [f"  created  {symbol}" for symbol in self.created]
        for symbol, changes in self.updated.items():
            out += [f"  updated  {symbol} {name}: {old} -> {new}" for name, (old, new) in changes.items()]
        out += [f"  halted   {symbol} ({why})" for symbol, why in self.halted.items()]
        out += [f"  resumed  {symbol}" for symbol in self.resumed]
        out += [f"  conflict {symbol} (synced from {other})" for symbol, other in self.conflicts.items()]
        out += [f"  skipped  {symbol} ({why})" for symbol, why in sorted(self.skipped.items())]
        return out


def markets_load(exchange_id: str) -> tuple[Mapping[str, Any], int]:
    """The exchange's markets through ccxt (public endpoints) and its precision mode."""
    client = exchange_client(exchange_id)
    markets = client.load_markets()
    return markets, client.precisionMode


def _shown(value: Any) -> str:
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def _values(spec: InstrumentSpec, existing: Instrument | None) -> dict[str, Any]:
    values = {name: getattr(spec, name) for name in SPEC_FIELDS}
    if spec.max_leverage is None:  # the exchange does not say: keep ours
        values["max_leverage"] = existing.max_leverage if existing else DEFAULT_MAX_LEVERAGE
    return values


@transaction.atomic
def instruments_sync(
    *,
    exchange_id: str,
    markets: Mapping[str, Mapping[str, Any]],
    precision_mode: int,
    dry_run: bool = False,
    now: datetime | None = None,
) -> SyncReport:
    """Create, update, halt and resume ``exchange_id``'s instruments from its
    ccxt ``markets``; a dry run reports the same and rolls back."""
    if not exchange_id:
        raise DomainError("UNKNOWN_EXCHANGE", "An exchange id is required.", field="exchange")
    now = now or timezone.now()
    report = SyncReport(exchange=exchange_id, dry_run=dry_run)
    symbols = [str(m.get("symbol")) for m in markets.values()]
    existing = {i.symbol: i for i in Instrument.objects.select_for_update().filter(symbol__in=symbols).order_by("pk")}
    listed: set[str] = set()
    for market in markets.values():
        instrument = existing.get(str(market.get("symbol")))
        reference = instrument.mark_price if instrument is not None else None
        spec = instrument_spec(market, precision_mode=precision_mode, reference_price=reference)
        if isinstance(spec, Skipped):
            report.skipped[spec.symbol] = spec.reason
            continue
        if instrument is not None and instrument.exchange not in ("", exchange_id):
            report.conflicts[spec.symbol] = instrument.exchange
            continue
        if spec.active:
            listed.add(spec.symbol)
        values = _values(spec, instrument)
        if instrument is None:
            if not spec.active:
                report.skipped[spec.symbol] = "not trading on the exchange"
                continue
            Instrument.objects.create(symbol=spec.symbol, exchange=exchange_id, synced_at=now, **values)
            report.created.append(spec.symbol)
            continue
        changes = {
            name: (_shown(getattr(instrument, name)), _shown(value))
            for name, value in values.items()
            if getattr(instrument, name) != value
        }
        if instrument.exchange != exchange_id:  # adopting a local instrument
            changes["exchange"] = (instrument.exchange or "(local)", exchange_id)
        for name, value in values.items():
            setattr(instrument, name, value)
        instrument.exchange = exchange_id
        instrument.synced_at = now
        fields = [*values, "exchange", "synced_at"]
        if not spec.active and instrument.is_active:
            instrument.is_active = False
            report.halted[spec.symbol] = "not trading on the exchange"
            fields.append("is_active")
        elif spec.active and not instrument.is_active:
            instrument.is_active = True
            report.resumed.append(spec.symbol)
            fields.append("is_active")
        if changes:
            report.updated[spec.symbol] = changes
        elif "is_active" not in fields:
            report.unchanged += 1
        instrument.save(update_fields=fields)
    gone = (
        Instrument.objects.select_for_update()
        .filter(exchange=exchange_id, is_active=True)
        .exclude(symbol__in=listed)
        .order_by("pk")
    )
    for instrument in gone:
        instrument.is_active = False
        instrument.save(update_fields=["is_active"])
        report.halted[instrument.symbol] = report.skipped.get(instrument.symbol, "no longer listed")
    if dry_run:
        transaction.set_rollback(True)
    return report
