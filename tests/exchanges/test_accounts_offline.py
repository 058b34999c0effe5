"""Without the exchange double the suite still reaches no exchange: the
autouse guard (tests/conftest.py) sends ccxt to a closed local port, and a
link answers 503 with nothing stored."""

import time

from copytrading.exchanges.models import ExchangeAccount
from tests.exchanges.conftest import URL, link_body


def test_an_unreachable_exchange_is_503_at_once_and_nothing_is_stored(alice_api):
    started = time.monotonic()
    response = alice_api.post(URL, link_body(), format="json")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "EXCHANGE_UNAVAILABLE"
    assert time.monotonic() - started < 5  # refused, not a DNS lookup or a timeout
    assert not ExchangeAccount.objects.exists()
