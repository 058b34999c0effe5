"""How ``risk`` reaches subscriptions without importing ``followers``.

``followers`` sits above ``risk`` (it imports risk's limits), so the
watchdog cannot import the Subscription model. Instead ``followers``
registers an implementation of ``SubscriptionHooks`` in its app config
(followers/risk_hooks.py), the way it registers its target source with the
propagation engine.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True, slots=True)
class WatchedSubscription:
    """A watched subscription as the watchdog needs it."""

    subscription_id: int
    account_id: int  # the copy wallet
    follower_id: int
    leader_id: int
    active: bool = True  # False: paused (by anyone), watched for its open exposure


class SubscriptionHooks(Protocol):
    """The watchdog watches every *watched* subscription: the active ones, and
    the paused ones (whoever paused them) whose copy wallet still holds open
    exposure (an open position or a spot holding above zero). Pausing stops
    new copies, not protection. Ended subscriptions are never watched."""

    def watched_subscription_ids(self) -> list[int]:
        """The ids of every watched subscription, ascending."""

    def watched_subscriptions(
        self, first_id: int, last_id: int, only: Sequence[int] | None = None
    ) -> list[WatchedSubscription]:
        """The watched subscriptions with ids in [first_id, last_id] (and in
        ``only``, if given), ascending, in one query."""

    def watched_subscriptions_sql(self, first_id: int, last_id: int) -> tuple[str, tuple]:
        """The same range as a SELECT of (subscription id, copy wallet id,
        active) with its parameters, for the watchdog to embed in its
        screening statement."""

    def pause_subscriptions(self, ids: Sequence[int], reason: str) -> list[int]:
        """Pause those of ``ids`` that are active (row-locked, set-based),
        recording ``reason``; returns the ids it paused."""

    def hold_paused_subscriptions(self, ids: Sequence[int], reason: str, replace: Sequence[str]) -> list[int]:
        """Row-lock those of ``ids`` that are paused (set-based) and return
        their ids; those paused with a reason in ``replace`` (a watchdog
        pause) now say ``reason``, every other reason (the follower's own, a
        staff pause) stays as it is."""

    def resume_subscriptions(self, ids: Sequence[int], reason: str) -> list[int]:
        """Resume those of ``ids`` that are paused with exactly ``reason``;
        returns the ids it resumed."""


_hooks: SubscriptionHooks | None = None


def register_subscription_hooks(hooks: SubscriptionHooks) -> None:
    global _hooks
    _hooks = hooks


def subscription_hooks() -> SubscriptionHooks:
    if _hooks is None:
        raise ImproperlyConfigured("No subscription hooks registered with risk (followers registers them).")
    return _hooks
