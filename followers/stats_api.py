"""A follower's results: PnL, ROI and fees paid per subscription and in total."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from followers.models import Subscription
from portfolios.catalog_serializers import FollowerStatsSerializer
from portfolios.stats import follower_stats


def my_follower_stats(user) -> dict:
    rows = (
        Subscription.objects.filter(follower=user).order_by("pk").values_list("pk", "portfolio_id", "copy_account_id")
    )
    return follower_stats(list(rows))


class FollowerStatsView(APIView):
    @extend_schema(responses=FollowerStatsSerializer)
    def get(self, request):
        return Response(FollowerStatsSerializer(my_follower_stats(request.user)).data)
