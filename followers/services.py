"""Every write to subscriptions and copy wallets."""

from decimal import Decimal

from django.db import IntegrityError, transaction

from copytrading import ledger, sizing
from copytrading.decisions import DEFAULT_SLIPPAGE_TOLERANCE_PCT
from copytrading.errors import Conflict, DomainError, InsufficientFunds
from copytrading.models import AccountKind, TransferKind
from copytrading.trading import Executed, position_close
from followers.models import Subscription, SubscriptionStatus
from portfolios.models import Portfolio, PortfolioStatus

_PARAMETER_FIELD = {model: spec[0] for model, spec in sizing.PARAMETER_RANGES.items()}


SLIPPAGE_RANGE = (Decimal("0"), Decimal("100"))


def validate_slippage_tolerance(value: Decimal) -> None:
    low, high = SLIPPAGE_RANGE
    if not value.is_finite() or not low <= value <= high:
        raise DomainError(
            "OUT_OF_RANGE",
            f"slippage_tolerance_pct must be in [{low}, {high}] (percent).",
            field="slippage_tolerance_pct",
        )
    if value != value.quantize(Decimal("0.01")):
        raise DomainError(
            "INVALID_PRECISION", "slippage_tolerance_pct has at most 2 decimal places.", field="slippage_tolerance_pct"
        )


def validate_sizing(*, sizing_model: str, multiplier=None, fixed_notional=None, risk_factor=None) -> None:
    """The same range check for subscribe and for every settings update."""
    if sizing_model not in sizing.SizingModel.ALL:
        raise DomainError(
            "INVALID_SIZING_MODEL",
            f"sizing_model must be one of {', '.join(sizing.SizingModel.ALL)}.",
            field="sizing_model",
        )
    values = {"multiplier": multiplier, "fixed_notional": fixed_notional, "risk_factor": risk_factor}
    field = _PARAMETER_FIELD[sizing_model]
    error = sizing.parameter_error(sizing_model, values[field])
    if error:
        raise DomainError("OUT_OF_RANGE", f"For {sizing_model} sizing, {error}.", field=field)


@transaction.atomic
def subscription_create(
    *,
    follower,
    portfolio: Portfolio,
    amount: Decimal,
    sizing_model: str = sizing.SizingModel.PROGRESSIVE,
    multiplier: Decimal | None = None,
    fixed_notional: Decimal | None = None,
    risk_factor: Decimal | None = None,
    leverage_override: int | None = None,
    copy_margin: bool = True,
    copy_spot: bool = True,
    slippage_tolerance_pct: Decimal = DEFAULT_SLIPPAGE_TOLERANCE_PCT,
) -> Subscription:
    """Open a copy wallet funded from the follower's main wallet."""
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "The portfolio does not take new followers.", field="portfolio")
    if portfolio.leader_id == follower.pk:
        raise DomainError("OWN_PORTFOLIO", "You cannot copy your own portfolio.", field="portfolio")
    if amount <= 0:
        raise DomainError("INVALID_AMOUNT", "The amount must be greater than zero.", field="amount")
    if amount < portfolio.min_investment:
        raise DomainError(
            "BELOW_MIN_INVESTMENT", f"This portfolio needs at least {portfolio.min_investment}.", field="amount"
        )
    validate_sizing(
        sizing_model=sizing_model, multiplier=multiplier, fixed_notional=fixed_notional, risk_factor=risk_factor
    )
    if leverage_override is not None and leverage_override < 1:
        raise DomainError("OUT_OF_RANGE", "leverage_override must be at least 1.", field="leverage_override")
    validate_slippage_tolerance(slippage_tolerance_pct)
    if (
        Subscription.objects.filter(follower=follower, portfolio=portfolio)
        .exclude(status=SubscriptionStatus.ENDED)
        .exists()
    ):
        raise Conflict("ALREADY_SUBSCRIBED", "You already copy this portfolio.", field="portfolio")

    main = ledger.main_account_for(follower)
    if main.free < amount:
        raise InsufficientFunds(f"Your main wallet has {main.free} available.")
    wallet = ledger.account_open(kind=AccountKind.COPY, user=follower, name=f"copy:{portfolio.pk}")
    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                follower=follower,
                portfolio=portfolio,
                copy_account=wallet,
                sizing_model=sizing_model,
                multiplier=multiplier if sizing_model == sizing.SizingModel.PROGRESSIVE else None,
                fixed_notional=fixed_notional if sizing_model == sizing.SizingModel.FIXED else None,
                risk_factor=risk_factor if sizing_model == sizing.SizingModel.ADAPTIVE else None,
                leverage_override=leverage_override,
                copy_margin=copy_margin,
                copy_spot=copy_spot,
                slippage_tolerance_pct=slippage_tolerance_pct,
                invested=amount,
            )
    except IntegrityError:
        raise Conflict("ALREADY_SUBSCRIBED", "You already copy this portfolio.", field="portfolio") from None
    ledger.transfer(
        debit_id=main.pk,
        credit_id=wallet.pk,
        amount=amount,
        kind=TransferKind.COPY_FUND,
        key=f"subscription:{subscription.pk}:fund",
        ref=f"subscription {subscription.pk}",
    )
    return subscription


@transaction.atomic
def subscription_position_close(
    *, subscription: Subscription, position_id: int, quantity: Decimal | None = None
) -> Executed:
    """The follower closes one of their mirrors, all of it or exactly ``quantity``."""
    return position_close(position_id=position_id, account_id=subscription.copy_account_id, quantity=quantity)
