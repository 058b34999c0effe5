"""Idempotency-Key on every money-moving POST (issue #11, point 11): a retry
replays the first answer, another body with the same key is 409, a key in use
is 409, keys are per user, and the record commits with the change or not at all."""

import threading
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from config.celery import app as celery_app
from copytrading.models import IdempotentRequest, LeaderEvent, Order, Transfer
from copytrading.tasks import cleanup_idempotent_requests
from followers.models import Subscription
from portfolios import services as portfolio_services
from tests.acceptance.test_bad_input import client_for, ok
from tests.factories import UserFactory

BTC_PERP = "BTC/USDT:USDT"
ORDER = {"symbol": BTC_PERP, "side": "buy", "quantity": "0.01", "leverage": 10}


def leader_with_portfolio(name: str = "lead"):
    user = UserFactory(username=name)
    client = client_for(user)
    ok(client.post("/api/v1/wallets/main/deposit", {"amount": "50000"}, format="json"))
    portfolio = ok(client.post("/api/v1/portfolios", {"name": f"P {name}"}, format="json"))["id"]
    ok(client.post(f"/api/v1/portfolios/{portfolio}/fund", {"amount": "20000"}, format="json"))
    return user, client, portfolio


@pytest.fixture
def leader(instruments):
    return leader_with_portfolio()


def place(client, portfolio, body=ORDER, key="order-1"):
    return client.post(f"/api/v1/portfolios/{portfolio}/orders", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_a_retried_order_replays_the_first_answer(leader):
    _, client, portfolio = leader
    events_before = LeaderEvent.objects.count()
    first = place(client, portfolio)
    assert first.status_code == 201, first.content
    # The client timed out and sends the same request again.
    retry = place(client, portfolio)
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert LeaderEvent.objects.count() == events_before + 1
    assert Order.objects.filter(account__isnull=False, instrument__symbol=BTC_PERP).count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_409(leader):
    _, client, portfolio = leader
    assert place(client, portfolio).status_code == 201
    other = place(client, portfolio, {**ORDER, "quantity": "0.02"})
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    # Another endpoint with the same key is another request, too.
    deposit = client.post(
        "/api/v1/wallets/main/deposit", {"amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="order-1"
    )
    assert (deposit.status_code, deposit.json()["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert Order.objects.filter(instrument__symbol=BTC_PERP).count() == 1


@pytest.mark.django_db
def test_keys_are_per_user(instruments):
    _, client_a, portfolio_a = leader_with_portfolio("ann")
    _, client_b, portfolio_b = leader_with_portfolio("bob")
    assert place(client_a, portfolio_a, key="same").status_code == 201
    second = place(client_b, portfolio_b, key="same")
    assert second.status_code == 201 and not second.has_header("Idempotent-Replayed")
    assert Order.objects.filter(instrument__symbol=BTC_PERP).count() == 2


@pytest.mark.django_db
def test_a_refused_input_is_not_stored_and_the_key_can_be_retried(leader):
    _, client, portfolio = leader
    bad = place(client, portfolio, {**ORDER, "quantity": "lots"})
    assert bad.status_code == 400
    good = place(client, portfolio)
    assert good.status_code == 201 and not good.has_header("Idempotent-Replayed")


@pytest.mark.django_db
def test_a_refusal_after_execution_began_is_replayed(leader):
    # 409 PORTFOLIO_NOT_ACTIVE is an answer (Stripe stores those): the retry
    # gets it again even after the state changed.
    _, client, portfolio = leader
    ok(client.post(f"/api/v1/portfolios/{portfolio}/close", {}, format="json"), 202)
    first = place(client, portfolio, key="late")
    assert (first.status_code, first.json()["code"]) == (409, "PORTFOLIO_NOT_ACTIVE")
    retry = place(client, portfolio, key="late")
    assert retry.status_code == 409 and retry["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_server_error_is_not_stored_and_changed_nothing(leader, monkeypatch):
    user, _, portfolio = leader
    real = portfolio_services.portfolio_order_place
    calls = []

    def flaky(**kwargs):
        events = real(**kwargs)  # the order is written, then the bug strikes
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug after the write")
        return events

    monkeypatch.setattr(portfolio_services, "portfolio_order_place", flaky)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    url = f"/api/v1/portfolios/{portfolio}/orders"
    first = client.post(url, ORDER, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k5")
    assert first.status_code == 500
    assert Order.objects.filter(instrument__symbol=BTC_PERP).count() == 0  # rolled back with the request
    assert not IdempotentRequest.objects.filter(key="k5").exists()
    retry = client.post(url, ORDER, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k5")
    assert retry.status_code == 201 and not retry.has_header("Idempotent-Replayed")
    assert Order.objects.filter(instrument__symbol=BTC_PERP).count() == 1


@pytest.mark.django_db
def test_the_record_and_the_change_commit_together(leader, monkeypatch):
    user, _, portfolio = leader

    def crash(**kwargs):
        raise RuntimeError("crash while storing the answer")

    monkeypatch.setattr(IdempotentRequest.objects, "create", crash)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    response = client.post(
        f"/api/v1/portfolios/{portfolio}/orders", ORDER, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k6"
    )
    assert response.status_code == 500
    # The order was placed inside the same transaction: it is gone with it.
    assert Order.objects.filter(instrument__symbol=BTC_PERP).count() == 0


@pytest.fixture
def follower_world(instruments):
    _, leader_client, portfolio = leader_with_portfolio()
    user = UserFactory(username="fol")
    client = client_for(user)
    ok(client.post("/api/v1/wallets/main/deposit", {"amount": "5000"}, format="json"))
    return user, client, portfolio, leader_client


@pytest.mark.django_db
def test_every_money_moving_post_replays(follower_world):
    user, client, portfolio, leader_client = follower_world

    def twice(c, url, body, key):
        first = c.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        transfers = Transfer.objects.count()
        retry = c.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert first.status_code in (200, 201), (url, first.content)
        assert (retry.status_code, retry.json()) == (first.status_code, first.json()), url
        assert retry["Idempotent-Replayed"] == "true"
        assert Transfer.objects.count() == transfers, f"{url} moved money again"
        return first.json()

    twice(client, "/api/v1/wallets/main/deposit", {"amount": "10"}, "dep")
    twice(leader_client, f"/api/v1/portfolios/{portfolio}/fund", {"amount": "10"}, "fund")
    sub = twice(client, "/api/v1/subscriptions", {"portfolio": portfolio, "amount": "1000", "multiplier": "0.5"}, "sub")
    assert Subscription.objects.filter(follower=user).count() == 1
    twice(client, f"/api/v1/subscriptions/{sub['id']}/top-up", {"amount": "100"}, "top")
    twice(client, f"/api/v1/subscriptions/{sub['id']}/withdraw", {"amount": "50"}, "wd")


@pytest.mark.django_db
def test_the_body_key_of_top_up_still_works(follower_world):
    _, client, portfolio, _ = follower_world
    sub = ok(
        client.post(
            "/api/v1/subscriptions", {"portfolio": portfolio, "amount": "1000", "multiplier": "0.5"}, format="json"
        )
    )
    url = f"/api/v1/subscriptions/{sub['id']}/top-up"
    first = client.post(url, {"amount": "100", "idempotency_key": "b1"}, format="json")
    transfers = Transfer.objects.count()
    retry = client.post(url, {"amount": "100", "idempotency_key": "b1"}, format="json")
    assert retry.json() == first.json() and Transfer.objects.count() == transfers
    other = client.post(url, {"amount": "200", "idempotency_key": "b1"}, format="json")
    assert (other.status_code, other.json()["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.django_db
def test_a_key_too_long_is_refused(leader):
    _, client, portfolio = leader
    response = place(client, portfolio, key="k" * 101)
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_IDEMPOTENCY_KEY")
    assert Order.objects.filter(instrument__symbol=BTC_PERP).count() == 0


@pytest.mark.django_db
def test_after_24_hours_a_key_is_new_and_cleanup_drops_it(leader):
    _, client, portfolio = leader
    assert place(client, portfolio, key="old").status_code == 201
    IdempotentRequest.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    again = place(client, portfolio, key="old")
    assert again.status_code == 201 and not again.has_header("Idempotent-Replayed")
    assert Order.objects.filter(instrument__symbol=BTC_PERP).count() == 2
    assert place(client, portfolio, key="fresh").status_code == 201
    IdempotentRequest.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    assert cleanup_idempotent_requests() == 1
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["fresh"]


def test_the_cleanup_is_scheduled_once():
    entries = [e for e in celery_app.conf.beat_schedule.values() if e["task"].endswith("cleanup_idempotent_requests")]
    assert len(entries) == 1 and entries[0]["schedule"] <= 3600


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_place_one_order(instruments, monkeypatch):
    """The second request arrives while the first is inside the service: it
    is told the key is in use; once the first commits, a retry replays it."""
    _, client, portfolio = leader_with_portfolio()
    inside, answered = threading.Event(), threading.Event()
    real = portfolio_services.portfolio_order_place

    def slow(**kwargs):
        events = real(**kwargs)
        inside.set()
        answered.wait(30)  # hold the transaction open until the second answered
        return events

    monkeypatch.setattr(portfolio_services, "portfolio_order_place", slow)
    results = {}

    def first():
        try:
            results["first"] = place(client, portfolio, key="race")
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(30)
    try:
        second = place(client, portfolio, key="race")
    finally:
        answered.set()
        thread.join(60)
    assert (second.status_code, second.json()["code"]) == (409, "IDEMPOTENCY_KEY_IN_USE")
    assert results["first"].status_code == 201
    retry = place(client, portfolio, key="race")
    assert retry.status_code == 201 and retry.json() == results["first"].json()
    assert Order.objects.filter(instrument__symbol=BTC_PERP).count() == 1


@pytest.mark.django_db
def test_a_retried_partial_close_closes_once(follower_world, django_capture_on_commit_callbacks):
    """A partial close is not idempotent by nature (each call takes another
    slice): retried with its key, the leader's and the follower's close the
    asked quantity once."""
    from copytrading.models import Position

    _, client, portfolio, leader_client = follower_world
    sub = ok(client.post("/api/v1/subscriptions", {"portfolio": portfolio, "amount": "2000", "multiplier": "1"}))
    with django_capture_on_commit_callbacks(execute=True):
        ok(leader_client.post(f"/api/v1/portfolios/{portfolio}/orders", {**ORDER, "quantity": "0.04"}))
    leader_position = Position.objects.get(account__portfolio__pk=portfolio, status="open")
    mirror = Position.objects.get(subscription_id=sub["id"], status="open")
    for c, url, position in (
        (leader_client, f"/api/v1/portfolios/{portfolio}/positions/{leader_position.pk}/close", leader_position),
        (client, f"/api/v1/subscriptions/{sub['id']}/positions/{mirror.pk}/close", mirror),
    ):
        before = Position.objects.get(pk=position.pk).quantity
        first = c.post(url, {"quantity": "0.01"}, format="json", HTTP_IDEMPOTENCY_KEY="close-1")
        retry = c.post(url, {"quantity": "0.01"}, format="json", HTTP_IDEMPOTENCY_KEY="close-1")
        assert first.status_code == 200, first.content
        assert (retry.status_code, retry.json(), retry["Idempotent-Replayed"]) == (200, first.json(), "true")
        assert Position.objects.get(pk=position.pk).quantity == before - D("0.01")
