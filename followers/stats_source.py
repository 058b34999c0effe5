"""What portfolio statistics and ranking read of subscriptions (registered in
apps.py: portfolios sits below followers and never imports it)."""

from collections.abc import Sequence

from django.db.models import QuerySet

from followers.models import Subscription
from followers.selectors import REACHABLE
from portfolios.stats_data import FollowerRow


class SubscriptionFollowers:
    def live_followers(self, portfolio_ids: Sequence[int] | QuerySet) -> list[FollowerRow]:
        rows = (
            Subscription.objects.filter(portfolio_id__in=portfolio_ids, status__in=REACHABLE)
            .order_by("pk")
            .values_list("pk", "portfolio_id", "follower_id", "copy_account_id", "created_at")
        )
        return [FollowerRow(*row) for row in rows]

    def live_copy_accounts(self, portfolio_ids: QuerySet) -> QuerySet:
        return Subscription.objects.filter(portfolio_id__in=portfolio_ids, status__in=REACHABLE).values(
            "copy_account_id"
        )
