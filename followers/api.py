"""REST endpoints for followers: their subscriptions, mirrors and executions."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading.errors import DomainError
from copytrading.models import Execution, Holding, Position, PositionStatus
from copytrading.serializers import ClosePositionSerializer, ExecutionSerializer, HoldingSerializer, PositionSerializer
from followers import services
from followers.models import Subscription
from followers.selectors import subscriptions_of
from followers.serializers import SubscribeSerializer, SubscriptionSerializer
from portfolios.models import Portfolio


def my_subscription(request, pk) -> Subscription:
    return get_object_or_404(subscriptions_of(request.user), pk=pk)


class SubscriptionListView(APIView):
    @extend_schema(responses=SubscriptionSerializer(many=True))
    def get(self, request):
        return Response(SubscriptionSerializer(subscriptions_of(request.user), many=True).data)

    @extend_schema(request=SubscribeSerializer, responses={201: SubscriptionSerializer})
    def post(self, request):
        s = SubscribeSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = dict(s.validated_data)
        portfolio = Portfolio.objects.filter(pk=data.pop("portfolio")).first()
        if portfolio is None or (not portfolio.is_public and portfolio.leader_id != request.user.pk):
            raise DomainError("NOT_FOUND", "There is no such portfolio.", field="portfolio", status=404)
        subscription = services.subscription_create(follower=request.user, portfolio=portfolio, **data)
        subscription = subscriptions_of(request.user).get(pk=subscription.pk)
        return Response(SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)


class SubscriptionDetailView(APIView):
    @extend_schema(responses=SubscriptionSerializer)
    def get(self, request, pk):
        return Response(SubscriptionSerializer(my_subscription(request, pk)).data)


class SubscriptionPositionListView(APIView):
    @extend_schema(responses=PositionSerializer(many=True))
    def get(self, request, pk):
        subscription = my_subscription(request, pk)
        positions = Position.objects.filter(account_id=subscription.copy_account_id).select_related("instrument")
        wanted = request.query_params.get("status")
        if wanted in PositionStatus.values:
            positions = positions.filter(status=wanted)
        return Response(PositionSerializer(positions.order_by("-id")[:200], many=True).data)


class SubscriptionPositionCloseView(APIView):
    @extend_schema(request=ClosePositionSerializer, responses={200: PositionSerializer})
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
    @extend_schema(responses=HoldingSerializer(many=True))
    def get(self, request, pk):
        subscription = my_subscription(request, pk)
        holdings = Holding.objects.filter(account_id=subscription.copy_account_id, quantity__gt=0)
        return Response(HoldingSerializer(holdings, many=True).data)


class SubscriptionExecutionListView(APIView):
    @extend_schema(responses=ExecutionSerializer(many=True))
    def get(self, request, pk):
        subscription = my_subscription(request, pk)
        rows = Execution.objects.filter(subscription_id=subscription.pk).select_related("event").order_by("-id")
        return Response(ExecutionSerializer(rows[:200], many=True).data)
