"""The ASGI micro-cache in front of the catalog (config/microcache.py)."""

import asyncio

from config.microcache import MicroCache


class App:
    """A stand-in for Django: counts calls, answers what it is told."""

    def __init__(self, status=200, headers=()):
        self.calls = 0
        self.status = status
        self.headers = list(headers)

    async def __call__(self, scope, receive, send):
        self.calls += 1
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": b'{"n": ', "more_body": True})
        await send({"type": "http.response.body", "body": str(self.calls).encode() + b"}"})


def get(cache, path="/api/v1/catalog", query=b"sort=-score", headers=(), method="GET", kind="http"):
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": kind, "method": method, "path": path, "query_string": query, "headers": list(headers)}
    asyncio.run(cache(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], sent[0]["headers"], body


def test_an_anonymous_page_is_served_from_memory_until_it_expires():
    app = App(headers=[(b"content-type", b"application/json"), (b"x-frame-options", b"DENY")])
    now = [100.0]
    cache = MicroCache(app, paths=["/api/v1/catalog"], ttl=5, clock=lambda: now[0])
    assert get(cache) == (200, app.headers, b'{"n": 1}')
    assert get(cache) == (200, app.headers, b'{"n": 1}')  # the same status, headers and body
    assert app.calls == 1
    assert get(cache, query=b"sort=roi")[2] == b'{"n": 2}'  # another page is another entry
    assert get(cache, headers=[(b"accept", b"text/html")])[2] == b'{"n": 3}'  # rendered per Accept
    now[0] = 104.9
    assert get(cache)[2] == b'{"n": 1}'
    now[0] = 105.1
    assert get(cache)[2] == b'{"n": 4}'  # expired: Django again


def test_signed_in_readers_and_other_requests_always_reach_django():
    app = App()
    cache = MicroCache(app, paths=["/api/v1/catalog"], ttl=5, session_cookie="sessionid")
    get(cache)
    for request in (
        {"headers": [(b"authorization", b"Token abc")]},
        {"headers": [(b"cookie", b"csrftoken=x; sessionid=abc")]},
        {"method": "POST"},
        {"path": "/api/v1/favorites"},
    ):
        before = app.calls
        get(cache, **request)
        assert app.calls == before + 1, request
    assert get(cache, headers=[(b"cookie", b"csrftoken=x")])[2] == b'{"n": 1}'  # no session: anonymous


def test_errors_cookies_and_a_zero_ttl_are_never_cached():
    for app, ttl in ((App(status=400), 5), (App(headers=[(b"set-cookie", b"a=b")]), 5), (App(), 0)):
        cache = MicroCache(app, paths=["/api/v1/catalog"], ttl=ttl)
        get(cache)
        get(cache)
        assert app.calls == 2


def test_one_request_refreshes_a_page_while_the_others_wait_or_get_the_expired_one():
    asyncio.run(_refresh_scenario())


async def _refresh_scenario():
    release = asyncio.Event()

    class Slow(App):
        async def __call__(self, scope, receive, send):
            await release.wait()
            await super().__call__(scope, receive, send)

    app = Slow()
    now = [0.0]
    cache = MicroCache(app, paths=["/api/v1/catalog"], ttl=5, clock=lambda: now[0])

    async def one(bodies):
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/api/v1/catalog", "query_string": b"", "headers": []}
        await cache(scope, None, send)
        bodies.append(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))

    async def many(n):
        bodies = []
        tasks = [asyncio.create_task(one(bodies)) for _ in range(n)]
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(*tasks)
        release.clear()
        return bodies

    assert await many(5) == [b'{"n": 1}'] * 5  # a cold page: one call, four waiters
    assert app.calls == 1
    now[0] = 10.0
    bodies = await many(5)  # expired: one refresh, the others get the old page meanwhile
    assert app.calls == 2
    assert sorted(bodies) == [b'{"n": 1}'] * 4 + [b'{"n": 2}']
