"""Every writable field carries the bounds of the column it lands in.

The walker enumerates every write endpoint under /api/v1/ (through the same
generator as the OpenAPI schema) and checks its request serializer: an
IntegerField must have min_value/max_value inside its column's range, a
CharField a max_length no longer than its column. A new field fails here until
it is classified below, so the rule cannot be forgotten (issue #11, point 9)."""

import pytest
from django.contrib.auth import get_user_model
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from copytrading.bounds import ID_BOUNDS, INTEGER_RANGES
from copytrading.models import ExchangeAccount, InboxMessage, Instrument, Order, Position
from followers.models import Subscription
from portfolios.models import CopyTemplate, Portfolio
from portfolios.serializers import TpslItemSerializer
from risk.models import RiskLimits
from tests.acceptance.test_bad_input import client_for, ok, refused
from tests.factories import UserFactory

User = get_user_model()

# "<Serializer>.<field>": the column the value is stored in (or compared with).
COLUMNS = {
    "RegisterSerializer.username": (User, "username"),
    "RegisterSerializer.email": (User, "email"),
    "TokenSerializer.username": (User, "username"),
    "PriceSetSerializer.symbol": (Instrument, "symbol"),
    "PortfolioCreateSerializer.name": (Portfolio, "name"),
    "PortfolioCreateSerializer.description": (Portfolio, "description"),
    "PortfolioCreateSerializer.x_url": (Portfolio, "x_url"),
    "PortfolioCreateSerializer.telegram_url": (Portfolio, "telegram_url"),
    "PortfolioCreateSerializer.website_url": (Portfolio, "website_url"),
    "PortfolioUpdateSerializer.name": (Portfolio, "name"),
    "PortfolioUpdateSerializer.description": (Portfolio, "description"),
    "PortfolioUpdateSerializer.x_url": (Portfolio, "x_url"),
    "PortfolioUpdateSerializer.telegram_url": (Portfolio, "telegram_url"),
    "PortfolioUpdateSerializer.website_url": (Portfolio, "website_url"),
    "PortfolioCloseSerializer.reason": (Portfolio, "close_reason"),
    "OrderPlaceSerializer.symbol": (Instrument, "symbol"),
    "OrderPlaceSerializer.leverage": (Order, "leverage"),
    "PositionEditSerializer.leverage": (Position, "leverage"),
    "TemplateWriteSerializer.name": (CopyTemplate, "name"),
    "TemplateWriteSerializer.description": (CopyTemplate, "description"),
    "TemplateWriteSerializer.leverage_override": (CopyTemplate, "leverage_override"),
    "TemplateWriteSerializer.max_open_positions": (CopyTemplate, "max_open_positions"),
    "TemplateCreateSerializer.name": (CopyTemplate, "name"),
    "TemplateCreateSerializer.description": (CopyTemplate, "description"),
    "TemplateCreateSerializer.leverage_override": (CopyTemplate, "leverage_override"),
    "TemplateCreateSerializer.max_open_positions": (CopyTemplate, "max_open_positions"),
    "SettingsSerializer.leverage_override": (Subscription, "leverage_override"),
    "SettingsSerializer.max_open_positions": (RiskLimits, "max_open_positions"),
    "SubscribeSerializer.leverage_override": (Subscription, "leverage_override"),
    "SubscribeSerializer.max_open_positions": (RiskLimits, "max_open_positions"),
    "SubscribeSerializer.template": (Subscription, "template_ref"),
    # The simulator takes what subscribe takes (followers/simulate_api.py).
    "SimulateSerializer.leverage_override": (Subscription, "leverage_override"),
    "SimulateSerializer.max_open_positions": (RiskLimits, "max_open_positions"),
    "SimulateSerializer.template": (Subscription, "template_ref"),
    "SignalSerializer.id": (InboxMessage, "external_id"),
    "SignalSerializer.symbol": (Instrument, "symbol"),
    "SignalSerializer.leverage": (Order, "leverage"),
    "ExchangeAccountLinkSerializer.label": (ExchangeAccount, "label"),
}
# Values that are never stored as sent; they still need a bound.
NOT_STORED = {
    "RegisterSerializer.password": "hashed",
    "TokenSerializer.password": "compared with the hash",
    "PasswordChangeSerializer.old_password": "compared with the hash",
    "PasswordChangeSerializer.new_password": "hashed",
    "PortfolioCreateSerializer.passcode": "hashed",
    "PortfolioUpdateSerializer.passcode": "hashed",
    "OrderPlaceSerializer.type": "checked against the order types by the service",
    "SubscribeSerializer.portfolio": "an id, looked up",
    "SubscribeSerializer.passcode": "compared with the hash",
    "SimulateSerializer.passcode": "compared with the hash",
    "SubscribeSerializer.exchange_account_id": "an id, looked up",
    "PortfolioCreateSerializer.exchange_account_id": "an id, looked up",
    "ExchangeBindSerializer.exchange_account_id": "an id, looked up",
    "TpslItemSerializer.position": "an id, looked up",
    "MoneyMoveSerializer.idempotency_key": "part of Transfer.idempotency_key (200) after a 45-char prefix",
    "ExchangeAccountLinkSerializer.api_key": "encrypted (a TextField), shown masked (20), hashed for uniqueness",
    "ExchangeAccountLinkSerializer.secret": "encrypted (a TextField)",
    "ExchangeAccountLinkSerializer.passphrase": "encrypted (a TextField)",
}
# Request bodies validated item by item by another serializer.
ITEM_SERIALIZERS = {"TpslBatchSerializer": TpslItemSerializer}


def write_serializers() -> dict[str, type[serializers.Serializer]]:
    generator = SchemaGenerator()
    generator._initialise_endpoints()
    found = {}
    for path, _regex, method, callback in generator.endpoints:
        if method not in ("POST", "PUT", "PATCH") or not path.startswith("/api/v1/"):
            continue
        request = generator.create_view(callback, method).schema.get_request_serializer()
        if request is None:
            continue
        cls = request if isinstance(request, type) else type(request)
        found[cls.__name__] = cls
        if cls.__name__ in ITEM_SERIALIZERS:
            item = ITEM_SERIALIZERS[cls.__name__]
            found[item.__name__] = item
    return found


def writable_fields(cls):
    for name, field in cls().fields.items():
        if not field.read_only and isinstance(field, serializers.CharField | serializers.IntegerField):
            yield f"{cls.__name__}.{name}", field


def test_every_write_endpoint_is_walked():
    # The walker finds the endpoints the issue named, and more.
    names = set(write_serializers())
    assert {"SubscribeSerializer", "SettingsSerializer", "TemplateWriteSerializer", "RegisterSerializer"} <= names
    assert len(names) >= 20


def test_every_writable_field_carries_its_column_bounds():
    problems = []
    for cls in write_serializers().values():
        for key, field in writable_fields(cls):
            if key not in COLUMNS and key not in NOT_STORED:
                problems.append(f"{key}: not classified (add it to COLUMNS or NOT_STORED)")
                continue
            column = COLUMNS.get(key)
            model_field = column[0]._meta.get_field(column[1]) if column else None
            if isinstance(field, serializers.IntegerField):
                if model_field is not None:
                    low, high = INTEGER_RANGES[model_field.get_internal_type()]
                else:
                    low, high = -ID_BOUNDS["max_value"] - 1, ID_BOUNDS["max_value"]
                if field.min_value is None or field.max_value is None:
                    problems.append(f"{key}: unbounded integer")
                elif not (low <= field.min_value <= field.max_value <= high):
                    problems.append(f"{key}: [{field.min_value}, {field.max_value}] outside [{low}, {high}]")
            else:
                limit = getattr(model_field, "max_length", None)
                if field.max_length is None:
                    problems.append(f"{key}: no max_length")
                elif limit is not None and field.max_length > limit:
                    problems.append(f"{key}: max_length {field.max_length} > column's {limit}")
    assert problems == []


# Request-level: the named cases answer 400, never 500 (PostgreSQL is
# where the database refuses: SQLite would store them).
TOO_BIG = 2**31


@pytest.mark.django_db
def test_register_with_a_256_char_email_is_a_400(api):
    email = "a" * 244 + "@example.com"
    assert len(email) == 256
    response = api.post("/api/v1/auth/register", {"username": "longmail", "password": "pw-123456789", "email": email})
    refused(response, 400, "INVALID_MAX_LENGTH", "email")
    assert not User.objects.filter(username="longmail").exists()


@pytest.fixture
def bounds_world(instruments):
    leader, follower = UserFactory(username="bleader"), UserFactory(username="bfollower")
    leader_api, follower_api = client_for(leader), client_for(follower)
    ok(leader_api.post("/api/v1/wallets/main/deposit", {"amount": "5000"}, format="json"))
    portfolio = Portfolio.objects.get(
        pk=ok(leader_api.post("/api/v1/portfolios", {"name": "Bounds"}, format="json"))["id"]
    )
    ok(leader_api.post(f"/api/v1/portfolios/{portfolio.pk}/fund", {"amount": "1000"}, format="json"))
    ok(follower_api.post("/api/v1/wallets/main/deposit", {"amount": "5000"}, format="json"))
    sub_id = ok(
        follower_api.post(
            "/api/v1/subscriptions", {"portfolio": portfolio.pk, "amount": "1000", "multiplier": "0.5"}, format="json"
        )
    )["id"]
    return {"follower": follower, "portfolio": portfolio, "subscription": Subscription.objects.get(pk=sub_id)}


@pytest.mark.django_db
def test_subscribe_with_max_open_positions_out_of_range_is_a_400(bounds_world):
    portfolio = bounds_world["portfolio"]
    newcomer = UserFactory(username="newcomer")
    ok(client_for(newcomer).post("/api/v1/wallets/main/deposit", {"amount": "500"}, format="json"))
    before = Subscription.objects.count()
    response = client_for(newcomer).post(
        "/api/v1/subscriptions",
        {"portfolio": portfolio.pk, "amount": "100", "multiplier": "0.5", "max_open_positions": TOO_BIG},
        format="json",
    )
    refused(response, 400, "INVALID_MAX_VALUE", "max_open_positions")
    assert Subscription.objects.count() == before


@pytest.mark.django_db
def test_settings_with_max_open_positions_out_of_range_is_a_400(bounds_world):
    sub = bounds_world["subscription"]
    response = client_for(sub.follower).patch(
        f"/api/v1/subscriptions/{sub.pk}/settings", {"max_open_positions": TOO_BIG}, format="json"
    )
    refused(response, 400, "INVALID_MAX_VALUE", "max_open_positions")
    # In range for the column, out of the product's range: the service's code.
    response = client_for(sub.follower).patch(
        f"/api/v1/subscriptions/{sub.pk}/settings", {"max_open_positions": TOO_BIG - 1}, format="json"
    )
    assert response.status_code == 200, response.content
    assert RiskLimits.objects.get(subscription_id=sub.pk).max_open_positions == TOO_BIG - 1


@pytest.mark.django_db
def test_template_with_max_open_positions_out_of_range_is_a_400(bounds_world):
    portfolio = bounds_world["portfolio"]
    response = client_for(portfolio.leader).post(
        f"/api/v1/portfolios/{portfolio.pk}/templates",
        {"name": "big", "multiplier": "0.5", "max_open_positions": TOO_BIG},
        format="json",
    )
    refused(response, 400, "INVALID_MAX_VALUE", "max_open_positions")
    assert not CopyTemplate.objects.filter(portfolio=portfolio).exists()


@pytest.mark.django_db
def test_settings_leverage_override_beyond_smallint_is_a_400(bounds_world):
    sub = bounds_world["subscription"]
    response = client_for(sub.follower).patch(
        f"/api/v1/subscriptions/{sub.pk}/settings", {"leverage_override": 40000}, format="json"
    )
    refused(response, 400, "INVALID_MAX_VALUE", "leverage_override")


@pytest.mark.django_db
def test_portfolio_name_longer_than_its_column_is_a_400(bounds_world):
    portfolio = bounds_world["portfolio"]
    response = client_for(portfolio.leader).patch(f"/api/v1/portfolios/{portfolio.pk}", {"name": "n" * 81})
    refused(response, 400, "INVALID_MAX_LENGTH", "name")


@pytest.mark.django_db
def test_huge_ids_in_bodies_and_query_parameters_are_not_500s(bounds_world):
    follower = bounds_world["follower"]
    client = client_for(follower)
    response = client.post(
        "/api/v1/subscriptions", {"portfolio": 2**63, "amount": "100", "multiplier": "0.5"}, format="json"
    )
    refused(response, 400, "INVALID_MAX_VALUE", "portfolio")
    response = client.post(
        "/api/v1/subscriptions", {"portfolio": 2**63 - 1, "amount": "100", "multiplier": "0.5"}, format="json"
    )
    assert response.status_code < 500 and response.json()["code"] == "NOT_FOUND", response.content
    assert client.get(f"/api/v1/fees/earnings?portfolio={10**30}").status_code < 500
    assert client.get(f"/api/v1/subscriptions/{10**30}").status_code == 404
