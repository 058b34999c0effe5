"""Writes of the risk app besides the tick itself (risk/watchdog.py): a
subscription's limits, the notifications of an intervention, and the daily
reset at 00:00 UTC."""

from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from copytrading import bulk
from copytrading.errors import DomainError
from copytrading.notifications.kinds import Severity
from copytrading.notifications.services import Note, notify
from risk import rules
from risk.hooks import subscription_hooks
from risk.models import Action, RiskEvent, RiskLimits, RiskState, Rule

ZERO = Decimal(0)


def pause_reason(rule: str) -> str:
    """What ``Subscription.pause_reason`` says for a pause by ``rule``."""
    return f"risk:{rule}"


def utc_day_start(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time.min, tzinfo=UTC)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


# --- limits ------------------------------------------------------------------------

LIMIT_RANGES: dict[str, tuple[Decimal, Decimal | None, bool]] = {
    # field: (lowest, highest, lowest allowed itself)
    "daily_loss_limit_realized": (ZERO, None, False),
    "daily_loss_limit_unrealized": (ZERO, None, False),
    "margin_call_level_pct": (Decimal(100), Decimal(1000), True),
    "max_drawdown_pct": (ZERO, Decimal(100), False),
    "max_open_positions": (Decimal(1), None, True),
    "max_exposure_pct": (ZERO, Decimal(10000), False),
}
PLACES = {
    "daily_loss_limit_realized": 8,
    "daily_loss_limit_unrealized": 8,
    "margin_call_level_pct": 2,
    "max_drawdown_pct": 2,
    "max_open_positions": 0,
    "max_exposure_pct": 2,
}


def validate_limit(name: str, value) -> None:
    """One limit's range (None switches the rule off, or for the margin-call
    level returns it to the platform default)."""
    if value is None:
        return
    low, high, inclusive = LIMIT_RANGES[name]
    if name == "max_open_positions":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DomainError("OUT_OF_RANGE", "max_open_positions must be a whole number of at least 1.", field=name)
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise DomainError("INVALID_NUMBER", f"{name} must be a decimal number.", field=name)
    above_low = value >= low if inclusive else value > low
    if not above_low or (high is not None and value > high):
        bounds = f"{'[' if inclusive else '('}{low}, {high if high is not None else '∞'}]"
        raise DomainError("OUT_OF_RANGE", f"{name} must be in {bounds}.", field=name)
    if value != value.quantize(Decimal(1).scaleb(-PLACES[name])):
        raise DomainError("INVALID_PRECISION", f"{name} has at most {PLACES[name]} decimal places.", field=name)


@transaction.atomic
def risk_limits_set(*, subscription_id: int, **changes) -> RiskLimits:
    """Set some of a subscription's risk limits (the others stay); a None
    switches that rule off. The caller has checked the subscription is the
    acting user's. Applies from the next watchdog tick and the next copy."""
    unknown = set(changes) - set(LIMIT_RANGES)
    if unknown:
        raise DomainError("UNKNOWN_FIELD", f"Unknown risk limit {sorted(unknown)[0]}.", field=sorted(unknown)[0])
    for name, value in changes.items():
        validate_limit(name, value)
    limits, _ = RiskLimits.objects.select_for_update().get_or_create(subscription_id=subscription_id)
    if "max_drawdown_pct" in changes and (limits.max_drawdown_pct is None) != (changes["max_drawdown_pct"] is None):
        # A drawdown stop counts from the peak since it was set: switching
        # it on or off forgets the peak (the next tick starts a new one).
        RiskState.objects.filter(pk=subscription_id).update(peak_equity=None, peak_flows=ZERO)
    for name, value in changes.items():
        setattr(limits, name, value)
    limits.save(update_fields=[*changes, "updated_at"])
    return limits


# --- notifications -----------------------------------------------------------------


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))} {settings.PRIMARY_CURRENCY}"


def _pct(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))} %"


def follower_message(
    breach: rules.Breach, closed: int, *, sold: int = 0, dust: dict[str, str] | None = None
) -> tuple[str, str, str]:
    """(severity, title, body) of the follower's notification for a pause."""
    m, t = breach.measured, breach.threshold
    if breach.rule == Rule.DAILY_LOSS_UNREALIZED:
        body = (
            f"The unrealized loss of your copied positions and holdings, {_money(m)}, reached your limit of "
            f"{_money(t)}. Copying is paused, {closed} open position(s) were closed and {sold} spot holding(s) "
            "sold at market."
        )
        if dust:
            left = ", ".join(f"{quantity} {asset}" for asset, quantity in dust.items())
            body += f" Too small to sell (below the market's quantity step or minimum), left in the wallet: {left}."
        return (Severity.CRITICAL, "Daily loss limit hit: copied positions closed", body)
    if breach.rule == Rule.MAX_DRAWDOWN:
        return (
            Severity.HIGH,
            "Max drawdown stop triggered",
            f"Your copy equity is {_pct(m)} below its peak, at or beyond your limit of {_pct(t)}. "
            "Copying is paused; open positions stay open.",
        )
    if breach.rule == Rule.MARGIN_CALL:
        return (
            Severity.HIGH,
            "Margin-call protection triggered",
            f"Your copy wallet's margin level fell to {_pct(m)}, at or below your threshold of {_pct(t)}. "
            "Copying is paused; open positions stay open.",
        )
    return (
        Severity.HIGH,
        "Daily loss limit hit",
        f"Your realized loss today, {_money(m)}, reached your daily limit of {_money(t)}. "
        "Copying is paused and resumes automatically at 00:00 UTC.",
    )


EVENT_FIELDS = ["subscription_id", "rule", "measured", "threshold", "action", "closed_positions", "created_at"]


# --- the daily reset ---------------------------------------------------------------

DAY_LOCK = 0x5249534B  # an arbitrary advisory lock key ("RISK")


def day_lock(*, shared: bool) -> None:
    """Orders watchdog chunks (shared) against the daily reset (exclusive)
    for the rest of the transaction. SQLite runs one writer at a time anyway."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [DAY_LOCK])


@transaction.atomic
def daily_reset_apply(*, now: datetime | None = None) -> list[int]:
    """At 00:00 UTC: lift every pause for the realized daily loss limit of an
    earlier day (idempotent). Returns the subscriptions resumed.

    The day lock makes it wait for the chunks in flight (one that read its
    clock before midnight may be pausing for yesterday's loss: that pause is
    committed before this reads, and lifted), and chunks that start meanwhile
    wait for it and read a clock past midnight."""
    day_lock(shared=False)
    now = now or timezone.now()
    today = utc_day(now)
    users = dict(
        RiskState.objects.filter(paused_by_rule=Rule.DAILY_LOSS_REALIZED, paused_day__lt=today)
        .order_by("pk")
        .select_for_update()
        .values_list("pk", "follower_id")
    )
    if not users:
        return []
    stale = sorted(users)
    resumed = subscription_hooks().resume_subscriptions(stale, pause_reason(Rule.DAILY_LOSS_REALIZED))
    RiskState.objects.filter(pk__any=stale).update(paused_by_rule="", paused_day=None, paused_at=None)
    bulk.insert_rows(
        RiskEvent,
        EVENT_FIELDS,
        [(sid, Rule.DAILY_LOSS_REALIZED, None, None, Action.RESUME, 0, now) for sid in resumed],
    )
    notify(
        [
            Note(
                users[sid],
                "risk.daily_loss_reset",
                f"risk:{sid}:resume:{today.isoformat()}",
                {"subscription_id": sid, "rule": Rule.DAILY_LOSS_REALIZED},
                body="Your daily loss limit reset at 00:00 UTC and copying has resumed.",
            )
            for sid in resumed
        ],
        now=now,
    )
    return resumed


# --- exchange drift ----------------------------------------------------------------


def exchange_drift_events_record(
    *, drifts: list[tuple[int, str, Decimal, Decimal, bool]], now: datetime | None = None
) -> int:
    """One risk event per (subscription id, detail, exchange quantity,
    service quantity, repaired) — a drift the exchange reconciliation found
    on the copy's exchange account for the first time. In the caller's
    transaction, one INSERT. Returns how many it wrote."""
    if not drifts:
        return 0
    now = now or timezone.now()
    RiskEvent.objects.bulk_create(
        [
            RiskEvent(
                subscription_id=sid,
                rule=Rule.EXCHANGE_DRIFT,
                measured=measured,
                threshold=expected,
                action=Action.DRIFT_REPAIRED if repaired else Action.DRIFT_REPORTED,
                detail=detail[:300],
                created_at=now,
            )
            for sid, detail, measured, expected, repaired in drifts
        ]
    )
    return len(drifts)
