import pytest
from rest_framework.test import APIClient

from tests.exchange_double.fixtures import (  # noqa: F401
    API_KEY,
    API_SECRET,
    exchange_double,
    exchange_stream,
    exchange_stream_settings,
)
from tests.exchange_double.fixtures import exchange_settings as exchange_settings
from tests.factories import UserFactory, token_for

URL = "/api/v1/exchange-accounts"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


@pytest.fixture
def accounts_settings(exchange_settings):
    """ccxt pointed at the double, with a short per-call timeout (a web request's budget)."""
    exchange_settings.EXCHANGE_ACCOUNT_TIMEOUT_SECONDS = 1.0
    return exchange_settings


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def alice_api(alice) -> APIClient:
    return client_for(alice)


def link_body(**changes) -> dict:
    return {"exchange": "binanceusdm", "label": "main futures", "api_key": API_KEY, "secret": API_SECRET} | changes


from tests.exchanges.submitting import submit_settings  # noqa: E402, F401
