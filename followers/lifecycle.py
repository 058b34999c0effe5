"""A running copy's lifecycle: top up, partial withdraw, settings on the fly,
pause, resume and unfollow. Import them from ``followers.services``.

Locks are taken in one order everywhere (the subscription row, then the copy
wallet, then its positions, orders and holdings), the order the watchdog
uses too, so none of these can deadlock with it or with each other.
"""

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from copytrading import audit, ledger
from copytrading.changes import touch
from copytrading.closing import account_holdings_sell, account_orders_cancel
from copytrading.errors import Conflict, DomainError, InsufficientFunds, validate_all
from copytrading.models import Account, Order, OrderStatus, Position, PositionStatus, TransferKind
from copytrading.money import ZERO
from copytrading.venues import venue_for_account
from followers import locks, notify_hooks
from followers.models import Subscription, SubscriptionStatus
from portfolios.copy_settings import RISK_FIELDS, SETTING_FIELDS, validate_risk_limits, validate_settings
from portfolios.models import PortfolioStatus
from risk.services import risk_limits_set

log = logging.getLogger(__name__)

PAUSED_BY_FOLLOWER = "manual"
# An unfollow waiting for its closes at an exchange (see subscription_unfollow).
UNFOLLOW_PENDING = "UNFOLLOW_PENDING"
UNFOLLOWED = "unfollowed"
_Q8 = Decimal("0.00000001")


def check_amount(amount) -> None:
    if isinstance(amount, bool) or not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise DomainError("INVALID_AMOUNT", "The amount must be greater than zero.", field="amount")
    if amount != amount.quantize(_Q8):
        raise DomainError("INVALID_AMOUNT", "The amount has more than 8 decimal places.", field="amount")


def lock_live_subscription(subscription: Subscription) -> Subscription:
    """The subscription row (not its portfolio's: followers/locks.py), locked;
    refused once it has ended."""
    return locks.lock_live_subscription(subscription.pk)


def _refuse_unless_portfolio_active(subscription: Subscription, what: str) -> None:
    if subscription.portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", f"The portfolio is {subscription.portfolio.status}: {what}.")


# --- money in and out ---------------------------------------------------------------


@transaction.atomic
def subscription_top_up(*, subscription: Subscription, amount: Decimal, idempotency_key: str = "") -> Subscription:
    """Move ``amount`` from the follower's main wallet into the copy wallet.
    A retry with the same ``idempotency_key`` moves nothing again."""
    sub = lock_live_subscription(subscription)
    _refuse_unless_portfolio_active(sub, "it takes no new money")
    check_amount(amount)
    main = ledger.main_account_for(sub.follower)
    try:
        _, created = ledger.transfer(
            debit_id=main.pk,
            credit_id=sub.copy_account_id,
            amount=amount,
            kind=TransferKind.COPY_FUND,
            key=f"subscription:{sub.pk}:top-up:{idempotency_key or uuid.uuid4().hex}",
            ref=f"subscription {sub.pk} top-up",
        )
    except InsufficientFunds:
        # A follower can never commit more than their main balance holds.
        free = Account.objects.get(pk=main.pk).free
        raise InsufficientFunds(f"Your main wallet has {free} available; {amount} was asked for.") from None
    if created:
        Subscription.objects.filter(pk=sub.pk).update(invested=F("invested") + amount)
    sub.refresh_from_db()
    return sub


@transaction.atomic
def subscription_withdraw(*, subscription: Subscription, amount: Decimal, idempotency_key: str = "") -> Subscription:
    """Move ``amount`` of the copy wallet's free balance back to main: never
    margin in use by open mirrors nor margin reserved by resting mirror limits.
    Taking everything out is an unfollow, not a withdrawal."""
    sub = lock_live_subscription(subscription)
    check_amount(amount)
    wallet = ledger.lock_accounts([sub.copy_account_id])[sub.copy_account_id]
    if amount > wallet.free:
        raise DomainError(
            "EXCEEDS_FREE_BALANCE",
            f"At most {wallet.free} can be withdrawn now; the rest of the copy wallet is margin in use "
            "or reserved by resting orders.",
            field="amount",
        )
    if amount >= wallet.balance:
        raise DomainError(
            "WITHDRAWAL_EMPTIES_WALLET",
            "This would empty the copy wallet; unfollow to take everything out.",
            field="amount",
        )
    main = ledger.main_account_for(sub.follower)
    transfer, created = ledger.transfer(
        debit_id=sub.copy_account_id,
        credit_id=main.pk,
        amount=amount,
        kind=TransferKind.COPY_RETURN,
        key=f"subscription:{sub.pk}:withdraw:{idempotency_key or uuid.uuid4().hex}",
        ref=f"subscription {sub.pk} withdrawal",
    )
    if created:
        # ``invested`` is the capital still committed: it never goes below 0
        # when profits are taken out.
        sub.invested = max(sub.invested - amount, ZERO)
        sub.save(update_fields=["invested"])
        notify_hooks.copy_withdrawal_done(sub, amount, transfer.pk)
    return sub


# --- settings ----------------------------------------------------------------------


@transaction.atomic
def subscription_settings_update(*, subscription: Subscription, **changes) -> Subscription:
    """Change settings and risk limits of a running copy, with the ranges of
    subscribe (portfolios.copy_settings): the next copy and the next watchdog
    tick use them. Only the fields given change; a refused value changes nothing."""
    sub = lock_live_subscription(subscription)
    unknown = set(changes) - set(SETTING_FIELDS) - set(RISK_FIELDS)
    if unknown:
        name = sorted(unknown)[0]
        raise DomainError("UNKNOWN_FIELD", f"Unknown setting {name}.", field=name)
    current = {name: getattr(sub, name) for name in SETTING_FIELDS}
    risk_changes = {k: v for k, v in changes.items() if k in RISK_FIELDS}
    merged, _ = validate_all(
        lambda: validate_settings({**current, **{k: v for k, v in changes.items() if k in SETTING_FIELDS}}),
        lambda: validate_risk_limits(risk_changes),
    )
    changed = [name for name in SETTING_FIELDS if merged[name] != current[name]]
    for name in changed:
        setattr(sub, name, merged[name])
    if changed:
        sub.save(update_fields=changed)
    if risk_changes:
        risk_limits_set(subscription_id=sub.pk, **risk_changes)
    touch(subscriptions=[sub.pk])
    return sub


# --- pause and resume --------------------------------------------------------------


@transaction.atomic
def subscription_pause(*, subscription: Subscription, reason: str = PAUSED_BY_FOLLOWER, actor=None) -> Subscription:
    """No new copies from now on; open mirrors still follow the leader's
    closes and TP/SL. Pausing a paused copy changes nothing (its reason stays).
    Audited: ``actor`` (default: the request's user) and the reason."""
    sub = lock_live_subscription(subscription)
    if sub.status == SubscriptionStatus.PAUSED:
        return sub
    before = sub.status
    sub.status, sub.pause_reason = SubscriptionStatus.PAUSED, reason[:50]
    sub.save(update_fields=["status", "pause_reason"])
    audit.record(
        actor=actor, action="pause", target=sub, changes={"status": (before, sub.status)}, reason=sub.pause_reason
    )
    touch(subscriptions=[sub.pk])
    return sub


@transaction.atomic
def subscription_resume(*, subscription: Subscription, actor=None) -> Subscription:
    """Copy again, whatever paused it (a watchdog pause included: its rule
    pauses again on the next tick if the breach is still there)."""
    sub = lock_live_subscription(subscription)
    if sub.status == SubscriptionStatus.ACTIVE:
        return sub
    if sub.pause_reason == UNFOLLOW_PENDING:
        raise Conflict("UNFOLLOW_PENDING", "This copy is ending: its last orders are at the exchange.")
    _refuse_unless_portfolio_active(sub, "copying cannot resume")
    before = (sub.status, sub.pause_reason)
    sub.status, sub.pause_reason = SubscriptionStatus.ACTIVE, ""
    sub.save(update_fields=["status", "pause_reason"])
    audit.record(
        actor=actor,
        action="resume",
        target=sub,
        changes={"status": (before[0], sub.status), "pause_reason": (before[1], "")},
    )
    touch(subscriptions=[sub.pk])
    return sub


# --- unfollow ----------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionUnfollowed:
    subscription: Subscription
    closed_positions: int
    cancelled_orders: int
    sold_holdings: int
    returned: Decimal  # what went back to the main wallet
    already_ended: bool = False
    # A copy on an exchange account: its closes and sales are at the exchange;
    # the copy is paused (UNFOLLOW_PENDING) and ends when they have filled.
    settling: bool = False


@transaction.atomic
def subscription_unfollow(
    *, subscription: Subscription, reason: str = UNFOLLOWED, notify: bool = True, actor=None
) -> SubscriptionUnfollowed:
    """End a copy: close every open mirror at market (through the venue's
    close path, so profit share accrues as on any close), cancel its resting
    mirror orders, sell its spot holdings, return the whole copy wallet to the
    main wallet and close it. All or nothing; calling it again for an ended
    copy is a no-op, so retries (and the portfolio close detaching its
    followers) are safe. ``reason`` is recorded as the end reason. Both sides are notified
    unless ``notify`` is off (a portfolio close sends its own notice)."""
    sub = locks.lock_subscription(subscription.pk)
    if sub.status == SubscriptionStatus.ENDED:
        return SubscriptionUnfollowed(sub, 0, 0, 0, ZERO, already_ended=True)
    account_id = sub.copy_account_id
    ledger.lock_accounts([account_id])
    open_ids = list(
        Position.objects.filter(account_id=account_id, status=PositionStatus.OPEN)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    venue = venue_for_account(account_id)
    for position_id in open_ids:
        venue.position_close(account_id=account_id, position_id=position_id)
    cancelled = account_orders_cancel(account_id=account_id)
    sold = account_holdings_sell(account_id=account_id)
    if not venue.fills_synchronously and _settling(account_id):
        # The closes and sales wait for the exchange: no new copies meanwhile,
        # and the unfollow finishes when the last one fills (followers/apps.py
        # registers ``unfollows_finish`` with the exchange venue's applier).
        if sub.pause_reason != UNFOLLOW_PENDING:
            before = sub.status
            sub.status, sub.pause_reason, sub.end_reason = SubscriptionStatus.PAUSED, UNFOLLOW_PENDING, reason[:200]
            sub.save(update_fields=["status", "pause_reason", "end_reason"])
            audit.record(
                actor=actor,
                action="unfollow",
                target=sub,
                changes={"status": (before, sub.status), "pause_reason": ("", UNFOLLOW_PENDING)},
                reason=sub.end_reason,
            )
            touch(users=[sub.follower_id], subscriptions=[sub.pk], portfolios=[sub.portfolio_id])
        return SubscriptionUnfollowed(sub, len(open_ids), cancelled, sold, ZERO, settling=True)

    wallet = Account.objects.get(pk=account_id)
    if wallet.locked:
        # Nothing should hold margin any more; refuse rather than strand it.
        raise Conflict("COPY_WALLET_BUSY", "The copy wallet still holds margin; retry in a moment.")
    returned = wallet.balance
    if returned > 0:
        main = ledger.main_account_for(sub.follower)
        ledger.transfer(
            debit_id=account_id,
            credit_id=main.pk,
            amount=returned,
            kind=TransferKind.COPY_RETURN,
            key=f"subscription:{sub.pk}:unfollow",
            ref=f"subscription {sub.pk} unfollow",
        )
    Account.objects.filter(pk=account_id).update(is_closed=True)
    before = sub.status
    sub.status, sub.pause_reason = SubscriptionStatus.ENDED, ""
    sub.ended_at, sub.end_reason = timezone.now(), reason[:200]
    sub.save(update_fields=["status", "pause_reason", "ended_at", "end_reason"])
    audit.record(
        actor=actor,
        action="unfollow",
        target=sub,
        changes={"status": (before, sub.status), "returned": (None, returned)},
        reason=sub.end_reason,
    )
    if notify:
        notify_hooks.subscription_ended(sub, returned)
    touch(users=[sub.follower_id], subscriptions=[sub.pk], portfolios=[sub.portfolio_id])
    return SubscriptionUnfollowed(sub, len(open_ids), cancelled, sold, returned)


def _settling(account_id: int) -> bool:
    """Orders of the wallet still at an exchange, or mirrors still open."""
    return (
        Order.objects.filter(account_id=account_id, status=OrderStatus.PENDING).exists()
        or Position.objects.filter(account_id=account_id, status=PositionStatus.OPEN).exists()
    )


def unfollows_finish(account_ids: list[int]) -> int:
    """Finish the unfollows that waited for an exchange (``settling``) on
    these wallets, now that their orders are final: each in its own
    transaction, after the fills committed (the exchange venue's applier
    calls it then). One that fails is logged and finishes on the follower's
    next unfollow (safe to repeat). Returns how many ended."""
    waiting = list(
        Subscription.objects.filter(
            copy_account_id__in=list(account_ids), status=SubscriptionStatus.PAUSED, pause_reason=UNFOLLOW_PENDING
        ).order_by("pk")
    )
    from copytrading.venues.exchange import closes_refused_recently

    # A close the exchange just refused is not re-sent at once (the refusal
    # settling would run this again, and again): the unfollow stays pending
    # until the follower asks again.
    refused = closes_refused_recently(account_ids=[sub.copy_account_id for sub in waiting])
    ended = 0
    for sub in waiting:
        if sub.copy_account_id in refused:
            log.warning("unfollow of subscription %s waits: the exchange refused its close", sub.pk)
            continue
        try:
            done = subscription_unfollow(subscription=sub, reason=sub.end_reason or UNFOLLOWED)
        except Exception:
            log.exception("unfollow of subscription %s could not finish after its exchange orders", sub.pk)
            continue
        ended += not done.settling
    return ended
