"""The exchange reconciliation: every exchange-bound account (an ``Account``
with ``exchange_account`` set: copy wallets, leaders' trading accounts)
compared with what its exchange says, drift reported once and repaired where
that is safe.

One account at a time:
1. **Read the exchange** (outside any transaction): ``fetch_positions`` and
   ``fetch_open_orders``; for a position the exchange closed, the last trade
   of its symbol (``fetch_my_trades``), the price the close is adopted at.
   An exchange that cannot be read changes nothing for that account: it is
   reported (job error) and the run's exit code says so.
2. **Read the service** after the exchange (so an order decided meanwhile is
   seen as in flight) and compare (copytrading/exchanges/reconcile.py).
3. **Record** under the account's row lock: an ``ExchangeDrift`` per finding,
   the same drift on the next run updating its row, a drift no longer seen
   resolved. Only a drift seen for the first time is reported: a risk event
   on its subscription (through the drift listeners: ``followers`` maps the
   account to its subscription, ``risk`` writes the event), a job error for
   ops (copytrading.failures → the back office's feed, grouped per code), a
   notification to the follower for a position drift on a copy wallet.
4. **Repair**, once per drift:
   - ``CLOSED_ON_EXCHANGE``: the close is adopted — the mirror closed in the
     service at the exchange's last trade price (else the service's mark)
     through the engine's fill writer (``copytrading.venue.apply_fills``):
     ledger, realized PnL and the close listeners (profit share) as for any
     close;
   - ``UNKNOWN_POSITION`` on a symbol the service traded on this account (an
     exchange order of ours exists): closed with a reduce-only market order,
     an ``ExchangeOrder`` ``ct-r<drift id>`` handed to the submitter (the
     client id is per drift, so a second run can never send a second one);
   - ``MISSING_ORDER``: handed back to the submitter, whose lookup by client
     order id decides (filled, or never arrived and resent) — not us;
   - a position the service never traded there (the user's own), a quantity
     mismatch, an unknown order of ours, and any position drift of a
     leader's trading account (its fills must reach followers as leader
     events, not be adopted quietly): reported only.

``dry_run`` reads both sides and compares, and writes nothing anywhere.
Reading the exchange: copytrading/exchanges/account_reads.py; the reports:
copytrading/exchanges/drift_reports.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from copytrading import failures, ledger, trade_math
from copytrading.errors import DomainError
from copytrading.exchanges import reconcile as rc
from copytrading.exchanges.account_reads import ExchangeView, exchange_view
from copytrading.exchanges.drift_reports import CLOSED_IN_SERVICE, POSITION_CODES, TASK, report_new_drifts
from copytrading.exchanges.models import EXCHANGE_ORDER_FINAL, ExchangeDrift, ExchangeOrder, ExchangeOrderStatus
from copytrading.models import Account, AccountKind, Instrument, Position, PositionStatus
from copytrading.money import q8_down
from copytrading.venue import Fill, apply_fills

log = logging.getLogger(__name__)

# ExchangeDrift.repair values.
CLOSE_ORDER_SENT, HANDED_TO_SUBMITTER = "close_order_sent", "handed_to_submitter"


@dataclass(slots=True)
class AccountResult:
    account_id: int
    exchange: str
    account_kind: str
    findings: list[rc.Finding] = field(default_factory=list)
    new: set[str] = field(default_factory=set)  # finding keys seen for the first time
    repairs: dict[str, str] = field(default_factory=dict)  # finding key → what was done (or "failed: CODE")
    resolved: int = 0
    # Set: the account could not be reconciled — the exchange could not be read
    # (a DomainError code: EXCHANGE_UNAVAILABLE...), or INTERNAL_ERROR.
    error: str = ""


@dataclass(slots=True)
class ReconcileReport:
    dry_run: bool
    accounts: list[AccountResult] = field(default_factory=list)

    @property
    def findings(self) -> int:
        return sum(len(a.findings) for a in self.accounts)

    @property
    def unreachable(self) -> list[AccountResult]:
        return [a for a in self.accounts if a.error]

    @property
    def exit_code(self) -> int:
        """0 clean, 1 drift found, 2 an account could not be reconciled (its exchange unreadable)."""
        if self.unreachable:
            return 2
        return 1 if self.findings else 0

    def summary(self) -> str:
        repaired = sum(1 for a in self.accounts for r in a.repairs.values() if not r.startswith("failed"))
        return (
            f"{len(self.accounts)} accounts checked, {self.findings} findings "
            f"({sum(len(a.new) for a in self.accounts)} new), {repaired} repaired, "
            f"{sum(a.resolved for a in self.accounts)} resolved, {len(self.unreachable)} unreachable"
            + (" (dry run: nothing changed)" if self.dry_run else "")
        )


# --- reading the service --------------------------------------------------------------


def bound_accounts(account_id: int | None = None) -> list[Account]:
    """The open accounts bound to an exchange account (one, with ``account_id``)."""
    accounts = Account.objects.select_related("exchange_account").filter(
        exchange_account__isnull=False, is_closed=False
    )
    if account_id is not None:
        accounts = accounts.filter(pk=account_id)
    return list(accounts.order_by("pk"))


def _held(account_id: int) -> list[rc.HeldPosition]:
    rows = Position.objects.filter(account_id=account_id, status=PositionStatus.OPEN).values_list(
        "pk", "instrument__symbol", "side", "quantity", "subscription_id"
    )
    return [rc.HeldPosition(*row) for row in rows.order_by("pk")]


def _known(exchange_account_id: int, read_at: datetime) -> list[rc.KnownOrder]:
    rows = ExchangeOrder.objects.filter(exchange_account_id=exchange_account_id).values_list(
        "pk", "client_order_id", "symbol", "status", "decided_at", "subscription_id", "updated_at"
    )
    return [
        rc.KnownOrder(pk, client_id, symbol, status, decided_at, subscription_id, recent=updated_at >= read_at)
        for pk, client_id, symbol, status, decided_at, subscription_id, updated_at in rows.order_by("pk")
    ]


# --- the run --------------------------------------------------------------------------


def exchange_accounts_reconcile(
    *,
    account_id: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[int, int, AccountResult], None] | None = None,
) -> ReconcileReport:
    """Compare every exchange-bound account (or ``account_id``'s) with its
    exchange; record, report and repair what differs (nothing with
    ``dry_run``). ``progress(i, n, result)`` after each account."""
    report = ReconcileReport(dry_run=dry_run)
    accounts = bound_accounts(account_id)
    grace = timedelta(seconds=settings.EXCHANGE_RECONCILE_GRACE_SECONDS)
    for i, account in enumerate(accounts, 1):
        try:
            result = account_reconcile(account, dry_run=dry_run, grace=grace, now=now)
        except Exception as exc:  # one account's bug never stops the others' reconciliation
            log.exception("exchange reconciliation of account %s failed", account.pk)
            result = AccountResult(account.pk, account.exchange_account.exchange, account.kind, error="INTERNAL_ERROR")
            if not dry_run:
                failures.failure_report(task=TASK, arguments={"account_id": account.pk}, exc=exc)
        report.accounts.append(result)
        if progress is not None:
            progress(i, len(accounts), result)
    return report


def account_reconcile(
    account: Account, *, dry_run: bool = False, grace: timedelta | None = None, now: datetime | None = None
) -> AccountResult:
    grace = grace if grace is not None else timedelta(seconds=settings.EXCHANGE_RECONCILE_GRACE_SECONDS)
    result = AccountResult(account.pk, account.exchange_account.exchange, account.kind)
    read_at = timezone.now()

    def closed_symbols(positions: list[rc.ExchangePosition]) -> list[str]:
        on_exchange = {p.symbol for p in positions}
        return sorted({p.symbol for p in _held(account.pk)} - on_exchange)

    try:
        view = exchange_view(account, closed_symbols=closed_symbols)
    except DomainError as exc:
        result.error = exc.code
        if not dry_run:
            failures.failure_report(
                task=TASK,
                arguments={"account_id": account.pk, "exchange_account_id": account.exchange_account_id},
                exc=exc,
                severity=failures.HIGH,
            )
        return result
    held, known = _held(account.pk), _known(account.exchange_account_id, read_at)
    symbols = {p.symbol for p in held} | {p.symbol for p in view.positions}
    steps = dict(Instrument.objects.filter(symbol__in=sorted(symbols)).values_list("symbol", "qty_step"))
    now = now or timezone.now()
    result.findings = rc.compare(
        held=held, known=known, positions=view.positions, open_orders=view.open_orders, steps=steps, now=now,
        grace=grace,
    )  # fmt: skip
    unsettled = rc.unsettled_symbols(known)
    if dry_run:
        open_keys = set(
            ExchangeDrift.objects.filter(account=account, resolved_at__isnull=True).values_list("code", "subject")
        )
        result.new = {f.key for f in result.findings if (f.code, f.subject) not in open_keys}
        return result
    to_submit = _record_and_repair(account, result, view, unsettled, now, read_at)
    if to_submit:
        from copytrading.exchanges.submitter import submit_orders

        try:
            submit_orders(to_submit)
        except Exception:  # the rows stay pending/sent: the submitter's sweep takes them up
            log.exception("exchange reconciliation: the submitter failed for orders %s", to_submit)
    return result


@transaction.atomic
def _record_and_repair(
    account: Account, result: AccountResult, view: ExchangeView, unsettled: set[str], now: datetime, read_at: datetime
) -> list[int]:
    """Record the run's findings as drifts, resolve the drifts no longer
    seen, report the new ones and repair; returns the exchange orders to hand
    to the submitter after the commit."""
    ledger.lock_accounts([account.pk])  # one run at a time per account (lock order: accounts first)
    drifts = {
        (d.code, d.subject): d
        for d in ExchangeDrift.objects.select_for_update()
        .filter(account=account, resolved_at__isnull=True)
        .order_by("pk")
    }
    seen: set[tuple[str, str]] = set()
    fresh: list[tuple[rc.Finding, ExchangeDrift]] = []
    current: list[tuple[rc.Finding, ExchangeDrift]] = []
    for finding in result.findings:
        seen.add((finding.code, finding.subject))
        drift = drifts.get((finding.code, finding.subject))
        if drift is None:
            drift = ExchangeDrift.objects.create(
                account=account, exchange_account_id=account.exchange_account_id, code=finding.code,
                subject=finding.subject[:60], symbol=finding.symbol[:60], subscription_id=finding.subscription_id,
                service_quantity=finding.service_quantity, exchange_quantity=finding.exchange_quantity,
                detail=finding.detail[:300], first_seen_at=now, last_seen_at=now,
            )  # fmt: skip
            result.new.add(finding.key)
            fresh.append((finding, drift))
        else:
            drift.last_seen_at, drift.seen_count = now, drift.seen_count + 1
            drift.service_quantity, drift.exchange_quantity = finding.service_quantity, finding.exchange_quantity
            drift.detail = finding.detail[:300]
            drift.save(update_fields=["last_seen_at", "seen_count", "service_quantity", "exchange_quantity", "detail"])
        current.append((finding, drift))
    # A drift not seen again is over — unless its symbol was not compared this run.
    gone = [
        d.pk
        for key, d in drifts.items()
        if key not in seen and not (d.code in POSITION_CODES and d.symbol in unsettled)
    ]
    result.resolved = ExchangeDrift.objects.filter(pk__in=gone).update(resolved_at=now)

    to_submit: list[int] = []
    for finding, drift in current:
        done = _repair(account, finding, drift, view, now, read_at)
        if done is None:
            continue
        result.repairs[finding.key] = done
        if isinstance(done, str) and done.startswith("failed"):
            continue
        if drift.repair in (CLOSE_ORDER_SENT, HANDED_TO_SUBMITTER):
            to_submit.extend(finding.order_ids or _repair_order_ids(drift))
    report_new_drifts(account, fresh, result.repairs)
    return to_submit


def _repair_order_ids(drift: ExchangeDrift) -> list[int]:
    return list(ExchangeOrder.objects.filter(client_order_id=f"ct-r{drift.pk}").values_list("pk", flat=True))


def repairable(finding: rc.Finding, account_kind: str) -> bool:
    """Whether the reconciler repairs this finding (the others are reported only)."""
    if finding.code == rc.MISSING_ORDER:
        return True
    if account_kind != AccountKind.COPY:
        return False
    return finding.code == rc.CLOSED_ON_EXCHANGE or (finding.code == rc.UNKNOWN_POSITION and finding.ours)


def _moving(account: Account, symbol: str, since: datetime) -> bool:
    """Whether an order of ours on ``symbol`` is in flight or changed since
    ``since`` (the exchange was read): decided or answered after this run
    read the service, so what was compared may be out of date."""
    return (
        ExchangeOrder.objects.filter(exchange_account_id=account.exchange_account_id, symbol=symbol)
        .filter(Q(updated_at__gte=since) | ~Q(status__in=EXCHANGE_ORDER_FINAL))
        .exists()
    )


def _repair(
    account: Account, finding: rc.Finding, drift: ExchangeDrift, view: ExchangeView, now: datetime, read_at: datetime
) -> str | None:
    """Repair ``finding`` if it is safe and not done yet; what was done, or None."""
    if finding.code == rc.MISSING_ORDER:
        # Every run while it lasts: the submitter's lookup by client id is idempotent.
        if drift.repair != HANDED_TO_SUBMITTER:
            drift.repair = HANDED_TO_SUBMITTER
            drift.save(update_fields=["repair"])
        return HANDED_TO_SUBMITTER
    if drift.repair or drift.repair_error:
        return None  # done (or tried) once
    if account.kind != AccountKind.COPY:
        # A leader's account: its fills become leader events through the
        # leader's exchange watcher (issue #15 §1); a close adopted here would
        # bypass the outbox and leave every mirror open. Reported only.
        return None
    if _moving(account, finding.symbol, read_at):
        # Under the account's lock now: an order decided or answered since the
        # read would make this repair act on a stale picture. Next run.
        return None
    try:
        with transaction.atomic():
            if finding.code == rc.CLOSED_ON_EXCHANGE:
                _adopt_close(account, finding, view)
                drift.repair = CLOSED_IN_SERVICE
            elif finding.code == rc.UNKNOWN_POSITION and finding.ours:
                _send_close(account, finding, drift, now)
                drift.repair = CLOSE_ORDER_SENT
            else:
                return None
    except DomainError as exc:
        log.warning("exchange reconciliation: %s on account %s not repaired: %s", finding.key, account.pk, exc.code)
        drift.repair_error = exc.code[:60]
        drift.save(update_fields=["repair_error"])
        return f"failed: {exc.code}"
    drift.save(update_fields=["repair"])
    return drift.repair


def _adopt_close(account: Account, finding: rc.Finding, view: ExchangeView) -> None:
    """Close the account's open positions on ``finding.symbol`` in the service
    at the exchange's price, through the engine's fill writer."""
    positions = list(
        Position.objects.select_for_update(of=("self",))
        .select_related("instrument")
        .filter(pk__in=finding.position_ids, account_id=account.pk, status=PositionStatus.OPEN)
        .order_by("pk")
    )
    if not positions:
        raise DomainError("POSITION_CLOSED", "The position was closed meanwhile.", status=409)
    instrument = positions[0].instrument
    price, _ = view.close_prices.get(finding.symbol, (instrument.mark_price, "mark"))
    if not price or price <= 0:
        raise DomainError("NO_PRICE", f"No price to adopt the close of {finding.symbol} at.", status=409)
    price = q8_down(price)
    apply_fills(
        [
            Fill(
                account.pk, instrument, trade_math.closing_side(p.side), trade_math.CLOSE, p.quantity, price,
                p.leverage, p, subscription_id=p.subscription_id,
            )
            for p in positions
        ]
    )  # fmt: skip


def _send_close(account: Account, finding: rc.Finding, drift: ExchangeDrift, now: datetime) -> None:
    """A reduce-only market order closing the position the exchange holds
    (its client id is the drift's: one per drift, ever)."""
    contracts = finding.exchange_contracts
    ExchangeOrder.objects.create(
        exchange_account_id=account.exchange_account_id, order=None, client_order_id=f"ct-r{drift.pk}",
        symbol=finding.symbol, side="sell" if contracts > 0 else "buy", order_type="market", quantity=abs(contracts),
        reduce_only=True, status=ExchangeOrderStatus.PENDING, subscription_id=finding.subscription_id,
        decided_at=now,
    )  # fmt: skip
