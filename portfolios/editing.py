"""Create and edit portfolios (re-exported by portfolios/services.py)."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from copytrading import ledger
from copytrading.errors import Conflict, DomainError
from copytrading.models import AccountKind
from fees.services import profit_share_validate
from portfolios import stats
from portfolios.locks import lock_portfolio
from portfolios.models import Portfolio, PortfolioMode, PortfolioStatus
from portfolios.passcodes import passcode_hash
from portfolios.validation import SOCIAL_HOSTS, clean_name, clean_passcode, clean_social_url

Q8 = Decimal("0.00000001")


def _name_taken() -> Conflict:
    return Conflict("NAME_TAKEN", "You already have a portfolio with this name.", field="name")


def _social_links(values: dict) -> dict:
    return {field: clean_social_url(field, values[field]) for field in SOCIAL_HOSTS if values.get(field) is not None}


def _privacy(*, is_public: bool, passcode: str | None, current_hash: str = "") -> str:
    """The passcode hash to store: none for a public portfolio; a new one, or
    the one it has, for a private one."""
    if is_public:
        return ""
    if passcode:
        return passcode_hash(clean_passcode(passcode))
    if not current_hash:
        raise DomainError("PASSCODE_REQUIRED", "A private portfolio needs an 8-digit passcode.", field="passcode")
    return current_hash


def _check_min_investment(value: Decimal | int) -> Decimal:
    value = Decimal(value) if isinstance(value, int) else value
    if not (isinstance(value, Decimal) and value.is_finite() and value >= 0 and value == value.quantize(Q8)):
        raise DomainError(
            "INVALID_MIN_INVESTMENT",
            "min_investment is 0 or more, with at most 8 decimal places.",
            field="min_investment",
        )
    return value


@transaction.atomic
def portfolio_create(
    *,
    leader,
    name: str,
    description: str = "",
    mode: str = PortfolioMode.MARGIN,
    min_investment: Decimal = Decimal("0"),
    profit_share_pct: Decimal = Decimal("0"),
    is_public: bool = True,
    passcode: str | None = None,
    x_url: str = "",
    telegram_url: str = "",
    website_url: str = "",
    **extra,
) -> Portfolio:
    """A new portfolio with its own trading account. ``extra`` carries other
    apps' settings (e.g. ``fee_model``) straight to the row."""
    name = clean_name(name)
    if mode not in PortfolioMode.values:
        raise DomainError("INVALID_MODE", f"mode must be one of {', '.join(PortfolioMode.values)}.", field="mode")
    min_investment = _check_min_investment(min_investment)
    profit_share_pct = Decimal(profit_share_pct) if isinstance(profit_share_pct, int) else profit_share_pct
    profit_share_validate(leader=leader, profit_share_pct=profit_share_pct)
    links = _social_links({"x_url": x_url, "telegram_url": telegram_url, "website_url": website_url})
    hashed = _privacy(is_public=is_public, passcode=passcode)
    # The leader's row lock serializes their creates, so two at once cannot
    # both pass the count below.
    get_user_model().objects.select_for_update().filter(pk=leader.pk).first()
    limit = settings.MAX_PORTFOLIOS_PER_LEADER
    if Portfolio.objects.filter(leader=leader).exclude(status=PortfolioStatus.ARCHIVED).count() >= limit:
        raise Conflict("PORTFOLIO_LIMIT", f"A leader can have at most {limit} portfolios.")
    if Portfolio.objects.filter(leader=leader, name__iexact=name).exists():
        raise _name_taken()
    account = ledger.account_open(kind=AccountKind.LEADER_TRADING, user=leader, name=f"trading:{name}")
    try:
        with transaction.atomic():
            portfolio = Portfolio.objects.create(
                leader=leader,
                name=name,
                description=description,
                mode=mode,
                min_investment=min_investment,
                profit_share_pct=profit_share_pct,
                is_public=is_public,
                passcode_hash=hashed,
                trading_account=account,
                **links,
                **extra,
            )
            # Listed in the catalog at once (its stats rows), not at the next refresh.
            stats.stats_refresh(portfolio_ids=[portfolio.pk], daily_point=False)
            return portfolio
    except IntegrityError:
        raise _name_taken() from None


EDITABLE_FIELDS = frozenset(
    {"name", "description", "min_investment", "profit_share_pct", "is_public", "passcode", *SOCIAL_HOSTS}
)


@transaction.atomic
def portfolio_update(*, portfolio: Portfolio, **changes) -> Portfolio:
    """Edit an active portfolio: only the fields given change. The mode is
    fixed at creation (followers chose their product lines for it). Making it
    private needs a passcode; a private one keeps its passcode unless a new
    one is given; making it public forgets it."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        field = sorted(unknown)[0]
        code = "MODE_NOT_EDITABLE" if field == "mode" else "FIELD_NOT_EDITABLE"
        raise DomainError(code, f"{field} cannot be changed.", field=field)
    portfolio = lock_portfolio(portfolio.pk)
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "Only an active portfolio can be edited.")
    values: dict = {}
    if "name" in changes:
        values["name"] = clean_name(changes["name"])
        if (
            Portfolio.objects.filter(leader_id=portfolio.leader_id, name__iexact=values["name"])
            .exclude(pk=portfolio.pk)
            .exists()
        ):
            raise _name_taken()
    if "description" in changes:
        values["description"] = changes["description"]
    if "min_investment" in changes:
        values["min_investment"] = _check_min_investment(changes["min_investment"])
    if "profit_share_pct" in changes:
        profit_share_validate(leader=portfolio.leader, profit_share_pct=changes["profit_share_pct"])
        values["profit_share_pct"] = changes["profit_share_pct"]
    values |= _social_links(changes)
    if "is_public" in changes or changes.get("passcode"):
        is_public = changes.get("is_public", portfolio.is_public)
        values["is_public"] = is_public
        values["passcode_hash"] = _privacy(
            is_public=is_public, passcode=changes.get("passcode"), current_hash=portfolio.passcode_hash
        )
    for field, value in values.items():
        setattr(portfolio, field, value)
    try:
        with transaction.atomic():
            portfolio.save(update_fields=[*values, "updated_at"])
    except IntegrityError:
        raise _name_taken() from None
    return portfolio
