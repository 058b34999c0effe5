"""The signed signal webhook, end to end through the API.

A signal places the leader's order through the same service as the REST API
and is applied at most once per message id: a replay (same request, or the
same id freshly signed) changes nothing.
"""

import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test import Client

from copytrading.ledger import ledger_check
from copytrading.models import (
    Account,
    Execution,
    InboxMessage,
    InboxStatus,
    Instrument,
    LeaderEvent,
    Order,
    Position,
    PositionStatus,
    Transfer,
)
from copytrading.signing import signature_compute
from followers.models import Subscription, SubscriptionStatus
from portfolios import webhooks
from portfolios.models import Portfolio
from tests.acceptance.flow import register

D = Decimal
BTC_PERP = "BTC/USDT:USDT"
T0 = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


def signal(external_id: str = "sig-1", **overrides) -> dict:
    return {"id": external_id, "symbol": BTC_PERP, "side": "buy", "quantity": "0.1", "leverage": 10} | overrides


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "HTTP_X_SIGNATURE_TIMESTAMP": ts,
        "HTTP_X_SIGNATURE": signature_compute(secret=secret, timestamp=ts, body=body),
    }


def post_raw(portfolio_id: int, body: bytes, headers: dict, client=None):
    client = client or Client()
    return client.post(
        f"/api/v1/webhooks/signals/{portfolio_id}", data=body, content_type="application/json", **headers
    )


def post_signal(portfolio_id: int, secret: str, message: dict, *, timestamp: int | None = None, client=None):
    body = json.dumps(message).encode()
    return post_raw(portfolio_id, body, signed_headers(secret, body, timestamp), client)


class Desk:
    """A leader with a funded margin portfolio, its followers, and a price."""

    def __init__(self, followers: int = 0):
        staff = register("desk-staff")
        from django.contrib.auth import get_user_model

        get_user_model().objects.filter(username="desk-staff").update(is_staff=True)
        self.leader = register("signal-leader", deposit="50000")
        r = self.leader.post("/api/v1/portfolios", {"name": "Signals", "mode": "margin"}, format="json")
        assert r.status_code == 201, r.content
        self.portfolio_id = r.json()["id"]
        r = self.leader.post(f"/api/v1/portfolios/{self.portfolio_id}/fund", {"amount": "20000"}, format="json")
        assert r.status_code == 201, r.content
        self.subscription_ids = []
        for n in range(followers):
            follower = register(f"signal-follower-{n}", deposit="5000")
            r = follower.post(
                "/api/v1/subscriptions",
                {"portfolio": self.portfolio_id, "amount": "1000", "sizing_model": "progressive", "multiplier": "0.5"},
                format="json",
            )
            assert r.status_code == 201, r.content
            self.subscription_ids.append(r.json()["id"])
        r = staff.post("/api/v1/market/prices", {"symbol": BTC_PERP, "price": "60000"}, format="json")
        assert r.status_code == 200, r.content
        self.trading_account_id = Portfolio.objects.get(pk=self.portfolio_id).trading_account_id

    def rotate(self, client=None) -> str:
        r = (client or self.leader).post(f"/api/v1/portfolios/{self.portfolio_id}/webhook-secret")
        assert r.status_code == 201, r.content
        assert r["Cache-Control"] == "no-store"
        return r.json()["secret"]

    def leader_orders(self) -> int:
        return Order.objects.filter(account_id=self.trading_account_id).count()

    def events(self) -> int:
        return LeaderEvent.objects.filter(portfolio_id=self.portfolio_id).count()


# --- the happy path and replays ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_signal_trades_like_the_api_and_a_replay_changes_nothing(instruments):
    desk = Desk(followers=2)
    secret = desk.rotate()
    body = json.dumps(signal("tv-alert-1001")).encode()
    headers = signed_headers(secret, body)

    r = post_raw(desk.portfolio_id, body, headers)

    assert r.status_code == 201, r.content
    answer = r.json()
    assert (answer["duplicate"], answer["id"], answer["status"]) == (False, "tv-alert-1001", "executed")
    [event] = answer["events"]
    assert event["kind"] == "position_open"
    assert Decimal(event["payload"]["quantity"]) == Decimal("0.1")
    assert event["payload"]["leverage"] == 10
    # Followers mirrored through the ordinary propagation (eager Celery, on commit).
    executions = Execution.objects.filter(event_id=event["id"])
    assert sorted(executions.values_list("subscription_id", "outcome")) == [
        (sub, "COPIED") for sub in sorted(desk.subscription_ids)
    ]
    mirrors = Position.objects.filter(subscription_id__in=desk.subscription_ids, status=PositionStatus.OPEN)
    assert sorted(m.quantity for m in mirrors) == [Decimal("0.05"), Decimal("0.05")]
    message = InboxMessage.objects.get()
    assert (message.source, message.external_id, message.portfolio_id) == ("signal", "tv-alert-1001", desk.portfolio_id)
    assert message.status == InboxStatus.EXECUTED
    assert message.result == {"events": [{"id": event["id"], "seq": event["seq"], "kind": "position_open"}]}

    before = (desk.leader_orders(), desk.events(), Order.objects.count(), Execution.objects.count())
    assert before == (1, 1, 3, 2)

    # The very same request again (a retrying sender, or a captured request replayed).
    again = post_raw(desk.portfolio_id, body, headers)
    # The same id, re-signed with another body: still the same message.
    changed = post_signal(desk.portfolio_id, secret, signal("tv-alert-1001", quantity="5"))

    for r in (again, changed):
        assert r.status_code == 200, r.content
        assert r.json() == {
            "duplicate": True,
            "id": "tv-alert-1001",
            "status": "executed",
            "result": message.result,
        }
    after = (desk.leader_orders(), desk.events(), Order.objects.count(), Execution.objects.count())
    assert after == before
    assert InboxMessage.objects.get().payload == signal("tv-alert-1001")
    assert ledger_check().ok


@pytest.mark.django_db(transaction=True)
def test_a_new_id_is_a_new_trade(instruments):
    desk = Desk(followers=1)
    secret = desk.rotate()
    assert post_signal(desk.portfolio_id, secret, signal("a")).status_code == 201
    assert post_signal(desk.portfolio_id, secret, signal("b", side="sell", quantity="0.04")).status_code == 201

    assert desk.events() == 2
    [leader_position] = Position.objects.filter(account_id=desk.trading_account_id, status=PositionStatus.OPEN)
    assert leader_position.quantity == Decimal("0.06")
    [mirror] = Position.objects.filter(subscription_id=desk.subscription_ids[0], status=PositionStatus.OPEN)
    assert mirror.quantity == Decimal("0.03")  # 0.05 reduced by 0.04 / 0.1 of it
    assert sorted(InboxMessage.objects.values_list("external_id", "status")) == [
        ("a", "executed"),
        ("b", "executed"),
    ]


@pytest.mark.django_db(transaction=True)
def test_the_same_id_on_two_portfolios_is_two_messages(instruments):
    desk = Desk()
    secret = desk.rotate()
    other = register("second-leader", deposit="10000")
    r = other.post("/api/v1/portfolios", {"name": "Other", "mode": "margin"}, format="json")
    other_id = r.json()["id"]
    other.post(f"/api/v1/portfolios/{other_id}/fund", {"amount": "5000"}, format="json")
    other_secret = other.post(f"/api/v1/portfolios/{other_id}/webhook-secret").json()["secret"]

    assert post_signal(desk.portfolio_id, secret, signal("1")).status_code == 201
    # Another leader's tooling also numbers its alerts from 1: not a duplicate.
    assert post_signal(other_id, other_secret, signal("1", quantity="0.01")).status_code == 201
    assert LeaderEvent.objects.filter(portfolio_id=other_id).count() == 1


# --- signatures and time ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("age", "expected"), [(-300, 201), (300, 201), (301, 401), (-301, 401)])
def test_timestamp_tolerance_is_300_seconds(instruments, age, expected):
    desk = Desk()
    secret = desk.rotate()
    now = int(T0.timestamp())
    with time_machine.travel(T0, tick=False):
        r = post_signal(desk.portfolio_id, secret, signal(), timestamp=now - age)

    assert r.status_code == expected, r.content
    if expected == 401:
        assert r.json()["code"] == "SIGNATURE_EXPIRED"
        assert (desk.leader_orders(), InboxMessage.objects.count()) == (0, 0)
    else:
        assert (desk.leader_orders(), InboxMessage.objects.count()) == (1, 1)


@pytest.mark.django_db
def test_bad_signatures_are_refused_and_change_nothing(instruments):
    desk = Desk()
    secret = desk.rotate()
    body = json.dumps(signal()).encode()
    good = signed_headers(secret, body)
    tampered = body.replace(b'"0.1"', b'"1.0"')
    cases = {
        "no headers": post_raw(desk.portfolio_id, body, {}),
        "no signature": post_raw(
            desk.portfolio_id, body, {"HTTP_X_SIGNATURE_TIMESTAMP": good["HTTP_X_SIGNATURE_TIMESTAMP"]}
        ),
        "garbage signature": post_raw(desk.portfolio_id, body, good | {"HTTP_X_SIGNATURE": "deadbeef"}),
        "tampered body": post_raw(desk.portfolio_id, tampered, good),
        "wrong secret": post_raw(desk.portfolio_id, body, signed_headers("whsec_" + "0" * 64, body)),
    }
    for name, r in cases.items():
        assert (name, r.status_code, r.json()["code"]) == (name, 401, "INVALID_SIGNATURE")
    assert (desk.leader_orders(), desk.events(), InboxMessage.objects.count()) == (0, 0, 0)


@pytest.mark.django_db
def test_rotating_the_secret_invalidates_old_signatures(instruments):
    desk = Desk()
    old = desk.rotate()
    new = desk.rotate()
    assert old != new
    assert new.startswith("whsec_")

    r = post_signal(desk.portfolio_id, old, signal("x"))
    assert (r.status_code, r.json()["code"]) == (401, "INVALID_SIGNATURE")
    assert InboxMessage.objects.count() == 0
    assert post_signal(desk.portfolio_id, new, signal("x")).status_code == 201


@pytest.mark.django_db
def test_the_secret_is_owner_only_and_never_shown_again(instruments, admin_client):
    desk = Desk()
    secret = desk.rotate()
    intruder = register("intruder-leader", deposit="100")

    r = intruder.post(f"/api/v1/portfolios/{desk.portfolio_id}/webhook-secret")
    assert r.status_code == 404
    r = Client().post(f"/api/v1/portfolios/{desk.portfolio_id}/webhook-secret")
    assert r.status_code == 401
    # Neither attempt rotated it: the owner's secret still signs.
    assert Portfolio.objects.get(pk=desk.portfolio_id).webhook_secret == secret
    # Nowhere else shows it: the leader's own portfolio pages, the catalog, the back office.
    pages = [
        desk.leader.get(f"/api/v1/portfolios/{desk.portfolio_id}"),
        desk.leader.get("/api/v1/portfolios"),
        Client().get("/api/v1/catalog"),
        admin_client.get(f"/admin/portfolios/portfolio/{desk.portfolio_id}/change/"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert secret not in page.content.decode()


@pytest.mark.django_db
def test_unknown_portfolio_or_no_secret_is_404(instruments):
    desk = Desk()
    body = json.dumps(signal()).encode()
    # No secret generated yet: the webhook does not exist for this portfolio.
    r = post_raw(desk.portfolio_id, body, signed_headers("", body))
    assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")
    secret = desk.rotate()
    r = post_signal(desk.portfolio_id + 1000, secret, signal())
    assert r.status_code == 404
    assert InboxMessage.objects.count() == 0


@pytest.mark.django_db
def test_no_csrf_token_or_session_is_needed(instruments):
    desk = Desk()
    secret = desk.rotate()
    r = post_signal(desk.portfolio_id, secret, signal(), client=Client(enforce_csrf_checks=True))
    assert r.status_code == 201, r.content


@pytest.mark.django_db(transaction=True)
def test_a_limit_signal_rests_the_leaders_order_and_a_replay_places_nothing(instruments):
    desk = Desk(followers=2)
    secret = desk.rotate()
    message = signal("tv-limit-7", type="limit", price="59000")

    r = post_signal(desk.portfolio_id, secret, message)

    assert r.status_code == 201, r.content
    [event] = r.json()["events"]
    assert event["kind"] == "limit_placed"
    order = Order.objects.get(account_id=desk.trading_account_id)
    assert (order.order_type, order.status, order.price, order.quantity) == ("limit", "open", D("59000"), D("0.1"))
    mirrors = Order.objects.filter(subscription_id__in=desk.subscription_ids, status="open")
    assert sorted(mirrors.values_list("price", flat=True)) == [D("59000"), D("59000")]

    r = post_signal(desk.portfolio_id, secret, message)
    assert (r.status_code, r.json()["duplicate"]) == (200, True)
    assert (desk.leader_orders(), desk.events()) == (1, 1)
    assert Order.objects.filter(subscription_id__in=desk.subscription_ids).count() == 2


@pytest.mark.django_db
def test_a_limit_signal_without_a_price_is_refused_and_recorded(instruments):
    desk = Desk()
    secret = desk.rotate()

    r = post_signal(desk.portfolio_id, secret, signal("tv-limit-8", type="limit"))

    assert r.status_code == 400, r.content
    assert (r.json()["code"], r.json()["field"]) == ("INVALID_PRICE", "price")
    assert InboxMessage.objects.get().status == InboxStatus.REJECTED
    assert (desk.leader_orders(), desk.events()) == (0, 0)


# --- what is refused ---------------------------------------------------------------


NOT_COPIED = [
    *[(t, "ADVANCED_ORDER_NOT_SUPPORTED") for t in ("twap", "iceberg", "scaled", "oco", "oto", "oso")],
    *[(t, "STOP_ORDER_NOT_SUPPORTED_FOR_COPY") for t in ("stop", "stop_market", "stop_limit")],
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("order_type", "code"), NOT_COPIED)
def test_unsupported_types_are_recorded_and_skipped_for_every_follower(instruments, order_type, code):
    desk = Desk(followers=2)
    secret = desk.rotate()
    balances_before = sorted(Account.objects.values_list("pk", "balance", "locked"))
    transfers_before = Transfer.objects.count()

    r = post_signal(desk.portfolio_id, secret, signal("adv-1", type=order_type, price="59000.5"))

    assert r.status_code == 201, r.content
    answer = r.json()
    assert (answer["duplicate"], answer["id"], answer["status"]) == (False, "adv-1", "executed")
    [event] = answer["events"]
    assert event["kind"] == "order_not_copied"
    assert event["payload"] == {
        "instrument_id": event["payload"]["instrument_id"],
        "symbol": BTC_PERP,
        "mark": str(Instrument.objects.get(symbol=BTC_PERP).mark_price),  # what a replay prices it at
        "order_side": "buy",
        "order_type": order_type,
        "quantity": "0.10000000",
        "price": "59000.50000000",
        "reason_code": code,
    }
    [leader_event] = LeaderEvent.objects.filter(portfolio_id=desk.portfolio_id)
    assert (leader_event.pk, leader_event.kind, leader_event.status) == (event["id"], "order_not_copied", "done")
    message = InboxMessage.objects.get()
    assert message.status == InboxStatus.EXECUTED
    assert message.result == {"events": [{"id": event["id"], "seq": 1, "kind": "order_not_copied"}]}
    # One SKIPPED row per follower with the exact reason; nothing traded, reserved or moved.
    rows = Execution.objects.filter(event_id=event["id"]).order_by("subscription_id")
    assert [(e.subscription_id, e.outcome, e.reason_code, e.order_id, e.follower_quantity) for e in rows] == [
        (sub, "SKIPPED", code, None, None) for sub in sorted(desk.subscription_ids)
    ]
    assert (desk.leader_orders(), Order.objects.count(), Position.objects.count()) == (0, 0, 0)
    assert Transfer.objects.count() == transfers_before
    assert sorted(Account.objects.values_list("pk", "balance", "locked")) == balances_before

    # The same id again (even as a market order) is a duplicate that reports the first answer.
    r = post_signal(desk.portfolio_id, secret, signal("adv-1", type="market"))
    assert r.status_code == 200
    assert r.json() == {"duplicate": True, "id": "adv-1", "status": "executed", "result": message.result}
    assert (desk.leader_orders(), desk.events(), Execution.objects.count(), Order.objects.count()) == (0, 1, 2, 0)
    assert Transfer.objects.count() == transfers_before
    assert ledger_check().ok


@pytest.mark.django_db(transaction=True)
def test_a_not_copied_order_skips_paused_followers_with_the_same_reason(instruments):
    desk = Desk(followers=2)
    secret = desk.rotate()
    paused = desk.subscription_ids[0]
    Subscription.objects.filter(pk=paused).update(status=SubscriptionStatus.PAUSED)

    r = post_signal(desk.portfolio_id, secret, signal("stop-1", type="stop_market", side="sell", quantity="0.02"))

    assert r.status_code == 201, r.content
    [event] = r.json()["events"]
    assert "price" not in event["payload"]
    rows = Execution.objects.filter(event_id=event["id"]).order_by("subscription_id")
    assert [(e.subscription_id, e.outcome, e.reason_code) for e in rows] == [
        (sub, "SKIPPED", "STOP_ORDER_NOT_SUPPORTED_FOR_COPY") for sub in sorted(desk.subscription_ids)
    ]
    assert Order.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"symbol": "DOGE/USDT:USDT"}, "UNKNOWN_INSTRUMENT"),
        ({"symbol": "BTC/USDT"}, "PRODUCT_NOT_IN_MODE"),
        ({"quantity": "0"}, "INVALID_QUANTITY"),
        ({"price": "0"}, "INVALID_PRICE"),
    ],
)
def test_a_not_copied_order_with_bad_fields_is_refused_and_recorded(instruments, overrides, code):
    desk = Desk()
    secret = desk.rotate()

    r = post_signal(desk.portfolio_id, secret, signal("adv-bad", type="twap", **overrides))

    assert (r.status_code, r.json()["code"]) == (400, code), r.content
    message = InboxMessage.objects.get()
    assert (message.status, message.result["code"]) == (InboxStatus.REJECTED, code)
    assert desk.events() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("order_type", "code"), NOT_COPIED)
def test_the_rest_api_still_refuses_unsupported_types(instruments, order_type, code):
    desk = Desk()

    r = desk.leader.post(
        f"/api/v1/portfolios/{desk.portfolio_id}/orders",
        {"symbol": BTC_PERP, "side": "buy", "quantity": "0.1", "type": order_type},
        format="json",
    )

    assert (r.status_code, r.json()["code"]) == (400, code), r.content
    assert (desk.leader_orders(), desk.events()) == (0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"symbol": "DOGE/USDT:USDT"}, 400, "UNKNOWN_INSTRUMENT"),
        ({"quantity": "50"}, 400, "INSUFFICIENT_FUNDS"),
        ({"quantity": "0"}, 400, "INVALID_QUANTITY"),
    ],
)
def test_a_trade_the_domain_refuses_is_recorded_and_rolled_back(instruments, overrides, status, code):
    desk = Desk()
    secret = desk.rotate()
    balance_before = Portfolio.objects.get(pk=desk.portfolio_id).trading_account.balance

    r = post_signal(desk.portfolio_id, secret, signal("bad-1", **overrides))

    assert (r.status_code, r.json()["code"]) == (status, code), r.content
    message = InboxMessage.objects.get()
    assert (message.status, message.result["code"]) == (InboxStatus.REJECTED, code)
    assert (desk.leader_orders(), desk.events()) == (0, 0)
    account = Portfolio.objects.get(pk=desk.portfolio_id).trading_account
    assert (account.balance, account.locked) == (balance_before, 0)
    assert post_signal(desk.portfolio_id, secret, signal("bad-1")).json()["duplicate"] is True
    assert desk.leader_orders() == 0


@pytest.mark.django_db
def test_invalid_bodies_are_refused_before_the_inbox(instruments):
    desk = Desk()
    secret = desk.rotate()
    ts = int(time.time())
    not_json = b"id=1&side=buy"
    r = post_raw(desk.portfolio_id, not_json, signed_headers(secret, not_json, ts))
    assert (r.status_code, r.json()["code"]) == (400, "INVALID_JSON")
    for message, field in [
        ({k: v for k, v in signal().items() if k != "id"}, "id"),
        (signal(side="hold"), "side"),
        (signal(type="trailing"), "type"),
        (signal(leverage=0), "leverage"),
    ]:
        r = post_signal(desk.portfolio_id, secret, message)
        assert (r.status_code, r.json()["field"]) == (400, field), r.content
    big = json.dumps(signal(note="x" * 20_000)).encode()
    r = post_raw(desk.portfolio_id, big, signed_headers(secret, big))
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    # Nothing was claimed: the sender can fix the body and send the same id.
    assert InboxMessage.objects.count() == 0
    assert post_signal(desk.portfolio_id, secret, signal()).status_code == 201


# --- concurrency ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_deliveries_make_exactly_one_order(instruments, monkeypatch):
    desk = Desk(followers=1)
    secret = desk.rotate()
    body = json.dumps(signal("race-1")).encode()
    headers = signed_headers(secret, body)

    place = webhooks.portfolio_order_submit

    def slow_place(**kwargs):
        # Hold the winner's transaction open, so the other delivery's insert
        # meets the uncommitted inbox row and waits on the unique index.
        time.sleep(0.5)
        return place(**kwargs)

    monkeypatch.setattr(webhooks, "portfolio_order_submit", slow_place)
    start = threading.Barrier(2)
    responses = []

    def deliver():
        try:
            start.wait()
            began = time.monotonic()
            r = post_raw(desk.portfolio_id, body, headers)
            responses.append((r.status_code, r.json(), time.monotonic() - began))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(code for code, _, _ in responses) == [200, 201]
    duplicate, waited = next((body, took) for code, body, took in responses if code == 200)
    assert (duplicate["duplicate"], duplicate["status"]) == (True, "executed")
    # The deliveries overlapped: the duplicate was held until the winner committed.
    assert waited >= 0.4
    assert (desk.leader_orders(), desk.events(), InboxMessage.objects.count()) == (1, 1, 1)
    [event] = LeaderEvent.objects.filter(portfolio_id=desk.portfolio_id)
    assert Order.objects.filter(leader_event=event).count() == 1  # the one follower, mirrored once
    assert ledger_check().ok
