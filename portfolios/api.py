"""REST endpoints for leaders (their portfolios) and the public catalog."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading.models import Holding, Order, Position, PositionStatus
from copytrading.serializers import (
    AmountSerializer,
    ClosePositionSerializer,
    HoldingSerializer,
    OrderSerializer,
    PositionSerializer,
)
from portfolios import services
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.serializers import (
    OrderPlaceSerializer,
    PortfolioCreateSerializer,
    PortfolioSerializer,
    TradingAccountSerializer,
)


def my_portfolio(request, pk) -> Portfolio:
    # Object-level ownership: another leader's portfolio is simply not found.
    return get_object_or_404(Portfolio.objects.select_related("trading_account", "leader"), pk=pk, leader=request.user)


def _events_body(events):
    return {"events": [{"id": e.pk, "seq": e.seq, "kind": e.kind, "payload": e.payload} for e in events]}


class PortfolioListView(APIView):
    @extend_schema(responses=PortfolioSerializer(many=True))
    def get(self, request):
        return Response(PortfolioSerializer(Portfolio.objects.filter(leader=request.user), many=True).data)

    @extend_schema(request=PortfolioCreateSerializer, responses={201: PortfolioSerializer})
    def post(self, request):
        s = PortfolioCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        portfolio = services.portfolio_create(leader=request.user, **s.validated_data)
        return Response(PortfolioSerializer(portfolio).data, status=status.HTTP_201_CREATED)


class PortfolioDetailView(APIView):
    @extend_schema(responses=PortfolioSerializer)
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        body = PortfolioSerializer(portfolio).data
        account = portfolio.trading_account
        body["trading_account"] = TradingAccountSerializer(
            {"id": account.pk, "balance": account.balance, "locked": account.locked, "free": account.free}
        ).data
        return Response(body)


class PortfolioFundView(APIView):
    @extend_schema(request=AmountSerializer, responses={201: TradingAccountSerializer})
    def post(self, request, pk):
        portfolio = my_portfolio(request, pk)
        s = AmountSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        _, created = services.portfolio_fund(
            portfolio=portfolio,
            amount=s.validated_data["amount"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        account = portfolio.trading_account
        account.refresh_from_db()
        return Response(
            TradingAccountSerializer(
                {"id": account.pk, "balance": account.balance, "locked": account.locked, "free": account.free}
            ).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class PortfolioOrderView(APIView):
    @extend_schema(responses=OrderSerializer(many=True))
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        orders = Order.objects.filter(account_id=portfolio.trading_account_id).select_related("instrument")
        return Response(OrderSerializer(orders.order_by("-id")[:200], many=True).data)

    @extend_schema(request=OrderPlaceSerializer, responses={201: dict})
    def post(self, request, pk):
        portfolio = my_portfolio(request, pk)
        s = OrderPlaceSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        events = services.portfolio_order_place(
            portfolio=portfolio,
            symbol=data["symbol"],
            side=data["side"],
            quantity=data["quantity"],
            leverage=data["leverage"],
        )
        return Response(_events_body(events), status=status.HTTP_201_CREATED)


class PortfolioPositionListView(APIView):
    @extend_schema(responses=PositionSerializer(many=True))
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        positions = Position.objects.filter(account_id=portfolio.trading_account_id).select_related("instrument")
        wanted = request.query_params.get("status")
        if wanted in PositionStatus.values:
            positions = positions.filter(status=wanted)
        return Response(PositionSerializer(positions.order_by("-id")[:200], many=True).data)


class PortfolioPositionCloseView(APIView):
    @extend_schema(request=ClosePositionSerializer, responses={201: dict})
    def post(self, request, pk, position_pk):
        portfolio = my_portfolio(request, pk)
        s = ClosePositionSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        event = services.portfolio_position_close(
            portfolio=portfolio, position_id=position_pk, quantity=s.validated_data.get("quantity")
        )
        return Response(_events_body([event]), status=status.HTTP_201_CREATED)


class PortfolioHoldingListView(APIView):
    @extend_schema(responses=HoldingSerializer(many=True))
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        holdings = Holding.objects.filter(account_id=portfolio.trading_account_id, quantity__gt=0)
        return Response(HoldingSerializer(holdings, many=True).data)


class CatalogListView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=PortfolioSerializer(many=True))
    def get(self, request):
        portfolios = Portfolio.objects.filter(is_public=True, status=PortfolioStatus.ACTIVE).select_related("leader")
        return Response(PortfolioSerializer(portfolios[:100], many=True).data)
