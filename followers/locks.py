"""The subscription row lock (the order: copytrading/locks.py)."""

from copytrading.errors import Conflict
from copytrading.locks import for_update
from followers.models import Subscription, SubscriptionStatus


def lock_subscription(subscription_id: int) -> Subscription:
    """The subscription row only, locked. Its portfolio is read, not locked:
    money in and out of a copy, its settings and its pause never wait behind
    the leader's trades, which hold the portfolio row (decisions.md, "Lock
    order"). A portfolio closing meanwhile detaches this copy after it, under
    this same row lock, so nothing a top-up brings in is left behind."""
    return for_update(Subscription.objects.select_related("portfolio").filter(pk=subscription_id)).get()


def lock_live_subscription(subscription_id: int) -> Subscription:
    """The subscription row, locked; refused once it has ended."""
    locked = lock_subscription(subscription_id)
    if locked.status == SubscriptionStatus.ENDED:
        raise Conflict("SUBSCRIPTION_ENDED", "This copy has ended.")
    return locked
