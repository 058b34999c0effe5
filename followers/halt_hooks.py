"""The kill switch's notification (copytrading/live): when a halt starts,
every copy it concerns (active or paused, of the halted portfolio or of any
portfolio) gets one ``copying_halted`` notification with the staff's reason,
keyed by the halt, so a replay stores nothing new. Set-based: one query for
the copies, ``notify``'s for the notes."""

from copytrading.live.services import HaltStarted, register_halt_listener
from copytrading.notifications.services import Note, notify
from followers.models import Subscription, SubscriptionStatus


def notify_halt(started: HaltStarted) -> None:
    copies = Subscription.objects.exclude(status=SubscriptionStatus.ENDED)
    if started.portfolio_id is not None:
        copies = copies.filter(portfolio_id=started.portfolio_id)
    scope = "all" if started.portfolio_id is None else f"p{started.portfolio_id}"
    stamp = started.at.isoformat()
    notes = [
        Note(
            follower_id,
            "copying_halted",
            f"halt:{scope}:{stamp}:{pk}",
            {"portfolio_id": portfolio_id, "portfolio": name, "subscription_id": pk, "reason": started.reason},
        )
        for pk, follower_id, portfolio_id, name in copies.order_by("pk").values_list(
            "pk", "follower_id", "portfolio_id", "portfolio__name"
        )
    ]
    notify(notes)


def register() -> None:
    register_halt_listener(notify_halt)
