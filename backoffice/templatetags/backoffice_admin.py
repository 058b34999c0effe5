"""Template helpers of the back office: the ``money`` filter and the admin
index's dashboard (figures from backoffice.dashboard, charts from
copytrading.charts)."""

from datetime import timedelta
from decimal import Decimal

from django import template
from django.urls import reverse
from django.utils.safestring import mark_safe

from backoffice.dashboard import Dashboard, dashboard_cached
from copytrading import charts
from copytrading.admin_base import money_html
from copytrading.models import Outcome

register = template.Library()

OUTCOME_COLORS = {
    Outcome.COPIED: "#3a9a5b",
    Outcome.SKIPPED: "#c9a227",
    Outcome.REJECTED: "#ba2121",
    Outcome.FAILED: "#6b6b6b",
}


@register.filter
def money(amount: Decimal | None, currency: str | None = None) -> str:
    """``{{ value|money }}`` or ``{{ value|money:"BTC" }}``: see copytrading.admin_base.money_html."""
    return money_html(amount, currency)


@register.filter
def seconds(value: timedelta | None) -> str:
    """A latency as seconds with milliseconds (``1.234 s``), or a dash."""
    if value is None:
        return "—"
    ms = value // timedelta(milliseconds=1)
    return f"{ms // 1000}.{ms % 1000:03d} s"


def dashboard_context(figures: Dashboard) -> dict:
    """What the dashboard template shows, the charts drawn."""
    hours = figures.executions_by_hour
    executions_chart = charts.bar_chart(
        [f"{hour:%H}h" for hour, _ in hours],
        [
            charts.Series(outcome.label, [counts.get(outcome, 0) for _, counts in hours], OUTCOME_COLORS[outcome])
            for outcome in Outcome
        ],
        title="Executions per hour by outcome, last 24 h (UTC)",
        empty="No executions in the last 24 h",
    )
    minutes = figures.latency.by_minute
    latency_chart = charts.line_chart(
        [f"{minute:%H:%M}" for minute, _ in minutes],
        [charts.Series("worst latency (s)", [Decimal(d // timedelta(milliseconds=1)) / 1000 for _, d in minutes])],
        title="Fan-out latency, worst per minute, last hour (seconds)",
        empty="No leader event completed in the last hour",
    )
    days = figures.fees_by_day
    fees_trend = charts.sparkline([fee_day.accrued for fee_day in days], title="Fees accrued per day, last 30 days")
    fees_chart = charts.bar_chart(
        [f"{fee_day.day:%d %b}" for fee_day in days],
        [
            charts.Series("accrued", [fee_day.accrued for fee_day in days], "#c9a227"),
            charts.Series("settled", [fee_day.settled for fee_day in days], "#417690"),
        ],
        title=f"Fees per day, last {len(days)} days (UTC)",
        empty="No fees in the last 30 days",
    )
    errors_url = reverse("admin:backoffice_joberror_changelist")
    executions_url = reverse("admin:copytrading_execution_changelist")
    # mark_safe: copytrading.charts escapes every text it draws.
    return {
        "d": figures,
        "executions_chart": mark_safe(executions_chart),
        "latency_chart": mark_safe(latency_chart),
        "fees_chart": mark_safe(fees_chart),
        "fees_trend": mark_safe(fees_trend),
        "errors_url": f"{errors_url}?acknowledged=no",
        "executions_url": executions_url,
        "subscriptions_url": reverse("admin:followers_subscription_changelist"),
    }


# Business-wide figures: for staff who may see the copies and the ledger.
DASHBOARD_PERMISSIONS = ("followers.view_subscription", "copytrading.view_execution", "copytrading.view_transfer")


@register.inclusion_tag("admin/backoffice/dashboard.html", takes_context=True)
def backoffice_dashboard(context) -> dict:
    user = context["request"].user
    if not (user.is_active and user.is_staff and user.has_perms(DASHBOARD_PERMISSIONS)):
        return {"hidden": True}
    return dashboard_context(dashboard_cached())
