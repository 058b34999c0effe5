"""PostgreSQL, the same key linked by two requests at once (one thread and
connection each): both pass the duplicate check while the exchange is asked,
the unique constraint lets one row in, and the other answers 409 — never a
second row, never a 500."""

import threading

import pytest
from django.db import connection

from copytrading.exchanges.models import ExchangeAccount
from tests.exchanges.conftest import URL, client_for, link_body
from tests.factories import UserFactory


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_key_linked_twice_at_once_is_one_account(accounts_settings, exchange_double):
    assert connection.vendor == "postgresql"
    user = UserFactory(username="twice")
    clients = [client_for(user), client_for(user)]
    exchange_double.latency = 0.3  # both requests are past the duplicate check before either inserts
    barrier = threading.Barrier(2)
    answers: list[object] = [None, None]

    def link(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            response = clients[i].post(URL, link_body(label=f"try {i}"), format="json")
            answers[i] = (response.status_code, response.json()["code"] if response.status_code != 201 else "")
        except BaseException as exc:  # noqa: BLE001 - reported in the assertion
            answers[i] = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    threads = [threading.Thread(target=link, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers, key=str) == [(201, ""), (409, "EXCHANGE_ACCOUNT_EXISTS")], answers
    assert ExchangeAccount.objects.filter(user=user).count() == 1
    # Both asked the exchange: the race was real, not refused by the early check.
    assert sum(r.path == "/fapi/v3/account" for r in exchange_double.state.requests) == 2
