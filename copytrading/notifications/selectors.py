"""Reads of the notifications room. A user's notifications are only ever
read through ``notifications_of``: another user's are simply not there."""

from django.db.models import QuerySet

from copytrading import live
from copytrading.notifications.kinds import KINDS
from copytrading.notifications.models import Notification, NotificationPreference


def notifications_of(user, *, unread: bool | None = None) -> QuerySet[Notification]:
    rows = Notification.objects.filter(user=user, hidden=False)
    if unread is not None:
        rows = rows.filter(read_at__isnull=unread)
    return rows


def unread_count(user) -> int:
    return notifications_of(user, unread=True).count()


def preferences_of(user) -> list[dict]:
    """Every kind with the user's choice or its default."""
    chosen = {
        kind: (in_app, email)
        for kind, in_app, email in NotificationPreference.objects.filter(user=user).values_list(
            "kind", "in_app", "email"
        )
    }
    return [
        {
            "kind": code,
            "severity": k.severity.value,
            "audience": k.audience,
            "in_app": chosen.get(code, (k.in_app, k.email))[0],
            "email": chosen.get(code, (k.in_app, k.email))[1],
            "default_in_app": k.in_app,
            "default_email": k.email,
            # "Trade copied" is sent to no one unless the platform turns it on.
            "enabled": code != "trade_copied" or live.current().notify_trade_copied,
        }
        for code, k in KINDS.items()
    ]
