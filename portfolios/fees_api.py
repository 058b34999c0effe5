"""Leader-facing fee endpoints of a portfolio: earnings, withdrawals of the
earned profit share, and their CSV export. Ownership is checked here, where
portfolios are known; the money moves in fees.services."""

import csv

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import paging
from copytrading.errors import DomainError, NotFound
from copytrading.idempotency import idempotent
from fees import selectors, services
from fees.serializers import EarningsSerializer, FeeModelSerializer, WithdrawalCreateSerializer, WithdrawalSerializer
from portfolios.fee_settings import portfolio_fee_model_set
from portfolios.models import Portfolio

CSV_COLUMNS = ["id", "created_at", "portfolio_id", "amount", "requested_amount", "currency"]


def _owned_portfolio_id(request, pk: int) -> int:
    # Another leader's portfolio is simply not found.
    return get_object_or_404(Portfolio.objects.only("pk"), pk=pk, leader=request.user).pk


def staff_reads_earnings(user) -> bool:
    """Back-office staff allowed to read fees (the admin's own permission)
    see the earnings of any portfolio, as its leader would."""
    return user.is_active and user.is_staff and user.has_perm("fees.view_feeaccrual")


def _earnings_portfolio(request, pk: int, *, field: str | None = None) -> tuple[int, int]:
    """(portfolio id, its leader's id) of a portfolio whose earnings the caller
    may read: their own, or any for staff. Otherwise not found (404), naming
    the query parameter ``field`` when the id came from one."""
    portfolios = Portfolio.objects.only("pk", "leader_id")
    if not staff_reads_earnings(request.user):
        portfolios = portfolios.filter(leader=request.user)
    portfolio = portfolios.filter(pk=pk).first() if 0 < pk < 2**63 else None
    if portfolio is None:
        raise NotFound("portfolio", field=field) if field else Http404
    return portfolio.pk, portfolio.leader_id


class LeaderEarningsView(APIView):
    """Profit share the caller earned as a leader, over all their portfolios
    or one (``?portfolio=ID``). Another leader's portfolio is not found (404),
    as on ``portfolios/{id}/earnings``; staff read any portfolio's (its
    leader's figures)."""

    @extend_schema(
        parameters=[OpenApiParameter("portfolio", int, required=False, description="one of your portfolios")],
        responses=EarningsSerializer,
    )
    def get(self, request):
        raw = request.query_params.get("portfolio")
        portfolio_id, leader_id = None, request.user.pk
        if raw not in (None, ""):
            try:
                portfolio_id = int(raw)
            except ValueError:
                raise DomainError("INVALID", "portfolio must be a portfolio id.", field="portfolio") from None
            # Any integer is an id; one that is no portfolio of yours (zero,
            # negative, beyond the column) is simply not found.
            portfolio_id, leader_id = _earnings_portfolio(request, portfolio_id, field="portfolio")
        body = selectors.leader_earnings(leader_id=leader_id, portfolio_id=portfolio_id)
        return Response(EarningsSerializer(body).data)


class PortfolioFeeModelView(APIView):
    """How the portfolio's profit share is measured: per trade (default) or
    above each subscription's high-water mark."""

    def _portfolio(self, request, pk) -> Portfolio:
        fields = ("pk", "fee_model", "profit_share_pct")
        return get_object_or_404(Portfolio.objects.only(*fields), pk=pk, leader=request.user)

    @extend_schema(responses=FeeModelSerializer)
    def get(self, request, pk):
        return Response(FeeModelSerializer(self._portfolio(request, pk)).data)

    @extend_schema(request=FeeModelSerializer, responses=FeeModelSerializer)
    def put(self, request, pk):
        portfolio = self._portfolio(request, pk)
        s = FeeModelSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        portfolio = portfolio_fee_model_set(portfolio=portfolio, fee_model=s.validated_data["fee_model"])
        return Response(FeeModelSerializer(portfolio).data)


class PortfolioEarningsView(APIView):
    """The portfolio's earnings: for its leader, and for staff (any portfolio)."""

    @extend_schema(responses=EarningsSerializer)
    def get(self, request, pk):
        portfolio_id, leader_id = _earnings_portfolio(request, pk)
        body = selectors.leader_earnings(leader_id=leader_id, portfolio_id=portfolio_id)
        return Response(EarningsSerializer(body).data)


class PortfolioWithdrawalListView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(WithdrawalSerializer))
    def get(self, request, pk):
        portfolio_id = _owned_portfolio_id(request, pk)
        paginator = paging.CursorPagination()
        page = paginator.paginate_queryset(
            selectors.withdrawals_of(leader_id=request.user.pk, portfolio_id=portfolio_id), request, view=self
        )
        return paginator.get_paginated_response(WithdrawalSerializer(page, many=True).data)

    @extend_schema(request=WithdrawalCreateSerializer, responses={201: WithdrawalSerializer})
    @idempotent
    def post(self, request, pk):
        portfolio_id = _owned_portfolio_id(request, pk)
        s = WithdrawalCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key") or ""  # its length is checked by @idempotent
        withdrawal = services.leader_withdrawal_create(
            leader=request.user, portfolio_id=portfolio_id, amount=s.validated_data.get("amount"), idempotency_key=key
        )
        return Response(WithdrawalSerializer(withdrawal).data, status=status.HTTP_201_CREATED)


class _Echo:
    """A file-like object whose write returns the line, for streaming csv."""

    def write(self, value: str) -> str:
        return value


class CSVRenderer(BaseRenderer):
    """Lets content negotiation accept ``Accept: text/csv``. The view streams
    its own CSV body; only errors reach a renderer, and they are JSON."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


class PortfolioWithdrawalCsvView(APIView):
    renderer_classes = [CSVRenderer, JSONRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):  # an error: JSON, like every error under /api/
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="One row per withdrawal, newest first")})
    def get(self, request, pk):
        return withdrawals_csv(leader_id=request.user.pk, portfolio_id=_owned_portfolio_id(request, pk))


def withdrawals_csv(*, leader_id: int, portfolio_id: int) -> StreamingHttpResponse:
    """The leader's withdrawals of one portfolio as a streamed CSV, newest
    first: the API's ``withdrawals.csv`` and the money page's download
    (portfolios/web/leader_money.py). The caller has checked ownership."""
    rows = (
        selectors.withdrawals_of(leader_id=leader_id, portfolio_id=portfolio_id)
        .values_list("pk", "created_at", "portfolio_id", "amount", "requested_amount", "currency")
        .iterator()
    )
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(CSV_COLUMNS)
        for pk_, created_at, portfolio, amount, requested, currency in rows:
            yield writer.writerow([pk_, created_at.isoformat(), portfolio, amount, requested, currency])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="portfolio-{portfolio_id}-withdrawals.csv"'
    return response
