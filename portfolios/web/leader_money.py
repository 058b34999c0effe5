"""A leader's money on one portfolio: what it earned (by day, week or month,
the figures of ``GET portfolios/{id}/earnings``), the withdrawals of that
profit share and their CSV, the webhook's signing secret, and closing the
portfolio. Each action calls what its API view calls: fees.selectors and
fees.services, portfolios.webhooks, portfolios.lifecycle. Another leader's
portfolio is not found, as in the API (``my_portfolio``)."""

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from copytrading.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from copytrading.templatetags.web import money
from copytrading.web import charts
from copytrading.web.forms import DomainError, domain_errors, form_data, validated
from fees import selectors as fee_selectors
from fees import services as fee_services
from fees.models import FeeModel
from fees.serializers import WithdrawalCreateSerializer
from portfolios.api import my_portfolio
from portfolios.fees_api import withdrawals_csv
from portfolios.lifecycle import portfolio_close
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.serializers import PortfolioCloseSerializer
from portfolios.webhooks import portfolio_webhook_secret_rotate

# The tabs: the API's series of each (by_day: 90 days, by_week: 26 weeks, by_month: all time).
PERIODS = {"day": "Day", "week": "Week", "month": "Month"}
PERIOD_SPANS = {
    "day": "the last 90 days (UTC)",
    "week": "the last 26 weeks (from Monday, UTC)",
    "month": "all time (UTC)",
}
LABEL_FORMATS = {"day": "%b %d", "week": "%b %d", "month": "%b %Y"}
# The page lists the newest withdrawals; the CSV has every one.
WITHDRAWALS_SHOWN = 50
KEY_LENGTH = 100  # LeaderWithdrawal.idempotency_key


def _period(request: HttpRequest) -> str:
    period = request.GET.get("period", "day")
    return period if period in PERIODS else "day"


def _earnings(portfolio: Portfolio, period: str) -> dict[str, Any]:
    """The API's earnings body and the chosen period's series as a chart."""
    # Periods are UTC days, weeks and months, as the API reads them (the
    # reader's zone is for showing times, not for cutting the books).
    with timezone.override(dt.UTC):
        earnings = fee_selectors.leader_earnings(leader_id=portfolio.leader_id, portfolio_id=portfolio.pk)
    series = earnings[f"by_{period}"]
    bars = _bars(series, period, timezone.now().astimezone(dt.UTC).date())
    label = f"Profit share earned per {PERIODS[period].lower()}, {PERIOD_SPANS[period]}"
    return {
        "portfolio": portfolio,
        "currency": portfolio.trading_account.currency,
        "earnings": earnings,
        "period": period,
        "periods": PERIODS,
        "period_name": PERIODS[period].lower(),
        "period_span": PERIOD_SPANS[period],
        "series": list(reversed(series)),  # the table: newest first
        "series_total": sum((row["earned"] for row in series), Decimal(0)),
        "bars": bars,
        "chart": mark_safe(charts.bar_chart(bars, label=label, unit="")),  # numbers in; labels escaped
    }


def _bars(series: list[dict], period: str, today: dt.date) -> list[tuple[str, Decimal]]:
    """The chart's bars: every period of the window, the ones without fees
    (which the API leaves out) as zero, so the x axis is time (and a leader
    who has earned nothing yet sees an empty chart of it, not a hole)."""
    earned = {row["period"]: row["earned"] for row in series}
    if period == "day":
        starts = [today - dt.timedelta(days=n) for n in range(90, -1, -1)]
    elif period == "week":
        monday = today - dt.timedelta(days=today.weekday())
        starts = [monday - dt.timedelta(weeks=n) for n in range(26, -1, -1)]
    else:
        starts = []
        month = min(earned, default=today).replace(day=1)
        while month <= today:
            starts.append(month)
            month = (month + dt.timedelta(days=32)).replace(day=1)
    starts = sorted(set(starts) | set(earned))  # a row outside the window still shows
    return [(start.strftime(LABEL_FORMATS[period]), earned.get(start, Decimal(0))) for start in starts]


def _context(request: HttpRequest, portfolio: Portfolio, **extra: Any) -> dict[str, Any]:
    caps = fee_selectors.leader_caps(portfolio.leader_id)
    withdrawals = fee_selectors.withdrawals_of(leader_id=portfolio.leader_id, portfolio_id=portfolio.pk)
    context = {
        "is_active": portfolio.status == PortfolioStatus.ACTIVE,
        "is_archived": portfolio.status == PortfolioStatus.ARCHIVED,
        "per_trade": portfolio.fee_model == FeeModel.PER_TRADE,
        "platform_cut_pct": caps.platform_cut_pct,
        "leader_cut_pct": Decimal(100) - caps.platform_cut_pct,
        "withdrawals": list(withdrawals[:WITHDRAWALS_SHOWN]),
        "more_withdrawals": withdrawals[WITHDRAWALS_SHOWN : WITHDRAWALS_SHOWN + 1].exists(),
        "has_webhook": bool(portfolio.webhook_secret),
        "idempotency_key": uuid.uuid4().hex,
        "errors": {},
        "form": {},
        "close_errors": {},
        **_earnings(portfolio, _period(request)),
    }
    return context | extra


@login_required
@require_GET
def money_view(request: HttpRequest, pk: int) -> HttpResponse:
    portfolio = my_portfolio(request, pk)
    if request.htmx and request.htmx.target == "earnings":
        # A tab: only the earnings card changes.
        return render(request, "web/leader_money_earnings.html", _earnings(portfolio, _period(request)))
    return render(request, "web/leader_money.html", _context(request, portfolio))


@login_required
@require_GET
def withdrawals_csv_view(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The API's ``withdrawals.csv``, for the browser's session (the API route
    takes a token)."""
    portfolio = my_portfolio(request, pk)
    return withdrawals_csv(leader_id=request.user.pk, portfolio_id=portfolio.pk)


@login_required
@require_POST
def withdraw_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Move earned profit share to the main wallet (``leader_withdrawal_create``,
    as ``POST portfolios/{id}/withdrawals``). An empty amount takes everything
    available, like the API's omitted one; the form's hidden key makes a
    double submit one withdrawal."""
    portfolio = my_portfolio(request, pk)
    data, errors = validated(WithdrawalCreateSerializer, form_data(request.POST))
    status = 400
    key = (request.POST.get("idempotency_key") or "")[:KEY_LENGTH]
    if data is not None:
        try:
            withdrawal = fee_services.leader_withdrawal_create(
                leader=request.user, portfolio_id=portfolio.pk, amount=data.get("amount"), idempotency_key=key
            )
        except DomainError as exc:
            errors, status = domain_errors(exc), exc.status
        else:
            messages.success(request, f"{money(withdrawal.amount, withdrawal.currency)} moved to your wallet.")
            return redirect("web-leader-money", pk=portfolio.pk)
    form = {"amount": request.POST.get("amount", "")[:40]}
    context = _context(request, portfolio, errors=errors, form=form)
    return render(request, "web/leader_money.html", context, status=status)


@login_required
@require_POST
def rotate_secret_view(request: HttpRequest, pk: int) -> HttpResponse:
    """A new signing secret (``portfolio_webhook_secret_rotate``, as ``POST
    portfolios/{id}/webhook-secret``), shown in this answer only: never
    stored in a page, never cached."""
    portfolio = my_portfolio(request, pk)
    secret = portfolio_webhook_secret_rotate(portfolio=portfolio)
    webhook = {
        "secret": secret,
        "url": request.build_absolute_uri(reverse("webhook-signals", kwargs={"portfolio_id": portfolio.pk})),
        "timestamp_header": TIMESTAMP_HEADER,
        "signature_header": SIGNATURE_HEADER,
    }
    if request.htmx:
        context = {"portfolio": portfolio, "has_webhook": True, "webhook": webhook}
        response = render(request, "web/leader_money_webhook.html", context)
    else:
        response = render(request, "web/leader_money.html", _context(request, portfolio, webhook=webhook))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def close_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Start closing (``portfolio_close``, as ``POST portfolios/{id}/close``);
    the wind-down runs in the background. A second close changes nothing."""
    portfolio = my_portfolio(request, pk)
    data, errors = validated(PortfolioCloseSerializer, request.POST)
    status = 400
    if data is not None:
        try:
            portfolio_close(portfolio=portfolio, actor=request.user, reason=data["reason"])
        except DomainError as exc:
            errors, status = domain_errors(exc), exc.status
        else:
            messages.success(request, "The portfolio is closing: its followers are being detached.")
            return redirect("web-leader-money", pk=portfolio.pk)
    form = {"reason": request.POST.get("reason", "")[:1000]}
    context = _context(request, portfolio, close_errors=errors, form=form)
    return render(request, "web/leader_money.html", context, status=status)


urlpatterns = [
    path("me/portfolios/<int:pk>/earnings/", money_view, name="web-leader-money"),
    path("me/portfolios/<int:pk>/earnings/withdrawals.csv", withdrawals_csv_view, name="web-leader-withdrawals-csv"),
    path("me/portfolios/<int:pk>/earnings/withdraw/", withdraw_view, name="web-leader-withdraw"),
    path("me/portfolios/<int:pk>/earnings/webhook-secret/", rotate_secret_view, name="web-leader-rotate-secret"),
    path("me/portfolios/<int:pk>/earnings/close/", close_view, name="web-leader-close"),
]
