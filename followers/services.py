"""Every write to subscriptions and copy wallets: subscribe and a follower's
own close here; top up, withdraw, settings, pause/resume and unfollow in
followers/lifecycle.py (re-exported below, so callers import from here)."""

from decimal import Decimal

from django.db import IntegrityError, transaction

from copytrading import changes, ledger
from copytrading import live as live_settings
from copytrading.errors import Conflict, DomainError, InsufficientFunds
from copytrading.exchanges.binding import exchange_account_bind, exchange_binding_precheck
from copytrading.models import AccountKind, TransferKind
from copytrading.trading import Executed
from copytrading.venues import venue_for_account
from fees.services import follower_capacity_validate
from followers import notify_hooks
from followers.lifecycle import (  # noqa: F401 - the public write API of followers
    SubscriptionUnfollowed,
    check_amount,
    lock_live_subscription,
    subscription_pause,
    subscription_resume,
    subscription_settings_update,
    subscription_top_up,
    subscription_unfollow,
    subscription_withdraw,
)
from followers.models import Subscription, SubscriptionStatus
from portfolios import copy_settings
from portfolios.copy_settings import validate_sizing, validate_slippage_tolerance  # noqa: F401 - re-exported
from portfolios.copy_templates import TemplateView, template_resolve
from portfolios.locks import lock_portfolio
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.passcodes import passcode_check
from risk.services import risk_limits_set


def main_balance_check(*, follower, amount: Decimal):
    """The follower's main wallet, if its free balance covers ``amount``: a
    follower can never commit more to copies than they hold (the ledger's
    conditional debit and CHECK constraint hold the line under races)."""
    main = ledger.main_account_for(follower)
    if main.free < amount:
        raise InsufficientFunds(f"Your main wallet has {main.free} available; {amount} was asked for.")
    return main


def subscription_create(
    *,
    follower,
    portfolio: Portfolio,
    amount: Decimal,
    passcode: str | None = None,
    client_address: str | None = None,
    **options,
) -> Subscription:
    """Subscribe (see ``subscription_open``). A private portfolio's passcode is
    checked first, outside the subscribe transaction: its attempt count must
    commit even when the subscribe is then refused, and its row locks must not
    be held through the subscribe (portfolios/passcodes.py). ``client_address``
    (copytrading.auth.client) is counted beside the account. A caller that runs
    the subscribe inside a transaction of its own (the API's Idempotency-Key)
    calls ``passcode_check`` before it and then ``subscription_open``."""
    passcode_check(user=follower, portfolio=portfolio, passcode=passcode, client_address=client_address)
    exchange_binding_check(follower=follower, amount=amount, exchange_account_id=options.get("exchange_account_id"))
    return subscription_open(follower=follower, portfolio=portfolio, amount=amount, **options)


def exchange_binding_check(*, follower, amount: Decimal, exchange_account_id: int | None) -> None:
    """A subscribe bound to an exchange account: check it, the exchange's
    free balance covering ``amount`` included, before the subscribe's
    transaction (no exchange is asked under its locks; an exchange that is
    down refuses the subscribe with 503 and nothing is stored).
    ``subscription_open`` checks it again, without the exchange, under its
    locks."""
    if exchange_account_id is not None:
        exchange_binding_precheck(user=follower, exchange_account_id=exchange_account_id, allocation=amount)


# Subscribing with neither a template nor any sizing setting copies with this
# platform template (docs/api.md, "Copy templates").
DEFAULT_TEMPLATE = "balanced"
SIZING_FIELDS = frozenset({"sizing_model", "multiplier", "fixed_notional", "risk_factor"})


def investment_check(*, portfolio: Portfolio, amount: Decimal) -> None:
    """A copy's amount: a valid sum, at least the platform's minimum (live
    settings) and the portfolio's, the higher."""
    check_amount(amount)
    minimum = max(portfolio.min_investment, live_settings.current().min_investment)
    if amount < minimum:
        raise DomainError("BELOW_MIN_INVESTMENT", f"This portfolio needs at least {minimum}.", field="amount")


def copy_settings_resolve(
    *, portfolio: Portfolio, amount: Decimal, template: str | int | None, explicit: dict
) -> tuple[TemplateView | None, copy_settings.ResolvedSettings]:
    """The template chosen and the settings and risk limits a copy of
    ``portfolio`` gets for ``amount`` (subscribe's rules; the simulator's too)."""
    if template in (None, "") and not SIZING_FIELDS & explicit.keys():
        # Nothing says how to size the copies: the documented default applies.
        template = DEFAULT_TEMPLATE
    chosen = template_resolve(portfolio=portfolio, template=template) if template not in (None, "") else None
    values = chosen.values if chosen else None
    return chosen, copy_settings.resolve(template_values=values, explicit=explicit, amount=amount)


@transaction.atomic
def subscription_open(
    *,
    follower,
    portfolio: Portfolio,
    amount: Decimal,
    template: str | int | None = None,
    exchange_account_id: int | None = None,
    **explicit,
) -> Subscription:
    """Open a copy wallet funded from the follower's main wallet.

    With ``exchange_account_id`` (one of the follower's linked exchange
    accounts) the wallet is bound to it: the copies are placed on that
    exchange account, and the funded amount is the allocation, what the copy
    may use of the exchange balance (``exchange_binding_check`` has compared
    it with the exchange's free balance before this transaction).

    Settings come from ``template`` (a platform default's key or one of the
    portfolio's custom templates' id), overridden by any setting or risk
    limit given in ``explicit`` (portfolios.copy_settings SETTING_FIELDS and
    RISK_FIELDS). The values are copied: later template edits change nothing
    here."""
    portfolio = lock_portfolio(portfolio.pk)
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "The portfolio does not take new followers.", field="portfolio")
    if portfolio.leader_id == follower.pk:
        raise DomainError("OWN_PORTFOLIO", "You cannot copy your own portfolio.", field="portfolio")
    investment_check(portfolio=portfolio, amount=amount)
    chosen, resolved = copy_settings_resolve(portfolio=portfolio, amount=amount, template=template, explicit=explicit)
    live = Subscription.objects.filter(portfolio=portfolio).exclude(status=SubscriptionStatus.ENDED)
    if live.filter(follower=follower).exists():
        raise Conflict("ALREADY_SUBSCRIBED", "You already copy this portfolio.", field="portfolio")
    # The portfolio row is locked: two subscribes cannot both take the last slot.
    follower_capacity_validate(leader=portfolio.leader, current_followers=live.count())

    main = main_balance_check(follower=follower, amount=amount)
    wallet = ledger.account_open(kind=AccountKind.COPY, user=follower, name=f"copy:{portfolio.pk}")
    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                follower=follower,
                portfolio=portfolio,
                copy_account=wallet,
                invested=amount,
                agreed_profit_share_pct=portfolio.profit_share_pct,
                template_ref=chosen.id if chosen else "",
                **resolved.settings,
            )
    except IntegrityError:
        raise Conflict("ALREADY_SUBSCRIBED", "You already copy this portfolio.", field="portfolio") from None
    if exchange_account_id is not None:
        exchange_account_bind(user=follower, account=wallet, exchange_account_id=exchange_account_id)
    ledger.transfer(
        debit_id=main.pk,
        credit_id=wallet.pk,
        amount=amount,
        kind=TransferKind.COPY_FUND,
        key=f"subscription:{subscription.pk}:fund",
        ref=f"subscription {subscription.pk}",
    )
    if resolved.risk_limits:
        risk_limits_set(subscription_id=subscription.pk, **resolved.risk_limits)
    notify_hooks.subscription_started(subscription, portfolio.name, portfolio.leader_id)
    changes.touch(users=[follower.pk, portfolio.leader_id], portfolios=[portfolio.pk])
    return subscription


@transaction.atomic
def subscription_position_close(
    *, subscription: Subscription, position_id: int, quantity: Decimal | None = None
) -> Executed:
    """The follower closes one of their mirrors, all of it or exactly ``quantity``.

    Locks as unfollow and the watchdog do (subscription, copy wallet, then the
    position), so a close racing an unfollow waits and then finds it closed."""
    subscription = lock_live_subscription(subscription)
    ledger.lock_accounts([subscription.copy_account_id])
    account_id = subscription.copy_account_id
    return venue_for_account(account_id).position_close(
        account_id=account_id, position_id=position_id, quantity=quantity
    )
