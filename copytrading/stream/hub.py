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
from collections.abc import Mapping
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
FIRST_FLUSH_DELAY = 0.02  # lets the marks of one commit arrive before the frame goes


class Socket(Protocol):
    user_id: int

    async def send_frame(self, text: str) -> None: ...

    async def close_with(self, code: int) -> None: ...


class Stream:
    __slots__ = ("buffer", "detached_at", "id", "ready", "seq", "socket", "topic", "user_id")

    def __init__(self, user_id: int, topic: Topic, socket: Socket) -> None:
        self.id = secrets.token_urlsafe(12)
        self.user_id = user_id
        self.topic = topic
        self.seq = 0
        self.buffer: deque[dict] = deque(maxlen=settings.STREAM_BUFFER)
        self.socket: Socket | None = socket
        self.detached_at = 0.0
        self.ready = False  # its snapshot went out

    def message(self, kind: str, data: dict) -> dict:
        self.seq += 1
        message = {"topic": self.topic.name, "stream": self.id, "seq": self.seq, "type": kind, "data": data}
        self.buffer.append(message)
        return message


class SocketState:
    __slots__ = ("ping_sent_at", "pong_due_since", "streams")

    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}  # by topic name
        self.ping_sent_at = time.monotonic()
        self.pong_due_since: float | None = None


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.marks = Marks()
        self.sockets: dict[Socket, SocketState] = {}
        self.streams: dict[str, Stream] = {}
        self.by_instrument: dict[int, set[Stream]] = defaultdict(set)
        self.by_key: dict[Key, set[Stream]] = defaultdict(set)
        self.dirty: set[Stream] = set()
        self.to_reload: set[Stream] = set()
        self._flush_at: float | None = None
        self._last_flush = 0.0
        self._reloading = False
        self._tasks: list[asyncio.Task] = []
        self.notices = 0  # received, for tests and /healthz

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        source = self._layer_source() if publish.uses_layer() else self._polling_source()
        self._tasks = [self.loop.create_task(source), self.loop.create_task(self._housekeeping())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def user_socket_count(self, user_id: int) -> int:
        return sum(1 for s in self.sockets if s.user_id == user_id)

    def attach(self, socket: Socket) -> None:
        self.sockets[socket] = SocketState()

    def detach(self, socket: Socket) -> None:
        """The socket closed: its streams stay (buffering) for a resume."""
        state = self.sockets.pop(socket, None)
        if state is None:
            return
        now = time.monotonic()
        for stream in state.streams.values():
            stream.socket, stream.detached_at = None, now

    def pong(self, socket: Socket) -> None:
        state = self.sockets.get(socket)
        if state is not None:
            state.pong_due_since = None

    # --- subscribe and unsubscribe -----------------------------------------------------

    async def subscribe(self, socket: Socket, message: Mapping) -> None:
        name = message.get("topic")
        topic = topic_for(socket.user_id, name, message)  # ProtocolError for a bad one
        state = self.sockets[socket]
        self._drop(state.streams.pop(topic.name, None))
        resumed = self._resumable(socket, topic.name, message.get("resume"))
        if resumed is not None:
            stream, since = resumed
            state.streams[topic.name] = stream
            stream.socket = socket
            await socket.send_frame(protocol.frame([m for m in stream.buffer if m["seq"] > since] or [_noop(stream)]))
            return
        data = await database_sync_to_async(topic.read)(True)
        if socket not in self.sockets:  # closed meanwhile
            return
        self._start_marks(topic.apply(data, True))
        stream = Stream(socket.user_id, topic, socket)
        state.streams[topic.name] = stream
        self.streams[stream.id] = stream
        self._index(stream)
        snapshot = stream.message("snapshot", topic.snapshot(self.marks))
        stream.ready = True
        await socket.send_frame(protocol.frame([snapshot]))

    def unsubscribe(self, socket: Socket, name: object) -> bool:
        state = self.sockets.get(socket)
        stream = state.streams.pop(name, None) if state is not None and isinstance(name, str) else None
        self._drop(stream)
        return stream is not None

    def _resumable(self, socket: Socket, name: str, resume: object) -> tuple[Stream, int] | None:
        """The stream to resume and the last number the client had, or None
        (then the client gets a fresh snapshot on a new stream)."""
        if not isinstance(resume, Mapping):
            return None
        stream = self.streams.get(resume.get("stream")) if isinstance(resume.get("stream"), str) else None
        since = resume.get("seq")
        if (
            stream is None
            or stream.user_id != socket.user_id
            or stream.topic.name != name
            or stream.socket is not None
            or not isinstance(since, int)
            or isinstance(since, bool)
            or not 0 <= since <= stream.seq
        ):
            return None
        if stream.buffer and stream.buffer[0]["seq"] > since + 1:
            return None  # what it missed is no longer buffered
        if not stream.buffer and since < stream.seq:
            return None
        return stream, since

    def _index(self, stream: Stream) -> None:
        for instrument in stream.topic.instruments():
            self.by_instrument[instrument].add(stream)
        for key in stream.topic.watch_keys():
            self.by_key[key].add(stream)

    def _unindex(self, stream: Stream) -> None:
        for index in (self.by_instrument, self.by_key):
            for key in [k for k, streams in index.items() if stream in streams]:
                index[key].discard(stream)
                if not index[key]:
                    del index[key]

    def _reindex(self, stream: Stream, instruments: set[int], keys: set[Key]) -> None:
        if instruments != stream.topic.instruments() or keys != stream.topic.watch_keys():
            self._unindex(stream)
            self._index(stream)

    def _drop(self, stream: Stream | None) -> None:
        if stream is None:
            return
        self.streams.pop(stream.id, None)
        self._unindex(stream)
        self.dirty.discard(stream)
        self.to_reload.discard(stream)

    def _start_marks(self, marks: Mapping[int, tuple[Decimal, float]]) -> None:
        for instrument, (price, at) in marks.items():
            if at >= self.marks.at.get(instrument, 0.0):
                self.marks[instrument], self.marks.at[instrument] = price, at

    # --- notices -----------------------------------------------------------------------

    def on_mark(self, instrument: int, price: Decimal, at: float) -> None:
        self.notices += 1
        if at < self.marks.at.get(instrument, 0.0):
            return  # an older mark arriving late
        self.marks[instrument], self.marks.at[instrument] = price, at
        streams = self.by_instrument.get(instrument)
        if streams:
            self.dirty.update(streams)
            self._schedule_flush()

    def on_changes(self, notice: Mapping) -> None:
        self.notices += 1
        found: set[Stream] = set()
        for kind, field in (
            ("account", "accounts"),
            ("subscription", "subscriptions"),
            ("user", "users"),
            ("portfolio", "portfolios"),
        ):
            for pk in notice.get(field, ()):
                streams = self.by_key.get((kind, pk))
                if streams:
                    found.update(streams)
        if found:
            self.to_reload.update(found)
            if not self._reloading:
                self._reloading = True
                self.loop.create_task(self._reload())

    def reload_all(self) -> None:
        """After notices may have been lost (the layer was down): every stream re-reads."""
        self.to_reload.update(self.streams.values())
        if self.to_reload and not self._reloading:
            self._reloading = True
            self.loop.create_task(self._reload())

    async def _reload(self) -> None:
        try:
            while self.to_reload:
                batch, self.to_reload = list(self.to_reload), set()
                results = await database_sync_to_async(_read_all)(batch)
                for stream, data in results:
                    if stream.id not in self.streams:
                        continue  # dropped meanwhile
                    if isinstance(data, BaseException):
                        log.warning("stream %s (%s) not reloaded: %r", stream.id, stream.topic.name, data)
                        continue
                    instruments, keys = stream.topic.instruments(), stream.topic.watch_keys()
                    self._start_marks(stream.topic.apply(data, False))
                    self._reindex(stream, instruments, keys)
                    self.dirty.add(stream)
                self._schedule_flush()
        except Exception:
            log.exception("stream reload failed")
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
        """Send every dirty stream's delta, one frame per socket."""
        self._flush_at = None
        self._last_flush = time.monotonic()
        dirty, self.dirty = self.dirty, set()
        frames: dict[Socket, list[dict]] = defaultdict(list)
        for stream in dirty:
            if not stream.ready or stream.id not in self.streams:
                continue
            try:
                data = stream.topic.delta(self.marks)
            except Exception:
                log.exception("stream %s (%s): delta failed", stream.id, stream.topic.name)
                continue
            if data is None:
                continue
            message = stream.message("delta", data)
            if stream.socket is not None:
                frames[stream.socket].append(message)
        for socket, messages in frames.items():
            if socket in self.sockets:
                try:
                    await socket.send_frame(protocol.frame(messages))
                except Exception:
                    log.warning("stream frame not sent", exc_info=True)
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
                await socket.send_frame(protocol.frame([{"type": "ping", "t": int(time.time() * 1000)}]))
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
        if kind == "hub.mark":
            self.on_mark(int(message["instrument"]), Decimal(message["price"]), float(message["at"]))
        elif kind == "hub.changes":
            self.on_changes(message)

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
        while True:
            await asyncio.sleep(settings.STREAM_POLL_SECONDS)
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


def _read_all(streams: list[Stream]) -> list[tuple[Stream, object]]:
    out = []
    for stream in streams:
        try:
            out.append((stream, stream.topic.read(False)))
        except Exception as exc:  # noqa: BLE001  (one topic's failure is not the others')
            out.append((stream, exc))
    return out


def _noop(stream: Stream) -> dict:
    """A resume with nothing missed: the client learns its stream goes on."""
    return {"topic": stream.topic.name, "stream": stream.id, "seq": stream.seq, "type": "resumed", "data": {}}


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
    for pk, price, at in Instrument.objects.filter(mark_price__isnull=False).values_list(
        "pk", "mark_price", "price_updated_at"
    ):
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
