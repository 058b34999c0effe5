"""Outages for real: the test's own Redis and PostgreSQL are stopped or frozen
(SIGSTOP: the kernel still completes handshakes and ACKs data, so only
client-side bounds help) under a real web process, and every answer and its
time is checked. Before the fix a stopped broker turned a committed order into
a 500 page, and a frozen server held requests for over a minute."""

import json
import time

import pytest

from tests.outages.conftest import TIMINGS
from tests.outages.stack import run_django, wait_until

pytestmark = pytest.mark.slow

# "A few seconds" (README, Outages): the request deadline is 5 s; the rest is
# slack for a busy 2-core machine. Before the fix these requests hung > 60 s.
FEW_SECONDS = 9.0
# /healthz answers within 2 s by design (1.5 s budget), slack for a busy machine.
HEALTH_SECONDS = 3.0

GRAPHQL_CATALOG = "{ catalog(first: 2) { edges { node { id name } } } }"


def _order(stack, n: int):
    return stack.web.request(
        "POST",
        f"/api/v1/portfolios/{stack.seed['portfolio_id']}/orders",
        {"symbol": "BTC/USDT:USDT", "side": "buy", "quantity": "0.001", "leverage": 5},
        token=stack.seed["token"],
    )


def _signal(stack, n: int, state: str):
    body = json.dumps(
        {"id": f"{state}-{n}", "symbol": "BTC/USDT:USDT", "side": "buy", "quantity": "0.001", "leverage": 5}
    ).encode()
    return stack.web.request(
        "POST", f"/api/v1/webhooks/signals/{stack.seed['portfolio_id']}", body, headers=stack.signal_headers(body)
    )


def _me(stack):
    return stack.web.request("GET", "/api/v1/me", token=stack.seed["token"])


def _token(stack):
    credentials = {"username": stack.seed["username"], "password": stack.seed["password"]}
    return stack.web.request("POST", "/api/v1/auth/token", credentials)


def _health(stack):
    return stack.web.request("GET", "/healthz")


def _graphql(stack):
    return stack.web.request("POST", "/graphql/", {"query": GRAPHQL_CATALOG}, token=stack.seed["token"])


def _record(server: str, state: str, endpoint: str, answer) -> None:
    TIMINGS[(server, state, endpoint)] = (answer.status, answer.seconds)


def _break(server, state: str) -> None:
    server.stop() if state == "stopped" else server.freeze()


@pytest.mark.parametrize("state", ["stopped", "frozen"])
def test_redis_outage_commits_answer_success_and_reads_fall_back(live, state):
    stack = live
    failures_before = _health(stack).body["dispatch_failures"]
    _break(stack.redis, state)

    # The order and the signal commit; their post-commit dispatch fails: the
    # normal success, logged and counted (the outbox relay delivers it later).
    order = _order(stack, 1)
    _record("redis", state, "orders", order)
    assert order.status == 201, order.body
    assert order.body["events"][0]["kind"] == "position_open"
    assert order.seconds < FEW_SECONDS
    signal = _signal(stack, 1, state)
    _record("redis", state, "signal webhook", signal)
    assert signal.status == 201, signal.body
    assert signal.seconds < FEW_SECONDS

    for endpoint, call in (("/me", _me), ("/auth/token", _token)):
        answer = call(stack)
        _record("redis", state, endpoint, answer)
        assert answer.status == 200, answer.body
        assert answer.seconds < FEW_SECONDS

    # The catalog's cache is Redis: served from the database instead.
    for token in (None, stack.seed["token"]):
        catalog = stack.web.request("GET", "/api/v1/catalog?list=all", token=token)
        _record("redis", state, "catalog" + ("" if token is None else " (signed in)"), catalog)
        assert catalog.status == 200, catalog.body
        assert "results" in catalog.body
        assert catalog.seconds < FEW_SECONDS

    health = _health(stack)
    _record("redis", state, "/healthz", health)
    assert health.status == 503
    assert health.headers["retry-after"]
    assert health.body["db"] == "ok"
    assert health.body["broker"] in ("error", "timeout")
    assert health.body["status"] == "error"
    assert health.body["dispatch_failures"] >= failures_before + 2
    assert health.seconds < HEALTH_SECONDS


def _last_order_id(stack) -> int:
    path = f"/api/v1/portfolios/{stack.seed['portfolio_id']}/orders"
    answer = stack.web.request("GET", path, token=stack.seed["token"])
    assert answer.status == 200, answer.body
    orders = answer.body if isinstance(answer.body, list) else answer.body["results"]
    return max((order["id"] for order in orders), default=0)


@pytest.mark.parametrize("state", ["stopped", "frozen"])
def test_postgres_outage_answers_503_json_within_seconds(live, state):
    stack = live
    last_order = _last_order_id(stack)
    _break(stack.postgres, state)
    calls = (
        ("orders", lambda: _order(stack, 2)),
        ("signal webhook", lambda: _signal(stack, 2, state)),
        ("/me", lambda: _me(stack)),
        ("/auth/token", lambda: _token(stack)),
        ("graphql", lambda: _graphql(stack)),
    )
    for endpoint, call in calls:
        answer = call()
        _record("postgres", state, endpoint, answer)
        assert answer.status == 503, (endpoint, answer.body)
        assert answer.headers["content-type"].startswith("application/json"), endpoint
        assert answer.body["code"] == "SERVICE_UNAVAILABLE", endpoint
        assert int(answer.headers["retry-after"]) > 0
        assert answer.seconds < FEW_SECONDS, endpoint

    health = _health(stack)
    _record("postgres", state, "/healthz", health)
    assert health.status == 503
    assert health.body["db"] in ("error", "timeout")
    assert health.body["broker"] == "ok"
    assert health.body["status"] == "error"
    assert health.seconds < HEALTH_SECONDS

    # A 503 placed nothing, also once the server is back: the order that waited
    # on the frozen server past its deadline stops at its next query.
    stack.postgres.thaw()
    if state == "stopped":
        stack.postgres.start()
    wait_until(lambda: _me(stack).status == 200, timeout=60, what="recovery", interval=0.5)
    time.sleep(2)  # the abandoned request's thread resumes with the server
    assert _last_order_id(stack) == last_order


@pytest.mark.parametrize("state", ["stopped", "frozen"])
def test_every_redis_client_gives_up_within_seconds(live, state):
    """The cache, the channel layer and the broker publish, as configured in
    settings, each end with an error instead of waiting on the frozen server."""
    stack = live
    _break(stack.redis, state)
    out = run_django(stack.web.env, "-m", "tests.outages.probe")
    results = json.loads(out.strip().splitlines()[-1])
    for call, result in results.items():
        TIMINGS[("redis", state, f"client: {call}")] = (0, result["seconds"])
        assert result["outcome"] != "ok", call
        assert result["seconds"] < FEW_SECONDS, (call, result)
