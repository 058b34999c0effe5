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
            )
        )
        return [
            TargetView(
                subscription_id=pk,
                account_id=account_id,
                active=status == SubscriptionStatus.ACTIVE,
                sizing_model=model,
                multiplier=multiplier,
                fixed_notional=fixed_notional,
                risk_factor=risk_factor,
                leverage_override=leverage_override,
                copy_margin=copy_margin,
                copy_spot=copy_spot,
            )
            for pk, account_id, status, model, multiplier, fixed_notional, risk_factor, leverage_override, copy_margin, copy_spot in rows
        ]


def subscriptions_of(user) -> QuerySet[Subscription]:
    return Subscription.objects.filter(follower=user).select_related("portfolio", "copy_account")
