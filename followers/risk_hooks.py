"""What the risk watchdog needs of subscriptions (registered in apps.py).

Pauses and resumes are set-based: one locking read and one UPDATE for any
number of subscriptions, with the status checked under the row lock, so two
watchdog workers can never both pause (and then both act on) the same one.

The watchdog watches the active subscriptions and the paused ones whose copy
wallet still holds open exposure (an open position, a spot holding above
zero): pausing stops new copies, not protection. A paused copy with nothing
open has nothing to protect and is left out (it costs a tick nothing); a
resting order carries no PnL, and once it fills the copy is watched again.
"""

from collections.abc import Sequence

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, Value

from copytrading import changes
from copytrading.models import Holding, Position, PositionStatus
from followers.models import Subscription, SubscriptionStatus
from risk.hooks import WatchedSubscription, register_subscription_hooks

_ACTIVE = Q(status=SubscriptionStatus.ACTIVE)


class FollowerRiskHooks:
    def watched_subscription_ids(self) -> list[int]:
        # Two queries: one OR over every subscription is estimated so costly
        # (an EXISTS pair per row) that PostgreSQL JIT-compiles it, which
        # alone costs more than reading 100,000 ids.
        active = Subscription.objects.filter(_ACTIVE).order_by().values_list("pk", flat=True)
        paused = _with_exposure().order_by().values_list("pk", flat=True)
        return sorted([*active, *paused])

    def watched_subscriptions(
        self, first_id: int, last_id: int, only: Sequence[int] | None = None
    ) -> list[WatchedSubscription]:
        rows = _watched_in_range(first_id, last_id)
        if only is not None:
            rows = rows.filter(pk__any=sorted(set(only)))
        return [
            WatchedSubscription(*row)
            for row in rows.annotate(active=_active_flag())
            .order_by("pk")
            .values_list("pk", "copy_account_id", "follower_id", "portfolio__leader_id", "active")
        ]

    def watched_subscriptions_sql(self, first_id: int, last_id: int) -> tuple[str, tuple]:
        # The active ones, then the few paused ones with exposure: as one OR
        # PostgreSQL would hash every open position and holding of the
        # platform to test a handful of paused rows.
        in_range = Q(pk__gte=first_id, pk__lte=last_id)
        active = Subscription.objects.filter(_ACTIVE, in_range).annotate(active=Value(True))
        paused = _with_exposure().filter(in_range).annotate(active=Value(False))
        columns = ("pk", "copy_account_id", "active")
        query = active.order_by().values_list(*columns).union(paused.order_by().values_list(*columns), all=True)
        return query.query.sql_with_params()

    def pause_subscriptions(self, ids: Sequence[int], reason: str) -> list[int]:
        return _switch(ids, SubscriptionStatus.ACTIVE, None, SubscriptionStatus.PAUSED, reason)

    def resume_subscriptions(self, ids: Sequence[int], reason: str) -> list[int]:
        return _switch(ids, SubscriptionStatus.PAUSED, reason, SubscriptionStatus.ACTIVE, "")

    def hold_paused_subscriptions(self, ids: Sequence[int], reason: str, replace: Sequence[str]) -> list[int]:
        if not ids:
            return []
        # Locked in primary-key order like every pause: a follower resuming
        # meanwhile waits, or has already resumed (then it is not held here
        # and the active path judges it on the next tick).
        held = list(
            Subscription.objects.filter(pk__any=sorted(set(ids)), status=SubscriptionStatus.PAUSED)
            .order_by("pk")
            .select_for_update()
            .values_list("pk", flat=True)
        )
        # A watchdog pause becomes this one (a realized-loss pause must not be
        # lifted at midnight once the copy was closed for its unrealized
        # loss); the follower's own pause stays the follower's.
        Subscription.objects.filter(pk__any=held, pause_reason__in=list(replace)).update(pause_reason=reason)
        changes.touch(subscriptions=held)
        return held


def _exposure() -> Q:
    """The copy wallet holds something that can lose money."""
    return Q(
        Exists(Position.objects.filter(account_id=OuterRef("copy_account_id"), status=PositionStatus.OPEN))
        | Exists(Holding.objects.filter(account_id=OuterRef("copy_account_id"), quantity__gt=0))
    )


def _with_exposure():
    """The paused subscriptions whose copy wallet holds open exposure."""
    return Subscription.objects.filter(Q(status=SubscriptionStatus.PAUSED) & _exposure())


def _watched():
    return Subscription.objects.filter(_ACTIVE | (Q(status=SubscriptionStatus.PAUSED) & _exposure()))


def _watched_in_range(first_id: int, last_id: int):
    return _watched().filter(pk__gte=first_id, pk__lte=last_id)


def _active_flag() -> ExpressionWrapper:
    return ExpressionWrapper(_ACTIVE, output_field=BooleanField())


def _switch(ids: Sequence[int], from_status: str, from_reason: str | None, to_status: str, to_reason: str) -> list[int]:
    if not ids:
        return []
    rows = Subscription.objects.filter(pk__any=sorted(set(ids)), status=from_status)
    if from_reason is not None:
        rows = rows.filter(pause_reason=from_reason)
    # Lock in primary-key order, then change exactly the rows still eligible.
    switched = list(rows.order_by("pk").select_for_update().values_list("pk", flat=True))
    Subscription.objects.filter(pk__any=switched).update(status=to_status, pause_reason=to_reason)
    changes.touch(subscriptions=switched)
    return switched


def register() -> None:
    register_subscription_hooks(FollowerRiskHooks())
