"""A micro-cache in front of Django, at the ASGI layer: anonymous GETs of a few
public, identical-for-everyone paths (the catalog) are answered from this
process's memory for a few seconds, with the status, headers and body Django
produced the first time. What nginx's proxy_cache does for a few seconds,
in-process, because the web process here has nothing in front of it.

A hit costs no thread, middleware or query: under Django's ASGI handler every
sync middleware hook is a hop to a worker thread, which is most of a cheap
request's cost. Anything signed in (an Authorization header or a session
cookie), any other method, and any response that is not a plain 200 without
cookies goes through Django untouched. One request per page refreshes it;
the others meanwhile get the page just expired, or wait for the first one."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

Scope = dict
Message = dict
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Entry:
    expires: float
    status: int
    headers: list
    body: bytes


class MicroCache:
    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Iterable[str],
        ttl: float,
        session_cookie: str = "sessionid",
        size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.app = app
        self.paths = frozenset(paths)
        self.ttl = ttl
        self.session_cookie = session_cookie.encode()
        self.size = size
        self.entries: dict[tuple, Entry] = {}
        self.clock = clock
        self.inflight: dict[tuple, asyncio.Future] = {}

    def _key(self, scope: Scope) -> tuple | None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in self.paths or self.ttl <= 0:
            return None
        accept = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization" or (name == b"cookie" and self.session_cookie in value):
                return None
            if name == b"accept":
                accept = value  # the REST framework renders by Accept (JSON, or the browsable page)
        return scope["path"], scope.get("query_string", b""), accept

    async def __call__(self, scope: Scope, receive, send) -> None:
        key = self._key(scope)
        if key is None:
            return await self.app(scope, receive, send)
        hit = self.entries.get(key)
        if hit is not None and hit.expires > self.clock():
            return await self._replay(hit, send)
        refreshing = self.inflight.get(key)
        if refreshing is not None:
            # One request per page asks Django; meanwhile the others get the
            # page just expired (at most one refresh older), or wait for it.
            if hit is not None:
                return await self._replay(hit, send)
            await asyncio.shield(refreshing)
            fresh = self.entries.get(key)
            if fresh is not None:
                return await self._replay(fresh, send)
            return await self.app(scope, receive, send)  # it was not cacheable
        self.inflight[key] = asyncio.get_running_loop().create_future()
        try:
            return await self._fetch(key, scope, receive, send)
        finally:
            self.inflight.pop(key).set_result(None)

    @staticmethod
    async def _replay(entry: Entry, send) -> None:
        await send({"type": "http.response.start", "status": entry.status, "headers": entry.headers})
        await send({"type": "http.response.body", "body": entry.body})

    async def _fetch(self, key: tuple, scope: Scope, receive, send) -> None:
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._store(key, start, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, capture)

    def _store(self, key: tuple, start: Message, body: bytes) -> None:
        headers = list(start.get("headers", ()))
        if start.get("status") != 200 or any(name.lower() == b"set-cookie" for name, _ in headers):
            return
        if len(self.entries) >= self.size:
            now = self.clock()
            self.entries = {k: e for k, e in self.entries.items() if e.expires > now}
            if len(self.entries) >= self.size:
                self.entries.clear()
        self.entries[key] = Entry(self.clock() + self.ttl, 200, headers, body)
