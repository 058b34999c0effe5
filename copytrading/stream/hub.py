"""One hub per web process: it receives the notices (marks and changes),
holds every stream of every socket of the process, and sends each socket one
frame per flush with whatever its streams have to say.

- A mark updates ``hub.marks`` and marks dirty the streams that value that
  instrument: nothing is read, the next flush values them in memory.
- A change notice finds the streams whose keys it names (account,
  subscription, user, portfolio); they re-read in a worker thread, then are
  dirty.
- A flush runs a moment after the first dirty mark, and at most once per
  ``STREAM_FLUSH_SECONDS``: ticks in between coalesce (a state topic sends a
  row's latest value once). Each message gets the stream's next sequence
  number and goes into the stream's short buffer, from which a client that
  reconnects with its last number gets what it missed.
- Every second: pings, the slow-client check (a pong overdue by more than
  ``STREAM_MAX_LAG_SECONDS`` closes the socket with 4008) and the end of
  streams whose socket closed more than ``STREAM_RESUME_SECONDS`` ago (until
  then they keep buffering, so a resume misses nothing).
"""

import asyncio
import logging
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from copytrading.stream import protocol, publish
from copytrading.stream.protocol import ProtocolError
from copytrading.stream.topics import Key, Marks, Topic, topic_for

log = logging.getLogger(__name__)

NOTICE_FIELDS = (
    ("account", "accounts"),
    ("subscription", "subscriptions"),
    ("user", "users"),
    ("portfolio", "portfolios"),
)
FIRST_FLUSH_DELAY = 0.02
FRAMES_PER_YIELD = 64  # lets the marks of one commit arrive before the frame goes


class Socket(Protocol):
    user_id: int

    async def send_frame(self, text: str) -> None: ...

    async def close_with(self, code: int) -> None: ...


class Feed:
    """One topic and the streams that show it (several when it is shared:
    the sockets of one user on ``copies``, every socket on the same prices)."""

    __slots__ = ("key", "streams", "topic")

    def __init__(self, topic: Topic, key: Hashable | None) -> None:
        self.topic = topic
        self.key = key
        self.streams: set[Stream] = set()


class Stream:
    """One socket's subscription to a feed: its id, its sequence numbers and
    the short buffer of its last messages (already encoded) for a resume."""

    __slots__ = ("buffer", "detached_at", "feed", "id", "seq", "socket", "user_id")

    def __init__(self, user_id: int, feed: Feed, socket: Socket) -> None:
        self.id = secrets.token_urlsafe(12)
        self.user_id = user_id
        self.feed = feed
        self.seq = 0
        self.buffer: deque[tuple[int, str]] = deque(maxlen=settings.STREAM_BUFFER)
        self.socket: Socket | None = socket
        self.detached_at = 0.0

    @property
    def name(self) -> str:
        return self.feed.topic.name

    def message(self, kind: str, data_json: str) -> str:
        """The next message, encoded (the data is encoded once per feed)."""
        self.seq += 1
        text = (
            f'{{"topic":{protocol.encode(self.name)},"stream":"{self.id}","seq":{self.seq},'
            f'"type":"{kind}","data":{data_json}}}'
        )
        self.buffer.append((self.seq, text))
        return text


class SocketState:
    __slots__ = ("ping_sent_at", "ping_t", "pong_due_since", "streams")

    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}  # by topic name
        self.ping_sent_at = time.monotonic()
        self.ping_t = 0  # the last ping's nonce: only a pong echoing it counts
        self.pong_due_since: float | None = None


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.marks = Marks()
        self.sockets: dict[Socket, SocketState] = {}
        self._per_user: dict[int, int] = {}
        self.streams: dict[str, Stream] = {}
        self.shared: dict[Hashable, Feed] = {}
        self.by_instrument: dict[int, set[Feed]] = defaultdict(set)
        self.by_key: dict[Key, set[Feed]] = defaultdict(set)
        self.dirty: set[Feed] = set()
        self.to_reload: set[Feed] = set()
        self._flush_at: float | None = None
        self._last_flush = 0.0
        self._reloading = False
        self._tasks: list[asyncio.Task] = []
        self.notices = 0  # received, for tests
        self.change_notices = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        source = self._layer_source() if publish.uses_layer() else self._polling_source()
        self._tasks = [self.loop.create_task(source), self.loop.create_task(self._housekeeping())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # A task inside a database call ends when the call returns (a thread
            # cannot be interrupted): it is not waited for longer than this.
            await asyncio.wait(self._tasks, timeout=5)

    def user_socket_count(self, user_id: int) -> int:
        return self._per_user.get(user_id, 0)

    def attach(self, socket: Socket) -> None:
        self.sockets[socket] = SocketState()
        self._per_user[socket.user_id] = self._per_user.get(socket.user_id, 0) + 1

    def detach(self, socket: Socket) -> None:
        """The socket closed: its streams stay (buffering) for a resume."""
        state = self.sockets.pop(socket, None)
        if state is None:
            return
        left = self._per_user.pop(socket.user_id, 1) - 1
        if left:
            self._per_user[socket.user_id] = left
        now = time.monotonic()
        for stream in state.streams.values():
            stream.socket, stream.detached_at = None, now

    def pong(self, socket: Socket, t: object) -> None:
        """A pong counts only when it echoes the last ping's ``t``: a client
        that does not read its frames cannot know it."""
        state = self.sockets.get(socket)
        if state is not None and state.ping_t and t == state.ping_t:
            state.pong_due_since = None

    # --- subscribe and unsubscribe -----------------------------------------------------

    async def subscribe(self, socket: Socket, message: Mapping) -> None:
        topic = topic_for(socket.user_id, message.get("topic"), message)  # ProtocolError for a bad one
        state = self.sockets[socket]
        resumed = self._resumable(socket, topic, message.get("resume"))
        if resumed is not None:
            stream, since = resumed
            self._drop(state.streams.pop(topic.name, None))
            state.streams[topic.name] = stream
            stream.socket = socket
            missed = [text for seq, text in stream.buffer if seq > since]
            await socket.send_frame(_frame(missed or [_resumed(stream)]))
            return
        key = topic.share_key()
        feed = self.shared.get(key) if key is not None else None
        if feed is None:
            changes_before = self.change_notices
            data = await database_sync_to_async(topic.read)(True)  # a failure leaves the old stream as it was
            if socket not in self.sockets:  # closed meanwhile
                return
            feed = self.shared.get(key) if key is not None else None  # made meanwhile by another socket
            if feed is None:
                self._start_marks(topic.apply(data, True))
                feed = Feed(topic, key)
                if key is not None:
                    self.shared[key] = feed
                self._index(feed)
                snapshot = topic.snapshot(self.marks)
                if self.change_notices != changes_before:
                    self._reload_later({feed})  # a change may have committed after the read
            else:
                snapshot = feed.topic.join_snapshot(self.marks)
        else:
            snapshot = feed.topic.join_snapshot(self.marks)
        stream = Stream(socket.user_id, feed, socket)
        feed.streams.add(stream)
        # The stream it replaces goes only now: a refused or failed subscribe
        # keeps it, and a feed both share is not ended in between.
        self._drop(state.streams.pop(topic.name, None))
        state.streams[topic.name] = stream
        self.streams[stream.id] = stream
        await socket.send_frame(_frame([stream.message("snapshot", protocol.encode(snapshot))]))

    def unsubscribe(self, socket: Socket, name: object) -> bool:
        state = self.sockets.get(socket)
        stream = state.streams.pop(name, None) if state is not None and isinstance(name, str) else None
        self._drop(stream)
        return stream is not None

    def _resumable(self, socket: Socket, topic: Topic, resume: object) -> tuple[Stream, int] | None:
        """The stream to resume and the last number the client had, or None
        (then the client gets a fresh snapshot on a new stream)."""
        if not isinstance(resume, Mapping):
            return None
        stream = self.streams.get(resume.get("stream")) if isinstance(resume.get("stream"), str) else None
        since = resume.get("seq")
        if (
            stream is None
            or stream.user_id != socket.user_id
            or stream.name != topic.name
            or stream.feed.key != topic.share_key()  # e.g. prices of other instruments
            or stream.socket is not None
            or not isinstance(since, int)
            or isinstance(since, bool)
            or not 0 <= since <= stream.seq
        ):
            return None
        if stream.buffer and stream.buffer[0][0] > since + 1:
            return None  # what it missed is no longer buffered
        if not stream.buffer and since < stream.seq:
            return None
        return stream, since

    def _index(self, feed: Feed) -> None:
        for instrument in feed.topic.instruments():
            self.by_instrument[instrument].add(feed)
        for key in feed.topic.watch_keys():
            self.by_key[key].add(feed)

    def _unindex(self, feed: Feed, instruments: set[int], keys: set[Key]) -> None:
        for index, names in ((self.by_instrument, instruments), (self.by_key, keys)):
            for name in names:
                feeds = index.get(name)
                if feeds is not None:
                    feeds.discard(feed)
                    if not feeds:
                        del index[name]

    def _drop(self, stream: Stream | None) -> None:
        if stream is None:
            return
        self.streams.pop(stream.id, None)
        feed = stream.feed
        feed.streams.discard(stream)
        if not feed.streams:  # the last one: the feed goes
            self._unindex(feed, feed.topic.instruments(), feed.topic.watch_keys())
            if feed.key is not None and self.shared.get(feed.key) is feed:
                del self.shared[feed.key]
            self.dirty.discard(feed)
            self.to_reload.discard(feed)

    def _start_marks(self, marks: Mapping[int, tuple[Decimal, float]]) -> None:
        for instrument, (price, at) in marks.items():
            if at >= self.marks.at.get(instrument, 0.0):
                self.marks[instrument], self.marks.at[instrument] = price, at

    def _live(self, feed: Feed) -> bool:
        return bool(feed.streams)

    # --- notices -----------------------------------------------------------------------

    def on_mark(self, instrument: int, price: Decimal, at: float) -> None:
        self.notices += 1
        if at < self.marks.at.get(instrument, 0.0):
            return  # an older mark arriving late
        self.marks[instrument], self.marks.at[instrument] = price, at
        feeds = self.by_instrument.get(instrument)
        if feeds:
            self.dirty.update(feeds)
            self._schedule_flush()

    def on_changes(self, notice: Mapping) -> None:
        self.notices += 1
        self.change_notices += 1
        found: set[Feed] = set()
        for kind, field in NOTICE_FIELDS:
            for pk in notice.get(field, ()):
                feeds = self.by_key.get((kind, pk))
                if feeds:
                    found.update(feeds)
        if found:
            self._reload_later(found)

    def reload_all(self) -> None:
        """After notices may have been lost (the layer was down): every feed re-reads."""
        self._reload_later({stream.feed for stream in self.streams.values()})

    def _reload_later(self, feeds: set[Feed]) -> None:
        self.to_reload.update(feeds)
        if self.to_reload and not self._reloading:
            self._reloading = True
            self.loop.create_task(self._reload())

    async def _reload(self) -> None:
        batch: list[Feed] = []
        try:
            while self.to_reload:
                batch, self.to_reload = list(self.to_reload), set()
                results = await database_sync_to_async(_read_all)(batch)
                for feed, data in results:
                    if not self._live(feed):
                        continue  # dropped meanwhile
                    if isinstance(data, BaseException):
                        log.warning("stream feed %s not reloaded: %r", feed.topic.name, data)
                        continue
                    topic = feed.topic
                    instruments, keys = topic.instruments(), topic.watch_keys()
                    self._start_marks(topic.apply(data, False))
                    if instruments != topic.instruments() or keys != topic.watch_keys():
                        self._unindex(feed, instruments, keys)
                        self._index(feed)
                    self.dirty.add(feed)
                self._schedule_flush()
        except Exception:
            log.exception("stream reload failed; retrying in 1 s")
            self.to_reload.update(feed for feed in batch if self._live(feed))
            self.loop.call_later(1, self._reload_later, set())
        finally:
            self._reloading = False

    # --- flushing ------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_at is not None or not self.dirty:
            return
        delay = max(FIRST_FLUSH_DELAY, self._last_flush + settings.STREAM_FLUSH_SECONDS - time.monotonic())
        self._flush_at = time.monotonic() + delay
        self.loop.call_later(delay, lambda: self.loop.create_task(self.flush()))

    async def flush(self) -> None:
        """Send every dirty feed's delta to its streams, one frame per socket.
        A feed's delta is computed and encoded once, whatever its streams."""
        self._flush_at = None
        self._last_flush = time.monotonic()
        dirty, self.dirty = self.dirty, set()
        frames: dict[Socket, list[str]] = defaultdict(list)
        for feed in dirty:
            if not self._live(feed):
                continue
            try:
                data = feed.topic.delta(self.marks)
            except Exception:
                log.exception("stream feed %s: delta failed", feed.topic.name)
                continue
            if data is None:
                continue
            data_json = protocol.encode(data)
            for stream in feed.streams:
                text = stream.message("delta", data_json)
                if stream.socket is not None:
                    frames[stream.socket].append(text)
        for n, (socket, texts) in enumerate(frames.items(), 1):
            if socket in self.sockets:
                try:
                    await socket.send_frame(_frame(texts))
                except Exception:
                    log.warning("stream frame not sent", exc_info=True)
            if n % FRAMES_PER_YIELD == 0:
                # Let the server write what is queued: frames reach the first
                # sockets while the last are still being encoded.
                await asyncio.sleep(0)
        self._schedule_flush()  # what became dirty while sending

    # --- housekeeping --------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1)
            try:
                await self._tend()
            except Exception:
                log.exception("stream housekeeping failed")

    async def _tend(self) -> None:
        now = time.monotonic()
        for socket, state in list(self.sockets.items()):
            if state.pong_due_since is not None and now - state.pong_due_since > settings.STREAM_MAX_LAG_SECONDS:
                self.detach(socket)
                await socket.close_with(protocol.CLOSE_TOO_SLOW)
                continue
            if now - state.ping_sent_at >= settings.STREAM_PING_SECONDS:
                state.ping_sent_at = now
                if state.pong_due_since is None:
                    state.pong_due_since = now
                # Milliseconds and a random part: unguessable, so a pong proves the ping was read.
                state.ping_t = int(time.time() * 1000) * 1000 + secrets.randbelow(1000)
                await socket.send_frame(protocol.frame([{"type": "ping", "t": state.ping_t}]))
        expired = [
            s
            for s in self.streams.values()
            if s.socket is None and now - s.detached_at > settings.STREAM_RESUME_SECONDS
        ]
        for stream in expired:
            self._drop(stream)

    # --- sources -------------------------------------------------------------------------

    def dispatch(self, message: Mapping) -> None:
        kind = message.get("type")
        if kind == "hub.marks":
            for instrument, price, at in message["marks"]:
                self.on_mark(int(instrument), Decimal(price), float(at))
        elif kind == "hub.changes":
            self.on_changes(message)
        elif kind == "hub.reload":
            self.reload_all()

    async def _layer_source(self) -> None:
        """Services mode: the hubs' group on the channel layer."""
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        channel, joined_at, failing = None, None, False
        while True:
            try:
                if channel is None:
                    channel = await layer.new_channel("stream.hub.")
                if joined_at is None or time.monotonic() - joined_at > 3600:  # a group forgets members after a day
                    await layer.group_add(publish.GROUP, channel)
                    joined_at = time.monotonic()
                message = await layer.receive(channel)
                if failing:
                    failing = False
                    self.reload_all()  # notices may have been lost meanwhile
                self.dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failing:
                    log.warning("stream hub: channel layer failing; retrying", exc_info=True)
                failing, joined_at = True, None
                await asyncio.sleep(1)

    async def _polling_source(self) -> None:
        """Embedded: the notice table and the instruments' marks."""
        last_notice, seen = await database_sync_to_async(_poll_start)()
        purged_at = time.monotonic()
        while True:
            await asyncio.sleep(settings.STREAM_POLL_SECONDS)
            if time.monotonic() - purged_at > 60:
                purged_at = time.monotonic()
                try:
                    await database_sync_to_async(publish.notices_purge)()
                except Exception:
                    log.warning("stream hub: purging notices failed", exc_info=True)
            try:
                notices, marks, last_notice = await database_sync_to_async(_poll)(last_notice, seen)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("stream hub: polling failed", exc_info=True)
                continue
            for instrument, price, at in marks:
                self.on_mark(instrument, price, at)
            for notice in notices:
                self.dispatch(notice)


def _read_all(feeds: list[Feed]) -> list[tuple[Feed, object]]:
    out = []
    for feed in feeds:
        try:
            out.append((feed, feed.topic.read(False)))
        except Exception as exc:  # noqa: BLE001  (one topic's failure is not the others')
            out.append((feed, exc))
    return out


def _frame(texts: list[str]) -> str:
    return "[" + ",".join(texts) + "]"


def _resumed(stream: Stream) -> str:
    """A resume with nothing missed: the client learns its stream goes on."""
    return (
        f'{{"topic":{protocol.encode(stream.name)},"stream":"{stream.id}","seq":{stream.seq},'
        f'"type":"resumed","data":{{}}}}'
    )


def _poll_start() -> tuple[int, dict[int, float]]:
    from django.db.models import Max

    from copytrading.models import Instrument, StreamNotice

    last = StreamNotice.objects.aggregate(m=Max("pk"))["m"] or 0
    seen = {
        pk: at.timestamp()
        for pk, at in Instrument.objects.filter(price_updated_at__isnull=False).values_list("pk", "price_updated_at")
    }
    return last, seen


def _poll(last_notice: int, seen: dict[int, float]) -> tuple[list[dict], list[tuple[int, Decimal, float]], int]:
    from copytrading.models import Instrument, StreamNotice

    rows = list(StreamNotice.objects.filter(pk__gt=last_notice).order_by("pk").values_list("pk", "payload")[:1000])
    marks = []
    moved = Instrument.objects.filter(mark_price__isnull=False)
    if seen:  # only what moved since the latest mark seen (not every instrument every time)
        moved = moved.filter(price_updated_at__gte=datetime.fromtimestamp(max(seen.values()), tz=UTC))
    for pk, price, at in moved.values_list("pk", "mark_price", "price_updated_at"):
        stamp = at.timestamp() if at else 0.0
        if stamp > seen.get(pk, -1.0):
            seen[pk] = stamp
            marks.append((pk, price, stamp))
    return [payload for _, payload in rows], marks, rows[-1][0] if rows else last_notice


# --- the process's hub -------------------------------------------------------------------

_hub: Hub | None = None


def hub() -> Hub:
    """The hub of this process, started on first use (on the running loop)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop or loop.is_closed():
        _hub = Hub(loop)
        _hub.start()
    return _hub


async def hub_reset() -> None:
    """Tests: stop this process's hub; the next socket starts a new one."""
    global _hub
    if _hub is not None:
        old, _hub = _hub, None
        if old.loop is asyncio.get_running_loop():
            await old.stop()


__all__ = ["Hub", "ProtocolError", "Stream", "hub", "hub_reset"]
