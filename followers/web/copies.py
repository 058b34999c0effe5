"""My copies: each of the follower's subscriptions with the figures the
subscriptions API gives (its own serializer, so the page and the API cannot
disagree), their open mirrors and last executions; kept live by the stream's
``copies`` and ``positions`` topics (followers/static/web/copies.js).

Every action is a POST calling the service its API endpoint calls
(followers/api.py) and answers the refreshed copy card, or the whole list
after an unfollow. The forms (top up, withdraw, settings) and the unfollow
confirmation are fragments loaded into one ``<dialog>`` so their ids stay
unique on a page with many copies. Without htmx, each route is a page of its
own and a success redirects back to the list."""

import json
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from copytrading import ledger
from copytrading.errors import DomainError
from copytrading.models import Execution, Holding, Order, OrderStatus, Position, PositionStatus
from copytrading.serializers import ClosePositionSerializer, ExecutionSerializer, HoldingSerializer, PositionSerializer
from copytrading.web.forms import FORM, Errors, domain_errors, json_value, validated
from followers import services
from followers.models import Subscription, SubscriptionStatus
from followers.selectors import risk_views, subscriptions_of
from followers.serializers import MoneyMoveSerializer, SettingsSerializer, SubscriptionSerializer
from risk.models import RiskLimits

KEY_LENGTH = 80  # MoneyMoveSerializer's idempotency_key
LAST_EXECUTIONS = 5
# The settings form, in the API's order (SettingsSerializer); the two booleans are selects
# so that "off" is sent (an unticked checkbox sends nothing, which the API reads as "unchanged").
SIZING_FIELDS = ("multiplier", "fixed_notional", "risk_factor")
LIMIT_FIELDS = (
    "daily_loss_limit_realized",
    "daily_loss_limit_unrealized",
    "margin_call_level_pct",
    "max_drawdown_pct",
    "max_open_positions",
    "max_exposure_pct",
)
SETTINGS_LABELS = {
    "sizing_model": "Sizing model",
    "multiplier": "Multiplier",
    "fixed_notional": "Fixed notional (USDT)",
    "risk_factor": "Risk factor",
    "leverage_override": "Leverage override",
    "copy_margin": "Copy margin trades",
    "copy_spot": "Copy spot trades",
    "slippage_tolerance_pct": "Slippage tolerance (%)",
    "daily_loss_limit_realized": "Daily realized loss limit (USDT)",
    "daily_loss_limit_unrealized": "Open loss limit (USDT)",
    "margin_call_level_pct": "Margin call level (%)",
    "max_drawdown_pct": "Max drawdown (%)",
    "max_open_positions": "Max open positions",
    "max_exposure_pct": "Max exposure (%)",
}


# --- reading -------------------------------------------------------------------------


def copy_cards(user, subscriptions: list[Subscription]) -> list[dict]:
    """Each copy as the API shows it (``SubscriptionSerializer``, its risk
    views loaded once), with its open mirrors, spot holdings, resting mirror
    orders and last executions: a constant number of queries for the page."""
    if not subscriptions:
        return []
    ids = [s.pk for s in subscriptions]
    accounts = [s.copy_account_id for s in subscriptions]
    rows = SubscriptionSerializer(subscriptions, many=True, context={"risk": risk_views(ids)}).data

    positions = list(
        Position.objects.filter(account_id__in=accounts, status=PositionStatus.OPEN)
        .select_related("instrument")
        .order_by("pk")
    )
    holdings = list(Holding.objects.filter(account_id__in=accounts, quantity__gt=0).order_by("account_id", "asset"))
    executions = list(
        Execution.objects.filter(subscription_id__in=ids)
        .select_related("event", "order__exchange_order")
        .annotate(rank=Window(RowNumber(), partition_by=[F("subscription_id")], order_by=F("pk").desc()))
        .filter(rank__lte=LAST_EXECUTIONS)
        .order_by("-pk")
    )
    resting: dict[int, int] = {}
    for account_id in Order.objects.filter(
        account_id__in=accounts, status__in=(OrderStatus.OPEN, OrderStatus.PENDING)
    ).values_list("account_id", flat=True):
        resting[account_id] = resting.get(account_id, 0) + 1

    by_account: dict[int, dict] = {a: {"positions": [], "holdings": []} for a in accounts}
    for p, data in zip(positions, PositionSerializer(positions, many=True).data, strict=True):
        by_account[p.account_id]["positions"].append(data)
    for h, data in zip(holdings, HoldingSerializer(holdings, many=True).data, strict=True):
        by_account[h.account_id]["holdings"].append({**data, "key": f"holding:{h.account_id}:{h.asset}"})
    by_subscription: dict[int, list] = {pk: [] for pk in ids}
    for e, data in zip(executions, ExecutionSerializer(executions, many=True).data, strict=True):
        symbol = (e.event.payload or {}).get("symbol", "")
        by_subscription[e.subscription_id].append({**data, "symbol": symbol, "at": e.created_at})

    cards = []
    for s, row in zip(subscriptions, rows, strict=True):
        held = by_account[s.copy_account_id]
        cards.append(
            {
                "s": row,
                "account_id": s.copy_account_id,
                "live": s.status != SubscriptionStatus.ENDED,
                "ended_at": s.ended_at,
                "positions": held["positions"],
                "holdings": held["holdings"],
                "resting_orders": resting.get(s.copy_account_id, 0),
                "executions": by_subscription[s.pk],
            }
        )
    return cards


def _list_context(request: HttpRequest) -> dict:
    subscriptions = list(subscriptions_of(request.user).order_by("-created_at", "-pk"))
    cards = copy_cards(request.user, subscriptions)
    return {
        "live_cards": [c for c in cards if c["live"]],
        "ended_cards": [c for c in cards if not c["live"]],
    }


def _my(request: HttpRequest, pk: int) -> Subscription:
    """The user's subscription (the API's ``my_subscription``): another
    user's is a 404."""
    return get_object_or_404(subscriptions_of(request.user), pk=pk)


def _card(request: HttpRequest, pk: int, *, errors: Errors | None = None, status: int = 200) -> HttpResponse:
    subscription = subscriptions_of(request.user).get(pk=pk)
    (card,) = copy_cards(request.user, [subscription])
    return render(request, "web/copies_card.html", {"c": card, "errors": errors or {}}, status=status)


def _done(request: HttpRequest, response: HttpResponse, *, target: str) -> HttpResponse:
    """An action that succeeded: the fresh fragment replaces ``target`` and
    the dialog closes (copies.js listens for ``copies:done``)."""
    if not request.htmx:
        return redirect("web-copies")
    response["HX-Retarget"] = target
    response["HX-Reswap"] = "outerHTML"
    response["HX-Trigger"] = json.dumps({"copies:done": {}})
    return response


@login_required
@require_GET
def copies_view(request: HttpRequest) -> HttpResponse:
    return render(request, "web/copies.html", _list_context(request))


@login_required
@require_GET
def copies_list_view(request: HttpRequest) -> HttpResponse:
    """The list alone: the page fetches it again when a copy starts or ends."""
    return render(request, "web/copies_list.html", _list_context(request))


@login_required
@require_GET
def copy_card_view(request: HttpRequest, pk: int) -> HttpResponse:
    """One card alone: the page fetches it again when the stream says its
    status changed (the pause reason in words is the server's sentence)."""
    return _card(request, _my(request, pk).pk)


# --- pause, resume, close a mirror ------------------------------------------------------


def _simple_action(request: HttpRequest, pk: int, act: Callable[[Subscription], object]) -> HttpResponse:
    """A button's POST: the service, then the fresh card (its refusal above the figures)."""
    subscription = _my(request, pk)
    try:
        act(subscription)
    except DomainError as exc:
        if not request.htmx:
            messages.error(request, exc.detail)
            return redirect("web-copies")
        # A button has no field of its own: every message shows above the card's figures.
        messages_ = [m for ms in domain_errors(exc).values() for m in ms]
        return _card(request, pk, errors={FORM: messages_}, status=exc.status)
    if not request.htmx:
        return redirect("web-copies")
    return _card(request, pk)


@login_required
@require_POST
def pause_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _simple_action(request, pk, lambda s: services.subscription_pause(subscription=s))


@login_required
@require_POST
def resume_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _simple_action(request, pk, lambda s: services.subscription_resume(subscription=s))


@login_required
@require_POST
def close_mirror_view(request: HttpRequest, pk: int, position_pk: int) -> HttpResponse:
    """Close one mirror, all of it (``quantity`` optional, as in the API)."""
    subscription = _my(request, pk)
    data, errors = validated(ClosePositionSerializer, request.POST)
    if data is None:
        if not request.htmx:
            messages.error(request, " ".join(m for ms in errors.values() for m in ms))
            return redirect("web-copies")
        return _card(request, pk, errors=errors, status=400)
    return _simple_action(
        request,
        subscription.pk,
        lambda s: services.subscription_position_close(
            subscription=s, position_id=position_pk, quantity=data.get("quantity")
        ),
    )


# --- the dialog's forms -------------------------------------------------------------------


def _dialog(request: HttpRequest, template: str, context: dict, *, status: int = 200, title: str = "") -> HttpResponse:
    """A dialog's fragment, or without htmx a page of its own holding it."""
    context = {**context, "fragment": template, "title": title}
    return render(request, template if request.htmx else "web/copies_action_page.html", context, status=status)


def _money_move(request: HttpRequest, pk: int, *, kind: str) -> HttpResponse:
    subscription = _my(request, pk)
    move = services.subscription_top_up if kind == "top-up" else services.subscription_withdraw
    errors: Errors = {}
    status = 200
    if request.method == "POST":
        data, errors = validated(MoneyMoveSerializer, request.POST)
        status = 400
        if data is not None:
            data["idempotency_key"] = data["idempotency_key"][:KEY_LENGTH]
            try:
                move(subscription=subscription, **data)
            except DomainError as exc:
                errors, status = domain_errors(exc), exc.status
            else:
                return _done(request, _card(request, pk), target=f"#copy-{pk}")
    (card,) = copy_cards(request.user, [subscription])
    context = {
        "c": card,
        "kind": kind,
        "errors": errors,
        "amount": request.POST.get("amount", "")[:40],
        "idempotency_key": uuid.uuid4().hex,
        "main_free": ledger.main_account_for(request.user).free,
        "action": reverse(f"web-copy-{kind}", args=[pk]),
    }
    title = "Top up" if kind == "top-up" else "Withdraw"
    return _dialog(request, "web/copies_money.html", context, status=status, title=title)


@login_required
@require_http_methods(["GET", "POST"])
def top_up_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Money from the main wallet into the copy wallet (the API's top-up)."""
    return _money_move(request, pk, kind="top-up")


@login_required
@require_http_methods(["GET", "POST"])
def withdraw_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Free money of the copy wallet back to the main wallet (the API's withdraw)."""
    return _money_move(request, pk, kind="withdraw")


def _current_settings(subscription: Subscription) -> dict:
    """What the settings form shows: the copy's settings and risk limits now."""
    values = {
        name: getattr(subscription, name)
        for name in ("sizing_model", *SIZING_FIELDS, "leverage_override", "slippage_tolerance_pct")
    }
    values["copy_margin"] = "true" if subscription.copy_margin else "false"
    values["copy_spot"] = "true" if subscription.copy_spot else "false"
    limits = RiskLimits.objects.filter(pk=subscription.pk).values(*LIMIT_FIELDS).first() or {}
    for name in LIMIT_FIELDS:
        values[name] = limits.get(name)
    return {k: "" if v is None else (_plain(v) if isinstance(v, Decimal) else str(v)) for k, v in values.items()}


def _plain(value: Decimal) -> str:
    """``1.50000000`` → ``1.5``: what a person would type."""
    return format(value.normalize(), "f")


def _settings_body(post: Mapping) -> dict:
    """The settings form as the API's JSON body: the selects' "true"/"false"
    as booleans (the API takes JSON booleans only), an emptied nullable field
    as null (no limit, no override), an emptied required one left out."""
    fields = SettingsSerializer().fields
    body: dict = {}
    for name in SETTINGS_LABELS:
        if name not in post:
            continue
        value = post.get(name, "")
        if value != "":
            body[name] = json_value(value, fields[name])
        elif fields[name].allow_null:
            body[name] = None
    return body


@login_required
@require_http_methods(["GET", "POST"])
def settings_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Change settings and risk limits (the API's PATCH ``settings``). The
    form posts every field (see ``_settings_body``)."""
    subscription = _my(request, pk)
    errors: Errors = {}
    status = 200
    values = _current_settings(subscription)
    if request.method == "POST":
        values = {name: request.POST.get(name, "")[:40] for name in SETTINGS_LABELS}
        data, errors = validated(SettingsSerializer, _settings_body(request.POST))
        status = 400
        if data is not None:
            try:
                services.subscription_settings_update(subscription=subscription, **data)
            except DomainError as exc:
                errors, status = domain_errors(exc), exc.status
            else:
                return _done(request, _card(request, pk), target=f"#copy-{pk}")
    fields = [
        {"name": name, "label": SETTINGS_LABELS[name], "value": values.get(name, "")}
        for name in SETTINGS_LABELS
        if name not in ("sizing_model", "copy_margin", "copy_spot")
    ]
    booleans = [
        {"name": name, "label": SETTINGS_LABELS[name], "value": values.get(name, "")}
        for name in ("copy_margin", "copy_spot")
    ]
    context = {
        "subscription": subscription,
        "errors": errors,
        "values": values,
        "fields": fields,
        "booleans": booleans,
        "sizing_models": SettingsSerializer().fields["sizing_model"].choices,
        "action": reverse("web-copy-settings", args=[pk]),
    }
    return _dialog(request, "web/copies_settings.html", context, status=status, title="Settings")


@login_required
@require_http_methods(["GET", "POST"])
def unfollow_view(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: what unfollowing will do, from the copy's open mirrors, resting
    orders and holdings now. POST: ``subscription_unfollow`` (safe to repeat:
    an ended copy is left as it is)."""
    subscription = _my(request, pk)
    errors: Errors = {}
    status = 200
    if request.method == "POST":
        try:
            done = services.subscription_unfollow(subscription=subscription)
        except DomainError as exc:
            errors, status = domain_errors(exc), exc.status
        else:
            context = _list_context(request)
            context["unfollowed"] = {
                "name": subscription.portfolio.name,
                "returned": done.returned,
                "closed": done.closed_positions,
                "settling": done.settling,
                "already_ended": done.already_ended,
            }
            return _done(request, render(request, "web/copies_list.html", context), target="#copies-list")
    (card,) = copy_cards(request.user, [subscription])
    context = {"c": card, "errors": errors, "action": reverse("web-copy-unfollow", args=[pk])}
    return _dialog(request, "web/copies_unfollow.html", context, status=status, title="Unfollow")


urlpatterns = [
    path("me/copies/", copies_view, name="web-copies"),
    path("me/copies/list/", copies_list_view, name="web-copies-list"),
    path("me/copies/<int:pk>/", copy_card_view, name="web-copy-card"),
    path("me/copies/<int:pk>/pause/", pause_view, name="web-copy-pause"),
    path("me/copies/<int:pk>/resume/", resume_view, name="web-copy-resume"),
    path("me/copies/<int:pk>/top-up/", top_up_view, name="web-copy-top-up"),
    path("me/copies/<int:pk>/withdraw/", withdraw_view, name="web-copy-withdraw"),
    path("me/copies/<int:pk>/settings/", settings_view, name="web-copy-settings"),
    path("me/copies/<int:pk>/unfollow/", unfollow_view, name="web-copy-unfollow"),
    path("me/copies/<int:pk>/positions/<int:position_pk>/close/", close_mirror_view, name="web-copy-close-mirror"),
]
