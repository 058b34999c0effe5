"""Schemathesis over the whole OpenAPI schema, in process, with ALL its
checks: no server error, every status code, content type, header and body
documented, schema-valid requests accepted and schema-invalid ones refused,
auth not ignored, every JSON 4xx in our error format.

Each operation gets a few derandomized examples (schemathesis's coverage-phase
boundary cases plus hypothesis draws), sent twice: once as generated and once
with the path's ids pointing at real rows of a small world (a leader's
portfolio with an open position, a resting order and a webhook secret, a
subscription with a mirror), so the handlers behind the 404s are reached too.
The caller is a staff user who is both a leader and a follower. About 6,500
requests over the 65 operations (plus the checks' own re-sends, e.g. without
auth): about 2 minutes on SQLite on a quiet machine, 4-8 when it is busy.

Tuned checks (docs/decisions.md, "the schema tells the truth"):
- positive_data_acceptance: a schema-valid request may be refused with 400 when
  the error's code is a domain rule (INSUFFICIENT_FUNDS, OUT_OF_RANGE,
  UNKNOWN_INSTRUMENT, ...): rules over balances, other fields or the market
  that no JSON Schema can state. A shape code (INVALID_REQUIRED, INVALID_BLANK,
  INVALID, ...) on a schema-valid request is still a failure: the schema lied.
- not_a_server_error: linking or re-validating an exchange account may answer
  503 EXCHANGE_UNAVAILABLE / 502 EXCHANGE_ERROR: the exchange is unreachable
  from any test (documented answers; tests/exchanges covers them against the
  exchange double).

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
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from copytrading.models import Notification, Order, Position
from followers.models import Subscription
from tests.acceptance.test_bad_input import BTC_PERP, client_for, ok
from tests.exchanges.test_admin import exchange_account_row
from tests.factories import StaffFactory, UserFactory, token_for

EXAMPLES = 3  # per operation; each example is sent twice

# The codes DRF's fields (and the catalog's parameter parsing) give a body or
# query the schema should already have refused: on a schema-valid request they
# mean the schema and the serializer disagree. (INVALID_CURSOR is not one: a
# cursor is an opaque token only the server can tell from a forged one.)
SHAPE_CODES = frozenset(
    {
        "INVALID",
        "INVALID_REQUIRED",
        "INVALID_NULL",
        "INVALID_BLANK",
        "INVALID_MAX_LENGTH",
        "INVALID_MIN_LENGTH",
        "INVALID_MAX_VALUE",
        "INVALID_MIN_VALUE",
        "INVALID_MAX_DIGITS",
        "INVALID_MAX_DECIMAL_PLACES",
        "INVALID_MAX_WHOLE_DIGITS",
        "INVALID_MAX_STRING_LENGTH",
        "INVALID_CHOICE",
        "INVALID_NOT_A_LIST",
        "INVALID_NOT_A_DICT",
        "INVALID_EMPTY",
        "INVALID_LIMIT",
        "INVALID_FILTER",
        "INVALID_LIST",
        "PARSE_ERROR",
        "UNSUPPORTED_MEDIA_TYPE",
    }
)


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
        ok(me.post(f"/api/v1/portfolios/{mine}/webhook-secret"))  # the webhook's checks are reached
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
            # subscribing told me so
            "notification": Notification.objects.filter(user=self.user).values_list("pk", flat=True).first(),
            "exchange_account": exchange_account_row(self.user).pk,
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
            "notifications": ids["notification"],
            "exchange-accounts": ids["exchange_account"],
        }[re.match(r"/api/v1/([\w-]+)", path).group(1)]
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


def positive_data_acceptance_but_domain_rules(ctx, response, case):
    """positive_data_acceptance, except a 400 with a domain rule's code."""
    if response.status_code == 400 and case.meta is not None and case.meta.generation.mode.is_positive:
        try:
            code = json.loads(response.content).get("code")
        except (ValueError, AttributeError):
            code = None
        if code and code not in SHAPE_CODES:
            return None
    return positive_data_acceptance(ctx, response, case)


def not_a_server_error_but_the_exchange(ctx, response, case):
    """not_a_server_error, except an exchange's own failure: linking an
    account, subscribing or binding a portfolio onto one, a bound portfolio's
    order all ask the exchange, which no test can reach (tests/conftest.py
    sends ccxt to a closed port), so a schema-valid request is a documented
    503 ``EXCHANGE_UNAVAILABLE`` (or 502 ``EXCHANGE_ERROR``), not a bug here."""
    if response.status_code in (502, 503):
        try:
            code = json.loads(response.content).get("code")
        except (ValueError, AttributeError):
            code = None
        if code in ("EXCHANGE_UNAVAILABLE", "EXCHANGE_ERROR"):
            return None
    return not_a_server_error(ctx, response, case)


TUNED = [positive_data_acceptance_but_domain_rules, not_a_server_error_but_the_exchange]
REPLACED = [positive_data_acceptance, not_a_server_error]


def _assert_error_shape(case, response) -> None:
    body = response.content or b""
    content_type = response.headers.get("content-type") or ""
    if isinstance(content_type, list):
        content_type = content_type[0]
    if 400 <= response.status_code < 500 and content_type.startswith("application/json"):
        error = json.loads(body) if body else {}
        assert {"code", "detail", "field"} <= set(error), f"{case.method} {case.formatted_path}: {error}"


def _call_and_check(case, headers) -> None:
    response = case.call(headers=headers)
    case.validate_response(
        response,
        headers=headers,
        transport_kwargs={"headers": headers},
        excluded_checks=REPLACED,
        additional_checks=TUNED,
    )
    _assert_error_shape(case, response)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_check_passes(case, world):
    # A token per case: the fuzzer calls auth/logout and auth/logout-all too.
    headers = {"Authorization": f"Token {token_for(world.user)}"}
    _call_and_check(case, headers)
    if case.path_parameters:
        case.path_parameters = world.real_path_parameters(case.path, case.path_parameters)
        _call_and_check(case, headers)
