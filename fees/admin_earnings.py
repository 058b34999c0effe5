"""The back office's earnings page, ``/admin/fees/earnings/``: what leaders
earned, one row per portfolio with totals per leader, for today, this week,
this month or all time. Figures come from fees.selectors (SQL aggregates);
this module reads the query string and lays them out."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import groupby

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse

from copytrading.admin_base import money_text
from fees import selectors

PERIOD_LABELS = {"day": "Today", "week": "This week", "month": "This month", "all": "All time"}
DEFAULT_PERIOD = "week"


class BadFilter(ValueError):
    """A filter value the page cannot use; shown above the (empty) table."""


@dataclass
class LeaderEarnings:
    leader: str
    rows: list[dict]
    total: dict = field(init=False)

    def __post_init__(self) -> None:
        self.total = selectors.earnings_totals(self.rows)


def amount(value: Decimal) -> str:
    """A money figure as the back office shows money: ``1,234.50 USDT``."""
    return money_text(value)


def _filters(request: HttpRequest) -> dict:
    period = request.GET.get("period") or DEFAULT_PERIOD
    if period not in selectors.EARNING_PERIODS:
        raise BadFilter(f"Unknown period {period!r}: use day, week, month or all.")
    leader_id = None
    username = (request.GET.get("leader") or "").strip()
    if username:
        leader_id = get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
        if leader_id is None:
            raise BadFilter(f"No user named {username!r}.")
    portfolio_id = None
    raw = (request.GET.get("portfolio") or "").strip()
    if raw:
        if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**63:
            raise BadFilter(f"Portfolio must be a portfolio id, not {raw!r}.")
        portfolio_id = int(raw)
    now = None
    raw = (request.GET.get("on") or "").strip()
    if raw:
        try:
            now = datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
        except ValueError:
            raise BadFilter(f"The date must read YYYY-MM-DD, not {raw!r}.") from None
        if not date(1970, 1, 1) <= now.date() <= date(9000, 12, 31):
            raise BadFilter(f"The date must be between 1970-01-01 and 9000-12-31, not {raw!r}.")
    return {
        "period": period,
        "leader": username,
        "leader_id": leader_id,
        "portfolio": raw if portfolio_id is None else str(portfolio_id),
        "portfolio_id": portfolio_id,
        "on": raw,
        "window": selectors.earning_window(period, now=now),
    }


def earnings_view(request: HttpRequest) -> TemplateResponse:
    """Staff only (admin_view), and only with the permission to view accruals."""
    if not request.user.has_perm("fees.view_feeaccrual"):
        raise PermissionDenied
    context = {
        **admin.site.each_context(request),
        "title": "Leader earnings",
        "periods": PERIOD_LABELS,
        "leaders": [],
        "error": "",
    }
    query = request.GET.copy()
    links = []
    for period, label in PERIOD_LABELS.items():
        query["period"] = period
        links.append((period, label, query.urlencode()))
    context["period_links"] = links
    status = 200
    try:
        filters = _filters(request)
    except BadFilter as exc:
        context.update(error=str(exc), period=request.GET.get("period") or DEFAULT_PERIOD)
        status = 400
    else:
        window = filters["window"]
        rows = selectors.earnings_by_portfolio(
            leader_id=filters["leader_id"],
            portfolio_id=filters["portfolio_id"],
            since=window.since,
            until=window.until,
        )
        leaders = [LeaderEarnings(name, list(group)) for name, group in groupby(rows, key=lambda r: r["leader"])]
        for group in leaders:
            for row in [*group.rows, group.total]:
                row["text"] = {name: amount(row[name]) for name in selectors.EARNING_FIGURES if name != "accruals"}
        grand = selectors.earnings_totals(rows)
        grand["text"] = {name: amount(grand[name]) for name in selectors.EARNING_FIGURES if name != "accruals"}
        context.update(filters, leaders=leaders, grand_total=grand, period_label=PERIOD_LABELS[filters["period"]])
    return TemplateResponse(request, "admin/fees/earnings.html", context, status=status)
