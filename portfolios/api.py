"""REST endpoints for leaders (their portfolios) and the public catalog."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import paging
from copytrading.errors import DomainError
from copytrading.idempotency import idempotent
from copytrading.models import Account, Holding, Order, Position, PositionStatus
from copytrading.serializers import (
    AmountSerializer,
    ClosePositionSerializer,
    HoldingSerializer,
    OrderSerializer,
    PositionSerializer,
)
from portfolios import exchange, services
from portfolios.models import Portfolio
from portfolios.serializers import (
    ExchangeBindSerializer,
    ExchangeOrderSentSerializer,
    LeaderEventsSerializer,
    OrderPlaceSerializer,
    OrderRepriceSerializer,
    PortfolioCreateSerializer,
    PortfolioDetailSerializer,
    PortfolioExchangeBindingSerializer,
    PortfolioSerializer,
    PortfolioUpdateSerializer,
    PositionEditSerializer,
    TpslBatchRequestSerializer,
    TpslBatchSerializer,
    TpslItemSerializer,
    TpslSerializer,
    TradingAccountSerializer,
)


def my_portfolio(request, pk) -> Portfolio:
    # Object-level ownership: another leader's portfolio is simply not found.
    return get_object_or_404(Portfolio.objects.select_related("trading_account", "leader"), pk=pk, leader=request.user)


POSITION_PARAMETERS = [
    OpenApiParameter("status", str, enum=list(PositionStatus.values), description="only open or closed positions"),
    *paging.PAGE_PARAMETERS,
]


def _events_body(events):
    return LeaderEventsSerializer({"events": events}).data


class PortfolioListView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(PortfolioSerializer))
    def get(self, request):
        return paging.queryset_page(Portfolio.objects.filter(leader=request.user), PortfolioSerializer, request, self)

    @extend_schema(request=PortfolioCreateSerializer, responses={201: PortfolioSerializer})
    def post(self, request):
        s = PortfolioCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        portfolio = services.portfolio_open(leader=request.user, **s.validated_data)
        return Response(PortfolioSerializer(portfolio).data, status=status.HTTP_201_CREATED)


class PortfolioDetailView(APIView):
    @extend_schema(responses=PortfolioDetailSerializer)
    def get(self, request, pk):
        return Response(PortfolioDetailSerializer(my_portfolio(request, pk)).data)

    @extend_schema(request=PortfolioUpdateSerializer, responses=PortfolioSerializer)
    def patch(self, request, pk):
        portfolio = my_portfolio(request, pk)
        if isinstance(request.data, dict) and "mode" in request.data:
            services.portfolio_update(portfolio=portfolio, mode=request.data["mode"])  # refused: MODE_NOT_EDITABLE
        s = PortfolioUpdateSerializer(data=request.data, partial=True)
        s.is_valid(raise_exception=True)
        portfolio = services.portfolio_update(portfolio=portfolio, **s.validated_data)
        return Response(PortfolioSerializer(portfolio).data)


class PortfolioFundView(APIView):
    @extend_schema(request=AmountSerializer, responses={201: TradingAccountSerializer})
    @idempotent
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


class PortfolioExchangeAccountView(APIView):
    """Bind the portfolio to one of the leader's linked exchange accounts, or unbind it."""

    @staticmethod
    def _binding(portfolio) -> Response:
        account = Account.objects.get(pk=portfolio.trading_account_id)
        body = {
            "portfolio": portfolio.pk,
            "exchange_account_id": account.exchange_account_id,
            "balance": account.balance,
        }
        return Response(PortfolioExchangeBindingSerializer(body).data)

    @extend_schema(request=ExchangeBindSerializer, responses={200: PortfolioExchangeBindingSerializer})
    def post(self, request, pk):
        portfolio = my_portfolio(request, pk)
        s = ExchangeBindSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        portfolio = exchange.portfolio_exchange_bind(
            portfolio=portfolio, exchange_account_id=s.validated_data["exchange_account_id"]
        )
        return self._binding(portfolio)

    @extend_schema(request=None, responses={200: PortfolioExchangeBindingSerializer})
    def delete(self, request, pk):
        return self._binding(exchange.portfolio_exchange_unbind(portfolio=my_portfolio(request, pk)))


class PortfolioOrderView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(OrderSerializer))
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        orders = Order.objects.filter(account_id=portfolio.trading_account_id).select_related("instrument")
        return paging.queryset_page(orders, OrderSerializer, request, self)

    @extend_schema(
        request=OrderPlaceSerializer, responses={201: LeaderEventsSerializer, 202: ExchangeOrderSentSerializer}
    )
    @idempotent
    def post(self, request, pk):
        portfolio = my_portfolio(request, pk)
        if isinstance(request.data, dict) and isinstance(request.data.get("type"), str):
            # An unsupported type is refused first, whatever else the body
            # carries (a TWAP has no single quantity to validate).
            services.check_order_type(request.data["type"].lower())
        s = OrderPlaceSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        placed = services.portfolio_order_submit(
            portfolio=portfolio,
            symbol=data["symbol"],
            side=data["side"],
            quantity=data["quantity"],
            # Only when asked: otherwise an exchange account's own leverage stays.
            leverage=data["leverage"] if "leverage" in request.data else None,
            order_type=data["type"].lower(),
            price=data.get("price"),
            # A retry with the same key sends the same client order id:
            # the exchange refuses a second order.
            token=f"api:{request.user.pk}:{key}" if (key := request.headers.get("Idempotency-Key")) else None,
        )
        if isinstance(placed, exchange.SentOrder):
            return Response(ExchangeOrderSentSerializer(placed).data, status=status.HTTP_202_ACCEPTED)
        events = placed
        return Response(_events_body(events), status=status.HTTP_201_CREATED)


class PortfolioOrderDetailView(APIView):
    """A resting limit order: PATCH re-prices it, DELETE cancels it."""

    @extend_schema(request=OrderRepriceSerializer, responses={200: LeaderEventsSerializer})
    def patch(self, request, pk, order_pk):
        portfolio = my_portfolio(request, pk)
        s = OrderRepriceSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        event = services.portfolio_order_reprice(
            portfolio=portfolio, order_id=order_pk, price=s.validated_data["price"]
        )
        return Response(_events_body([event]))

    @extend_schema(responses={200: LeaderEventsSerializer})
    def delete(self, request, pk, order_pk):
        portfolio = my_portfolio(request, pk)
        event = services.portfolio_order_cancel(portfolio=portfolio, order_id=order_pk)
        return Response(_events_body([event]))


class PortfolioOrderCancelView(APIView):
    @extend_schema(request=None, responses={200: LeaderEventsSerializer})
    def post(self, request, pk, order_pk):
        portfolio = my_portfolio(request, pk)
        event = services.portfolio_order_cancel(portfolio=portfolio, order_id=order_pk)
        return Response(_events_body([event]))


class PortfolioPositionListView(APIView):
    @extend_schema(parameters=POSITION_PARAMETERS, responses=paging.page_serializer(PositionSerializer))
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        positions = Position.objects.filter(account_id=portfolio.trading_account_id).select_related("instrument")
        positions = paging.filter_choice(positions, request.query_params, "status", PositionStatus.values)
        return paging.queryset_page(positions, PositionSerializer, request, self)


class PortfolioPositionCloseView(APIView):
    @extend_schema(request=ClosePositionSerializer, responses={200: LeaderEventsSerializer})
    @idempotent  # a partial close retried after a timeout would close twice
    def post(self, request, pk, position_pk):
        # 200: an action on an existing position (201 is for a new resource; docs/api.md).
        portfolio = my_portfolio(request, pk)
        s = ClosePositionSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        event = services.portfolio_position_close(
            portfolio=portfolio, position_id=position_pk, quantity=s.validated_data.get("quantity")
        )
        return Response(_events_body([event]))


MULTI_LEVEL_KEYS = ("take_profits", "stop_losses", "levels", "tp_levels", "sl_levels")


def _refuse_multi_level(body, prefix: str = "") -> None:
    """One TP and one SL per position: a list of levels is refused outright."""
    if not isinstance(body, dict):
        return
    for key in ("take_profit", "stop_loss"):
        if isinstance(body.get(key), list | dict):
            raise DomainError(
                "MULTI_LEVEL_TPSL_NOT_SUPPORTED",
                "A position has one take-profit and one stop-loss price, not a list of levels.",
                field=f"{prefix}{key}",
            )
    for key in MULTI_LEVEL_KEYS:
        if key in body:
            raise DomainError(
                "MULTI_LEVEL_TPSL_NOT_SUPPORTED",
                "A position has one take-profit and one stop-loss price, not a list of levels.",
                field=f"{prefix}{key}",
            )


def _tpsl_values(body, serializer_class, prefix: str = "") -> dict:
    _refuse_multi_level(body, prefix)
    s = serializer_class(data=body)
    if not s.is_valid():
        name, errors = next(iter(s.errors.items()))
        error = errors[0] if isinstance(errors, list) else errors
        code = str(getattr(error, "code", "invalid")).upper()
        field = None if name == "non_field_errors" else f"{prefix}{name}"
        raise DomainError(code if code.startswith("INVALID") else f"INVALID_{code}", str(error), field=field)
    values = dict(s.validated_data)
    if "take_profit" not in values and "stop_loss" not in values:
        raise DomainError("NOTHING_TO_CHANGE", "Send take_profit and/or stop_loss (null clears one).", field=None)
    return values


class PortfolioPositionTpslView(APIView):
    @extend_schema(request=TpslSerializer, responses={200: LeaderEventsSerializer})
    def post(self, request, pk, position_pk):
        portfolio = my_portfolio(request, pk)
        values = _tpsl_values(request.data, TpslSerializer)
        event = services.portfolio_position_tpsl_set(portfolio=portfolio, position_id=position_pk, **values)
        return Response(_events_body([event]))


class PortfolioPositionTpslBatchView(APIView):
    """TP/SL for several positions at once: all of them or none."""

    @extend_schema(
        request=TpslBatchRequestSerializer,
        responses={200: LeaderEventsSerializer},
        operation_id="v1_portfolios_positions_tpsl_batch",
    )
    def post(self, request, pk):
        portfolio = my_portfolio(request, pk)
        s = TpslBatchSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        items = [
            _tpsl_values(item, TpslItemSerializer, prefix=f"items.{n}.")
            for n, item in enumerate(s.validated_data["items"])
        ]
        events = services.portfolio_positions_tpsl_set(portfolio=portfolio, items=items)
        return Response(_events_body(events))


class PortfolioPositionDetailView(APIView):
    @extend_schema(request=PositionEditSerializer, responses={200: LeaderEventsSerializer})
    def patch(self, request, pk, position_pk):
        """Edit the leader's open position's leverage (not propagated to followers)."""
        portfolio = my_portfolio(request, pk)
        if isinstance(request.data, dict) and "quantity" in request.data:
            raise DomainError(
                "QUANTITY_EDIT_NOT_SUPPORTED",
                "Change a position's size with an order or a (partial) close.",
                field="quantity",
            )
        s = PositionEditSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        event = services.portfolio_position_leverage_set(
            portfolio=portfolio, position_id=position_pk, leverage=s.validated_data["leverage"]
        )
        return Response(_events_body([event]))


class PortfolioHoldingListView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(HoldingSerializer))
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        holdings = Holding.objects.filter(account_id=portfolio.trading_account_id, quantity__gt=0)
        # One holding per asset and account: the asset is the keyset.
        return paging.queryset_page(holdings, HoldingSerializer, request, self, ordering=("asset",))
