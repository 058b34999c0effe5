""" "What would I have earned": a portfolio's last 7, 30 or 90 days replayed
for the amount and copy settings a follower is about to subscribe with
(``portfolio_simulate``), and the replay of an existing subscription
(``subscription_follower``, for the fidelity report and the tests).

The input is validated by subscribe's own rules (the amount and its minimum,
the template, every setting and risk limit: the same codes and sentences), the
answer is cached per input while the portfolio records no new event, and each
user may run ``SIMULATE_PER_MINUTE`` of them a minute (the replay reads up to
``SIMULATE_MAX_EVENTS`` events: a request must not be able to load the server).
"""

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from copytrading import decisions, reasons
from copytrading.decisions import TargetView
from copytrading.errors import Conflict, DomainError
from copytrading.models import LeaderEvent
from copytrading.outages import CACHE_ERRORS, cache_get, cache_set
from copytrading.venues import PAPER
from fees.selectors import leader_caps
from followers.models import Subscription, profit_share_due
from followers.replay import history as replay_history
from followers.replay.engine import Follower, Result, replay
from followers.services import copy_settings_resolve, investment_check
from portfolios import copy_settings
from portfolios.models import Portfolio, PortfolioStatus
from risk import rules
from risk.models import RiskLimits
from risk.selectors import margin_call_default
from risk.watchdog import interval_seconds as watchdog_interval

PERIODS = (7, 30, 90)
OUTCOMES = (decisions.COPIED, decisions.SKIPPED, decisions.REJECTED, decisions.FAILED)
CURVE_POINTS = 200  # at most this many points of the equity curve are returned


class SimulationThrottled(DomainError):
    def __init__(self, retry_after: int):
        super().__init__(
            "SIMULATE_THROTTLED",
            f"Too many simulations; try again in {retry_after} s.",
            status=429,
        )
        self.retry_after = retry_after


def _limits(risk: dict, *, watchdog: bool) -> tuple[rules.Limits, rules.PreTradeLimits | None]:
    if not watchdog:
        watch = rules.Limits(margin_call_level_pct=None)
    else:
        level = risk.get("margin_call_level_pct")
        watch = rules.Limits(
            daily_loss_realized=risk.get("daily_loss_limit_realized"),
            daily_loss_unrealized=risk.get("daily_loss_limit_unrealized"),
            margin_call_level_pct=level if level is not None else margin_call_default(),
            max_drawdown_pct=risk.get("max_drawdown_pct"),
        )
    opens, exposure = risk.get("max_open_positions"), risk.get("max_exposure_pct")
    pretrade = rules.PreTradeLimits(opens, exposure) if opens is not None or exposure is not None else None
    return watch, pretrade


def follower_from(
    *, portfolio: Portfolio, amount: Decimal, values: dict, risk: dict, agreed_pct=None, watchdog: bool = True
) -> Follower:
    """A hypothetical follower of ``portfolio`` with these copy settings
    (portfolios.copy_settings SETTING_FIELDS) and risk limits (RISK_FIELDS)."""
    target = TargetView(
        subscription_id=0,
        account_id=0,
        active=True,
        venue=PAPER,
        **{name: values[name] for name in copy_settings.SETTING_FIELDS},
    )
    watch, pretrade = _limits(risk, watchdog=watchdog)
    share = profit_share_due(portfolio.profit_share_pct, agreed_pct)
    share = min(share, leader_caps(portfolio.leader_id).max_profit_share_pct)
    return Follower(target, amount, watch, pretrade, share, portfolio.fee_model, watchdog_interval())


def subscription_follower(subscription: Subscription, *, watchdog: bool = True) -> Follower:
    """The follower a subscription is, as it stands (its settings, limits and
    agreed profit share), funded with what it was funded with."""
    limits = RiskLimits.objects.filter(pk=subscription.pk).values(*copy_settings.RISK_FIELDS).first() or {}
    return follower_from(
        portfolio=subscription.portfolio,
        amount=subscription.invested,
        values={name: getattr(subscription, name) for name in copy_settings.SETTING_FIELDS},
        risk={k: v for k, v in limits.items() if v is not None},
        agreed_pct=subscription.agreed_profit_share_pct,
        watchdog=watchdog,
    )


def replay_since(follower: Follower, portfolio_id: int, since: datetime, until: datetime | None = None) -> Result:
    found = replay_history.history(portfolio_id, since, until or timezone.now())
    return replay(found.steps, follower, found.markets)


# --- the simulator ---------------------------------------------------------------------


def _throttle(user_id: int) -> None:
    """``SIMULATE_PER_MINUTE`` runs per user and clock minute, counted in the
    shared cache (a cache that is down lets the run through: the bounds on a
    run's size still hold)."""
    per_minute = settings.SIMULATE_PER_MINUTE
    if per_minute <= 0:
        return
    now = timezone.now()
    key = f"simulate:rate:{user_id}:{now:%Y%m%d%H%M}"
    try:
        cache.add(key, 0, 90)
        count = cache.incr(key)
    except ValueError:  # expired between the two calls
        count = 1
    except CACHE_ERRORS:
        return
    if count > per_minute:
        raise SimulationThrottled(60 - now.second)


def _cache_key(portfolio_id: int, days: int, follower: Follower, last_event_id: int | None) -> str:
    """Everything the answer depends on: the follower (settings, limits with the
    platform's margin-call default, the share it would pay, the fee model, the
    amount, normalized), the period and the portfolio's newest event."""
    text = repr((portfolio_id, days, replace(follower, amount=follower.amount.normalize()), last_event_id))
    return "simulate:" + hashlib.sha256(text.encode()).hexdigest()


def _refuse_too_large(what: str, days: int) -> None:
    raise DomainError(
        "SIMULATION_TOO_LARGE", f"This portfolio's {days} days are too many {what} to replay here; choose a "
        "shorter period.", field="days",
    )  # fmt: skip


def portfolio_simulate(
    *, user, portfolio: Portfolio, amount: Decimal, days: int, template: str | int | None = None, **explicit
) -> dict:
    """Replay ``portfolio``'s last ``days`` for ``amount`` with these settings
    (a template and/or explicit settings and risk limits, as subscribe takes
    them); returns the answer (``answer``). The caller has let ``user`` in (a
    private portfolio's passcode)."""
    if days not in PERIODS:
        raise DomainError("INVALID_PERIOD", "days must be 7, 30 or 90.", field="days")
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "The portfolio does not take new followers.", field="portfolio")
    investment_check(portfolio=portfolio, amount=amount)
    _, resolved = copy_settings_resolve(portfolio=portfolio, amount=amount, template=template, explicit=explicit)
    follower = follower_from(portfolio=portfolio, amount=amount, values=resolved.settings, risk=resolved.risk_limits)
    _throttle(user.pk)
    until = timezone.now()
    since = until - timedelta(days=days)
    if replay_history.events_count(portfolio.pk, since) > settings.SIMULATE_MAX_EVENTS:
        _refuse_too_large("trades", days)
    key = _cache_key(portfolio.pk, days, follower, portfolio_last_event(portfolio.pk))
    found = cache_get(key)
    if found is not None:
        return found
    history = replay_history.history(portfolio.pk, since, until)
    if len(history.steps) > settings.SIMULATE_MAX_STEPS:
        _refuse_too_large("prices and trades", days)
    data = answer(
        portfolio.pk, days, amount, since, until, history.events, replay(history.steps, follower, history.markets)
    )
    cache_set(key, data, settings.SIMULATE_CACHE_SECONDS)
    return data


def answer(portfolio_id: int, days: int, amount: Decimal, since, until, events: int, result: Result) -> dict:
    """What the API returns (and the cache keeps): the figures, the counts, the
    reasons, the pauses and the thinned curve, not the replay's every step."""
    counts = result.counts()
    by_outcome = {o: sum(n for (outcome, _), n in counts.items() if outcome == o) for o in OUTCOMES}
    return {
        "portfolio": portfolio_id,
        "days": days,
        "since": since,
        "until": until,
        "amount": amount,
        "final_equity": result.equity,
        "pnl": result.pnl,
        "roi_pct": result.roi_pct,
        "max_drawdown_pct": result.max_drawdown_pct,
        "fees": result.fees,
        "events": events,
        "copied": by_outcome[decisions.COPIED],
        "skipped": by_outcome[decisions.SKIPPED],
        "rejected": by_outcome[decisions.REJECTED],
        "failed": by_outcome[decisions.FAILED],
        "not_copied": reason_counts(result),
        "pauses": [
            {
                "at": p.at,
                "rule": p.rule,
                "measured": p.measured,
                "threshold": p.threshold,
                "closed": p.closed,
                "resumed_at": p.resumed_at,
            }
            for p in result.pauses
        ],
        "equity_curve": [{"at": at, "equity": equity} for at, equity in curve_points(result)],
    }


def portfolio_last_event(portfolio_id: int) -> int | None:
    return LeaderEvent.objects.filter(portfolio_id=portfolio_id).order_by("-seq").values_list("pk", flat=True).first()


def reason_counts(result: Result) -> list[dict]:
    """The copies that were not made, by outcome and reason, each with the
    sentence a follower reads ("12 trades would have been skipped: …")."""
    out = []
    for (outcome, reason), count in sorted(result.counts().items(), key=lambda kv: (-kv[1], kv[0])):
        if outcome == "COPIED":
            continue
        verb = {"SKIPPED": "skipped", "REJECTED": "rejected", "FAILED": "failed"}.get(outcome, outcome.lower())
        noun = "trade" if count == 1 else "trades"
        sentence = reasons.reason_text(reason)
        out.append(
            {
                "outcome": outcome,
                "reason_code": reason,
                "count": count,
                "message": f"{count} {noun} would have been {verb}: {sentence}",
            }
        )
    return out


def curve_points(result: Result, limit: int = CURVE_POINTS) -> list[tuple[datetime, Decimal]]:
    """The equity curve thinned to at most ``limit`` points: the first, the
    last, and the lowest point of each stretch between (a drawdown is never
    smoothed away)."""
    curve = result.curve
    if len(curve) <= limit:
        return list(curve)
    inner = curve[1:-1]
    size = -(-len(inner) // (limit - 2))
    lows = [min(inner[i : i + size], key=lambda point: point[1]) for i in range(0, len(inner), size)]
    return [curve[0], *lows, curve[-1]]
