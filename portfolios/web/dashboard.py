"""The leader's pages: my portfolios (``/me/portfolios/``, with the create
form) and a portfolio's desk (``/me/portfolios/<id>/``): its trading account,
the order form, positions and holdings live over the ``portfolio:<id>``
topic, orders, followers and the last leader events with what they did to
the copies.

Every write mirrors a leader endpoint of portfolios/api.py: the same
serializer, the same service. Another leader's portfolio is a 404 on every
route (``my_portfolio``, as the API). The forms carry a hidden key: a double
submit of an order, a close or a cancel is done once (``_once``), a funding
uses the ledger's own key."""

import hashlib
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from copytrading import selectors
from copytrading.errors import DomainError
from copytrading.exchanges.models import ExchangeAccount
from copytrading.models import (
    Account,
    Holding,
    IdempotentRequest,
    Instrument,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Product,
)
from copytrading.serializers import AmountSerializer, ClosePositionSerializer, HoldingSerializer, PositionSerializer
from copytrading.stream.selectors import book_load, marks_at
from copytrading.venues import portfolio_exchange_account_id
from copytrading.web.forms import FORM, Errors, as_json_types, domain_errors, form_data, validated
from fees.selectors import leader_earnings
from portfolios import exchange, services
from portfolios.api import _tpsl_values, my_portfolio
from portfolios.models import Portfolio, PortfolioMode
from portfolios.serializers import OrderPlaceSerializer, PortfolioCreateSerializer, TpslSerializer
from portfolios.stats_data import live_followers

KEY_LENGTH = 64
RECENT_EVENTS = 10
RECENT_ORDERS = 20
CREATE_FIELDS = (
    "name",
    "description",
    "mode",
    "min_investment",
    "profit_share_pct",
    "is_public",
    "x_url",
    "telegram_url",
    "website_url",
    "exchange_account_id",
)
ORDER_FIELDS = ("symbol", "side", "quantity", "type", "price", "leverage")


# --- reads -----------------------------------------------------------------------


def account_figures(portfolios: list[Portfolio]) -> dict[int, dict[str, Any]]:
    """Each portfolio's balance, free, equity, unrealized PnL and follower
    count, computed as the ``portfolio:<id>`` topic computes them
    (portfolios/stream.py), in a constant number of queries for the list."""
    account_ids = [p.trading_account_id for p in portfolios]
    accounts = {a.pk: a for a in Account.objects.filter(pk__in=account_ids)}
    book = book_load(account_ids)
    marks = {pk: mark for pk, (mark, _) in marks_at(book.instruments()).items()}
    sums = book.figures(account_ids, marks)
    followers: dict[int, int] = {}
    for row in live_followers([p.pk for p in portfolios]):
        followers[row.portfolio_id] = followers.get(row.portfolio_id, 0) + 1
    figures = {}
    for p in portfolios:
        account, f = accounts[p.trading_account_id], sums[p.trading_account_id]
        figures[p.pk] = {
            "currency": account.currency,
            "balance": account.balance,
            "free": account.free,
            "equity": f.equity(account.balance),
            "unrealized_pnl": f.unrealized_pnl,
            "followers": followers.get(p.pk, 0),
        }
    return figures


def tradable_instruments(portfolio: Portfolio) -> list[Instrument]:
    """What the portfolio's mode lets it trade (``market/instruments``, narrowed
    so the select offers no pair the service would refuse)."""
    instruments = Instrument.objects.filter(is_active=True).order_by("product", "symbol")
    if portfolio.mode != PortfolioMode.ALL:
        instruments = instruments.filter(product=portfolio.mode)
    return list(instruments)


def recent_events(portfolio: Portfolio) -> list[dict[str, Any]]:
    """The last leader events with their outcomes (portfolios/events_api.py)."""
    events = list(selectors.leader_events_of(portfolio_id=portfolio.pk).order_by("-seq")[:RECENT_EVENTS])
    progress = selectors.event_progress([e.pk for e in events])
    return [{"event": e, "progress": progress[e.pk]} for e in events]


def followers_of(portfolio: Portfolio) -> list[dict[str, Any]]:
    """The live followers (active and paused copies) with what each has paid
    the leader so far (the earnings API's ``by_follower``)."""
    rows = live_followers([portfolio.pk])
    names = dict(get_user_model().objects.filter(pk__in=[r.follower_id for r in rows]).values_list("pk", "username"))
    earned = {
        f["subscription_id"]: f["earned"]
        for f in leader_earnings(leader_id=portfolio.leader_id, portfolio_id=portfolio.pk)["by_follower"]
    }
    return [
        {
            "subscription_id": r.subscription_id,
            "follower": names.get(r.follower_id, ""),
            "since": r.created_at,
            "earned": earned.get(r.subscription_id, Decimal(0)),
        }
        for r in sorted(rows, key=lambda r: r.created_at)
    ]


def _spot_pairs(assets: list[str]) -> dict[str, str]:
    """The primary-currency pair that sells each held asset."""
    if not assets:
        return {}
    pairs = Instrument.objects.filter(product=Product.SPOT, base__in=assets, is_active=True)
    return {i.base: i.symbol for i in pairs if i.quote == settings.PRIMARY_CURRENCY}


def book_context(portfolio: Portfolio) -> dict[str, Any]:
    """Open positions and holdings as the API lists them (its serializers,
    figures at the current mark)."""
    positions = Position.objects.filter(
        account_id=portfolio.trading_account_id, status=PositionStatus.OPEN
    ).select_related("instrument")
    holdings = list(Holding.objects.filter(account_id=portfolio.trading_account_id, quantity__gt=0).order_by("asset"))
    held = HoldingSerializer(holdings, many=True).data
    pairs = _spot_pairs([h["asset"] for h in held])
    for row, holding in zip(held, holdings, strict=True):
        row["pair"] = pairs.get(row["asset"], "")
        row["free"] = holding.free
    return {
        "portfolio": portfolio,
        "positions": PositionSerializer(positions.order_by("pk"), many=True).data,
        "holdings": held,
    }


def desk_context(portfolio: Portfolio, **extra: Any) -> dict[str, Any]:
    """Everything the desk shows; ``extra`` carries a refused form's input and messages."""
    orders = Order.objects.filter(account_id=portfolio.trading_account_id).select_related("instrument")
    open_orders = list(orders.filter(status__in=[OrderStatus.OPEN, OrderStatus.PENDING]).order_by("-pk"))
    latest = list(orders.order_by("-pk")[:RECENT_ORDERS])
    last = latest[0] if latest else None
    context = {
        **book_context(portfolio),
        "figures": account_figures([portfolio])[portfolio.pk],
        "instruments": tradable_instruments(portfolio),
        "open_orders": open_orders,
        "orders": latest,
        "followers": followers_of(portfolio),
        "events": recent_events(portfolio),
        "errors": {},
        # The instrument of the last order stays selected: a leader trades a few.
        "form": {"symbol": last.instrument.symbol if last else "", "side": "buy", "type": "market", "leverage": "1"},
        "fund_errors": {},
        "fund_form": {},
        "action_errors": {},
        "tpsl": {},
        "key": uuid.uuid4().hex,
    }
    context.update(extra)
    return context


# --- a double submit counts once ----------------------------------------------------


class AlreadyDone(Exception):
    """The form's key was used: the first submit did it."""


def _once(request: HttpRequest, action: str, write: Callable[[], Any]) -> Any:
    """Run ``write`` once per form key: the key is stored (the API's
    idempotency table) in the same transaction as the change, so a refused
    write frees it again and a concurrent second submit waits on the unique
    index, then finds it taken. Without a key the write just runs."""
    key = (request.POST.get("key") or "")[:KEY_LENGTH]
    if not key:
        return write()
    fingerprint = hashlib.sha256(f"POST {request.path}".encode()).hexdigest()
    with transaction.atomic():
        try:
            with transaction.atomic():  # only the key's insert: another IntegrityError is not "done"
                IdempotentRequest.objects.create(
                    user=request.user, key=f"web:{action}:{key}", fingerprint=fingerprint, status_code=200
                )
        except IntegrityError:
            raise AlreadyDone from None
        return write()


# --- my portfolios -------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def portfolios_view(request: HttpRequest) -> HttpResponse:
    """``GET /api/v1/portfolios`` and its ``POST``: the same serializer, the same service."""
    errors: Errors = {}
    status = 200
    if request.method == "POST":
        data, errors = validated(
            PortfolioCreateSerializer, as_json_types(form_data(request.POST), PortfolioCreateSerializer())
        )
        status = 400
        if data is not None:
            try:
                portfolio = services.portfolio_open(leader=request.user, **data)
            except DomainError as exc:
                errors, status = domain_errors(exc), exc.status
            else:
                messages.success(request, f"Portfolio {portfolio.name} created. Fund it to start trading.")
                return redirect("web-leader-desk", pk=portfolio.pk)
    portfolios = list(Portfolio.objects.filter(leader=request.user).order_by("-pk"))
    figures = account_figures(portfolios)
    context = {
        "rows": [{"portfolio": p, **figures[p.pk]} for p in portfolios],
        "errors": errors,
        "form": {name: request.POST.get(name, "")[:2000] for name in CREATE_FIELDS} if request.POST else {},
        "modes": PortfolioMode.choices,
        "exchange_accounts": ExchangeAccount.objects.filter(user=request.user).order_by("pk"),
    }
    return render(request, "web/leader.html", context, status=status)


# --- the desk ------------------------------------------------------------------------------


@login_required
@require_GET
def desk_view(request: HttpRequest, pk: int) -> HttpResponse:
    portfolio = my_portfolio(request, pk)
    return render(request, "web/leader_desk.html", desk_context(portfolio))


@login_required
@require_POST
def order_view(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /portfolios/<id>/orders``: its serializer, then
    ``services.portfolio_order_place`` (refusals next to their fields)."""
    portfolio = my_portfolio(request, pk)
    body = {name: request.POST[name] for name in ORDER_FIELDS if request.POST.get(name, "") != ""}
    if body.get("type", "market") == "market":
        body.pop("price", None)  # a market order has no price; the form keeps the field
    status = 400
    try:
        if isinstance(body.get("type"), str):
            services.check_order_type(body["type"].lower())  # as the API: an unknown type first
        data, errors = validated(OrderPlaceSerializer, as_json_types(body, OrderPlaceSerializer()))
        if data is not None:
            key = (request.POST.get("key") or "")[:KEY_LENGTH]

            def submit() -> exchange.SentOrder | list:
                return services.portfolio_order_submit(
                    portfolio=portfolio,
                    symbol=data["symbol"],
                    side=data["side"],
                    quantity=data["quantity"],
                    leverage=data["leverage"] if "leverage" in body else None,
                    order_type=data["type"].lower(),
                    price=data.get("price"),
                    token=f"web:{request.user.pk}:{key}" if key else None,
                )

            # A second submit: an exchange order's client order id comes from the
            # form's key (the exchange refuses it; no transaction around a network
            # call); a paper order is kept once by the key in the same transaction.
            on_exchange = portfolio_exchange_account_id(portfolio.pk) is not None
            placed = submit() if on_exchange else _once(request, "order", submit)
            if isinstance(placed, exchange.SentOrder):
                messages.success(request, f"Order sent to the exchange ({placed.status}); it is copied once it fills.")
            else:
                messages.success(request, _order_said(placed))
            return redirect("web-leader-desk", pk=portfolio.pk)
    except AlreadyDone:
        return redirect("web-leader-desk", pk=portfolio.pk)
    except DomainError as exc:
        errors, status = domain_errors(exc), exc.status
    errors = _on_known_fields(errors, ORDER_FIELDS)
    form = {name: request.POST.get(name, "")[:40] for name in ORDER_FIELDS}
    context = desk_context(portfolio, errors=errors, form=form)
    return render(request, "web/leader_desk.html", context, status=status)


def _order_said(events: list) -> str:
    kinds = ", ".join(e.kind.replace("_", " ") for e in events) or "nothing"
    return f"Order placed ({kinds}); your followers are being copied."


@login_required
@require_POST
def position_close_view(request: HttpRequest, pk: int, position_pk: int) -> HttpResponse:
    """``POST /portfolios/<id>/positions/<pid>/close`` (all of it, or a quantity)."""
    portfolio = my_portfolio(request, pk)
    data, errors = validated(ClosePositionSerializer, form_data(request.POST))
    status = 400
    if data is not None:
        try:
            _once(
                request,
                f"close:{position_pk}",
                lambda: services.portfolio_position_close(
                    portfolio=portfolio, position_id=position_pk, quantity=data.get("quantity")
                ),
            )
        except AlreadyDone:
            return redirect("web-leader-desk", pk=portfolio.pk)
        except DomainError as exc:
            errors, status = domain_errors(exc), exc.status
        else:
            messages.success(request, "Position closed; your followers' mirrors are being closed.")
            return redirect("web-leader-desk", pk=portfolio.pk)
    context = desk_context(portfolio, action_errors={FORM: _flat(errors)})
    return render(request, "web/leader_desk.html", context, status=status)


@login_required
@require_POST
def order_cancel_view(request: HttpRequest, pk: int, order_pk: int) -> HttpResponse:
    """``POST /portfolios/<id>/orders/<oid>/cancel``."""
    portfolio = my_portfolio(request, pk)
    try:
        _once(
            request,
            f"cancel:{order_pk}",
            lambda: services.portfolio_order_cancel(portfolio=portfolio, order_id=order_pk),
        )
    except AlreadyDone:
        return redirect("web-leader-desk", pk=portfolio.pk)
    except DomainError as exc:
        context = desk_context(portfolio, action_errors={FORM: _flat(domain_errors(exc))})
        return render(request, "web/leader_desk.html", context, status=exc.status)
    messages.success(request, "Order cancelled; your followers' resting copies are being cancelled.")
    return redirect("web-leader-desk", pk=portfolio.pk)


@login_required
@require_POST
def fund_view(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /portfolios/<id>/fund``: main wallet → trading account; the
    form's key is the ledger transfer's key (one funding per submit)."""
    portfolio = my_portfolio(request, pk)
    data, errors = validated(AmountSerializer, request.POST)
    status = 400
    if data is not None:
        key = (request.POST.get("key") or "")[:KEY_LENGTH] or None
        try:
            _, created = services.portfolio_fund(portfolio=portfolio, amount=data["amount"], idempotency_key=key)
        except DomainError as exc:
            errors, status = domain_errors(exc), exc.status
        else:
            if created:
                messages.success(request, "Trading account funded.")
            return redirect("web-leader-desk", pk=portfolio.pk)
    context = desk_context(portfolio, fund_errors=errors, fund_form={"amount": request.POST.get("amount", "")[:40]})
    return render(request, "web/leader_desk.html", context, status=status)


@login_required
@require_POST
def position_tpsl_view(request: HttpRequest, pk: int, position_pk: int) -> HttpResponse:
    """``POST /portfolios/<id>/positions/<pid>/tpsl``: the form shows both
    prices, so a blank one clears it (the API's null)."""
    portfolio = my_portfolio(request, pk)
    body = {name: request.POST.get(name, "").strip() or None for name in ("take_profit", "stop_loss")}
    try:
        values = _tpsl_values(body, TpslSerializer)
        services.portfolio_position_tpsl_set(portfolio=portfolio, position_id=position_pk, **values)
    except DomainError as exc:
        form = {name: request.POST.get(name, "")[:40] for name in body}
        tpsl = {"position_id": position_pk, "errors": domain_errors(exc), "form": form}
        return render(request, "web/leader_desk.html", desk_context(portfolio, tpsl=tpsl), status=exc.status)
    messages.success(request, "Take-profit and stop-loss saved; your followers' mirrors get the same prices.")
    return redirect("web-leader-desk", pk=portfolio.pk)


def _on_known_fields(errors: Errors, fields: tuple[str, ...]) -> Errors:
    """Messages for a field the form has no input for go above the form."""
    placed: Errors = {}
    for field, messages_ in errors.items():
        placed.setdefault(field if field in fields else FORM, []).extend(messages_)
    return placed


def _flat(errors: Errors) -> list[str]:
    return [m for messages_ in errors.values() for m in messages_] or ["Refused."]


@login_required
@require_GET
def events_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """``#recent-events`` alone, polled by the desk (see the template)."""
    portfolio = my_portfolio(request, pk)
    return render(request, "web/leader_events.html", {"portfolio": portfolio, "events": recent_events(portfolio)})


@login_required
@require_GET
def book_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """``#positions`` alone: fetched when the stream names a row the page does not show."""
    portfolio = my_portfolio(request, pk)
    context = {**book_context(portfolio), "key": uuid.uuid4().hex, "figures": account_figures([portfolio])[pk]}
    return render(request, "web/leader_book.html", context)


urlpatterns = [
    path("me/portfolios/", portfolios_view, name="web-leader"),
    path("me/portfolios/<int:pk>/", desk_view, name="web-leader-desk"),
    path("me/portfolios/<int:pk>/orders/", order_view, name="web-leader-order"),
    path("me/portfolios/<int:pk>/orders/<int:order_pk>/cancel/", order_cancel_view, name="web-leader-order-cancel"),
    path(
        "me/portfolios/<int:pk>/positions/<int:position_pk>/close/",
        position_close_view,
        name="web-leader-position-close",
    ),
    path(
        "me/portfolios/<int:pk>/positions/<int:position_pk>/tpsl/",
        position_tpsl_view,
        name="web-leader-position-tpsl",
    ),
    path("me/portfolios/<int:pk>/fund/", fund_view, name="web-leader-fund"),
    path("me/portfolios/<int:pk>/events/", events_fragment, name="web-leader-events"),
    path("me/portfolios/<int:pk>/book/", book_fragment, name="web-leader-book"),
]
