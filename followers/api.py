"""REST endpoints for followers: their subscriptions, mirrors and executions."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import idempotency, paging
from copytrading.auth.client import client_address
from copytrading.errors import DomainError
from copytrading.models import Execution, Holding, Order, OrderStatus, Position, PositionStatus
from copytrading.serializers import (
    ClosePositionSerializer,
    ExecutionSerializer,
    HoldingSerializer,
    OrderSerializer,
    PositionSerializer,
)
from followers import services
from followers.models import Subscription
from followers.selectors import commitment_of, risk_views, subscriptions_of
from followers.serializers import (
    CommitmentSerializer,
    MoneyMoveSerializer,
    SettingsSerializer,
    SubscribeSerializer,
    SubscriptionSerializer,
    UnfollowResultSerializer,
)
from portfolios.models import Portfolio
from portfolios.passcodes import passcode_check

POSITION_PARAMETERS = [
    OpenApiParameter("status", str, enum=list(PositionStatus.values), description="only open or closed positions"),
    *paging.PAGE_PARAMETERS,
]
ORDER_PARAMETERS = [
    OpenApiParameter("status", str, enum=list(OrderStatus.values), description="e.g. open: the resting ones"),
    *paging.PAGE_PARAMETERS,
]


def my_subscription(request, pk) -> Subscription:
    return get_object_or_404(subscriptions_of(request.user), pk=pk)


class SubscriptionListView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(SubscriptionSerializer))
    def get(self, request):
        paginator = paging.CursorPagination()
        subscriptions = paginator.paginate_queryset(subscriptions_of(request.user), request, view=self)
        context = {"risk": risk_views([s.pk for s in subscriptions])}
        return paginator.get_paginated_response(SubscriptionSerializer(subscriptions, many=True, context=context).data)

    @extend_schema(
        request=SubscribeSerializer,
        responses={201: SubscriptionSerializer},
        parameters=[idempotency.SCHEMA_PARAMETER],
    )
    def post(self, request):
        s = SubscribeSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = dict(s.validated_data)
        portfolio = Portfolio.objects.filter(pk=data.pop("portfolio")).first()
        if portfolio is None:
            raise DomainError("NOT_FOUND", "There is no such portfolio.", field="portfolio", status=404)
        # A private portfolio is reached by its id and its passcode, checked here,
        # before the Idempotency-Key's transaction: its attempt count commits on
        # its own and its row locks are not held through the subscribe.
        passcode_check(
            user=request.user,
            portfolio=portfolio,
            passcode=data.pop("passcode", None),
            client_address=client_address(request),
        )
        if not idempotency.answer_stored(request):
            services.exchange_binding_check(
                follower=request.user, amount=data["amount"], exchange_account_id=data.get("exchange_account_id")
            )
        return self._open(request, portfolio, data)

    @idempotency.idempotent
    def _open(self, request, portfolio, data):
        subscription = services.subscription_open(follower=request.user, portfolio=portfolio, **data)
        subscription = subscriptions_of(request.user).get(pk=subscription.pk)
        return Response(SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)


class SubscriptionDetailView(APIView):
    @extend_schema(responses=SubscriptionSerializer)
    def get(self, request, pk):
        return Response(SubscriptionSerializer(my_subscription(request, pk)).data)


class SubscriptionPositionListView(APIView):
    @extend_schema(parameters=POSITION_PARAMETERS, responses=paging.page_serializer(PositionSerializer))
    def get(self, request, pk):
        subscription = my_subscription(request, pk)
        positions = Position.objects.filter(account_id=subscription.copy_account_id).select_related("instrument")
        positions = paging.filter_choice(positions, request.query_params, "status", PositionStatus.values)
        return paging.queryset_page(positions, PositionSerializer, request, self)


class SubscriptionPositionCloseView(APIView):
    @extend_schema(request=ClosePositionSerializer, responses={200: PositionSerializer})
    @idempotency.idempotent  # a partial close retried after a timeout would close twice
    def post(self, request, pk, position_pk):
        subscription = my_subscription(request, pk)
        s = ClosePositionSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        done = services.subscription_position_close(
            subscription=subscription, position_id=position_pk, quantity=s.validated_data.get("quantity")
        )
        position = Position.objects.select_related("instrument").get(pk=done.fill.position.pk)
        return Response(PositionSerializer(position).data)


class SubscriptionHoldingListView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(HoldingSerializer))
    def get(self, request, pk):
        subscription = my_subscription(request, pk)
        holdings = Holding.objects.filter(account_id=subscription.copy_account_id, quantity__gt=0)
        # one holding per asset: the keyset
        return paging.queryset_page(holdings, HoldingSerializer, request, self, ordering=("asset",))


class SubscriptionExecutionListView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(ExecutionSerializer))
    def get(self, request, pk):
        subscription = my_subscription(request, pk)
        rows = Execution.objects.filter(subscription_id=subscription.pk).select_related(
            "event", "order__exchange_order"
        )
        return paging.queryset_page(rows, ExecutionSerializer, request, self)


class SubscriptionOrderListView(APIView):
    """The copy wallet's orders, newest first: resting mirror limits (with the
    amount they reserve) and every past mirror order, and the follower's own
    closes (``leader_order`` is null for those and for market mirrors)."""

    @extend_schema(
        parameters=ORDER_PARAMETERS,
        responses=paging.page_serializer(OrderSerializer),
    )
    def get(self, request, pk):
        subscription = my_subscription(request, pk)
        orders = Order.objects.filter(account_id=subscription.copy_account_id).select_related("instrument")
        orders = paging.filter_choice(orders, request.query_params, "status", OrderStatus.values)
        return paging.queryset_page(orders, OrderSerializer, request, self)


def _body(subscription: Subscription) -> dict:
    return SubscriptionSerializer(subscriptions_of(subscription.follower).get(pk=subscription.pk)).data


class SubscriptionSettingsView(APIView):
    """Change settings and risk limits on the fly: the ranges of subscribe,
    a 400 naming the field and the range otherwise."""

    @extend_schema(request=SettingsSerializer, responses=SubscriptionSerializer)
    def patch(self, request, pk):
        subscription = my_subscription(request, pk)
        s = SettingsSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        subscription = services.subscription_settings_update(subscription=subscription, **s.validated_data)
        return Response(_body(subscription))


class _MoneyMoveView(APIView):
    """Money between the main wallet and the copy wallet, by ``move``."""

    move = staticmethod(services.subscription_top_up)

    @extend_schema(request=MoneyMoveSerializer, responses=SubscriptionSerializer)
    @idempotency.idempotent(body_field="idempotency_key")
    def post(self, request, pk):
        subscription = my_subscription(request, pk)
        s = MoneyMoveSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return Response(_body(self.move(subscription=subscription, **s.validated_data)))


class SubscriptionTopUpView(_MoneyMoveView):
    move = staticmethod(services.subscription_top_up)


class SubscriptionWithdrawView(_MoneyMoveView):
    move = staticmethod(services.subscription_withdraw)


class SubscriptionPauseView(APIView):
    @extend_schema(request=None, responses=SubscriptionSerializer)
    def post(self, request, pk):
        subscription = services.subscription_pause(subscription=my_subscription(request, pk))
        return Response(_body(subscription))


class SubscriptionResumeView(APIView):
    @extend_schema(request=None, responses=SubscriptionSerializer)
    def post(self, request, pk):
        subscription = services.subscription_resume(subscription=my_subscription(request, pk))
        return Response(_body(subscription))


class SubscriptionUnfollowView(APIView):
    """Close every mirror, cancel resting orders, return the wallet to main
    and close it. Safe to retry."""

    @extend_schema(request=None, responses=UnfollowResultSerializer)
    def post(self, request, pk):
        done = services.subscription_unfollow(subscription=my_subscription(request, pk))
        body = UnfollowResultSerializer(
            {
                "subscription": subscriptions_of(request.user).get(pk=done.subscription.pk),
                "closed_positions": done.closed_positions,
                "cancelled_orders": done.cancelled_orders,
                "sold_holdings": done.sold_holdings,
                "returned": done.returned,
                "already_ended": done.already_ended,
                "settling": done.settling,
            }
        ).data
        return Response(body)


class SubscriptionSummaryView(APIView):
    """The follower's main wallet and what they have committed across copies."""

    @extend_schema(responses=CommitmentSerializer)
    def get(self, request):
        return Response(CommitmentSerializer(commitment_of(request.user)).data)
