"""Follower-facing fee statistics of a subscription (ownership checked here)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from fees import selectors
from fees.serializers import SubscriptionFeesSerializer
from followers.api import my_subscription


class SubscriptionFeesView(APIView):
    """Profit share paid by this subscription: total, per day, week and month."""

    @extend_schema(responses=SubscriptionFeesSerializer)
    def get(self, request, pk):
        subscription = my_subscription(request, pk)
        return Response(
            SubscriptionFeesSerializer(selectors.subscription_fee_stats(subscription_id=subscription.pk)).data
        )
