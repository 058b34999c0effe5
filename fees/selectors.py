"""Reads of the fees app: a leader's caps, fee statistics, withdrawals."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import BigIntegerField, Count, F, Q, QuerySet, Sum
from django.db.models.functions import Cast, Round, TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from copytrading import live
from copytrading.models import Account
from copytrading.money import Q8, ZERO
from fees.models import (
    AccrualStatus,
    FeeAccrual,
    FeeGroup,
    LeaderGroupAssignment,
    LeaderProfitAccount,
    LeaderWithdrawal,
    LimitsGroup,
)

# The groups a leader without an assignment is in. Created on first use
# (get_or_create under a unique "is_default" index), so a fresh database needs
# no data migration, with the caps of the live settings' defaults; a change of
# those defaults updates them (fees/live_hooks.py). Staff may also edit them
# in the admin like any other group.


def default_fee_group_values() -> dict:
    v = live.current()
    return {
        "name": "Default",
        "max_profit_share_pct": v.default_max_profit_share_pct,
        "platform_cut_pct": v.default_platform_cut_pct,
    }


def default_limits_group_values() -> dict:
    v = live.current()
    return {
        "name": "Default",
        "max_followers": v.default_max_followers,
        "max_profit_share_pct": v.default_max_profit_share_pct,
    }


def default_fee_group() -> FeeGroup:
    group = FeeGroup.objects.filter(is_default=True).first()
    if group is None:
        group, _ = FeeGroup.objects.get_or_create(is_default=True, defaults=default_fee_group_values())
    return group


def default_limits_group() -> LimitsGroup:
    group = LimitsGroup.objects.filter(is_default=True).first()
    if group is None:
        group, _ = LimitsGroup.objects.get_or_create(is_default=True, defaults=default_limits_group_values())
    return group


@dataclass(frozen=True)
class LeaderCaps:
    fee_group_id: int
    limits_group_id: int
    max_profit_share_pct: Decimal  # the lower of the two groups' caps
    platform_cut_pct: Decimal
    max_followers: int


def _caps(fee_group: FeeGroup, limits_group: LimitsGroup) -> LeaderCaps:
    return LeaderCaps(
        fee_group_id=fee_group.pk,
        limits_group_id=limits_group.pk,
        max_profit_share_pct=min(fee_group.max_profit_share_pct, limits_group.max_profit_share_pct),
        platform_cut_pct=fee_group.platform_cut_pct,
        max_followers=limits_group.max_followers,
    )


def leader_caps_many(leader_ids: set[int]) -> dict[int, LeaderCaps]:
    """Caps of many leaders in one query (plus the defaults when needed)."""
    assigned = {
        a.leader_id: _caps(a.fee_group, a.limits_group)
        for a in LeaderGroupAssignment.objects.filter(leader_id__any=sorted(leader_ids)).select_related(
            "fee_group", "limits_group"
        )
    }
    if len(assigned) < len(leader_ids):
        default = _caps(default_fee_group(), default_limits_group())
        assigned |= {pk: default for pk in leader_ids if pk not in assigned}
    return assigned


def leader_caps(leader_id: int) -> LeaderCaps:
    return leader_caps_many({leader_id})[leader_id]


# --- exact sums ------------------------------------------------------------------


def _exact_sum(field: str, *, filter: Q | None = None):
    """SUM that is exact on every database: SQLite would add decimals as binary
    floats, so there whole units of 1e-8 are summed as integers."""
    if connection.vendor == "sqlite":
        return Sum(Cast(Round(F(field) * 10**8), output_field=BigIntegerField()), filter=filter)
    return Sum(field, filter=filter)


def _money(value) -> Decimal:
    if value is None:
        return ZERO.quantize(Q8)
    if connection.vendor == "sqlite":
        return Decimal(int(value)).scaleb(-8).quantize(Q8)
    return Decimal(value).quantize(Q8)


def _series(rows: QuerySet, trunc, since: datetime | None, **sums: str) -> list[dict]:
    if since is not None:
        rows = rows.filter(accrued_at__gte=since)
    grouped = (
        rows.annotate(period=trunc("accrued_at"))
        .values("period")
        .annotate(count=Count("pk"), **{name: _exact_sum(field) for name, field in sums.items()})
        .order_by("period")
    )
    return [
        {"period": g["period"].date(), "count": g["count"], **{name: _money(g[name]) for name in sums}} for g in grouped
    ]


def _totals(rows: QuerySet, **sums: str) -> dict:
    got = rows.aggregate(count=Count("pk"), **{name: _exact_sum(field) for name, field in sums.items()})
    return {"count": got["count"], **{name: _money(got[name]) for name in sums}}


# --- follower statistics ------------------------------------------------------------

SERIES_WINDOWS = {"by_day": (TruncDay, 31), "by_week": (TruncWeek, 7 * 26), "by_month": (TruncMonth, None)}


def subscription_fee_stats(*, subscription_id: int, now: datetime | None = None) -> dict:
    """Profit share a subscription paid: total, and per day (last 31 days),
    week (last 26 weeks) and month (all time). Periods without fees are omitted."""
    now = now or timezone.now()
    rows = FeeAccrual.objects.filter(subscription_id=subscription_id)
    body = {"total": subscription_fees_total(subscription_id=subscription_id)}
    for name, (trunc, days) in SERIES_WINDOWS.items():
        since = _period_start(trunc, now - timedelta(days=days)) if days else None
        body[name] = _series(rows, trunc, since, fees="fee")
    return body


def subscription_fees_total(*, subscription_id: int) -> dict:
    """Profit share a subscription paid, all time: ``count``, ``fees`` (charged)
    and ``fees_due`` (one query; the back office's subscription page)."""
    return _totals(FeeAccrual.objects.filter(subscription_id=subscription_id), fees="fee", fees_due="fee_due")


def follower_fees_total(*, follower_id: int) -> dict:
    """All profit share a follower paid, across their subscriptions."""
    return _totals(FeeAccrual.objects.filter(copy_account__user_id=follower_id), fees="fee")


def _period_start(trunc, moment: datetime) -> datetime:
    """The first instant of the period containing ``moment`` (so a window
    never cuts a period in half)."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if trunc is TruncWeek:
        return day - timedelta(days=day.weekday())
    if trunc is TruncMonth:
        return day.replace(day=1)
    return day


# --- leader statistics -----------------------------------------------------------------


# A window of leader earnings: today, this week (from Monday), this month (all UTC), or all time.
EARNING_PERIODS = ("day", "week", "month", "all")
_PERIOD_TRUNC = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}


@dataclass(frozen=True)
class EarningWindow:
    period: str
    since: datetime | None  # inclusive; None: from the beginning
    until: datetime | None  # exclusive; None: up to now


def earning_window(period: str, *, now: datetime | None = None) -> EarningWindow:
    """The ``period`` (one of EARNING_PERIODS) that contains ``now``."""
    if period not in EARNING_PERIODS:
        raise ValueError(f"period must be one of {', '.join(EARNING_PERIODS)}")
    if period == "all":
        return EarningWindow(period, None, None)
    since = _period_start(_PERIOD_TRUNC[period], now or timezone.now())
    if period == "day":
        until = since + timedelta(days=1)
    elif period == "week":
        until = since + timedelta(days=7)
    else:
        until = (since + timedelta(days=32)).replace(day=1)
    return EarningWindow(period, since, until)


def _within(field: str, since: datetime | None, until: datetime | None) -> Q:
    q = Q()
    if since is not None:
        q &= Q(**{f"{field}__gte": since})
    if until is not None:
        q &= Q(**{f"{field}__lt": until})
    return q


def _earning_sums(since: datetime | None = None, until: datetime | None = None) -> dict:
    """What a leader earned, as SQL aggregates over FeeAccrual rows. Accrued:
    the leader's part of the fees charged in the window (settled since or
    not); settled: the leader's part paid into the profit account in the
    window (by its settlement time)."""
    accrued = _within("accrued_at", since, until) or None
    settled = Q(status=AccrualStatus.SETTLED) & _within("settled_at", since, until)
    return {
        "accruals": Count("pk", filter=accrued),
        "accrued": _exact_sum("leader_part", filter=accrued),
        "fees": _exact_sum("fee", filter=accrued),
        "platform": _exact_sum("platform_part", filter=accrued),
        "settled": _exact_sum("leader_part", filter=settled),
    }


def _withdrawn_sum(since: datetime | None = None, until: datetime | None = None):
    """Profit share moved to the leader's main wallet in the window (LeaderWithdrawal rows)."""
    return _exact_sum("amount", filter=_within("created_at", since, until) or None)


EARNING_FIGURES = ("accruals", "accrued", "settled", "withdrawn", "balance", "fees", "platform")


def earnings_by_portfolio(
    *,
    leader_id: int | None = None,
    portfolio_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict]:
    """One row per portfolio with fee activity (of one leader, or all), in
    the window: accruals (count), accrued, settled and withdrawn in it, the
    profit account's balance now, the fees charged and the platform's cut.
    Three grouped queries, whatever the number of portfolios; ordered by
    leader and portfolio."""
    accruals = FeeAccrual.objects.all()
    withdrawals = LeaderWithdrawal.objects.all()
    accounts = LeaderProfitAccount.objects.all()
    if leader_id is not None:
        accruals = accruals.filter(leader_user_id=leader_id)
        withdrawals = withdrawals.filter(leader_id=leader_id)
        accounts = accounts.filter(leader_id=leader_id)
    if portfolio_id is not None:
        accruals = accruals.filter(portfolio_id=portfolio_id)
        withdrawals = withdrawals.filter(portfolio_id=portfolio_id)
        accounts = accounts.filter(portfolio_id=portfolio_id)
    rows: dict[int, dict] = {}

    def row(portfolio: int, leader: int) -> dict:
        if portfolio not in rows:
            rows[portfolio] = {"portfolio_id": portfolio, "leader_id": leader} | dict.fromkeys(
                EARNING_FIGURES, ZERO.quantize(Q8)
            )
            rows[portfolio]["accruals"] = 0
        return rows[portfolio]

    if since is not None or until is not None:
        # Only the rows the window's sums can count (a portfolio with none
        # still gets its row from its profit account below).
        accruals = accruals.filter(_within("accrued_at", since, until) | _within("settled_at", since, until))
        withdrawals = withdrawals.filter(_within("created_at", since, until))
    sums = _earning_sums(since, until)
    for got in accruals.values("portfolio_id", "leader_user_id").annotate(**sums).order_by():
        target = row(got["portfolio_id"], got["leader_user_id"])
        target["accruals"] = got["accruals"]
        for name in ("accrued", "settled", "fees", "platform"):
            target[name] = _money(got[name])
    grouped = withdrawals.values("portfolio_id", "leader_id").annotate(withdrawn=_withdrawn_sum(since, until))
    for got in grouped.order_by():
        row(got["portfolio_id"], got["leader_id"])["withdrawn"] = _money(got["withdrawn"])
    for got in accounts.values("portfolio_id", "leader_id", balance=F("account__balance")):
        row(got["portfolio_id"], got["leader_id"])["balance"] = Decimal(got["balance"]).quantize(Q8)
    names = dict(
        get_user_model().objects.filter(pk__in={r["leader_id"] for r in rows.values()}).values_list("pk", "username")
    )
    for r in rows.values():
        r["leader"] = names.get(r["leader_id"], "")
    return sorted(rows.values(), key=lambda r: (r["leader"], r["portfolio_id"]))


def earnings_totals(rows: list[dict]) -> dict:
    """The sum of ``earnings_by_portfolio`` rows (per leader, or over all)."""
    return {
        name: sum((r[name] for r in rows), ZERO.quantize(Q8) if name != "accruals" else 0) for name in EARNING_FIGURES
    }


def accrual_totals(rows: QuerySet[FeeAccrual]) -> dict:
    """Totals of a list of accruals (the admin's filtered list): count, fees,
    the leader's and the platform's parts, the leader's part settled and
    still pending."""
    got = rows.order_by().aggregate(**_earning_sums())
    totals = {
        "accruals": got["accruals"],
        **{name: _money(got[name]) for name in ("accrued", "settled", "fees", "platform")},
    }
    totals["pending"] = totals["accrued"] - totals["settled"]
    return totals


def leader_earnings(*, leader_id: int, portfolio_id: int | None = None, now: datetime | None = None) -> dict:
    """A leader's profit share: all time, pending settlement, withdrawn and
    available; per day (last 90 days, chart data), per week (last 26 weeks,
    from Monday), per month, per follower."""
    now = now or timezone.now()
    rows = FeeAccrual.objects.filter(leader_user_id=leader_id)
    withdrawals = LeaderWithdrawal.objects.filter(leader_id=leader_id)
    profit_accounts = LeaderProfitAccount.objects.filter(leader_id=leader_id)
    if portfolio_id is not None:
        rows = rows.filter(portfolio_id=portfolio_id)
        withdrawals = withdrawals.filter(portfolio_id=portfolio_id)
        profit_accounts = profit_accounts.filter(portfolio_id=portfolio_id)
    total = {
        name: _money(value) if name != "accruals" else value
        for name, value in rows.aggregate(**_earning_sums()).items()
    }
    available = _totals(Account.objects.filter(pk__in=profit_accounts.values("account_id")), balance="balance")
    withdrawn = _money(withdrawals.aggregate(amount=_withdrawn_sum())["amount"])
    by_follower = (
        rows.values("subscription_id", follower=F("copy_account__user__username"))
        .annotate(count=Count("pk"), earned=_exact_sum("leader_part"), fees=_exact_sum("fee"))
        .order_by("-earned", "subscription_id")
    )
    return {
        "total_earned": total["accrued"],
        "fees_charged": total["fees"],
        "platform_cut": total["platform"],
        "accruals": total["accruals"],
        "settled": total["settled"],
        "pending": total["accrued"] - total["settled"],
        "withdrawn": withdrawn,
        "available": available["balance"],
        "follower_count": rows.values("subscription_id").distinct().count(),
        "by_day": _series(rows, TruncDay, _period_start(TruncDay, now - timedelta(days=90)), earned="leader_part"),
        "by_week": _series(rows, TruncWeek, _period_start(TruncWeek, now - timedelta(weeks=26)), earned="leader_part"),
        "by_month": _series(rows, TruncMonth, None, earned="leader_part"),
        "by_follower": [
            {
                "subscription_id": r["subscription_id"],
                "follower": r["follower"],
                "count": r["count"],
                "earned": _money(r["earned"]),
                "fees": _money(r["fees"]),
            }
            for r in by_follower[:200]
        ],
    }


def withdrawals_of(*, leader_id: int, portfolio_id: int) -> QuerySet[LeaderWithdrawal]:
    return LeaderWithdrawal.objects.filter(leader_id=leader_id, portfolio_id=portfolio_id).order_by("-id")


def stuck_accruals(*, older_than: timedelta = timedelta(minutes=5), now: datetime | None = None):
    """What staff must look at: failed accruals, and accrued ones the minute
    job has not settled for a while (the job is down or keeps failing)."""
    now = now or timezone.now()
    return FeeAccrual.objects.filter(status=AccrualStatus.FAILED) | FeeAccrual.objects.filter(
        status=AccrualStatus.ACCRUED, accrued_at__lt=now - older_than
    )
