"""Reads of the followers app."""

from django.db.models import QuerySet

from copytrading.decisions import TargetView
from followers.models import Subscription, SubscriptionStatus

REACHABLE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED)


class SubscriptionTargets:
    """What the propagation engine needs of subscriptions (registered in apps.py)."""

    def subscription_ids(self, portfolio_id: int) -> list[int]:
        return list(
            Subscription.objects.filter(portfolio_id=portfolio_id, status__in=REACHABLE)
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    def load(self, portfolio_id: int, first_id: int, last_id: int) -> list[TargetView]:
        rows = (
            Subscription.objects.filter(
                portfolio_id=portfolio_id, status__in=REACHABLE, pk__gte=first_id, pk__lte=last_id
            )
            .order_by("pk")
            .values_list(
                "pk",
                "copy_account_id",
                "status",
                "sizing_model",
                "multiplier",
                "fixed_notional",
                "risk_factor",
                "leverage_override",
                "copy_margin",
                "copy_spot",
                "slippage_tolerance_pct",
            )
        )
        return [
            TargetView(
                subscription_id=row[0],
                account_id=row[1],
                active=row[2] == SubscriptionStatus.ACTIVE,
                sizing_model=row[3],
                multiplier=row[4],
                fixed_notional=row[5],
                risk_factor=row[6],
                leverage_override=row[7],
                copy_margin=row[8],
                copy_spot=row[9],
                slippage_tolerance_pct=row[10],
            )
            for row in rows
        ]


def subscriptions_of(user) -> QuerySet[Subscription]:
    return Subscription.objects.filter(follower=user).select_related("portfolio", "copy_account")
