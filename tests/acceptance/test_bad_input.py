"""Bad input through the API: a 4xx with a stable code and the offending field,
and nothing written by the failing call."""

from decimal import Decimal

import pytest
from django.contrib.auth.hashers import make_password
from rest_framework.test import APIClient

from copytrading.models import Account, Execution, Instrument, LeaderEvent, Order, Position, Transfer
from followers.models import Subscription
from portfolios.models import Portfolio
from tests.factories import StaffFactory, UserFactory, token_for

D = Decimal
BTC_PERP = "BTC/USDT:USDT"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def ok(response, status: int = 201) -> dict:
    assert response.status_code == status, response.content
    return response.json()


def refused(response, status: int, code: str, field: str | None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert (body["code"], body["field"]) == (code, field), body
    assert body["detail"] and "Traceback" not in body["detail"]
    return body


def footprint():
    """Every row a failing call might have written."""
    return (
        sorted(Account.objects.values_list("pk", "balance", "locked")),
        Transfer.objects.count(),
        Subscription.objects.count(),
        Order.objects.count(),
        Position.objects.count(),
        LeaderEvent.objects.count(),
        Execution.objects.count(),
        Portfolio.objects.count(),
        sorted(Instrument.objects.values_list("symbol", "mark_price")),
    )


class Scene:
    """A leader with a funded portfolio, one follower already copying it (with
    an open mirror) and a second follower with a funded main wallet."""

    def __init__(self, capture):
        self.leader_user = UserFactory(username="leader")
        self.leader = client_for(self.leader_user)
        ok(self.leader.post("/api/v1/wallets/main/deposit", {"amount": "50000"}, format="json"))
        self.portfolio = ok(self.leader.post("/api/v1/portfolios", {"name": "Momentum"}, format="json"))["id"]
        ok(self.leader.post(f"/api/v1/portfolios/{self.portfolio}/fund", {"amount": "20000"}, format="json"))

        self.copier = client_for(UserFactory(username="copier"))
        ok(self.copier.post("/api/v1/wallets/main/deposit", {"amount": "3000"}, format="json"))
        self.subscription = ok(
            self.copier.post(
                "/api/v1/subscriptions",
                {"portfolio": self.portfolio, "amount": "2000", "multiplier": "0.5"},
                format="json",
            )
        )["id"]
        with capture(execute=True):
            ok(
                self.leader.post(
                    f"/api/v1/portfolios/{self.portfolio}/orders",
                    {"symbol": BTC_PERP, "side": "buy", "quantity": "0.01", "leverage": 10},
                    format="json",
                )
            )
        self.mirror = Position.objects.get(subscription_id=self.subscription).pk

        self.other = client_for(UserFactory(username="other"))
        ok(self.other.post("/api/v1/wallets/main/deposit", {"amount": "1000"}, format="json"))


@pytest.fixture
def scene(instruments, django_capture_on_commit_callbacks):
    return Scene(django_capture_on_commit_callbacks)


@pytest.fixture
def unchanged(scene):
    """Asserts, after the test, that nothing it did was written."""
    before = footprint()
    yield
    assert footprint() == before


# --- wallets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("-5", "INVALID_AMOUNT"),
        ("0", "INVALID_AMOUNT"),
        ("abc", "INVALID"),
        ("NaN", "INVALID"),
        ("", "INVALID"),
        (None, "INVALID_NULL"),
        ("1.123456789", "INVALID_MAX_DECIMAL_PLACES"),
        ("1000000.01", "DEPOSIT_TOO_LARGE"),
    ],
)
def test_bad_deposit_amounts(scene, unchanged, amount, code):
    refused(scene.other.post("/api/v1/wallets/main/deposit", {"amount": amount}, format="json"), 400, code, "amount")


def test_deposit_without_an_amount(scene, unchanged):
    refused(scene.other.post("/api/v1/wallets/main/deposit", {}, format="json"), 400, "INVALID_REQUIRED", "amount")


# --- leader orders ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "status", "code", "field"),
    [
        ({"symbol": "DOGE/USDT:USDT"}, 400, "UNKNOWN_INSTRUMENT", "symbol"),
        ({"quantity": "0.0015"}, 400, "INVALID_QUANTITY", "quantity"),  # step is 0.001
        ({"quantity": "-0.01"}, 400, "INVALID_QUANTITY", "quantity"),
        ({"quantity": "0"}, 400, "INVALID_QUANTITY", "quantity"),
        ({"quantity": "101"}, 400, "INVALID_QUANTITY", "quantity"),  # max is 100
        ({"quantity": "lots"}, 400, "INVALID", "quantity"),
        ({"leverage": 101}, 400, "INVALID_LEVERAGE", "leverage"),  # BTC's max is 100
        ({"leverage": 0}, 400, "INVALID_MIN_VALUE", "leverage"),
        ({"side": "hold"}, 400, "INVALID_CHOICE", "side"),
        ({"symbol": "BTC/USDT"}, 400, "PRODUCT_NOT_IN_MODE", "symbol"),  # a spot pair in a margin portfolio
        ({"quantity": "50"}, 400, "INSUFFICIENT_FUNDS", "quantity"),  # 50 x 64000 / 10 > 20000
    ],
)
def test_bad_orders(scene, unchanged, order, status, code, field):
    body = {"symbol": BTC_PERP, "side": "buy", "quantity": "0.01", "leverage": 10} | order
    refused(scene.leader.post(f"/api/v1/portfolios/{scene.portfolio}/orders", body, format="json"), status, code, field)


# --- subscribing --------------------------------------------------------------------


def subscribe(client, portfolio, **extra):
    return client.post("/api/v1/subscriptions", {"portfolio": portfolio, "amount": "500"} | extra, format="json")


def test_subscribing_twice(scene, unchanged):
    refused(subscribe(scene.copier, scene.portfolio, multiplier="0.5"), 409, "ALREADY_SUBSCRIBED", "portfolio")


def test_subscribing_to_your_own_portfolio(scene, unchanged):
    refused(subscribe(scene.leader, scene.portfolio, multiplier="0.5"), 400, "OWN_PORTFOLIO", "portfolio")


def test_subscribing_with_more_than_the_main_balance(scene, unchanged):
    refused(
        subscribe(scene.other, scene.portfolio, amount="1000.00000001", multiplier="0.5"),
        400,
        "INSUFFICIENT_FUNDS",
        "amount",
    )


@pytest.mark.parametrize("amount", ["0", "-10"])
def test_subscribing_with_a_non_positive_amount(scene, unchanged, amount):
    refused(subscribe(scene.other, scene.portfolio, amount=amount, multiplier="0.5"), 400, "INVALID_AMOUNT", "amount")


def test_subscribing_to_a_portfolio_that_does_not_exist(scene, unchanged):
    refused(subscribe(scene.other, 999_999, multiplier="0.5"), 404, "NOT_FOUND", "portfolio")


def test_subscribing_to_another_leaders_private_portfolio(scene, unchanged):
    # A private portfolio is reached by id and passcode (portfolios/passcodes.py).
    Portfolio.objects.filter(pk=scene.portfolio).update(is_public=False, passcode_hash=make_password("12345678"))
    refused(subscribe(scene.other, scene.portfolio, multiplier="0.5"), 403, "PASSCODE_REQUIRED", "passcode")


@pytest.mark.parametrize(
    ("settings_", "field"),
    [
        ({"multiplier": "0"}, "multiplier"),
        ({"multiplier": "-0.1"}, "multiplier"),
        ({"multiplier": "1.00000001"}, "multiplier"),
        # Nothing at all is the Balanced default (test_api_defects.py), not an error.
        ({"sizing_model": "fixed", "fixed_notional": "0"}, "fixed_notional"),
        ({"sizing_model": "adaptive", "risk_factor": "3.01"}, "risk_factor"),
        ({"sizing_model": "adaptive", "risk_factor": "-0.01"}, "risk_factor"),
        ({"multiplier": "0.5", "leverage_override": 0}, "leverage_override"),
    ],
)
def test_sizing_parameters_out_of_range(scene, unchanged, settings_, field):
    body = refused(subscribe(scene.other, scene.portfolio, **settings_), 400, "OUT_OF_RANGE", field)
    assert field in body["detail"]


def test_unknown_sizing_model(scene, unchanged):
    refused(
        subscribe(scene.other, scene.portfolio, sizing_model="martingale", multiplier="0.5"),
        400,
        "INVALID_CHOICE",
        "sizing_model",
    )


# --- who may do what ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/me", None),
        ("post", "/api/v1/wallets/main/deposit", {"amount": "10"}),
        ("post", "/api/v1/subscriptions", {"portfolio": 1, "amount": "10", "multiplier": "0.5"}),
        ("get", "/api/v1/subscriptions", None),
        ("post", "/api/v1/portfolios", {"name": "Mine"}),
        ("post", "/api/v1/market/prices", {"symbol": BTC_PERP, "price": "1"}),
    ],
)
def test_unauthenticated_requests_get_401(scene, unchanged, method, path, body):
    response = getattr(APIClient(), method)(path, body, format="json")
    refused(response, 401, "NOT_AUTHENTICATED", None)


def test_a_bad_token_gets_401(scene, unchanged):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    refused(client.get("/api/v1/me"), 401, "AUTHENTICATION_FAILED", None)


def test_another_users_subscription_is_not_found(scene, unchanged):
    base = f"/api/v1/subscriptions/{scene.subscription}"
    for path in (base, f"{base}/positions", f"{base}/holdings", f"{base}/executions"):
        refused(scene.other.get(path), 404, "NOT_FOUND", None)
    refused(scene.other.post(f"{base}/positions/{scene.mirror}/close", {}, format="json"), 404, "NOT_FOUND", None)
    assert all(s["id"] != scene.subscription for s in scene.other.get("/api/v1/subscriptions").json()["results"])


def test_closing_someone_elses_mirror_through_your_own_subscription(scene):
    mine = ok(subscribe(scene.other, scene.portfolio, multiplier="0.5"))["id"]
    before = footprint()
    refused(
        scene.other.post(f"/api/v1/subscriptions/{mine}/positions/{scene.mirror}/close", {}, format="json"),
        404,
        "NOT_FOUND",
        None,
    )
    assert footprint() == before
    assert Position.objects.get(pk=scene.mirror).status == "open"


def test_another_leaders_portfolio_is_not_found(scene, unchanged):
    base = f"/api/v1/portfolios/{scene.portfolio}"
    for path in (base, f"{base}/orders", f"{base}/positions", f"{base}/holdings"):
        refused(scene.copier.get(path), 404, "NOT_FOUND", None)
    order = {"symbol": BTC_PERP, "side": "sell", "quantity": "0.01", "leverage": 10}
    refused(scene.copier.post(f"{base}/orders", order, format="json"), 404, "NOT_FOUND", None)
    refused(scene.copier.post(f"{base}/fund", {"amount": "10"}, format="json"), 404, "NOT_FOUND", None)
    leader_position = Position.objects.get(account__portfolio__pk=scene.portfolio).pk
    refused(scene.copier.post(f"{base}/positions/{leader_position}/close", {}, format="json"), 404, "NOT_FOUND", None)
    assert scene.copier.get("/api/v1/portfolios").json() == {"results": [], "next_cursor": None}


def test_setting_a_price_is_staff_only(scene, unchanged):
    refused(
        scene.other.post("/api/v1/market/prices", {"symbol": BTC_PERP, "price": "1"}, format="json"),
        403,
        "PERMISSION_DENIED",
        None,
    )


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"symbol": BTC_PERP, "price": "-1"}, "INVALID_PRICE", "price"),
        ({"symbol": BTC_PERP, "price": "0"}, "INVALID_PRICE", "price"),
        ({"symbol": BTC_PERP, "price": "0.01"}, "INVALID_PRICE", "price"),  # below one 0.1 tick
        ({"symbol": "NOPE", "price": "1"}, "UNKNOWN_INSTRUMENT", "symbol"),
        ({"symbol": BTC_PERP, "price": "cheap"}, "INVALID", "price"),
    ],
)
def test_bad_prices_from_staff(scene, unchanged, body, code, field):
    staff = client_for(StaffFactory(username="ops"))
    refused(staff.post("/api/v1/market/prices", body, format="json"), 400, code, field)


@pytest.mark.django_db
def test_a_saturated_database_answers_503_with_a_code_not_500():
    from unittest import mock

    from django.db import OperationalError
    from rest_framework.test import APIClient

    from portfolios import catalog

    with mock.patch.object(catalog, "catalog_page", side_effect=OperationalError("couldn't get a connection")):
        r = APIClient().get("/api/v1/catalog")
    assert r.status_code == 503
    assert r.json() == {
        "code": "SERVICE_UNAVAILABLE",
        "detail": "The service is temporarily unavailable; retry shortly.",
        "field": None,
    }
    assert r["Retry-After"] == "5"
