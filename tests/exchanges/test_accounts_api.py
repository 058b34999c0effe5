"""Linked exchange accounts through the REST API, against the local exchange
double with ccxt pointed at it (ccxt's own signing, parsing and error
mapping run): link, list masked, read, re-validate, delete; the key's
permissions; every exchange failure a stable code with nothing stored; the
credentials never readable in the database, the answers or the logs."""

import logging

import pytest
from django.db import connection

from copytrading.exchanges import crypto
from copytrading.exchanges.models import ExchangeAccount
from tests.exchange_double.fixtures import API_KEY, API_SECRET
from tests.exchanges.conftest import URL, client_for, link_body
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("accounts_settings")

OKX_PASSPHRASE = "my-okx-passphrase"


def linked(api, **changes) -> dict:
    response = api.post(URL, link_body(**changes), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def refused(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert (body["code"], body["field"]) == (code, field), body
    return body


def raw_rows() -> list[tuple]:
    """Every column of every exchange account, as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ExchangeAccount._meta.db_table}")
        return cursor.fetchall()


def test_link_reads_the_balances_and_answers_the_key_masked(alice_api, exchange_double):
    body = linked(alice_api)
    assert body["exchange"] == "binanceusdm" and body["label"] == "main futures"
    assert body["api_key"] == f"{API_KEY[:4]}…{API_KEY[-4:]}"
    assert body["status"] == "valid" and body["has_passphrase"] is False
    assert body["permissions"]["withdraw"] is False and body["permissions"]["futures"] is True
    assert body["last_validated_at"] == body["created_at"]
    assert "secret" not in body and "passphrase" not in body
    # ccxt signed and sent both reads to the double, which checked the signatures.
    asked = {(r.path, r.api_key, r.answered) for r in exchange_double.state.requests}
    assert ("/fapi/v3/account", API_KEY, 200) in asked
    assert ("/sapi/v1/account/apiRestrictions", API_KEY, 200) in asked


def test_the_database_holds_neither_the_secret_nor_the_key(alice_api):
    linked(alice_api)
    (row,) = raw_rows()
    text = " ".join(str(value) for value in row)
    assert API_SECRET not in text
    assert API_KEY not in text
    account = ExchangeAccount.objects.get()
    assert crypto.decrypt(account.secret_encrypted) == API_SECRET
    assert crypto.decrypt(account.api_key_encrypted) == API_KEY


def test_list_and_read_show_only_the_masked_key(alice_api):
    body = linked(alice_api)
    for response in (alice_api.get(URL), alice_api.get(f"{URL}/{body['id']}")):
        assert response.status_code == 200
        assert API_SECRET.encode() not in response.content and API_KEY.encode() not in response.content
    assert [row["id"] for row in alice_api.get(URL).json()["results"]] == [body["id"]]
    assert alice_api.get(f"{URL}/{body['id']}").json() == body


def test_a_key_that_can_withdraw_is_refused_and_nothing_stored(alice_api, exchange_double):
    exchange_double.state.accounts[API_KEY].permissions["enableWithdrawals"] = True
    body = refused(alice_api.post(URL, link_body(), format="json"), 400, "EXCHANGE_KEY_CAN_WITHDRAW", "api_key")
    assert "withdraw" in body["detail"]
    assert not ExchangeAccount.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"secret": "not-the-secret-of-this-key"}, id="bad-signature"),
        pytest.param({"api_key": "an-unknown-api-key-0002"}, id="unknown-key"),
    ],
)
def test_a_key_the_exchange_refuses_is_refused_and_nothing_stored(alice_api, exchange_double, changes):
    refused(alice_api.post(URL, link_body(**changes), format="json"), 400, "EXCHANGE_AUTH_FAILED", "api_key")
    assert not ExchangeAccount.objects.exists()
    assert exchange_double.state.requests  # the exchange was asked, and said no


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        ("/fapi/v3/account", {"kind": "status", "status": 429, "retry_after": 7}),
        ("/fapi/v3/account", {"kind": "status", "status": 418}),
        ("/fapi/v3/account", {"kind": "status", "status": 500}),
        ("/fapi/v3/account", {"kind": "status", "status": 503}),
        ("/fapi/v3/account", {"kind": "timeout", "seconds": 3}),
        ("/fapi/v1/exchangeInfo", {"kind": "status", "status": 502}),
        ("/sapi/v1/account/apiRestrictions", {"kind": "status", "status": 429}),
        ("/sapi/v1/account/apiRestrictions", {"kind": "timeout", "seconds": 3}),
    ],
    ids=lambda value: value if isinstance(value, str) else f"{value['kind']}-{value.get('status', '')}",
)
def test_an_exchange_that_fails_answers_503_and_nothing_is_stored(alice_api, exchange_double, path, fault):
    exchange_double.inject(path=path, **fault)
    response = alice_api.post(URL, link_body(), format="json")
    body = refused(response, 503, "EXCHANGE_UNAVAILABLE")
    assert response["Retry-After"] == str(body["retry_after"])
    assert not ExchangeAccount.objects.exists()
    assert API_SECRET not in response.content.decode()


def test_the_same_key_twice_is_a_conflict_but_another_user_may_link_it(alice_api, exchange_double):
    linked(alice_api)
    asked = len(exchange_double.state.requests)
    refused(alice_api.post(URL, link_body(label="again"), format="json"), 409, "EXCHANGE_ACCOUNT_EXISTS", "api_key")
    assert len(exchange_double.state.requests) == asked  # refused before the exchange was asked
    bob_api = client_for(UserFactory(username="bob"))
    linked(bob_api)
    assert ExchangeAccount.objects.count() == 2


def test_credentials_the_exchange_needs_and_only_those(alice_api, exchange_double):
    refused(alice_api.post(URL, link_body(exchange="okx"), format="json"), 400, "PASSPHRASE_REQUIRED", "passphrase")
    refused(
        alice_api.post(URL, link_body(passphrase=OKX_PASSPHRASE), format="json"),
        400,
        "PASSPHRASE_NOT_USED",
        "passphrase",
    )
    refused(
        alice_api.post(URL, link_body(exchange="no-such-exchange"), format="json"), 400, "INVALID_CHOICE", "exchange"
    )
    # A wallet-signing exchange (a private key, no API secret) cannot be linked.
    refused(alice_api.post(URL, link_body(exchange="hyperliquid"), format="json"), 400, "INVALID_CHOICE", "exchange")
    refused(alice_api.post(URL, link_body(secret=""), format="json"), 400, "INVALID_BLANK", "secret")
    assert not exchange_double.state.requests  # none of these reached the exchange
    assert not ExchangeAccount.objects.exists()


def test_no_configured_key_refuses_before_asking_the_exchange(alice_api, exchange_double, settings):
    settings.EXCHANGE_SECRET_KEYS = []
    refused(alice_api.post(URL, link_body(), format="json"), 503, "EXCHANGE_SECRETS_NOT_CONFIGURED")
    assert not exchange_double.state.requests
    assert not ExchangeAccount.objects.exists()


def test_revalidation_records_what_the_exchange_says(alice_api, exchange_double):
    body = linked(alice_api)
    validate = f"{URL}/{body['id']}/validate"
    state = exchange_double.state

    state.accounts[API_KEY].permissions["enableWithdrawals"] = True
    again = alice_api.post(validate)
    assert again.status_code == 200, again.content
    assert again.json()["status"] == "can_withdraw" and again.json()["permissions"]["withdraw"] is True
    assert again.json()["last_validated_at"] > body["last_validated_at"]

    state.accounts[API_KEY].permissions["enableWithdrawals"] = False
    assert alice_api.post(validate).json()["status"] == "valid"

    revoked = state.accounts.pop(API_KEY)  # the user deleted the key at the exchange
    after_revoke = alice_api.post(validate).json()
    assert after_revoke["status"] == "auth_failed"
    assert after_revoke["permissions"]["withdraw"] is False  # what was last known

    state.accounts[API_KEY] = revoked
    exchange_double.inject(kind="status", status=503, path="/fapi/v3/account")
    refused(alice_api.post(validate), 503, "EXCHANGE_UNAVAILABLE")
    assert alice_api.get(f"{URL}/{body['id']}").json() == after_revoke  # nothing recorded
    assert alice_api.post(validate).json()["status"] == "valid"


def test_delete_wipes_the_credentials_before_the_row_goes(alice_api):
    body = linked(alice_api)
    statements = []

    def record(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = alice_api.delete(f"{URL}/{body['id']}")
    assert response.status_code == 204
    table = ExchangeAccount._meta.db_table
    writes = [(sql.split()[0], params) for sql, params in statements if table in sql and not sql.startswith("SELECT")]
    assert [verb for verb, _ in writes] == ["UPDATE", "DELETE"], writes
    assert list(writes[0][1])[:3] == ["", "", ""]  # the three encrypted columns overwritten first
    assert raw_rows() == []
    refused(alice_api.get(f"{URL}/{body['id']}"), 404, "NOT_FOUND")
    refused(alice_api.delete(f"{URL}/{body['id']}"), 404, "NOT_FOUND")


def test_another_users_account_is_not_there(alice_api, exchange_double):
    body = linked(alice_api)
    mallory = client_for(UserFactory(username="mallory"))
    assert mallory.get(URL).json()["results"] == []
    refused(mallory.get(f"{URL}/{body['id']}"), 404, "NOT_FOUND")
    asked = len(exchange_double.state.requests)
    refused(mallory.post(f"{URL}/{body['id']}/validate"), 404, "NOT_FOUND")
    refused(mallory.delete(f"{URL}/{body['id']}"), 404, "NOT_FOUND")
    assert len(exchange_double.state.requests) == asked  # her validate never reached the exchange
    assert alice_api.get(f"{URL}/{body['id']}").json() == body


def test_anonymous_callers_are_refused(api):
    for response in (api.get(URL), api.post(URL, link_body(), format="json"), api.delete(f"{URL}/1")):
        assert response.status_code == 401


def test_no_secret_in_any_answer_or_log_record(alice_api, exchange_double, caplog):
    caplog.set_level(logging.DEBUG)
    answers = [alice_api.post(URL, link_body(), format="json")]
    account_id = answers[0].json()["id"]
    answers.append(alice_api.post(f"{URL}/{account_id}/validate"))
    answers.append(alice_api.get(URL))
    exchange_double.inject(kind="status", status=500, path="/fapi/v3/account")
    answers.append(alice_api.post(f"{URL}/{account_id}/validate"))
    exchange_double.inject(kind="timeout", seconds=3, path="/fapi/v3/account")
    answers.append(alice_api.post(URL, link_body(api_key="another-api-key-0003", secret="another-secret-0003")))
    answers.append(alice_api.post(URL, link_body(secret="a-wrong-secret-0004"), format="json"))
    assert [a.status_code for a in answers] == [201, 200, 200, 503, 503, 409]
    # The wire was logged (ccxt logs every request at DEBUG): the check below means something.
    assert "/fapi/v3/account" in caplog.text and "X-MBX-APIKEY" in caplog.text
    for secret in (API_KEY, API_SECRET, "another-api-key-0003", "another-secret-0003", "a-wrong-secret-0004"):
        assert secret not in caplog.text, secret
        for answer in answers:
            assert secret not in answer.content.decode()


def test_the_list_pages_newest_first(alice_api, exchange_double):
    exchange_double.state.add_account("second-api-key-0002", "second-secret-0002")
    first = linked(alice_api)
    second = linked(alice_api, api_key="second-api-key-0002", secret="second-secret-0002", label="second")
    page = alice_api.get(URL, {"limit": 1}).json()
    assert [row["id"] for row in page["results"]] == [second["id"]] and page["next_cursor"]
    rest = alice_api.get(URL, {"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [row["id"] for row in rest["results"]] == [first["id"]] and rest["next_cursor"] is None


def test_checks_are_throttled_per_user_before_the_exchange_is_asked(alice_api, exchange_double, settings):
    settings.EXCHANGE_ACCOUNT_CHECKS_PER_MINUTE = 2
    body = linked(alice_api)
    assert alice_api.post(f"{URL}/{body['id']}/validate").status_code == 200
    asked = len(exchange_double.state.requests)
    response = alice_api.post(f"{URL}/{body['id']}/validate")
    refused(response, 429, "EXCHANGE_CHECKS_THROTTLED")
    assert 0 < int(response["Retry-After"]) <= 60
    refused(alice_api.post(URL, link_body(label="again"), format="json"), 409, "EXCHANGE_ACCOUNT_EXISTS", "api_key")
    assert len(exchange_double.state.requests) == asked
    # Another user has a count of their own.
    assert client_for(UserFactory(username="bob")).post(URL, link_body(), format="json").status_code == 201
