"""Back office pages beside the model admins: the per-portfolio overview
(``/admin/portfolios/portfolio/<id>/overview/``, linked from the portfolio
list and page). Reads only, through backoffice.overview."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from backoffice.overview import FOLLOWER_FILTERS, FOLLOWERS_PER_PAGE, follower_rows, followers_of, portfolio_figures
from copytrading import charts
from portfolios.models import Portfolio


def portfolio_overview(request, portfolio_id: int):
    # The followers' names, equity and PnL are on it: both views are needed.
    if not request.user.has_perms(["portfolios.view_portfolio", "followers.view_subscription"]):
        raise PermissionDenied
    portfolio = get_object_or_404(Portfolio.objects.select_related("leader", "trading_account"), pk=portfolio_id)
    status = request.GET.get("status", "live")
    if status not in FOLLOWER_FILTERS:
        status = "live"
    page = Paginator(followers_of(portfolio, status=status), FOLLOWERS_PER_PAGE).get_page(request.GET.get("p"))
    figures = portfolio_figures(portfolio)
    curve = figures.equity_curve
    # mark_safe: copytrading.charts escapes every text it draws.
    equity_chart = charts.line_chart(
        [day[5:] for day, _ in curve],
        [charts.Series("equity", [equity for _, equity in curve])],
        title=f"{portfolio.name}: equity by day",
        width=640,
        height=180,
        empty="No equity curve yet (the statistics task has not run)",
    )
    context = {
        **admin.site.each_context(request),
        "title": f"Overview of {portfolio.name}",
        "opts": Portfolio._meta,
        "portfolio": portfolio,
        "figures": figures,
        "line": figures.stats["lines"].get(figures.line) if figures.line else None,
        "equity_chart": mark_safe(equity_chart),
        "followers": follower_rows(list(page.object_list)),
        "page": page,
        "status": status,
        "statuses": list(FOLLOWER_FILTERS),
    }
    return TemplateResponse(request, "admin/portfolios/portfolio/overview.html", context)
