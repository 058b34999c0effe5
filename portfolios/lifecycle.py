"""A portfolio's end: ``active -> closing -> archived``.

``portfolio_close`` (the leader, or staff with a reason) only flips the status
under the row lock: from then on no one subscribes and the leader opens
nothing. The wind-down then runs outside that transaction, each step in its
own and each idempotent, so a crash anywhere is finished by the reconciler:

1. the leader's own book: resting orders cancelled, open positions closed at
   market (through the leader services, so each writes its leader event);
2. every follower detached through the registered detachers (the followers
   app registers one that unfollows: mirrors closed, profit share accrued on
   the normal close path, copy wallet returned to the main wallet);
3. the portfolio's accrued profit share settled (the fee settlement job's
   own step, for this portfolio only), so the leader's part is in the
   portfolio's profit account and nothing of it waits in escrow;
4. archived once nothing is left: no live subscription, no open leader
   position or order, no profit share in escrow (accrued, or failed and
   waiting for staff to resolve it). Archiving, in one transaction, sells
   the leader's spot holdings, returns the trading account's cash and
   everything the profit account holds to the leader's main wallet, and
   closes both accounts (docs/decisions.md).
"""

import logging
from typing import Protocol

from django.db import transaction
from django.utils import timezone

from copytrading import audit, ledger
from copytrading.closing import account_holdings_sell
from copytrading.errors import Conflict, DomainError
from copytrading.exchanges.models import LeaderTradePoll
from copytrading.models import Account, AccountKind, Holding, Order, OrderStatus, Position, PositionStatus, TransferKind
from copytrading.money import ZERO
from copytrading.notifications.services import Note, notify
from copytrading.outages import dispatch_on_commit
from fees import services as fee_services
from fees.models import AccrualStatus, FeeAccrual
from portfolios.locks import lock_portfolio
from portfolios.models import Portfolio, PortfolioStatus

log = logging.getLogger(__name__)

REASON_MAX_LENGTH = 500
CLOSED_BY_LEADER = "portfolio_closed"
CLOSED_BY_STAFF = "portfolio_closed_by_staff"


class Detacher(Protocol):
    """What the lifecycle needs of an app above portfolios that hangs things
    on a portfolio (followers' subscriptions)."""

    def live_subscription_ids(self, portfolio_id: int) -> list[int]: ...

    def detach(self, subscription_id: int, reason: str) -> bool:
        """End one subscription; True only for the call that ended it."""
        ...


_detachers: list[Detacher] = []


def register_detacher(detacher: Detacher) -> None:
    """Called from an app's ``ready()``; one detacher per class."""
    _detachers[:] = [d for d in _detachers if type(d) is not type(detacher)]
    _detachers.append(detacher)


@transaction.atomic
def portfolio_close(*, portfolio: Portfolio, actor, reason: str = "", forced: bool = False) -> Portfolio:
    """Start closing: ``active -> closing``. ``forced`` is staff closing
    someone's portfolio and needs a reason. Closing a portfolio that is already
    closing or archived changes nothing (the first close's reason stays)."""
    reason = " ".join((reason or "").split())
    if forced and not reason:
        raise DomainError("CLOSE_REASON_REQUIRED", "Staff must give a reason to force-close.", field="reason")
    if len(reason) > REASON_MAX_LENGTH:
        raise DomainError("INVALID_REASON", f"The reason has at most {REASON_MAX_LENGTH} characters.", field="reason")
    portfolio = lock_portfolio(portfolio.pk)
    if portfolio.status != PortfolioStatus.ACTIVE:
        return portfolio
    portfolio.status = PortfolioStatus.CLOSING
    portfolio.close_reason = reason
    portfolio.closed_by = actor
    portfolio.closing_started_at = timezone.now()
    portfolio.save(update_fields=["status", "close_reason", "closed_by", "closing_started_at", "updated_at"])
    audit.record(
        actor=actor,
        action="force_close" if forced else "close",
        target=portfolio,
        changes={"status": (PortfolioStatus.ACTIVE, portfolio.status)},
        reason=reason,
    )
    body = f"{portfolio.name} takes no new followers or orders; its followers are being detached."
    if forced:
        body += f" Closed by staff: {reason}"
    _notify_leader(portfolio, "portfolio_closing", body)
    from portfolios.lifecycle_tasks import wind_down_portfolio

    portfolio_id = portfolio.pk
    dispatch_on_commit(
        lambda: wind_down_portfolio.delay(portfolio_id),
        what=f"wind-down of portfolio {portfolio_id}; the closing reconciler finishes it",
    )
    return portfolio


def _notify_leader(portfolio: Portfolio, kind: str, body: str) -> None:
    """Closing and archiving each happen once per portfolio (both are
    conditional on its status), so the portfolio names the source."""
    data = {"portfolio_id": portfolio.pk, "portfolio": portfolio.name, "reason": portfolio.close_reason}
    notify([Note(portfolio.leader_id, kind, f"{kind}:{portfolio.pk}", data, body=body)])


def end_reason(portfolio: Portfolio) -> str:
    """What a detached follower's subscription records as its end reason."""
    if portfolio.closed_by_id is not None and portfolio.closed_by_id != portfolio.leader_id:
        return f"{CLOSED_BY_STAFF}: {portfolio.close_reason}"[:200]
    return CLOSED_BY_LEADER


def leader_book_close(*, portfolio_id: int) -> tuple[int, int]:
    """Cancel the closing portfolio's resting leader orders and close its open
    positions, one transaction each (a failure is logged and retried by the
    reconciler). Returns (cancelled, closed)."""
    from portfolios import services

    portfolio = Portfolio.objects.get(pk=portfolio_id)
    if portfolio.status != PortfolioStatus.CLOSING:
        return 0, 0
    account_id = portfolio.trading_account_id
    cancelled = closed = 0
    for order_id in Order.objects.filter(account_id=account_id, status=OrderStatus.OPEN).values_list("pk", flat=True):
        try:
            services.portfolio_order_cancel(portfolio=portfolio, order_id=order_id)
            cancelled += 1
        except DomainError as exc:  # already filled or cancelled meanwhile
            log.info("closing portfolio %s: order %s not cancelled: %s", portfolio_id, order_id, exc.code)
    positions = Position.objects.filter(account_id=account_id, status=PositionStatus.OPEN).values_list("pk", flat=True)
    for position_id in positions:
        try:
            services.portfolio_position_close(portfolio=portfolio, position_id=position_id)
            closed += 1
        except DomainError as exc:  # closed meanwhile (TP/SL, liquidation)
            log.info("closing portfolio %s: position %s not closed: %s", portfolio_id, position_id, exc.code)
    return cancelled, closed


def followers_detach(*, portfolio_id: int) -> int:
    """Detach every live subscription of a closing portfolio; each detach is
    its own transaction and a no-op for one already ended, so running this
    twice, or twice at once, ends each subscription exactly once. Returns how
    many this call ended."""
    portfolio = Portfolio.objects.get(pk=portfolio_id)
    if portfolio.status != PortfolioStatus.CLOSING:
        return 0
    reason = end_reason(portfolio)
    ended = 0
    for detacher in _detachers:
        for subscription_id in detacher.live_subscription_ids(portfolio_id):
            try:
                ended += bool(detacher.detach(subscription_id, reason))
            except DomainError as exc:  # e.g. a wallet still busy: the reconciler retries
                log.warning(
                    "closing portfolio %s: subscription %s not detached: %s", portfolio_id, subscription_id, exc
                )
    return ended


def _what_is_left(portfolio: Portfolio) -> list[str]:
    left = []
    if any(d.live_subscription_ids(portfolio.pk) for d in _detachers):
        left.append("subscriptions")
    account_id = portfolio.trading_account_id
    if Position.objects.filter(account_id=account_id, status=PositionStatus.OPEN).exists():
        left.append("positions")
    if Order.objects.filter(account_id=account_id, status=OrderStatus.OPEN).exists():
        left.append("orders")
    unsettled = FeeAccrual.objects.filter(portfolio_id=portfolio.pk).exclude(status=AccrualStatus.SETTLED)
    if unsettled.exists():
        # A failed one too: its leader part would reach the profit account
        # after the archive closed it.
        left.append("unsettled profit share")
    return left


def portfolio_fees_settle(*, portfolio_id: int) -> int:
    """Settle the closing portfolio's accrued profit share now rather than at
    the next minute job, so the archive is not held up by it. Own
    transaction, idempotent (the settlement job's claim and keys). Returns
    how many settled."""
    if not Portfolio.objects.filter(pk=portfolio_id, status=PortfolioStatus.CLOSING).exists():
        return 0
    return fee_services.fees_settle(portfolio_id=portfolio_id).settled


def _trading_account_empty(portfolio: Portfolio) -> None:
    """Sell the leader's spot holdings (dust included) and return the trading
    account's cash to the leader's main wallet, then close the account. No one
    copies the portfolio any more, so these sales write no leader event."""
    account_id = portfolio.trading_account_id
    ledger.lock_accounts([account_id])
    if Account.objects.filter(pk=account_id, exchange_account__isnull=False).exists():
        # Bound to the leader's exchange account: the coins are theirs, on the
        # exchange; the book only stops mirroring them (nothing is sold).
        Holding.objects.filter(account_id=account_id).update(quantity=ZERO, cost_basis=ZERO, reserved=ZERO)
    else:
        account_holdings_sell(account_id=account_id)
    account = Account.objects.get(pk=account_id)
    if account.locked:
        raise Conflict("TRADING_ACCOUNT_BUSY", "The trading account still holds margin; retry later.")
    if account.balance > 0 and account.exchange_account_id is not None:
        # Bound to an exchange account: the balance is the exchange's mirror
        # (portfolios/exchange.py), it goes back where it came from.
        ledger.transfer(
            debit_id=account_id,
            credit_id=ledger.system_account(AccountKind.EXTERNAL).pk,
            amount=account.balance,
            kind=TransferKind.EXCHANGE_SYNC,
            key=f"portfolio:{portfolio.pk}:archive-return",
            ref=f"portfolio {portfolio.pk} archived (exchange account {account.exchange_account_id})",
        )
    elif account.balance > 0:
        ledger.transfer(
            debit_id=account_id,
            credit_id=ledger.main_account_for(portfolio.leader).pk,
            amount=account.balance,
            kind=TransferKind.LEADER_RETURN,
            key=f"portfolio:{portfolio.pk}:archive-return",
            ref=f"portfolio {portfolio.pk} archived",
        )
    Account.objects.filter(pk=account_id).update(is_closed=True)
    # An archived portfolio's trades are no longer polled (the exchange account is free again).
    LeaderTradePoll.objects.filter(account_id=account_id).delete()


@transaction.atomic
def portfolio_archive(*, portfolio_id: int) -> bool:
    """``closing -> archived`` when nothing is left; True when it is archived
    (now or before). Safe to call any time, any number of times."""
    portfolio = lock_portfolio(portfolio_id)
    if portfolio.status != PortfolioStatus.CLOSING:
        return portfolio.status == PortfolioStatus.ARCHIVED
    left = _what_is_left(portfolio)
    if left:
        log.info("closing portfolio %s not archived yet: %s left", portfolio_id, ", ".join(left))
        return False
    _trading_account_empty(portfolio)
    fee_services.leader_profit_return(portfolio_id=portfolio.pk)
    portfolio.status = PortfolioStatus.ARCHIVED
    portfolio.archived_at = timezone.now()
    portfolio.save(update_fields=["status", "archived_at", "updated_at"])
    _notify_leader(portfolio, "portfolio_archived", f"{portfolio.name} is closed and archived.")
    return True


def portfolio_wind_down(*, portfolio_id: int) -> str:
    """Every step after the close, in order; returns the status reached."""
    leader_book_close(portfolio_id=portfolio_id)
    followers_detach(portfolio_id=portfolio_id)
    portfolio_fees_settle(portfolio_id=portfolio_id)
    try:
        portfolio_archive(portfolio_id=portfolio_id)
    except DomainError as exc:  # e.g. a holding with no market right now: the reconciler retries
        log.warning("closing portfolio %s not archived: %s", portfolio_id, exc)
    return Portfolio.objects.values_list("status", flat=True).get(pk=portfolio_id)


def closing_portfolios_reconcile() -> dict[str, int]:
    """The reconciler's pass: finish every closing portfolio's wind-down."""
    ids = list(Portfolio.objects.filter(status=PortfolioStatus.CLOSING).order_by("pk").values_list("pk", flat=True))
    archived = sum(portfolio_wind_down(portfolio_id=pk) == PortfolioStatus.ARCHIVED for pk in ids)
    return {"closing": len(ids), "archived": archived}
