"""What the portfolio lifecycle needs of subscriptions (registered in apps.py):
a closing portfolio's live subscriptions, and detaching one by unfollowing it
(and telling the follower, with the staff's reason if any)."""

from django.db import transaction

from copytrading.notifications.services import Note, notify
from followers.models import Subscription, SubscriptionStatus
from portfolios.lifecycle import CLOSED_BY_STAFF, register_detacher
from portfolios.models import Portfolio


class SubscriptionDetacher:
    def live_subscription_ids(self, portfolio_id: int) -> list[int]:
        rows = Subscription.objects.filter(portfolio_id=portfolio_id).exclude(status=SubscriptionStatus.ENDED)
        return list(rows.order_by("pk").values_list("pk", flat=True))

    @transaction.atomic
    def detach(self, subscription_id: int, reason: str) -> bool:
        from followers.services import subscription_unfollow

        # Unfollow locks the subscription and is a no-op for an ended one, so
        # two detaches of the same subscription end it (and notify) once.
        result = subscription_unfollow(subscription=Subscription(pk=subscription_id), reason=reason, notify=False)
        if result.already_ended:
            return False
        if result.settling:
            # An exchange copy: it ends (and its follower is told) when its closes fill.
            return True
        sub = result.subscription
        name = Portfolio.objects.values_list("name", flat=True).get(pk=sub.portfolio_id)
        staff_reason = reason.partition(": ")[2] if reason.startswith(CLOSED_BY_STAFF) else ""
        body = (
            f"{name} was closed, so your copy ended: {result.closed_positions} position(s) closed, "
            f"{result.cancelled_orders} order(s) cancelled, {result.returned} returned to your main wallet."
        )
        if staff_reason:
            body += f" Reason given by staff: {staff_reason}"
        data = {
            "subscription_id": sub.pk,
            "portfolio_id": sub.portfolio_id,
            "closed_positions": result.closed_positions,
            "cancelled_orders": result.cancelled_orders,
            "sold_holdings": result.sold_holdings,
            "returned": str(result.returned),
            "reason": staff_reason,
            "portfolio": name,
        }
        notify([Note(sub.follower_id, "portfolio_closed", f"portfolio_closed:{sub.pk}", data, body=body)])
        return True


def register() -> None:
    register_detacher(SubscriptionDetacher())
