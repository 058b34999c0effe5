"""/me/notifications/: the list, live, with mark read and preferences.

It reads and writes exactly what ``/api/v1/notifications*`` does
(copytrading/notifications/api.py): ``selectors.notifications_of`` paged by
the API's own paginator (the same cursors), ``notification_mark_read``,
``notifications_mark_all_read``, and the preferences through the API's
serializer and ``notification_preferences_set``. New notifications arrive
over the stream's ``notifications`` topic (static/web/notifications.js asks
``items/`` for their rows, drawn by the same template as the page's)."""

from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.views.decorators.http import require_GET, require_POST

from copytrading.errors import DomainError
from copytrading.notifications import selectors, services
from copytrading.notifications.api import NotificationPreferencesUpdateSerializer, _unread_filter
from copytrading.notifications.kinds import KINDS
from copytrading.notifications.models import Notification
from copytrading.paging import CursorPagination
from copytrading.web.forms import FORM, Errors, domain_errors, validated

# The API's list view names its cursors' scope: a page's "Load more" cursor
# and the API's next_cursor are the same thing.
CURSOR_SCOPE = "NotificationListView"
PAGE_SIZE = 20
# Ids one live refresh may ask for (a delta carries what arrived in 0.25 s).
MAX_LIVE_IDS = 50

# What each kind is called on the page (the kinds' titles are templates
# with the notification's figures, not names).
KIND_NAMES: dict[str, str] = {
    "subscribed": "A copy started",
    "new_subscriber": "A new follower",
    "unsubscribed": "A copy ended",
    "subscriber_left": "A follower left",
    "trade_copied": "A trade was copied",
    "closed_in_profit": "A copied trade closed in profit",
    "copy_error": "A trade could not be copied",
    "profit_share_credited": "Profit share credited",
    "withdrawal_done": "A withdrawal from a copy",
    "leader_withdrawal_done": "A withdrawal of leader earnings",
    "risk.daily_loss_realized": "Daily loss limit hit (paused)",
    "risk.daily_loss_unrealized": "Daily loss limit hit (positions closed)",
    "risk.margin_call": "Margin-call protection",
    "risk.max_drawdown": "Max drawdown stop",
    "risk.daily_loss_reset": "Copying resumed after the daily reset",
    "risk.follower_daily_loss_limit": "A follower hit their daily loss limit",
    "exchange_drift": "Exchange account differs from the copy",
    "copying_halted": "Copying halted by staff",
    "portfolio_closing": "My portfolio is closing",
    "portfolio_archived": "My portfolio is archived",
    "portfolio_closed": "A copied portfolio closed",
}


def kind_name(code: str) -> str:
    return KIND_NAMES.get(code) or code.replace("_", " ").replace(".", ": ").capitalize()


def target_of(row: Notification) -> str | None:
    """Where a notification's subject is shown: a follower's copy on my
    copies, a leader's portfolio on their dashboard, else the portfolio's
    public page; None when it names neither. The pages are the apps' (by
    URL name, not by import: the core does not import them); without them
    (a project without those apps) there is no link, never an error."""
    data = row.data if isinstance(row.data, Mapping) else {}
    k = KINDS.get(row.kind)
    try:
        if k is not None and k.audience == "leader":
            return reverse("web-leader") if data.get("portfolio_id") or data.get("subscription_id") else None
        if data.get("subscription_id"):
            return reverse("web-copies")
        if isinstance(data.get("portfolio_id"), int):
            return reverse("web-portfolio", args=[data["portfolio_id"]])
    except NoReverseMatch:
        return None
    return None


def _items(rows: Iterable[Notification]) -> list[dict]:
    return [{"row": row, "name": kind_name(row.kind), "target": target_of(row)} for row in rows]


def _page(user, unread: bool | None, cursor: str | None) -> tuple[list[dict], str | None]:
    """One page, newest first, by the API's paginator (a foreign or
    tampered cursor is its 400 INVALID_CURSOR)."""
    paginator = CursorPagination(scope=CURSOR_SCOPE)
    params = {"cursor": cursor, "limit": str(PAGE_SIZE)}
    rows = paginator.paginate_queryset(
        selectors.notifications_of(user, unread=unread), SimpleNamespace(query_params=params)
    )
    return _items(rows), paginator.next_cursor


def _next_url(next_cursor: str | None, unread: bool | None) -> str | None:
    """The "Load more" address: this list, the next cursor (a link that
    works without JavaScript; htmx appends its rows in place)."""
    if next_cursor is None:
        return None
    query = {"cursor": next_cursor} | ({} if unread is None else {"unread": "true" if unread else "false"})
    return f"{reverse('web-notifications')}?{urlencode(query)}"


def _filter_name(unread: bool | None) -> str:
    return {None: "all", True: "unread", False: "read"}[unread]


def _preference_rows(user, chosen: Mapping[str, tuple[bool, bool]] | None = None) -> list[dict]:
    """The form's rows: every kind with the user's choice (or, after a
    refusal, what they had ticked), its human name and its ids."""
    rows = []
    for pref in selectors.preferences_of(user):
        slug = pref["kind"].replace(".", "-").replace("_", "-")
        if chosen is not None:
            pref["in_app"], pref["email"] = chosen.get(pref["kind"], (pref["in_app"], pref["email"]))
        rows.append({**pref, "name": kind_name(pref["kind"]), "slug": slug})
    return rows


def _render_page(
    request: HttpRequest,
    *,
    errors: Errors | None = None,
    chosen: Mapping[str, tuple[bool, bool]] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        unread = _unread_filter(request.GET)
        items, next_cursor = _page(request.user, unread, request.GET.get("cursor"))
    except DomainError as exc:
        # A bad filter or cursor in the address: the first page of all, the message above it.
        errors = {**(errors or {}), FORM: [exc.detail]}
        unread, status = None, max(status, exc.status)
        items, next_cursor = _page(request.user, None, None)
    context = {
        "items": items,
        "next_url": _next_url(next_cursor, unread),
        "filter": _filter_name(unread),
        "unread_total": selectors.unread_count(request.user),
        "newest_id": selectors.notifications_of(request.user).order_by("-id").values_list("id", flat=True).first() or 0,
        "preferences": _preference_rows(request.user, chosen),
        "errors": errors or {},
    }
    return render(request, "web/notifications.html", context, status=status)


@login_required
@require_GET
def notifications_view(request: HttpRequest) -> HttpResponse:
    """The page; with htmx and a cursor, the next page's rows and a new
    "Load more" (the API's cursor paging)."""
    if request.htmx and request.GET.get("cursor"):
        try:
            unread = _unread_filter(request.GET)
            items, next_cursor = _page(request.user, unread, request.GET.get("cursor"))
        except DomainError as exc:
            return render(
                request,
                "web/notifications_more.html",
                {"items": [], "errors": domain_errors(exc)},
                status=exc.status,
            )
        context = {"items": items, "next_url": _next_url(next_cursor, unread), "errors": {}}
        return render(request, "web/notifications_more.html", context)
    return _render_page(request)


@login_required
@require_GET
def notification_items_view(request: HttpRequest) -> HttpResponse:
    """The rows of notifications the stream just announced (``?ids=3,4``),
    drawn like the page's; another user's or a hidden one is simply absent."""
    raw = [part for part in request.GET.get("ids", "").split(",") if part]
    if (
        not raw
        or len(raw) > MAX_LIVE_IDS
        or not all(part.isascii() and part.isdigit() and len(part) < 19 for part in raw)
    ):
        return HttpResponse(f"ids is 1 to {MAX_LIVE_IDS} notification ids, comma-separated.", status=400)
    rows = selectors.notifications_of(request.user).filter(pk__in=[int(p) for p in raw]).order_by("-id")
    return render(request, "web/notifications_items.html", {"items": _items(rows)})


@login_required
@require_POST
def notification_read_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark one read (``services.notification_mark_read``, as the API): htmx
    gets the row again and the unread counts; another user's is 404."""
    try:
        row = services.notification_mark_read(user=request.user, notification_id=pk)
    except DomainError as exc:
        template = "web/notifications_gone_row.html" if request.htmx else "web/notifications_gone.html"
        return render(request, template, {"message": exc.detail}, status=exc.status)
    if not request.htmx:
        return redirect(_back(request))
    context = {"item": _items([row])[0], "unread_total": selectors.unread_count(request.user), "counts_oob": True}
    return render(request, "web/notifications_read.html", context)


@login_required
@require_POST
def notifications_read_all_view(request: HttpRequest) -> HttpResponse:
    """Mark every one read (``services.notifications_mark_all_read``); a
    second click marks nothing and says so."""
    marked = services.notifications_mark_all_read(user=request.user)
    if marked:
        messages.success(request, f"Marked {marked} notification{'s' if marked != 1 else ''} read.")
    else:
        messages.info(request, "Nothing was unread.")
    return redirect(_back(request))


@login_required
@require_POST
def notification_preferences_view(request: HttpRequest) -> HttpResponse:
    """The form's choices as the API's PUT body (its serializer, then
    ``notification_preferences_set``): every kind the form lists, in-app and
    e-mail ticked or not. A refusal (an unknown kind) changes nothing and is
    said above the form."""
    kinds = request.POST.getlist("kind")
    in_app, email = set(request.POST.getlist("in_app")), set(request.POST.getlist("email"))
    body = {"preferences": [{"kind": k, "in_app": k in in_app, "email": k in email} for k in kinds]}
    chosen = {k: (k in in_app, k in email) for k in kinds}
    data, errors = validated(NotificationPreferencesUpdateSerializer, body)
    if data is not None:
        try:
            services.notification_preferences_set(
                user=request.user, choices=[(p["kind"], p["in_app"], p["email"]) for p in data["preferences"]]
            )
        except DomainError as exc:
            errors = domain_errors(exc)
            return _render_page(request, errors=_preference_errors(errors), chosen=chosen, status=exc.status)
        messages.success(request, "Preferences saved.")
        return redirect(f"{reverse('web-notifications')}#preferences")
    return _render_page(request, errors=_preference_errors(errors), chosen=chosen, status=400)


def _preference_errors(errors: Errors) -> Errors:
    """The form is one table: every refusal ("kind", "preferences.kind"...)
    is said above it, under ``preferences``."""
    said = [message for messages_ in errors.values() for message in messages_]
    return {"preferences": said}


def _back(request: HttpRequest) -> str:
    """Back to the list the reader was on (only this page's filters)."""
    unread = request.POST.get("unread")
    base = reverse("web-notifications")
    return f"{base}?unread={unread}" if unread in ("true", "false") else base


urlpatterns = [
    path("me/notifications/", notifications_view, name="web-notifications"),
    path("me/notifications/items/", notification_items_view, name="web-notification-items"),
    path("me/notifications/<int:pk>/read/", notification_read_view, name="web-notification-read"),
    path("me/notifications/read-all/", notifications_read_all_view, name="web-notifications-read-all"),
    path("me/notifications/preferences/", notification_preferences_view, name="web-notification-preferences"),
]
