"""The socket: authentication, the client's messages, and the hub.

Authentication, in this order: an ``Authorization: Token <key>`` header
(scripts), the browser session (only when the Origin is one of ours), or a
first message ``{"op": "auth", "token": "<key>"}`` within
``STREAM_AUTH_SECONDS`` (browsers with a token: a WebSocket cannot set
headers). No per-socket channel on the layer: the process's hub hands each
socket its frames directly.
"""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from copytrading.observability import metrics
from copytrading.observability.middleware import user_bind
from copytrading.outages import is_outage
from copytrading.stream import protocol
from copytrading.stream.hub import hub
from copytrading.stream.protocol import ProtocolError

log = logging.getLogger(__name__)


def _token_user_id(key: str) -> int | None:
    from copytrading.auth.selectors import auth_token_find

    if not isinstance(key, str) or not 0 < len(key) <= 200:
        return None
    token = auth_token_find(key=key)
    return token.user_id if token is not None else None


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _same_origin(scope) -> bool:
    """The browser session counts only for pages of ours (a page elsewhere
    must not ride the visitor's cookie: cross-site WebSocket hijacking): the
    Origin is this very host and port, on an allowed host, or one of
    ``CSRF_TRUSTED_ORIGINS`` — as Django's CSRF origin check."""
    from urllib.parse import urlsplit

    from django.http.request import split_domain_port, validate_host

    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if origin is None or host is None:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parts = urlsplit(origin)
    domain, _ = split_domain_port(host)
    return parts.scheme in ("http", "https") and parts.netloc == host and validate_host(domain, settings.ALLOWED_HOSTS)


class StreamConsumer(AsyncWebsocketConsumer):
    # None: no per-socket channel on the layer (the hub delivers).
    channel_layer_alias = "stream.no-layer"

    user_id: int | None = None
    _bad_frames = 0
    _counted = False  # in the open-connections gauge
    _auth_timer: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        self._closing = False
        user_id = await self._authenticate()
        await self.accept()  # accepted first: a close code only exists after the handshake
        metrics.WEBSOCKET_CONNECTIONS.inc()
        self._counted = True
        if user_id is None and _header(self.scope, b"authorization") is not None:
            await self.close_with(protocol.CLOSE_UNAUTHENTICATED)  # a bad header is not retried by message
            return
        if user_id is None:
            self._auth_timer = asyncio.get_running_loop().call_later(
                settings.STREAM_AUTH_SECONDS,
                lambda: asyncio.ensure_future(self.close_with(protocol.CLOSE_UNAUTHENTICATED)),
            )
            return
        await self._start(user_id)

    async def _authenticate(self) -> int | None:
        header = _header(self.scope, b"authorization")
        if header is not None:
            scheme, _, key = header.partition(" ")
            return await database_sync_to_async(_token_user_id)(key.strip()) if scheme.lower() == "token" else None
        user = self.scope.get("user")
        if user is not None and user.is_authenticated and _same_origin(self.scope):
            return user.pk
        return None

    async def _start(self, user_id: int) -> None:
        center = hub()
        if center.user_socket_count(user_id) >= settings.STREAM_MAX_SOCKETS_PER_USER:
            await self.close_with(protocol.CLOSE_TOO_MANY)
            return
        self.user_id = user_id
        user_bind(user_id)  # on this connection's log lines
        center.attach(self)
        await self.send_frame(protocol.frame([{"type": "welcome", "user_id": user_id}]))

    async def disconnect(self, code) -> None:
        if self._counted:
            metrics.WEBSOCKET_CONNECTIONS.dec()
            self._counted = False
        if self._auth_timer is not None:
            self._auth_timer.cancel()
        if self.user_id is not None:
            hub().detach(self)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            message = protocol.parse(text_data)
            await self._handle(message)
        except ProtocolError as exc:
            self._bad_frames += 1
            if self._bad_frames > protocol.MAX_BAD_FRAMES:
                await self.close_with(protocol.CLOSE_BAD_FRAMES)
                return
            await self.send_frame(protocol.frame([protocol.error(exc.code, exc.detail, exc.topic)]))
        except Exception as exc:
            # The socket stays: a read that failed (the database down, a bug)
            # is answered like the API would, and the client may try again.
            if is_outage(exc):
                log.warning("stream: a subscribe failed on an outage: %r", exc)
                error = protocol.error("SERVICE_UNAVAILABLE", "A service is unavailable; try again shortly.")
            else:
                log.exception("stream: a message failed")
                error = protocol.error("INTERNAL_ERROR", "The message failed; it has been logged.")
            await self.send_frame(protocol.frame([error]))

    async def _handle(self, message: dict) -> None:
        op = message["op"]
        if self.user_id is None:
            if op != "auth":
                raise ProtocolError("UNAUTHENTICATED", 'Authenticate first: {"op": "auth", "token": "…"}.')
            user_id = await database_sync_to_async(_token_user_id)(message.get("token"))
            if user_id is None:
                await self.close_with(protocol.CLOSE_UNAUTHENTICATED)
                return
            if self._auth_timer is not None:
                self._auth_timer.cancel()
            await self._start(user_id)
            return
        if op == "pong":
            hub().pong(self, message.get("t"))
        elif op == "subscribe":
            await hub().subscribe(self, message)
        elif op == "unsubscribe":
            topic = message.get("topic")
            if not hub().unsubscribe(self, topic):
                raise ProtocolError(
                    "NOT_SUBSCRIBED", "Not subscribed to this topic.", topic if isinstance(topic, str) else None
                )
            await self.send_frame(protocol.frame([{"type": "unsubscribed", "topic": topic}]))
        elif op == "auth":
            raise ProtocolError("ALREADY_AUTHENTICATED", "This socket is authenticated.")
        else:
            raise ProtocolError("UNKNOWN_OP", "op is one of auth, subscribe, unsubscribe, pong.")

    # --- what the hub calls ---

    async def send_frame(self, text: str) -> None:
        if not self._closing:
            await self.send(text_data=text)

    async def close_with(self, code: int) -> None:
        if self._closing:
            return
        self._closing = True
        if self.user_id is not None:
            hub().detach(self)
        await self.close(code=code, reason=protocol.CLOSE_REASONS.get(code, ""))


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: closed at once with 4404."""

    channel_layer_alias = "stream.no-layer"

    async def connect(self) -> None:
        await self.accept()  # a close code only exists after the handshake
        await self.close(code=protocol.CLOSE_NOT_FOUND, reason=protocol.CLOSE_REASONS[protocol.CLOSE_NOT_FOUND])
