"""Drift between the service and an exchange account: the pure comparison.

Given what the service holds for one exchange-bound account (its open
positions, its exchange orders) and what the exchange answered
(``fetch_positions``, ``fetch_open_orders``), ``compare`` lists the
differences as typed findings, each with a stable code. Pure: no Django, no
ccxt; the service (copytrading/exchanges/reconciliation.py) fetches, records,
reports and repairs.

Not to be confused with copytrading/reconcile.py (the propagation
reconciler: stale chunks and orphaned mirrors inside the service).

Positions are compared per symbol on their net signed quantity in the base
asset (the exchange runs in one-way mode: one net position per symbol). A
symbol with an order of ours still in flight (not final) is not compared:
its fill may have happened on the exchange and not yet reached the service,
and "repairing" that would undo a real trade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

ZERO = Decimal(0)

# The finding codes (stable: risk events, job errors and the command print them).
UNKNOWN_POSITION = "UNKNOWN_POSITION"  # on the exchange, not in the service
CLOSED_ON_EXCHANGE = "CLOSED_ON_EXCHANGE"  # open in the service, none on the exchange
QUANTITY_MISMATCH = "QUANTITY_MISMATCH"  # both, quantities differ beyond one step (or sides differ)
UNKNOWN_ORDER = "UNKNOWN_ORDER"  # open on the exchange with our prefix, unknown or final to us
MISSING_ORDER = "MISSING_ORDER"  # pending/sent here past the grace period, not open on the exchange
CODES = (UNKNOWN_POSITION, CLOSED_ON_EXCHANGE, QUANTITY_MISMATCH, UNKNOWN_ORDER, MISSING_ORDER)

# The prefix of every client order id the service sends (copytrading.venues.port).
OUR_PREFIX = "ct-"
LONG, SHORT = "long", "short"
# ExchangeOrderStatus values, named here so this module imports no Django.
PENDING, SENT = "pending", "sent"
FINAL = frozenset({"filled", "cancelled", "rejected", "failed"})


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """One open position of the service on the account (a mirror, or a
    leader's own position). ``quantity`` in the base asset."""

    position_id: int
    symbol: str  # the ccxt symbol (Instrument.symbol)
    side: str  # long / short
    quantity: Decimal
    subscription_id: int | None = None


@dataclass(frozen=True, slots=True)
class KnownOrder:
    """An ExchangeOrder row of the account."""

    order_id: int
    client_order_id: str
    symbol: str
    status: str
    decided_at: datetime
    subscription_id: int | None = None
    # Changed after the exchange was read: what the exchange said may not
    # include it yet (or already include a fill the service has applied).
    recent: bool = False


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    """A position the exchange reported. ``quantity`` in the base asset
    (contracts times the contract size), ``contracts`` in the exchange's amount unit
    (what a closing order is sent in)."""

    symbol: str
    side: str
    quantity: Decimal
    contracts: Decimal
    mark: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExchangeOpenOrder:
    client_order_id: str
    symbol: str
    side: str
    quantity: Decimal
    exchange_order_id: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference. ``subject`` is what it is about (the symbol for a
    position finding, the client order id for an order finding): with
    ``code`` it names the drift across runs. Quantities are signed (long > 0)."""

    code: str
    symbol: str
    subject: str
    service_quantity: Decimal = ZERO
    exchange_quantity: Decimal = ZERO
    exchange_contracts: Decimal = ZERO
    position_ids: tuple[int, ...] = ()
    order_ids: tuple[int, ...] = ()
    subscription_id: int | None = None
    # UNKNOWN_POSITION only: the service has traded this symbol on this
    # account (an order of ours exists), so the position is ours to close.
    ours: bool = False
    detail: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.code}:{self.subject}"


def signed(side: str, quantity: Decimal) -> Decimal:
    return quantity if side == LONG else -quantity


def _shown(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


def unsettled_symbols(known: Iterable[KnownOrder]) -> set[str]:
    """Symbols not compared this run: an order of ours on them is in flight
    (not final) or changed while the exchange was being read."""
    return {o.symbol for o in known if o.status not in FINAL or o.recent}


def compare(
    *,
    held: Iterable[HeldPosition],
    known: Iterable[KnownOrder],
    positions: Iterable[ExchangePosition],
    open_orders: Iterable[ExchangeOpenOrder],
    steps: dict[str, Decimal],
    now: datetime,
    grace: timedelta,
) -> list[Finding]:
    """Every difference between the service's view of one account and the
    exchange's, in a stable order (position findings by symbol, then order
    findings by client id). ``steps``: the quantity step per symbol (one
    step of difference is rounding, not drift; a symbol without one
    tolerates nothing)."""
    held, known = list(held), list(known)
    in_flight = unsettled_symbols(known)
    ours = {o.symbol for o in known}

    service: dict[str, list[HeldPosition]] = {}
    for p in held:
        service.setdefault(p.symbol, []).append(p)
    exchange: dict[str, Decimal] = {}
    contracts: dict[str, Decimal] = {}
    for p in positions:
        if p.quantity:
            exchange[p.symbol] = exchange.get(p.symbol, ZERO) + signed(p.side, p.quantity)
            contracts[p.symbol] = contracts.get(p.symbol, ZERO) + signed(p.side, p.contracts)

    findings: list[Finding] = []
    for symbol in sorted(set(service) | set(exchange)):
        if symbol in in_flight:
            continue
        mine = service.get(symbol, [])
        here = sum((signed(p.side, p.quantity) for p in mine), ZERO)
        there = exchange.get(symbol, ZERO)
        subscription_id = next((p.subscription_id for p in mine if p.subscription_id is not None), None)
        common = {
            "symbol": symbol,
            "subject": symbol,
            "service_quantity": here,
            "exchange_quantity": there,
            "exchange_contracts": contracts.get(symbol, ZERO),
            "position_ids": tuple(sorted(p.position_id for p in mine)),
            "subscription_id": subscription_id,
        }
        if not here and there:
            findings.append(
                Finding(
                    UNKNOWN_POSITION,
                    ours=symbol in ours,
                    detail=f"{symbol}: {_shown(there)} on the exchange, none in the service",
                    **common,
                )
            )
        elif here and not there:
            findings.append(
                Finding(
                    CLOSED_ON_EXCHANGE,
                    detail=f"{symbol}: {_shown(here)} in the service, none on the exchange",
                    **common,
                )
            )
        elif here and (abs(here - there) > steps.get(symbol, ZERO) or (here > 0) != (there > 0)):
            findings.append(
                Finding(
                    QUANTITY_MISMATCH,
                    detail=f"{symbol}: {_shown(here)} in the service, {_shown(there)} on the exchange",
                    **common,
                )
            )

    by_client_id = {o.client_order_id: o for o in known}
    open_ids = {o.client_order_id for o in open_orders}
    for o in sorted(open_orders, key=lambda o: o.client_order_id):
        if not o.client_order_id.startswith(OUR_PREFIX):
            continue  # the user's own order
        row = by_client_id.get(o.client_order_id)
        if row is None or row.status in FINAL:
            what = "unknown to the service" if row is None else f"{row.status} in the service"
            findings.append(
                Finding(
                    UNKNOWN_ORDER,
                    o.symbol,
                    o.client_order_id,
                    exchange_quantity=signed(LONG if o.side == "buy" else SHORT, o.quantity),
                    order_ids=(row.order_id,) if row else (),
                    subscription_id=row.subscription_id if row else None,
                    detail=f"order {o.client_order_id} open on the exchange, {what}",
                )
            )
    for row in sorted(known, key=lambda o: o.client_order_id):
        if row.status in (PENDING, SENT) and row.decided_at <= now - grace and row.client_order_id not in open_ids:
            findings.append(
                Finding(
                    MISSING_ORDER,
                    row.symbol,
                    row.client_order_id,
                    order_ids=(row.order_id,),
                    subscription_id=row.subscription_id,
                    detail=f"order {row.client_order_id} {row.status} in the service, not open on the exchange",
                )
            )
    return findings
