"""REST endpoints of the public catalog, portfolio statistics and favorites."""

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, status
from rest_framework.fields import DateTimeField
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import live, paging
from copytrading.errors import DomainError
from copytrading.money import CENT, Q8
from copytrading.outages import cache_get, cache_set
from copytrading.replicas import replica_alias
from portfolios import catalog, stats
from portfolios.api import my_portfolio
from portfolios.catalog_serializers import (
    CatalogDetailSerializer,
    CatalogPageSerializer,
    ClosedTradeSerializer,
    FavoriteSerializer,
    PortfolioStatsSerializer,
    ScoreSerializer,
)
from portfolios.models import Portfolio, StatsLine
from portfolios.performance import ClosedTrade
from portfolios.ranking import SCORE_PLACES

drf_datetime = DateTimeField().to_representation


def page_datetime() -> Callable[[datetime], str]:
    """DRF's DateTimeField output in UTC, the API's zone, made once per page:
    DRF looks the zone up per value (a context-local read, a third of an
    item's time). Never the current zone: a client page (the leaderboard)
    reads the same cached body in its reader's zone."""
    return DateTimeField(default_timezone=UTC).to_representation


# A range bound: any decimal (exponent allowed; clamped, see docs/api.md), or empty for none.
RANGE_BOUND = {"type": "string", "pattern": r"^(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)?$"}

CATALOG_PARAMETERS = [
    OpenApiParameter("list", str, enum=list(catalog.LISTS), description="margin / spot / all / favorites"),
    OpenApiParameter("mode", str, description="portfolio mode(s), comma-separated: margin, spot, all"),
    *[
        OpenApiParameter(f"{prefix}_{end}", RANGE_BOUND, description=f"{end}imum {prefix.replace('_', ' ')}")
        for prefix in catalog.RANGES
        for end in ("min", "max")
    ],
    OpenApiParameter("has_open_slots", str, enum=["true", "false", "1", "0"]),
    OpenApiParameter(
        "sort",
        str,
        description="comma-separated keys (score, roi, pnl, followers, win_rate, created_at, newest); '-' descending",
    ),
    *paging.PAGE_PARAMETERS,
]


def _fixed(value: Decimal, places: Decimal) -> str:
    # What DRF's DecimalField renders ("0.00000000", never "0E-8").
    return format(value.quantize(places), "f")


def catalog_item(row: dict, favorite_ids: set[int], datetime_text: Callable[[datetime], str] = drf_datetime) -> dict:
    """One row (a dict of catalog.PAGE_FIELDS) as CatalogItemSerializer shapes
    it, built directly: a page is the hot read of the catalog and DRF's
    per-field machinery was most of its time (the serializer stays the schema,
    and a test holds them equal)."""
    pk = row["portfolio_id"]
    return {
        "id": pk,
        "name": row["portfolio__name"],
        "leader": row["portfolio__leader__username"],
        "description": row["portfolio__description"],
        "mode": row["portfolio__mode"],
        "min_investment": _fixed(row["portfolio__min_investment"], Q8),
        "profit_share_pct": _fixed(row["portfolio__profit_share_pct"], CENT),
        "created_at": datetime_text(row["portfolio__created_at"]),
        "line": row["line"],
        "stats": {
            "pnl": _fixed(row["pnl"], Q8),
            "roi_pct": _fixed(row["roi_pct"], CENT),
            "win_rate_pct": _fixed(row["win_rate_pct"], CENT),
            "trade_count": row["trade_count"],
            "follower_count": row["follower_count"],
            "max_followers": row["max_followers"],
            "max_drawdown_pct": _fixed(row["max_drawdown_pct"], CENT),
            "score": _fixed(row["score"], SCORE_PLACES),
        },
        "open_slots": max(0, row["max_followers"] - row["follower_count"]),
        "is_favorite": pk in favorite_ids,
    }


def catalog_body(page: catalog.CatalogPage) -> dict:
    datetime_text = page_datetime()
    results = [catalog_item(r, page.favorite_ids, datetime_text) for r in page.rows]
    return {"results": results, "next_cursor": page.next_cursor}


def cached_catalog_body(query: catalog.CatalogQuery, user) -> dict:
    """A public page is the same for everybody: it is kept catalog_cache_seconds (live settings)
    (its figures are refreshed every few minutes anyway) and only the reader's
    favorite flags are added to it. The favorites list itself is never cached."""
    ttl = live.current().catalog_cache_seconds
    if query.list == "favorites" or ttl <= 0:
        return catalog_body(catalog.catalog_page(query, user, values=True))
    key = "catalog:v1:" + hashlib.sha256(repr(query).encode()).hexdigest()
    body = cache_get(key)  # a cache error reads the database instead
    if body is None:
        body = catalog_body(catalog.catalog_page(query, None, values=True))
        cache_set(key, body, ttl)
    if user is not None and user.is_authenticated and body["results"]:
        favorites = catalog.favorite_ids(user, [item["id"] for item in body["results"]])
        body = {**body, "results": [{**item, "is_favorite": item["id"] in favorites} for item in body["results"]]}
    return body


def public_portfolio(pk: int) -> Portfolio:
    # Public pages read a replica when there is one (copytrading/replicas.py).
    return get_object_or_404(Portfolio.objects.using(replica_alias()).select_related("leader"), pk=pk, is_public=True)


class CatalogListView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(operation_id="catalog_list", parameters=CATALOG_PARAMETERS, responses=CatalogPageSerializer)
    def get(self, request):
        query = catalog.catalog_query(request.query_params)
        return Response(cached_catalog_body(query, request.user))


class CatalogDetailView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=CatalogDetailSerializer)
    def get(self, request, pk):
        portfolio = public_portfolio(pk)
        context = {
            "stats": stats.portfolio_stats(portfolio_id=portfolio.pk),
            # The reader's own mark, from the primary (they may have set it a moment ago).
            "is_favorite": request.user.is_authenticated
            and portfolio.pk in catalog.favorite_ids(request.user, [portfolio.pk]),
        }
        return Response(CatalogDetailSerializer(portfolio, context=context).data)


class CatalogScoreHistoryView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(ScoreSerializer))
    def get(self, request, pk):
        portfolio = public_portfolio(pk)
        return paging.queryset_page(
            stats.score_rows(portfolio_id=portfolio.pk), ScoreSerializer, request, self, ordering=stats.SCORE_ORDERING
        )


def closed_trades_response(request, portfolio: Portfolio) -> Response:
    """Closed trades of one line, newest first, in the API's cursor pages."""
    line = request.query_params.get("line", StatsLine.MARGIN)
    if line not in (StatsLine.MARGIN, StatsLine.SPOT):
        raise DomainError("INVALID_LINE", "line is margin or spot.", field="line")
    # One scope for the leader's and the public view, one per line.
    paginator = paging.CursorPagination(ordering=("-id",), scope=f"closed-trades:{line}")
    if line == StatsLine.MARGIN:
        rows = paginator.paginate_queryset(stats.closed_margin_trades(portfolio=portfolio), request)
        trades = [ClosedTrade(p.pk, p.closed_at, p.realized_pnl) for p in rows]
    else:
        trades = paginator.paginate_sequence(
            stats.closed_spot_trades(portfolio=portfolio), request, key=lambda t: (-t.ref,)
        )
    return paginator.get_paginated_response(ClosedTradeSerializer(trades, many=True).data)


CLOSED_PARAMETERS = [OpenApiParameter("line", str, enum=["margin", "spot"]), *paging.PAGE_PARAMETERS]
CLOSED_PAGE = paging.page_serializer(ClosedTradeSerializer)


class CatalogClosedTradesView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(parameters=CLOSED_PARAMETERS, responses=CLOSED_PAGE)
    def get(self, request, pk):
        return closed_trades_response(request, public_portfolio(pk))


class PortfolioStatsView(APIView):
    """The leader's own view of a portfolio's statistics (private ones too)."""

    @extend_schema(responses=PortfolioStatsSerializer)
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        return Response(PortfolioStatsSerializer(stats.portfolio_stats(portfolio_id=portfolio.pk)).data)


class PortfolioClosedTradesView(APIView):
    @extend_schema(parameters=CLOSED_PARAMETERS, responses=CLOSED_PAGE)
    def get(self, request, pk):
        return closed_trades_response(request, my_portfolio(request, pk))


class FavoriteListView(APIView):
    @extend_schema(parameters=CATALOG_PARAMETERS[1:], responses=CatalogPageSerializer)
    def get(self, request):
        params = {**request.query_params.dict(), "list": "favorites"}
        return Response(catalog_body(catalog.catalog_page(catalog.catalog_query(params), request.user, values=True)))


class FavoriteDetailView(APIView):
    @extend_schema(request=None, responses={201: FavoriteSerializer, 200: FavoriteSerializer})
    def put(self, request, pk):
        _, created = catalog.favorite_add(user=request.user, portfolio_id=pk)
        return Response(
            FavoriteSerializer({"portfolio": pk, "is_favorite": True}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk):
        catalog.favorite_remove(user=request.user, portfolio_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
