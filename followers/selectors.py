"""Reads of the followers app."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from copytrading.decisions import TargetView
from copytrading.models import Account, AccountKind
from copytrading.venues import EXCHANGE, PAPER
from followers.models import Subscription, SubscriptionStatus
from followers.snapshot import CopyInputs, CopySnapshot, copy_snapshot
from portfolios.stats_data import wallet_figures as wallet_results
from risk.models import RiskEvent, RiskLimits, RiskState, Rule
from risk.selectors import margin_call_default, pretrade_gate, watchdog_figures
from risk.services import utc_day_start

REACHABLE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED)


class SubscriptionTargets:
    """What the propagation engine needs of subscriptions (registered in apps.py)."""

    def subscription_ids(self, portfolio_id: int) -> list[int]:
        return list(
            Subscription.objects.filter(portfolio_id=portfolio_id, status__in=REACHABLE)
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    def load(self, portfolio_id: int, first_id: int, last_id: int) -> list[TargetView]:
        rows = (
            Subscription.objects.filter(
                portfolio_id=portfolio_id, status__in=REACHABLE, pk__gte=first_id, pk__lte=last_id
            )
            .order_by("pk")
            .values_list(
                "pk",
                "copy_account_id",
                "status",
                "sizing_model",
                "multiplier",
                "fixed_notional",
                "risk_factor",
                "leverage_override",
                "copy_margin",
                "copy_spot",
                "slippage_tolerance_pct",
                "copy_account__exchange_account_id",
            )
        )
        return [
            TargetView(
                subscription_id=row[0],
                account_id=row[1],
                active=row[2] == SubscriptionStatus.ACTIVE,
                sizing_model=row[3],
                multiplier=row[4],
                fixed_notional=row[5],
                risk_factor=row[6],
                leverage_override=row[7],
                copy_margin=row[8],
                copy_spot=row[9],
                slippage_tolerance_pct=row[10],
                venue=EXCHANGE if row[11] is not None else PAPER,
            )
            for row in rows
        ]

    def pretrade_gate(self, targets: Sequence[TargetView]):
        """The risk app's pre-trade checks for a chunk's active targets (one
        query, two if any of them has limits): see risk.selectors.pretrade_gate."""
        return pretrade_gate([(t.subscription_id, t.account_id) for t in targets if t.active])


def subscriptions_of(user) -> QuerySet[Subscription]:
    return Subscription.objects.filter(follower=user).select_related(
        "portfolio", "copy_account", "copy_account__exchange_account"
    )


# --- what the follower's API shows ---------------------------------------------------

_LIMIT_FIELDS = (
    "daily_loss_limit_realized",
    "daily_loss_limit_unrealized",
    "margin_call_level_pct",
    "max_drawdown_pct",
    "max_open_positions",
    "max_exposure_pct",
)


def _text(value) -> str | None:
    return None if value is None else str(value)


def risk_views(subscription_ids: Sequence[int]) -> dict[int, dict]:
    """Each subscription's risk limits, and for a watchdog pause the rule and
    the event that explains it, in three queries for any number of them."""
    ids = sorted(set(subscription_ids))
    limits = {row[0]: row[1:] for row in RiskLimits.objects.filter(pk__in=ids).values_list("pk", *_LIMIT_FIELDS)}
    states = {
        pk: (rule, at)
        for pk, rule, at in RiskState.objects.filter(pk__in=ids)
        .exclude(paused_by_rule="")
        .values_list("pk", "paused_by_rule", "paused_at")
    }
    events: dict[int, RiskEvent] = {}
    if states:
        for event in (
            # Drift reports of the exchange reconciliation explain no pause.
            RiskEvent.objects.filter(subscription_id__in=list(states))
            .exclude(action="resume")
            .exclude(rule=Rule.EXCHANGE_DRIFT)
            .order_by("-id")
        ):
            events.setdefault(event.subscription_id, event)
    default_level = str(margin_call_default())
    out = {}
    for pk in ids:
        values = dict(zip(_LIMIT_FIELDS, limits.get(pk, (None,) * len(_LIMIT_FIELDS)), strict=True))
        body = {name: _text(value) if name != "max_open_positions" else value for name, value in values.items()}
        body["margin_call_level_pct_effective"] = body["margin_call_level_pct"] or default_level
        rule, at = states.get(pk, ("", None))
        event = events.get(pk)
        body["paused_by_rule"] = rule
        body["paused_at"] = at.isoformat() if at else None
        body["pause_event"] = (
            {
                "rule": event.rule,
                "measured": _text(event.measured),
                "threshold": _text(event.threshold),
                "action": event.action,
                "closed_positions": event.closed_positions,
                # A pause-and-close sells the spot holdings too; dust is
                # what was too small to sell, {asset: quantity}.
                "sold_holdings": event.sold_holdings,
                "dust": event.dust,
                "at": event.created_at.isoformat(),
            }
            if event is not None and event.rule == rule
            else None
        )
        out[pk] = body
    return out


def pause_detail(subscription: Subscription, risk: dict | None = None) -> str:
    """A sentence for the follower saying why the copy is in its state."""
    if subscription.status == SubscriptionStatus.ACTIVE:
        return ""
    if subscription.status == SubscriptionStatus.ENDED:
        return f"Ended ({subscription.end_reason or 'unfollowed'})."
    reason = subscription.pause_reason
    if reason.startswith("risk:"):
        rule = reason.removeprefix("risk:")
        label = dict(Rule.choices).get(rule, rule)
        event = (risk or {}).get("pause_event")
        if event:
            return f"Paused by the risk watchdog: {label} (measured {event['measured']}, limit {event['threshold']})."
        return f"Paused by the risk watchdog: {label}."
    if reason == "manual":
        return "Paused by you."
    if reason == "staff":
        return "Paused by support."
    return f"Paused ({reason})." if reason else "Paused."


def copy_inputs(subscriptions: Sequence[Subscription], *, now: datetime | None = None) -> dict[int, CopyInputs]:
    """What ``copy_snapshot`` needs of each subscription, at the current marks,
    in a constant number of queries for any number of them: the wallets as
    the watchdog values them (one query on PostgreSQL), the money paid in and
    out (the follower statistics' figures) and the daily loss limits."""
    if not subscriptions:
        return {}
    accounts = [s.copy_account_id for s in subscriptions]
    figures = watchdog_figures(accounts, day_start=utc_day_start(now or timezone.now()))
    results = wallet_results(accounts)
    limits = {
        pk: (realized, unrealized)
        for pk, realized, unrealized in RiskLimits.objects.filter(pk__in=[s.pk for s in subscriptions]).values_list(
            "pk", "daily_loss_limit_realized", "daily_loss_limit_unrealized"
        )
    }
    out = {}
    for s in subscriptions:
        f = figures[s.copy_account_id]
        r = results[s.copy_account_id]
        realized_limit, unrealized_limit = limits.get(s.pk, (None, None))
        out[s.pk] = CopyInputs(
            subscription_id=s.pk,
            status=s.status,
            pause_reason=s.pause_reason,
            balance=f.balance,
            used_margin=f.used_margin,
            margin_unrealized=f.unrealized_pnl,
            holdings_value=f.holdings_value,
            spot_unrealized=f.spot_unrealized,
            realized_today=f.realized_today,
            funded=r.funded,
            withdrawn=r.withdrawn,
            daily_loss_limit_realized=realized_limit,
            daily_loss_limit_unrealized=unrealized_limit,
        )
    return out


def copy_snapshots(subscriptions: Sequence[Subscription], *, now: datetime | None = None) -> dict[int, CopySnapshot]:
    """Each subscription's ``copy_snapshot`` (the subscriptions API; the
    stream's ``copies`` topic starts from the same inputs)."""
    return {pk: copy_snapshot(inputs) for pk, inputs in copy_inputs(subscriptions, now=now).items()}


def commitment_of(user) -> dict:
    """What the follower holds in their main wallet and has committed to
    copies (a follower can never commit more than their main balance)."""
    main = Account.objects.filter(kind=AccountKind.MAIN, user=user).values_list("balance", "locked").first()
    balance, locked = main or (Decimal(0), Decimal(0))
    committed, invested = Decimal(0), Decimal(0)
    counts = dict.fromkeys(SubscriptionStatus.values, 0)
    for status, wallet_balance, paid_in in Subscription.objects.filter(follower=user).values_list(
        "status", "copy_account__balance", "invested"
    ):
        counts[status] += 1
        if status != SubscriptionStatus.ENDED:
            committed += wallet_balance
            invested += paid_in
    return {
        "main_balance": balance,
        "main_free": balance - locked,
        "committed": committed,
        "invested": invested,
        "active": counts[SubscriptionStatus.ACTIVE],
        "paused": counts[SubscriptionStatus.PAUSED],
        "ended": counts[SubscriptionStatus.ENDED],
    }
