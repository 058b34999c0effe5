"""Every write behind the signal webhook: the signing secret and the signals.

A signal places the leader's order through the same service as the REST API
(``portfolio_order_place``), so a signalled trade and a clicked trade are the
same trade: same checks, same leader event, same propagation.

A signal of a type that is never copied (advanced or standalone stop orders)
reports an order the leader placed elsewhere: it happened, so it is recorded
as an ``order_not_copied`` leader event (every follower gets a SKIPPED
execution row with the reason code) instead of being refused like the REST
API refuses it (docs/decisions.md §12).
"""

import secrets
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction

from copytrading import audit
from copytrading.errors import DomainError
from copytrading.inbox import inbox_accept, inbox_result_record
from copytrading.models import InboxMessage, InboxStatus, LeaderEvent
from portfolios.exchange import SentOrder
from portfolios.models import Portfolio
from portfolios.services import (
    ADVANCED_ORDER_TYPES,
    LIMIT,
    MARKET,
    NOT_COPIED_TYPES,
    STOP_ORDER_TYPES,
    portfolio_order_not_copied_record,
    portfolio_order_submit,
)

SIGNAL_SOURCE = "signal"
SECRET_PREFIX = "whsec_"

# Every type a sender may name; all but market and limit are recorded as a
# leader order that is not copied (portfolio_order_not_copied_record).
SIGNAL_TYPES = (MARKET, LIMIT, *STOP_ORDER_TYPES, *ADVANCED_ORDER_TYPES)


@transaction.atomic
def portfolio_webhook_secret_rotate(*, portfolio: Portfolio) -> str:
    """Generate a new signing secret and return it; the only time it is shown.
    The previous secret stops working at once (no grace period)."""
    secret = SECRET_PREFIX + secrets.token_hex(32)
    before = Portfolio.objects.filter(pk=portfolio.pk).values_list("webhook_secret", flat=True).first()
    Portfolio.objects.filter(pk=portfolio.pk).update(webhook_secret=secret)
    # Recorded as changed, never with a value.
    audit.record(
        action="rotate_webhook_secret",
        target=portfolio,
        changes={"webhook_secret": (before, secret)},
        masked={"webhook_secret"},
    )
    portfolio.webhook_secret = secret
    return secret


@dataclass(frozen=True)
class SignalOutcome:
    message: InboxMessage
    duplicate: bool
    events: list[LeaderEvent] = field(default_factory=list)
    error: DomainError | None = None
    exchange_order: dict[str, Any] | None = None  # an exchange-bound portfolio's order, sent


def _error_result(error: DomainError) -> dict[str, Any]:
    return {"code": error.code, "detail": error.detail, "field": error.field}


@transaction.atomic
def portfolio_signal_receive(
    *,
    portfolio: Portfolio,
    external_id: str,
    payload: dict[str, Any],
    symbol: str,
    side: str,
    quantity: Decimal,
    leverage: int = 1,
    order_type: str = MARKET,
    price: Decimal | None = None,
) -> SignalOutcome:
    """Apply one authenticated signal at most once.

    The inbox row and the trade commit together. An advanced or stop order
    is recorded as not copied (status ``executed``: the signal was applied).
    A signal the domain refuses (no funds, unknown symbol, ...) keeps its inbox row with
    status ``rejected`` and the error, so the same id always gets the same
    answer and a sender's retry cannot execute a stale signal later. Anything
    else (a crash, a lost database) rolls back the row too, so the sender's
    retry is processed as new."""
    message, created = inbox_accept(
        source=SIGNAL_SOURCE, external_id=external_id, portfolio_id=portfolio.pk, payload=payload
    )
    if not created:
        return SignalOutcome(message=message, duplicate=True)
    error = None
    events: list[LeaderEvent] = []
    sent = None
    try:
        # A savepoint: a refused trade is rolled back on its own (with any
        # on-commit dispatch it registered) while the inbox row stays.
        with transaction.atomic():
            if order_type in NOT_COPIED_TYPES:
                events = [
                    portfolio_order_not_copied_record(
                        portfolio=portfolio,
                        symbol=symbol,
                        side=side,
                        quantity=quantity,
                        order_type=order_type,
                        price=price,
                    )
                ]
            else:
                # An exchange-bound portfolio's order: the signal's id makes the
                # client order id, so a redelivery cannot place it twice.
                placed = portfolio_order_submit(
                    portfolio=portfolio,
                    symbol=symbol,
                    side=side,
                    quantity=quantity,
                    leverage=leverage if "leverage" in payload else None,
                    order_type=order_type,
                    price=price,
                    token=f"signal:{external_id}",
                )
                if isinstance(placed, SentOrder):
                    sent = placed
                else:
                    events = placed
    except DomainError as exc:
        error = exc
    if error is not None:
        inbox_result_record(message=message, status=InboxStatus.REJECTED, result=_error_result(error))
        return SignalOutcome(message=message, duplicate=False, error=error)
    result: dict[str, Any] = {"events": [{"id": e.pk, "seq": e.seq, "kind": e.kind} for e in events]}
    if sent is not None:
        result["exchange_order"] = asdict(sent)
    inbox_result_record(message=message, status=InboxStatus.EXECUTED, result=result)
    return SignalOutcome(message=message, duplicate=False, events=events, exchange_order=result.get("exchange_order"))
