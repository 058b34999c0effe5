"""Request bodies over MAX_REQUEST_BODY_BYTES are refused with 413 before they
are read into memory (issue #11, point 10).

Two layers, because the body is buffered before the application sees it:
- ``install_daphne_limit`` patches daphne's request class. Twisted parses the
  body into a file and daphne then queues *all* of it to the application at
  once, whether the application reads it or not: a 100 MB POST grew the web
  process by 100 MB. The patch decides on ``Content-Length`` as soon as the
  headers are in, and counts a chunked body as it arrives; past the limit the
  rest is discarded as it comes off the socket and the answer is a 413.
- ``BodyLimit`` is the same rule as ASGI middleware, for any other server (and
  in front of Django under daphne too): a declared length over the limit is
  answered without calling ``receive``; a body that grows past it while read is
  answered 413 and Django sees a disconnect, so it never builds the request.
"""

import json
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Scope = dict
Message = dict
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

API_PREFIX = "/api/"


def too_large_body(path: str, limit: int) -> tuple[bytes, bytes]:
    """(content type, body) of the 413: the API's JSON shape under /api/."""
    detail = f"The request body must be at most {limit} bytes."
    if path.startswith(API_PREFIX):
        body = json.dumps({"code": "PAYLOAD_TOO_LARGE", "detail": detail, "field": None})
        return b"application/json", body.encode()
    return b"text/plain; charset=utf-8", detail.encode()


def declared_length(headers) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.limit <= 0:
            return await self.app(scope, receive, send)
        length = declared_length(scope.get("headers", ()))
        if length is not None and length > self.limit:
            return await self._refuse(scope, send)

        received = 0
        refused = False

        async def limited_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Answer now; the application sees a client that went
                    # away (Django's ASGI handler then sends nothing).
                    refused = True
                    await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        return await self.app(scope, limited_receive, send)

    async def _refuse(self, scope, send):
        content_type, body = too_large_body(scope.get("path", ""), self.limit)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _Discard:
    """A content file that keeps nothing: the rest of a refused body."""

    closed = False

    def write(self, data: bytes) -> None:
        pass

    def read(self, size: int = -1) -> bytes:
        return b""

    def seek(self, *args) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


def install_daphne_limit(limit: int) -> None:
    """Refuse over-limit bodies inside daphne, before they are buffered."""
    if limit <= 0:
        return
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # not served by daphne
        return
    if getattr(WebRequest, "_body_limit_installed", False):
        WebRequest._body_limit = limit
        return
    original_got_length = WebRequest.gotLength
    original_chunk = WebRequest.handleContentChunk
    original_process = WebRequest.process

    def gotLength(self, length):
        self._body_received = 0
        self._body_too_large = length is not None and length > self._body_limit
        if self._body_too_large:
            self.content = _Discard()
            return None
        return original_got_length(self, length)

    def handleContentChunk(self, data):
        if self._body_too_large:
            return None
        self._body_received += len(data)
        if self._body_received > self._body_limit:
            # A chunked body (no Content-Length) that grew past the limit.
            self._body_too_large = True
            self.content.close()
            self.content = _Discard()
            return None
        return original_chunk(self, data)

    def process(self):
        if not getattr(self, "_body_too_large", False):
            return original_process(self)
        path = self.path.decode("ascii", "replace").split("?", 1)[0]
        content_type, body = too_large_body(path, self._body_limit)
        log.warning("refused a request body over %s bytes: %s %s", self._body_limit, self.method, path)
        self.setResponseCode(413)
        self.setHeader(b"Content-Type", content_type)
        self.setHeader(b"Content-Length", str(len(body)).encode())
        self.setHeader(b"Connection", b"close")
        self.write(body)
        self.finish()
        return None

    WebRequest._body_limit = limit
    WebRequest._body_too_large = False
    WebRequest._body_received = 0
    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.process = process
    WebRequest._body_limit_installed = True
