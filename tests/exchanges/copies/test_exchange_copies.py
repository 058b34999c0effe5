"""Subscribing onto a linked exchange account (the API's checks, against the
exchange double), the execution log's exchange timeline, and the one-account
paths of exchange-bound copies: TP/SL triggers and unfollow."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from copytrading.exchanges.models import ExchangeAccountStatus, ExchangeOrder
from copytrading.exchanges.models import ExchangeOrderStatus as S
from copytrading.ledger import ledger_check
from copytrading.models import Account, Execution, Order, OrderStatus, Position, PositionStatus
from copytrading.services import wallet_deposit
from followers.models import Subscription, SubscriptionStatus
from followers.services import subscription_resume, subscription_unfollow
from tests.copytrading.world import ETH_PERP, mirrors_of, wallet
from tests.exchanges.copies.conftest import bound_follower, exchange_orders_of, linked_account, outcome, tell
from tests.factories import UserFactory, token_for

D = Decimal
URL = "/api/v1/subscriptions"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


@pytest.fixture
def follower(db):
    user = UserFactory()
    wallet_deposit(user=user, amount=D("20000"))
    return user


def subscribe(client, portfolio, **body):
    return client.post(URL, {"portfolio": portfolio.pk, "amount": "1000", "multiplier": "0.5", **body}, format="json")


def test_subscribing_onto_an_exchange_account_binds_the_copy_wallet(world, follower):
    portfolio = world.leader()
    linked = linked_account(follower)

    response = subscribe(client_for(follower), portfolio, exchange_account_id=linked.pk)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["exchange_account"] == {
        "id": linked.pk, "exchange": "binanceusdm", "label": "futures", "api_key_hint": linked.api_key_hint,
    }  # fmt: skip
    sub = Subscription.objects.get(pk=body["id"])
    assert Account.objects.get(pk=sub.copy_account_id).exchange_account_id == linked.pk
    assert client_for(follower).get(f"{URL}/{sub.pk}").json()["exchange_account"]["id"] == linked.pk
    # A paper copy shows none.
    other = subscribe(client_for(follower), world.leader())
    assert other.status_code == 201 and other.json()["exchange_account"] is None


def test_a_retried_bound_subscribe_gets_its_first_answer(world, follower):
    # The retry's account is now bound to the wallet the first request made:
    # it must get that answer back, not a refusal of its own binding.
    portfolio = world.leader()
    linked = linked_account(follower)
    client = client_for(follower)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(follower)}", HTTP_IDEMPOTENCY_KEY="sub-1")

    first = subscribe(client, portfolio, exchange_account_id=linked.pk)
    again = subscribe(client, portfolio, exchange_account_id=linked.pk)

    assert first.status_code == again.status_code == 201, again.json()
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert Subscription.objects.filter(follower=follower).count() == 1


def test_binding_refusals_have_stable_codes_and_store_nothing(world, follower, exchange_double, settings):
    portfolio = world.leader()
    stranger = linked_account(UserFactory())
    client = client_for(follower)
    before = (Subscription.objects.count(), Account.objects.count())

    def refused(status, code, **body):
        response = subscribe(client, portfolio, **body)
        assert (response.status_code, response.json()["code"]) == (status, code), response.json()
        assert (Subscription.objects.count(), Account.objects.count()) == before

    refused(404, "NOT_FOUND", exchange_account_id=stranger.pk)
    refused(400, "ALLOCATION_ABOVE_EXCHANGE_BALANCE", exchange_account_id=linked_account(follower).pk, amount="10001")
    invalid = linked_account(follower, exchange="binance")
    invalid.status = ExchangeAccountStatus.AUTH_FAILED
    invalid.save()
    refused(409, "EXCHANGE_ACCOUNT_NOT_VALID", exchange_account_id=invalid.pk)
    # The exchange does not answer: 503, nothing stored.
    mine = follower.exchange_accounts.get(exchange="binanceusdm")
    exchange_double.inject("timeout", path="/fapi", seconds=5, times=None)
    settings.EXCHANGE_ACCOUNT_TIMEOUT_SECONDS = 0.5
    refused(503, "EXCHANGE_UNAVAILABLE", exchange_account_id=mine.pk)
    exchange_double.state.clear_faults()

    # Bound to an open copy already: 409.
    assert subscribe(client, portfolio, exchange_account_id=mine.pk).status_code == 201
    another = world.leader()
    before = (Subscription.objects.count(), Account.objects.count())
    refused_again = subscribe(client, another, exchange_account_id=mine.pk)
    assert (refused_again.status_code, refused_again.json()["code"]) == (409, "EXCHANGE_ACCOUNT_IN_USE")
    assert (Subscription.objects.count(), Account.objects.count()) == before


def test_the_execution_log_shows_the_exchange_timeline(world, follower):
    portfolio = world.leader()
    paper = world.follower(portfolio)
    linked = linked_account(follower)
    sub = Subscription.objects.get(
        pk=subscribe(client_for(follower), portfolio, exchange_account_id=linked.pk).json()["id"]
    )
    world.trade(portfolio, ETH_PERP, "buy", "2")
    (row,) = exchange_orders_of(sub)
    ExchangeOrder.objects.filter(pk=row.pk).update(status=S.SENT, submitted_at=row.decided_at, attempts=1)
    row.refresh_from_db()
    tell(world, outcome(row, S.FILLED, "0.25", "3201"))

    (entry,) = client_for(follower).get(f"{URL}/{sub.pk}/executions").json()["results"]

    row.refresh_from_db()
    exchange = entry["exchange"]
    assert exchange["client_order_id"] == row.client_order_id and exchange["status"] == "filled"
    assert None not in (
        exchange["decided_at"],
        exchange["submitted_at"],
        exchange["acknowledged_at"],
        exchange["filled_at"],
    )
    assert (D(exchange["filled_quantity"]), D(exchange["average_price"]), exchange["reject_code"]) == (
        D("0.25"), D("3201"), "",
    )  # fmt: skip
    assert (entry["outcome"], D(entry["follower_quantity"]), D(entry["follower_price"])) == (
        "COPIED",
        D("0.25"),
        D("3201"),
    )
    (paper_entry,) = client_for(paper.follower).get(f"{URL}/{paper.pk}/executions").json()["results"]
    assert paper_entry["exchange"] is None


def test_a_stop_loss_on_an_exchange_copy_closes_through_the_exchange_once(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    tell(world, outcome(exchange_orders_of(bound)[0], S.FILLED, "1", "3200"))
    mirror = mirrors_of(bound).get()
    Position.objects.filter(pk=mirror.pk).update(stop_loss=D("3100"))

    world.price(ETH_PERP, "3090")
    world.price(ETH_PERP, "3080")  # the trigger again while the close is pending: no second order

    mirror.refresh_from_db()
    assert mirror.status == PositionStatus.OPEN  # nothing before the exchange fills
    closes = [r for r in exchange_orders_of(bound) if r.reduce_only]
    assert len(closes) == 1 and closes[0].client_order_id == f"ct-c{closes[0].order_id}"
    assert closes[0].quantity == D("1")

    tell(world, outcome(closes[0], S.FILLED, "1", "3090"))

    mirror.refresh_from_db()
    assert (mirror.status, mirror.realized_pnl) == (PositionStatus.CLOSED, D("-110"))
    assert wallet(bound).balance == D("4890") and wallet(bound).locked == 0
    assert ledger_check().ok


def test_a_refused_stop_loss_close_is_not_resent_on_every_tick(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    tell(world, outcome(exchange_orders_of(bound)[0], S.FILLED, "1", "3200"))
    mirror = mirrors_of(bound).get()
    Position.objects.filter(pk=mirror.pk).update(stop_loss=D("3100"))
    world.price(ETH_PERP, "3090")
    (close,) = [r for r in exchange_orders_of(bound) if r.reduce_only]

    tell(world, outcome(close, S.REJECTED, reject_code="EXCHANGE_AUTH_FAILED"))  # the key was revoked
    world.price(ETH_PERP, "3080")
    world.price(ETH_PERP, "3070")

    assert len([r for r in exchange_orders_of(bound) if r.reduce_only]) == 1  # cooling down, not re-sent per tick
    mirror.refresh_from_db()
    assert mirror.status == PositionStatus.OPEN and wallet(bound).locked > 0  # its margin still held
    assert ledger_check().ok


def test_unfollow_waits_for_the_exchange_closes_then_ends(world):
    portfolio = world.leader()
    bound = bound_follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    tell(world, outcome(exchange_orders_of(bound)[0], S.FILLED, "1", "3200"))

    with world.capture(execute=True):
        done = subscription_unfollow(subscription=bound)

    assert done.settling and done.closed_positions == 1 and done.returned == 0
    bound.refresh_from_db()
    assert (bound.status, bound.pause_reason) == (SubscriptionStatus.PAUSED, "UNFOLLOW_PENDING")
    with pytest.raises(Exception, match="ending"):
        subscription_resume(subscription=bound)
    # Asking again sends nothing more.
    with world.capture(execute=True):
        assert subscription_unfollow(subscription=bound).settling
    (close,) = [r for r in exchange_orders_of(bound) if r.reduce_only]

    tell(world, outcome(close, S.FILLED, "1", "3250"))

    bound.refresh_from_db()
    assert bound.status == SubscriptionStatus.ENDED
    copy_wallet = wallet(bound)
    assert copy_wallet.is_closed and copy_wallet.balance == 0 and copy_wallet.exchange_account_id is not None
    assert Order.objects.get(pk=close.order_id).status == OrderStatus.FILLED
    # The binding freed itself: the exchange account can carry a new copy.
    user = bound.follower
    wallet_deposit(user=user, amount=D("100"))
    response = subscribe(
        client_for(user), world.leader(), amount="100", exchange_account_id=copy_wallet.exchange_account_id
    )
    assert response.status_code == 201, response.json()
    assert Execution.objects.filter(subscription_id=bound.pk).count() == 1
    assert ledger_check().ok
