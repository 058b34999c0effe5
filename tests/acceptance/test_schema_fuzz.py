"""Schemathesis over the whole OpenAPI schema, in process: no generated
request, valid or not, may get a 5xx, and every JSON 4xx is our error format.

Each operation gets a few derandomized examples (schemathesis's coverage-phase
boundary cases plus hypothesis draws), sent twice: once as generated and once
with the path's ids pointing at real rows of a small world (a leader's
portfolio with an open position and a resting order, a subscription with a
mirror), so the handlers behind the 404s are reached too. The caller is a
staff user who is both a leader and a follower. About 6,500 requests over the
65 operations, ~40 s on SQLite or PostgreSQL.

The first full fuzz (against PostgreSQL, over HTTP) and the bugs it found are in
docs/decisions.md; tests/acceptance/test_fuzz_regressions.py pins each of them.
"""

import json
import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings

from copytrading.models import Order, Position
from followers.models import Subscription
from tests.acceptance.test_bad_input import BTC_PERP, client_for, ok
from tests.factories import StaffFactory, UserFactory, token_for

EXAMPLES = 3  # per operation; each example is sent twice


def _load_schema():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content[:500]
    loaded = schemathesis.openapi.from_dict(json.loads(response.content))
    loaded.app = get_wsgi_application()
    loaded.config.generation.update(modes=["positive", "negative"], deterministic=True, database="none")
    return loaded


schema = _load_schema()


class World:
    """Real rows for the path ids; ``me`` (staff) leads one portfolio and
    follows another."""

    def __init__(self, capture):
        leader = client_for(UserFactory(username="fuzz-leader"))
        ok(leader.post("/api/v1/wallets/main/deposit", {"amount": "50000"}, format="json"))
        theirs = ok(leader.post("/api/v1/portfolios", {"name": "Theirs"}, format="json"))["id"]
        ok(leader.post(f"/api/v1/portfolios/{theirs}/fund", {"amount": "20000"}, format="json"))

        self.user = StaffFactory(username="fuzz-me")
        me = client_for(self.user)
        ok(me.post("/api/v1/wallets/main/deposit", {"amount": "50000"}, format="json"))
        mine = ok(me.post("/api/v1/portfolios", {"name": "Mine"}, format="json"))["id"]
        ok(me.post(f"/api/v1/portfolios/{mine}/fund", {"amount": "20000"}, format="json"))
        order = {"symbol": BTC_PERP, "side": "buy", "quantity": "0.01", "leverage": 10}
        ok(me.post(f"/api/v1/portfolios/{mine}/orders", order, format="json"))
        limit = order | {"type": "limit", "price": "50000"}
        ok(me.post(f"/api/v1/portfolios/{mine}/orders", limit, format="json"))
        template = ok(
            me.post(f"/api/v1/portfolios/{mine}/templates", {"name": "T", "multiplier": "0.5"}, format="json")
        )
        subscription = ok(
            me.post(
                "/api/v1/subscriptions", {"portfolio": theirs, "amount": "2000", "multiplier": "0.5"}, format="json"
            )
        )["id"]
        ok(me.put(f"/api/v1/favorites/{theirs}"))
        with capture(execute=True):
            ok(leader.post(f"/api/v1/portfolios/{theirs}/orders", order, format="json"))

        copy_account = Subscription.objects.get(pk=subscription).copy_account_id
        self.ids = {
            "portfolio": mine,
            "their_portfolio": theirs,
            "subscription": subscription,
            "leader_position": Position.objects.get(account__portfolio__pk=mine).pk,
            "mirror": Position.objects.get(account_id=copy_account).pk,
            "order": Order.objects.get(account__portfolio__pk=mine, order_type="limit").pk,
            "template": int(template["id"]),
        }

    def real_path_parameters(self, path: str, names) -> dict[str, int]:
        """The ids of real rows for this path's parameters."""
        ids = self.ids
        first = {
            "portfolios": ids["portfolio"],
            "subscriptions": ids["subscription"],
            "catalog": ids["their_portfolio"],
            "favorites": ids["their_portfolio"],
            "webhooks": ids["portfolio"],
        }[re.match(r"/api/v1/(\w+)", path).group(1)]
        position = ids["mirror"] if path.startswith("/api/v1/subscriptions") else ids["leader_position"]
        values = {
            "id": first,
            "pk": first,
            "portfolio_id": first,
            "position_pk": position,
            "order_pk": ids["order"],
            "template_pk": ids["template"],
        }
        return {name: values[name] for name in names}


@pytest.fixture
def world(instruments, django_capture_on_commit_callbacks):
    built = World(django_capture_on_commit_callbacks)
    # The real WSGI handler closes "old" connections around each request, which
    # would close the test's transaction on PostgreSQL; Django's test client
    # unhooks the same receivers, but only during its own requests (so: after
    # the world is built).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield built
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _assert_no_server_error(case, response) -> None:
    body = response.content or b""
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}\n{body[:2000]!r}"
    content_type = (response.headers.get("content-type") or [""])[0]
    if 400 <= response.status_code < 500 and content_type.startswith("application/json"):
        error = json.loads(body) if body else {}
        assert {"code", "detail", "field"} <= set(error), f"{case.method} {case.formatted_path}: {error}"


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_server_error(case, world):
    # A token per case: the fuzzer calls auth/logout and auth/logout-all too.
    headers = {"Authorization": f"Token {token_for(world.user)}"}
    _assert_no_server_error(case, case.call(headers=headers))
    if case.path_parameters:
        case.path_parameters = world.real_path_parameters(case.path, case.path_parameters)
        _assert_no_server_error(case, case.call(headers=headers))
