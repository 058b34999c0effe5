"""How the exchange reconciliation reports a drift it sees for the first time
(copytrading/exchanges/reconciliation.py): to the drift listeners (``followers``
registers the one writing a risk event on the subscription: the core knows
accounts, not subscriptions), to the job-error feed (grouped per code), and to
the follower for a position drift on their copy wallet. All in the recording
transaction: a run that rolls back reports nothing, and the next one reports
the drift again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from copytrading import failures
from copytrading.exchanges import reconcile as rc
from copytrading.exchanges.models import ExchangeDrift
from copytrading.models import Account, AccountKind
from copytrading.notifications.services import Note, notify

TASK = "exchange.reconcile"
# Position drifts concern the follower (notified); order drifts are ops' business.
POSITION_CODES = (rc.UNKNOWN_POSITION, rc.CLOSED_ON_EXCHANGE, rc.QUANTITY_MISMATCH)
SEVERITY = {
    rc.UNKNOWN_POSITION: failures.HIGH,
    rc.CLOSED_ON_EXCHANGE: failures.HIGH,
    rc.QUANTITY_MISMATCH: failures.HIGH,
    rc.UNKNOWN_ORDER: failures.MEDIUM,
    rc.MISSING_ORDER: failures.MEDIUM,
}
CLOSED_IN_SERVICE = "closed_in_service"  # ExchangeDrift.repair of an adopted close


class DriftFound(Exception):
    """What the job-error feed records for a drift (never raised): grouped per
    code, since the feed's fingerprint is the task and the exception class."""


@dataclass(frozen=True, slots=True)
class DriftNotice:
    """A drift seen for the first time, as the drift listeners get it."""

    drift_id: int
    account_id: int
    account_kind: str
    user_id: int | None
    subscription_id: int | None
    code: str
    symbol: str
    detail: str
    service_quantity: Decimal
    exchange_quantity: Decimal
    repaired: bool


DriftListener = Callable[[list[DriftNotice]], None]
_drift_listeners: list[DriftListener] = []


def register_drift_listener(listener: DriftListener) -> None:
    """Have ``listener(notices)`` called, in the recording transaction, with
    the drifts a run saw for the first time (``followers`` registers the one
    that writes risk events: the core imports no app above it)."""
    if listener not in _drift_listeners:
        _drift_listeners.append(listener)


def _follower_sentence(finding: rc.Finding, exchange: str, repair: str | None) -> str:
    shown = f"{abs(finding.exchange_quantity).normalize():f}"
    if finding.code == rc.CLOSED_ON_EXCHANGE:
        done = " Your copy's position was closed too, at the exchange's price." if repair == CLOSED_IN_SERVICE else ""
        return f"Your {finding.symbol} position was closed on {exchange} outside this service.{done}"
    if finding.code == rc.UNKNOWN_POSITION and finding.ours:
        return (
            f"A {finding.symbol} position of {shown} opened by this copy was still open on {exchange}; "
            "an order closing it was sent."
        )
    if finding.code == rc.UNKNOWN_POSITION:
        return (
            f"Your {exchange} account holds a {finding.symbol} position of {shown} that this copy did not open; "
            "it is left alone, but it uses the same balance."
        )
    mine = f"{abs(finding.service_quantity).normalize():f}"
    return (
        f"Your {finding.symbol} position on {exchange} is {shown}, your copy holds {mine}; our staff will look into it."
    )


def report_new_drifts(account: Account, fresh: list[tuple[rc.Finding, ExchangeDrift]], repairs: dict[str, str]) -> None:
    """Report the drifts seen for the first time: listeners (risk events),
    the job-error feed, the follower."""
    if not fresh:
        return
    exchange = account.exchange_account.exchange
    notices = [
        DriftNotice(
            drift.pk, account.pk, account.kind, account.user_id, finding.subscription_id, finding.code,
            finding.symbol, f"{finding.code} {finding.detail}", finding.service_quantity, finding.exchange_quantity,
            bool(repairs.get(finding.key)) and not repairs[finding.key].startswith("failed"),
        )
        for finding, drift in fresh
    ]  # fmt: skip
    for listener in _drift_listeners:
        listener(notices)
    for finding, drift in fresh:
        failures.failure_report(
            task=f"{TASK}:{finding.code}",
            arguments={"account_id": account.pk, "drift_id": drift.pk, "symbol": finding.symbol},
            exc=DriftFound(f"account {account.pk} ({exchange}): {finding.code} {finding.detail}"),
            severity=SEVERITY[finding.code],
        )
    if account.kind == AccountKind.COPY and account.user_id is not None:
        notify(
            [
                Note(
                    account.user_id,
                    "exchange_drift",
                    f"exchange_drift:{drift.pk}",
                    {
                        "code": finding.code,
                        "symbol": finding.symbol,
                        "account_id": account.pk,
                        "subscription_id": finding.subscription_id,
                        "detail": finding.detail,
                    },
                    body=_follower_sentence(finding, exchange, repairs.get(finding.key)),
                )
                for finding, drift in fresh
                if finding.code in POSITION_CODES
            ]
        )
