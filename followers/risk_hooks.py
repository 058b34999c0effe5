"""What the risk watchdog needs of subscriptions (registered in apps.py).

Pauses and resumes are set-based: one locking read and one UPDATE for any
number of subscriptions, with the status checked under the row lock, so two
watchdog workers can never both pause (and then both act on) the same one.
"""

from collections.abc import Sequence

from followers.models import Subscription, SubscriptionStatus
from risk.hooks import WatchedSubscription, register_subscription_hooks


class FollowerRiskHooks:
    def active_subscription_ids(self) -> list[int]:
        return list(
            Subscription.objects.filter(status=SubscriptionStatus.ACTIVE).order_by("pk").values_list("pk", flat=True)
        )

    def active_subscriptions(
        self, first_id: int, last_id: int, only: Sequence[int] | None = None
    ) -> list[WatchedSubscription]:
        rows = _active_in_range(first_id, last_id)
        if only is not None:
            rows = rows.filter(pk__any=sorted(set(only)))
        return [
            WatchedSubscription(*row)
            for row in rows.order_by("pk").values_list("pk", "copy_account_id", "follower_id", "portfolio__leader_id")
        ]

    def active_subscriptions_sql(self, first_id: int, last_id: int) -> tuple[str, tuple]:
        query = _active_in_range(first_id, last_id).order_by().values_list("pk", "copy_account_id").query
        return query.sql_with_params()

    def pause_subscriptions(self, ids: Sequence[int], reason: str) -> list[int]:
        return _switch(ids, SubscriptionStatus.ACTIVE, None, SubscriptionStatus.PAUSED, reason)

    def resume_subscriptions(self, ids: Sequence[int], reason: str) -> list[int]:
        return _switch(ids, SubscriptionStatus.PAUSED, reason, SubscriptionStatus.ACTIVE, "")


def _active_in_range(first_id: int, last_id: int):
    return Subscription.objects.filter(status=SubscriptionStatus.ACTIVE, pk__gte=first_id, pk__lte=last_id)


def _switch(ids: Sequence[int], from_status: str, from_reason: str | None, to_status: str, to_reason: str) -> list[int]:
    if not ids:
        return []
    rows = Subscription.objects.filter(pk__any=sorted(set(ids)), status=from_status)
    if from_reason is not None:
        rows = rows.filter(pause_reason=from_reason)
    # Lock in primary-key order, then change exactly the rows still eligible.
    switched = list(rows.order_by("pk").select_for_update().values_list("pk", flat=True))
    Subscription.objects.filter(pk__any=switched).update(status=to_status, pause_reason=to_reason)
    return switched


def register() -> None:
    register_subscription_hooks(FollowerRiskHooks())
