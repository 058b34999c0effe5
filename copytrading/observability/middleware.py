"""The request's log context: a request id (the client's ``X-Request-ID`` if it
is sane, else a new one), echoed in the response's ``X-Request-ID``, and the
user once known.

Two layers, one id: ``RequestContext`` wraps the ASGI application (config/asgi.py),
so the answers made before Django (the request deadline's 503, the catalog's
micro-cache, a refused body) and WebSocket connections carry it too; Django's
handler runs the request in a copy of that context (asgiref copies contextvars
into its threads), so every line the request logs has it. ``RequestContextMiddleware``
does the same where no ASGI layer ran (the test client, a WSGI server) and binds
the session's user; a token's user is bound where the token is checked
(copytrading/auth/authentication.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

HEADER = "X-Request-ID"
SCOPE_KEY = "request_id"
# A proxy's or client's id is kept if it looks like one (a UUID, a trace id):
# short, printable, no spaces or quotes that would make the logs ambiguous.
SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")


def request_id_from(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and SANE.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _scope_header(scope: dict, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def user_bind(user_id: int | None) -> None:
    if user_id is not None:
        structlog.contextvars.bind_contextvars(user_id=user_id)


class RequestContext:
    """ASGI: bind the request id for the whole request (or WebSocket
    connection) and add it to the HTTP response's headers."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        request_id = request_id_from(_scope_header(scope, b"x-request-id"))
        scope = {**scope, SCOPE_KEY: request_id}
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        echoed = (HEADER.lower().encode(), request_id.encode())

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != echoed[0]]
                message = {**message, "headers": [*headers, echoed]}
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestContextMiddleware:
    """Django: the same where no ``RequestContext`` ran, and the session user."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _start(self, request: HttpRequest) -> str | None:
        """Bind the id; returns it if the response must echo it here."""
        scope = getattr(request, "scope", None)
        if scope is not None and SCOPE_KEY in scope:
            return None  # RequestContext bound it and will echo it
        request_id = request_id_from(request.headers.get(HEADER))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        return request_id

    @staticmethod
    def _finish(request: HttpRequest, response: HttpResponse, request_id: str | None) -> HttpResponse:
        # The session's user if the request looked at it (looking costs a query).
        user = request.__dict__.get("user")
        if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
            user = None
        if user is not None and user.is_authenticated:
            user_bind(user.pk)
        if request_id is not None:
            response[HEADER] = request_id
        return response

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        request_id = self._start(request)
        return self._finish(request, self.get_response(request), request_id)

    async def __acall__(self, request: HttpRequest):
        request_id = self._start(request)
        return self._finish(request, await self.get_response(request), request_id)
