"""The writers' side of the stream: after a commit, tell every web process
what changed — one notice with the transaction's marks, one with the
accounts, subscriptions, users or portfolios it touched (copytrading.changes).

Services mode sends through the channel layer to the hubs' group; embedded,
where web, worker and simulator are separate processes and the in-memory
layer cannot cross them, a notice is a row of ``StreamNotice`` the web
process polls (marks it reads from the instruments themselves). Publishing
never fails or slows a commit: layer sends are queued to a sender thread; an
error is logged, notices are dropped for a few seconds, and the hubs are then
told to re-read everything (docs/decisions.md §53).
"""

import asyncio
import logging
import os
import queue
import threading
import time
from datetime import timedelta

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
    if uses_layer():
        _sender.put(message)
        return
    global _skip_until
    if time.monotonic() < _skip_until:
        return
    try:
        from copytrading.models import StreamNotice

        StreamNotice.objects.create(payload=message)
    except Exception:
        _skip_until = time.monotonic() + BACKOFF_SECONDS
        log.exception("stream notice not stored; notices pause for %.0f s", BACKOFF_SECONDS)


class _Sender:
    """Sends notices to the layer from a thread of its own, with one event
    loop and its connections kept, so a commit only queues (a send through
    ``async_to_sync`` costs a new loop and connection: about 5 ms, per
    fan-out chunk). Bounded: when the queue is full the notice is dropped and
    the hubs are told to re-read everything once the queue drains."""

    MAX_QUEUED = 10_000

    def __init__(self) -> None:
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=self.MAX_QUEUED)
        self._pid = 0
        self._lock = threading.Lock()
        self._overflowed = False

    def put(self, message: dict) -> None:
        if self._pid != os.getpid():  # first use in this process (or a forked child)
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue.Queue(maxsize=self.MAX_QUEUED)
                    threading.Thread(target=self._run, name="stream-notices", daemon=True).start()
                    self._pid = os.getpid()
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._overflowed = True

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        layer = get_channel_layer()
        while True:
            message = self._queue.get()
            try:
                loop.run_until_complete(layer.group_send(GROUP, message))
                if self._overflowed and self._queue.empty():
                    self._overflowed = False
                    loop.run_until_complete(layer.group_send(GROUP, {"type": "hub.reload"}))
            except Exception:
                log.exception("stream notice not sent (%s); dropping for %.0f s", message.get("type"), BACKOFF_SECONDS)
                self._overflowed = True  # the hubs re-read once sending works again
                time.sleep(BACKOFF_SECONDS)
                self._discard_queued()
            finally:
                self._queue.task_done()

    def _discard_queued(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
            self._queue.task_done()


_sender = _Sender()


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
