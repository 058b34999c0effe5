"""What an exchange said about the orders the service sent: one value per
answer (``OrderOutcome``), recorded set-based.

The submitter (and the reconciler, and the fill stream) report what they
learn here and nowhere else; ``record_outcomes`` writes the exchange orders'
rows in one statement per field set, never moving an order backwards (a late
"acknowledged" after "filled" changes nothing), and then hands the outcomes
that changed something to the engine (``apply_to_engine``: the fills become
positions and ledger transfers, a rejection becomes a REJECTED execution)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from copytrading.bulk import update_rows
from copytrading.exchanges.models import EXCHANGE_ORDER_FINAL, ExchangeOrder, ExchangeOrderStatus

S = ExchangeOrderStatus
# How far along an order is: an outcome only ever moves it forward.
RANK = {
    S.PENDING: 0,
    S.SENT: 1,
    S.ACKNOWLEDGED: 2,
    S.PARTIALLY_FILLED: 3,
    S.FILLED: 4,
    S.CANCELLED: 4,
    S.REJECTED: 4,
    S.FAILED: 4,
}


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What the exchange said about one order, identified by its client id.
    ``filled_quantity`` and ``average_price`` are cumulative (ccxt's
    ``filled`` and ``average``), so reading the same order twice is
    harmless."""

    client_order_id: str
    status: str  # an ExchangeOrderStatus value
    at: datetime
    exchange_order_id: str = ""
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    reject_code: str = ""
    reject_message: str = ""


def status_of(ccxt_status: str | None, filled: Decimal) -> str:
    """The ExchangeOrderStatus a ccxt order's ``status`` and cumulative
    ``filled`` say (the one mapping, for copies and leader orders alike)."""
    if ccxt_status == "closed":
        return S.FILLED
    if ccxt_status in ("canceled", "expired"):
        return S.CANCELLED
    if ccxt_status == "rejected":
        return S.REJECTED
    return S.PARTIALLY_FILLED if filled > 0 else S.ACKNOWLEDGED


UPDATED_FIELDS = (
    "status", "exchange_order_id", "filled_quantity", "average_price", "reject_code", "reject_message",
    "acknowledged_at", "filled_at", "updated_at",
)  # fmt: skip

# Called with the recorded outcomes that moved an order (the rows locked and
# updated, in the caller's transaction). The engine side registers itself.
_engine_appliers: list[Callable[[list[tuple[ExchangeOrder, OrderOutcome]]], None]] = []


def register_applier(applier: Callable[[list[tuple[ExchangeOrder, OrderOutcome]]], None]) -> None:
    if applier not in _engine_appliers:
        _engine_appliers.append(applier)


def _moves(row: ExchangeOrder, outcome: OrderOutcome) -> bool:
    old, new = RANK[S(row.status)], RANK[S(outcome.status)]
    if new > old:
        return True
    # The same stage again: only more filled quantity is news, and a final
    # order never moves again (what a late answer says is the reconciler's).
    if row.status in EXCHANGE_ORDER_FINAL:
        return False
    return new == old and outcome.filled_quantity > row.filled_quantity


@transaction.atomic
def record_outcomes(outcomes: Iterable[OrderOutcome]) -> list[tuple[ExchangeOrder, OrderOutcome]]:
    """Record what the exchange said; returns the (row, outcome) pairs that
    moved an order forward (the others were already known)."""
    latest: dict[str, OrderOutcome] = {}
    for outcome in outcomes:
        known = latest.get(outcome.client_order_id)
        if known is None or RANK[S(outcome.status)] >= RANK[S(known.status)]:
            latest[outcome.client_order_id] = outcome
    if not latest:
        return []
    rows = ExchangeOrder.objects.select_for_update().filter(client_order_id__in=latest).order_by("pk")
    moved = []
    for row in rows:
        outcome = latest[row.client_order_id]
        if not _moves(row, outcome):
            continue
        row.status = outcome.status
        row.exchange_order_id = outcome.exchange_order_id or row.exchange_order_id
        row.filled_quantity = max(row.filled_quantity, outcome.filled_quantity)
        row.average_price = outcome.average_price if outcome.average_price is not None else row.average_price
        if outcome.status in (S.REJECTED, S.FAILED):
            row.reject_code, row.reject_message = outcome.reject_code, outcome.reject_message[:300]
        if RANK[S(outcome.status)] >= RANK[S.ACKNOWLEDGED] and row.acknowledged_at is None:
            row.acknowledged_at = outcome.at
        if outcome.status == S.FILLED and row.filled_at is None:
            row.filled_at = outcome.at
        row.updated_at = timezone.now()
        moved.append((row, outcome))
    # One statement whose text does not grow with the rows (copytrading/bulk.py):
    # Django's bulk_update builds a CASE per row per column, which cost the
    # submitter ~6 ms of CPU per recorded order.
    update_rows(
        ExchangeOrder,
        UPDATED_FIELDS,
        [(row.pk, *(getattr(row, name) for name in UPDATED_FIELDS)) for row, _ in moved],
    )
    if moved:
        for applier in _engine_appliers:
            applier(moved)
    return moved
