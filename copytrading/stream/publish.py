"""The writers' side of the stream: after a commit, tell every web process
what changed — one notice with the transaction's marks, one with the
accounts, subscriptions, users or portfolios it touched (copytrading.changes).

Services mode sends through the channel layer to the hubs' group; embedded,
where web, worker and simulator are separate processes and the in-memory
layer cannot cross them, a notice is a row of ``StreamNotice`` the web
process polls (marks it reads from the instruments themselves). Publishing
never fails a commit: an error is logged, and for a few seconds after one the
notices are dropped rather than each waiting for a timeout (the sockets reload
what they show on their next notice; docs/decisions.md §53).
"""

import logging
import time
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from copytrading.changes import Changes

log = logging.getLogger(__name__)

GROUP = "stream.hubs"
BACKOFF_SECONDS = 5.0
# A notice lists at most this many ids of one kind; more are split.
IDS_PER_NOTICE = 2000
_skip_until = 0.0


def uses_layer() -> bool:
    """Notices go through the channel layer (services mode), else the table."""
    return settings.STREAM_TRANSPORT == "layer"


def _send(message: dict) -> None:
    global _skip_until
    if time.monotonic() < _skip_until:
        return
    try:
        if uses_layer():
            async_to_sync(get_channel_layer().group_send)(GROUP, message)
        else:
            from copytrading.models import StreamNotice

            StreamNotice.objects.create(payload=message)
    except Exception:
        _skip_until = time.monotonic() + BACKOFF_SECONDS
        log.exception("stream notice not sent (%s); notices pause for %.0f s", message.get("type"), BACKOFF_SECONDS)


def changes_published(changes: Changes) -> None:
    """A change listener (copytrading.changes.register_change_listener)."""
    parts = {
        "accounts": sorted(changes.accounts),
        "subscriptions": sorted(changes.subscriptions),
        "users": sorted(changes.users),
        "portfolios": sorted(changes.portfolios),
    }
    if changes.marks and uses_layer():  # embedded, the hub reads the marks from the instruments
        marks = [[pk, str(price), at] for pk, (price, at) in sorted(changes.marks.items())]
        _send({"type": "hub.marks", "marks": marks})
    longest = max(len(ids) for ids in parts.values())
    for start in range(0, longest, IDS_PER_NOTICE):
        _send({"type": "hub.changes", **{k: v[start : start + IDS_PER_NOTICE] for k, v in parts.items()}})


def notices_purge(*, older_than: timedelta = timedelta(minutes=2)) -> int:
    """Drop table notices every web process has had time to read."""
    from copytrading.models import StreamNotice

    deleted, _ = StreamNotice.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
