"""The leaderboard at ``/``: the public catalog as ``GET /api/v1/catalog``
serves it (the same parameters, ``catalog.catalog_query`` to read them and
``cached_catalog_body`` to answer), each row with its equity sparkline, and
the favourite star (``catalog.favorite_add`` / ``favorite_remove``, as
``PUT``/``DELETE /api/v1/favorites/<id>``).

One view, three answers: the whole page; for htmx the board alone (a filter or
the sort changed, ``HX-Target: board``) or the next page's rows (Load more,
``HX-Target: rows``). Without JavaScript the form is a plain GET and Load
more a plain link to the next page."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from copytrading.errors import DomainError, NotFound
from copytrading.web.forms import domain_errors, form_data
from portfolios import catalog, stats
from portfolios.catalog_api import cached_catalog_body, public_portfolio
from portfolios.models import PortfolioMode

PAGE_SIZE = 20  # rows a page shows unless the address asks for another ``limit``
SPARK_DAYS = 60
TABS = (("all", "All"), ("margin", "Margin"), ("spot", "Spot"), ("favorites", "Favourites"))
SORTS = (
    ("-score", "Best score"),
    ("-roi", "Highest ROI"),
    ("roi", "Lowest ROI"),
    ("-pnl", "Highest PnL"),
    ("-win_rate", "Highest win rate"),
    ("-followers", "Most followers"),
    ("newest", "Newest"),
    ("created_at", "Oldest"),
)
MODE_LABELS = dict(PortfolioMode.choices)
# What the reader calls a refused parameter (the API's sentence names it by its parameter).
FIELD_LABELS = {
    "sort": "Sort by",
    "roi_min": "ROI at least",
    "win_rate_min": "Win rate at least",
    "min_investment_max": "Minimum investment up to",
    "profit_share_max": "Profit share up to",
    "has_open_slots": "Has open slots",
    "list": "List",
    "cursor": "Page",
    "limit": "Rows a page",
}


def _url(params: dict[str, str]) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in ("", None)})
    return f"/?{query}" if query else "/"


def _sorts(current: str) -> list[tuple[str, str]]:
    """The sort choices; a sort the address asked for that is not among them
    (the API takes several keys, ``-roi,-pnl``) is shown as it is."""
    if current and current not in dict(SORTS):
        return [*SORTS, (current, current)]
    return list(SORTS)


def _board(request: HttpRequest) -> tuple[dict, int]:
    """What the board shows for this address, and its status (the API's 400
    for a bad filter, with its messages)."""
    params = form_data(request.GET)
    params.setdefault("limit", str(PAGE_SIZE))
    list_name = params.get("list", "all")
    errors: dict = {}
    status = 200
    body: dict = {"results": [], "next_cursor": None}
    needs_login = list_name == "favorites" and not request.user.is_authenticated
    if not needs_login:
        try:
            query = catalog.catalog_query(params)
            body = cached_catalog_body(query, request.user)
        except DomainError as exc:
            errors, status = domain_errors(exc), exc.status
    line = catalog.LIST_LINE.get(list_name, "all")
    curves = stats.equity_curves(portfolio_ids=[item["id"] for item in body["results"]], line=line, points=SPARK_DAYS)
    rows = [
        {**item, "mode_label": MODE_LABELS.get(item["mode"], item["mode"]), "curve": curves.get(item["id"], [])}
        for item in body["results"]
    ]

    # Links keep the filters and the sort; a cursor belongs to one page of one list.
    kept = {k: v for k, v in params.items() if k not in ("cursor", "list")}
    if kept.get("limit") == str(PAGE_SIZE):
        kept.pop("limit")
    tabs = [
        {
            "name": name,
            "label": label,
            "url": _url({**kept, "list": "" if name == "all" else name}),
            "active": name == list_name,
        }
        for name, label in TABS
    ]
    next_url = (
        _url({**kept, "list": "" if list_name == "all" else list_name, "cursor": body["next_cursor"]})
        if body["next_cursor"]
        else None
    )
    form = {
        k: request.GET.get(k, "")[:40] for k in ("roi_min", "win_rate_min", "min_investment_max", "profit_share_max")
    }
    form["has_open_slots"] = params.get("has_open_slots", "").lower() in ("true", "1")
    form["sort"] = request.GET.get("sort", "")[:80] or catalog.DEFAULT_SORT
    context = {
        "rows": rows,
        "errors": errors,
        "error_fields": [(field, FIELD_LABELS.get(field, field)) for field in errors],
        "tabs": tabs,
        "list_name": list_name if list_name in dict(TABS) else "all",
        "needs_login": needs_login,
        "next_url": next_url,
        "form": form,
        "sorts": _sorts(form["sort"]),
        "here": request.get_full_path(),
    }
    return context, status


@require_safe
def leaderboard_view(request: HttpRequest) -> HttpResponse:
    context, status = _board(request)
    htmx = request.htmx
    if htmx and not htmx.history_restore_request and htmx.target == "rows":
        response = render(request, "web/leaderboard_more.html", context, status=status)
    elif htmx and not htmx.history_restore_request and htmx.target == "board":
        response = render(request, "web/leaderboard_board.html", {**context, "oob": True}, status=status)
    else:
        response = render(request, "web/leaderboard.html", context, status=status)
    # The same address answers a page or a fragment: caches must tell them apart.
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next") or "/"
    ok = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return target if ok else "/"


@login_required
@require_POST
def favourite_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark (``is_favorite=true``) or unmark a public portfolio; htmx gets the
    star back, a plain form goes back to the list. Idempotent, as the API's
    PUT and DELETE are: a double click leaves one mark."""
    portfolio = public_portfolio(pk)  # unknown or private: 404, as the API's catalog
    # The API's verb (PUT or DELETE) is this form's one field.
    wanted = {"true": True, "false": False}.get(request.POST.get("is_favorite", ""))
    errors: dict = {"is_favorite": ["is_favorite is true or false."]}
    status = 400
    if wanted is not None:
        try:
            if wanted:
                catalog.favorite_add(user=request.user, portfolio_id=pk)
            else:
                catalog.favorite_remove(user=request.user, portfolio_id=pk)
        except NotFound as exc:
            raise Http404(str(exc.detail)) from exc
        except DomainError as exc:
            errors, status = domain_errors(exc), exc.status
        else:
            errors, status = {}, 200
            if not request.htmx:
                return redirect(_back(request))
    item = {
        "id": pk,
        "name": portfolio.name,
        "is_favorite": pk in catalog.favorite_ids(request.user, [pk]),
    }
    context = {"item": item, "errors": errors, "here": _back(request)}
    return render(request, "web/leaderboard_favourite.html", context, status=status)


urlpatterns = [
    path("", leaderboard_view, name="web-leaderboard"),
    path("favourites/<int:pk>/", favourite_view, name="web-favourite"),
]
