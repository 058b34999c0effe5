"""An exchange whose keys carry a passphrase (OKX), against a small OKX
double (tests/exchange_double/okx.py) with ccxt's own signing: the
passphrase is required, checked by the exchange, encrypted at rest, never
answered or logged; a key with the withdraw permission is refused."""

import logging

import pytest

from copytrading.exchanges import crypto
from copytrading.exchanges.models import ExchangeAccount
from tests.exchange_double.okx import OkxDouble, OkxKey
from tests.exchanges.conftest import URL

KEY, SECRET, PASSPHRASE = "okx-api-key-5f3a9c21", "okx-secret-7d21e8b4c0", "Okx-Pass-Phrase-42"


@pytest.fixture
def okx(settings):
    double = OkxDouble().start()
    double.state.keys[KEY] = OkxKey(secret=SECRET, passphrase=PASSPHRASE)
    settings.EXCHANGE_URL_OVERRIDE = double.url
    settings.EXCHANGE_ACCOUNT_TIMEOUT_SECONDS = 1.0
    try:
        yield double
    finally:
        double.stop()


def body(**changes) -> dict:
    return {"exchange": "okx", "label": "okx", "api_key": KEY, "secret": SECRET, "passphrase": PASSPHRASE} | changes


def test_a_passphrase_key_links_and_the_passphrase_is_encrypted(alice_api, okx, caplog):
    caplog.set_level(logging.DEBUG)
    response = alice_api.post(URL, body(), format="json")
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["has_passphrase"] is True and answer["status"] == "valid"
    assert answer["permissions"] == {"withdraw": False, "reading": True, "trade": True}
    paths = {(path, key, status) for _, path, key, status in okx.state.requests}
    assert ("/api/v5/account/balance", KEY, 200) in paths and ("/api/v5/account/config", KEY, 200) in paths
    account = ExchangeAccount.objects.get()
    assert crypto.decrypt(account.passphrase_encrypted) == PASSPHRASE
    assert PASSPHRASE not in account.passphrase_encrypted
    # ccxt logged the requests (the passphrase travels in a header): redacted.
    assert "OK-ACCESS-PASSPHRASE" in caplog.text
    for secret in (KEY, SECRET, PASSPHRASE):
        assert secret not in caplog.text and secret not in response.content.decode()


@pytest.mark.parametrize(
    "changes",
    [{"passphrase": "not-the-passphrase"}, {"secret": "not-the-secret-at-all"}],
    ids=["wrong-passphrase", "bad-signature"],
)
def test_a_refused_passphrase_or_signature_stores_nothing(alice_api, okx, changes):
    response = alice_api.post(URL, body(**changes), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "EXCHANGE_AUTH_FAILED"
    assert not ExchangeAccount.objects.exists()


def test_a_key_with_the_withdraw_permission_is_refused(alice_api, okx):
    okx.state.keys[KEY].perm = "read_only,trade,withdraw"
    response = alice_api.post(URL, body(), format="json")
    assert response.status_code == 400 and response.json()["code"] == "EXCHANGE_KEY_CAN_WITHDRAW"
    assert not ExchangeAccount.objects.exists()


@pytest.mark.parametrize("status", [429, 503])
def test_an_okx_outage_is_503_and_stores_nothing(alice_api, okx, status):
    okx.state.fail_next.extend([status] * 10)
    response = alice_api.post(URL, body(), format="json")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "EXCHANGE_UNAVAILABLE"
    assert not ExchangeAccount.objects.exists()
