"""PLACEHOLDER (part D): the minimal submitter the reconciler's tests need.

Part B writes the real submitter with this signature (concurrency, rate
limits, backoff, the beat sweep, the ``exchange.submit`` task); at merge the
lead replaces this file with B's. This one sends the given rows one by one:
a ``sent`` row is first looked up by its client order id and only resent when
the exchange does not have it; every answer is recorded through
``outcomes.record_outcomes``."""

from __future__ import annotations

import logging

import ccxt
from django.db.models import F
from django.utils import timezone

from copytrading.exchanges import redact
from copytrading.exchanges.client import exchange_client
from copytrading.exchanges.models import ExchangeOrder, ExchangeOrderStatus
from copytrading.exchanges.outcomes import OrderOutcome, record_outcomes

log = logging.getLogger(__name__)
S = ExchangeOrderStatus
CCXT_STATUS = {"open": S.ACKNOWLEDGED, "closed": S.FILLED, "canceled": S.CANCELLED, "rejected": S.REJECTED}


def _outcome(row: ExchangeOrder, answer: dict) -> OrderOutcome:
    from decimal import Decimal

    status = CCXT_STATUS.get(answer.get("status") or "open", S.ACKNOWLEDGED)
    filled = Decimal(str(answer.get("filled") or 0))
    if status == S.ACKNOWLEDGED and filled:
        status = S.PARTIALLY_FILLED
    average = answer.get("average")
    return OrderOutcome(
        row.client_order_id,
        status,
        timezone.now(),
        exchange_order_id=str(answer.get("id") or ""),
        filled_quantity=filled,
        average_price=Decimal(str(average)) if average else None,
    )


def submit_orders(order_ids: list[int] | None = None) -> dict:
    """Send the given ExchangeOrder rows (or every pending/sent one) that are
    still ``pending``/``sent``; returns counts."""
    from copytrading.exchanges.services import credentials_of

    rows = ExchangeOrder.objects.select_related("exchange_account").filter(status__in=[S.PENDING, S.SENT])
    if order_ids is not None:
        rows = rows.filter(pk__in=order_ids)
    report = {"sent": 0, "found": 0, "rejected": 0, "unreachable": 0}
    for row in rows.order_by("pk"):
        credentials = credentials_of(row.exchange_account)
        with redact.holding(credentials.api_key, credentials.secret, credentials.passphrase):
            client = exchange_client(
                row.exchange_account.exchange,
                api_key=credentials.api_key,
                secret=credentials.secret,
                password=credentials.passphrase or None,
                options={"fetchCurrencies": False},
            )
            try:
                answer = None
                if row.status == S.SENT:
                    try:
                        answer = client.fetch_order(None, row.symbol, {"origClientOrderId": row.client_order_id})
                        report["found"] += 1
                    except ccxt.OrderNotFound:
                        answer = None
                if answer is None:
                    ExchangeOrder.objects.filter(pk=row.pk).update(
                        status=S.SENT, attempts=F("attempts") + 1, submitted_at=row.submitted_at or timezone.now()
                    )
                    params = {"clientOrderId": row.client_order_id}
                    if row.reduce_only:
                        params["reduceOnly"] = True
                    price = float(row.price) if row.price is not None else None
                    answer = client.create_order(
                        row.symbol, row.order_type, row.side, float(row.quantity), price, params
                    )
                    report["sent"] += 1
                record_outcomes([_outcome(row, answer)])
            except ccxt.NetworkError as exc:
                report["unreachable"] += 1
                log.warning("exchange order %s not sent: %s", row.client_order_id, type(exc).__name__)
            except ccxt.BaseError as exc:
                report["rejected"] += 1
                record_outcomes(
                    [
                        OrderOutcome(
                            row.client_order_id,
                            S.REJECTED,
                            timezone.now(),
                            reject_code="EXCHANGE_REJECTED",
                            reject_message=redact.scrub(str(exc)),
                        )
                    ]
                )
    return report
