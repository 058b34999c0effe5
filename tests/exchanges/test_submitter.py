"""The submitter against the exchange double: ccxt's own signing, request
building and error mapping run; the rows say what happened; no order is
ever placed twice (the double's own duplicate-id refusal is switched off
where that is what is proved, so a resend would show as a second order)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from copytrading.exchanges import errors, outcomes
from copytrading.exchanges.client import exchange_client
from copytrading.exchanges.models import ExchangeAccount, ExchangeAccountStatus, ExchangeOrder
from copytrading.exchanges.models import ExchangeOrderStatus as S
from copytrading.exchanges.sending import Job, outcome_of
from copytrading.exchanges.submitter import follow_up_unfinished, submit_after_commit, submit_orders
from tests.exchanges.submitting import link_accounts, make_orders, orders_on_double

ORDER_PATH = "/fapi/v1/order"


def ids(rows) -> list[int]:
    return [row.pk for row in rows]


def posts(double, client_order_id: str | None = None):
    return [
        r
        for r in double.state.seen(ORDER_PATH, "POST")
        if client_order_id is None or r.params.get("newClientOrderId") == client_order_id
    ]


def lookups(double, client_order_id: str):
    return [r for r in double.state.seen(ORDER_PATH, "GET") if r.params.get("origClientOrderId") == client_order_id]


def place_directly(row) -> dict:
    """The order placed on the double by another hand (an earlier attempt)."""
    client = exchange_client("binanceusdm", api_key="t-key-00000", secret="t-secret-00000")
    client.options["fetchCurrencies"] = False
    return client.create_order(row.symbol, "market", "buy", 0.002, None, {"clientOrderId": row.client_order_id})


@pytest.fixture
def heard(monkeypatch):
    """What the engine's appliers are handed (the engine side is another part)."""
    calls: list[list[tuple[str, str]]] = []
    monkeypatch.setattr(
        outcomes, "_engine_appliers", [lambda moved: calls.append([(o.client_order_id, o.status) for _, o in moved])]
    )
    return calls


@pytest.mark.django_db
def test_every_order_is_placed_once_concurrently_within_the_bounds(submit_settings, exchange_double, heard):
    submit_settings.EXCHANGE_SUBMIT_CONCURRENCY = 6
    submit_settings.EXCHANGE_ACCOUNT_CONCURRENCY = 2
    # Every answer arrives: on a loaded CI machine a 0.15 s answer can pass the quick 0.5 s
    # timeout and be looked up again (2 retries seen), which is not what this test is about.
    submit_settings.EXCHANGE_SUBMIT_TIMEOUT_SECONDS = 2.0
    exchange_double.latency = 0.15
    exchange_double.state.unique_client_order_ids = False
    accounts = link_accounts(exchange_double, 8)
    rows = make_orders(accounts, per_account=3)
    before = timezone.now()

    report = submit_orders(ids(rows))

    assert (report.claimed, report.attempts, report.filled, report.retried, report.left) == (24, 24, 24, 0, 0)
    on_double = orders_on_double(exchange_double)
    assert sorted(on_double) == sorted(r.client_order_id for r in rows)
    assert set(on_double.values()) == {1}
    for row in ExchangeOrder.objects.all():
        assert (row.status, row.attempts, row.filled_quantity) == (S.FILLED, 1, Decimal("0.002"))
        assert row.average_price == Decimal("64000")
        assert row.exchange_order_id
        assert before <= row.submitted_at <= row.acknowledged_at <= row.filled_at
    state = exchange_double.state
    # Concurrent, within the bounds: 6 at once at most, 2 per account at most.
    assert 2 <= state.max_in_flight <= 6
    assert max(state.max_in_flight_by_key.values()) == 2
    # Every fill reached the engine once.
    assert sorted(cid for call in heard for cid, _ in call) == sorted(r.client_order_id for r in rows)
    # The markets were loaded once for all of these accounts' clients.
    assert len(state.seen("/fapi/v1/exchangeInfo")) == 1


@pytest.mark.django_db
def test_what_is_sent_is_the_order_as_decided(submit_settings, exchange_double):
    (account,) = link_accounts(exchange_double, 1)
    (close,) = make_orders([account], prefix="ct-c", side="sell", reduce_only=True, quantity=Decimal("0.001"))
    (limit,) = make_orders([account], prefix="ct-l", price=Decimal("60000.0"))

    submit_orders([close.pk, limit.pk])

    sent = {r.params["newClientOrderId"]: r.params for r in posts(exchange_double)}
    assert sent[close.client_order_id].items() >= {"side": "SELL", "type": "MARKET", "reduceOnly": "true"}.items()
    assert sent[close.client_order_id]["quantity"] == "0.001"
    expected = {"side": "BUY", "type": "LIMIT", "price": "60000", "quantity": "0.002"}
    assert sent[limit.client_order_id].items() >= expected.items()
    limit.refresh_from_db()
    # A buy limit below the mark rests: acknowledged, not filled.
    assert (limit.status, limit.filled_quantity, limit.filled_at) == (S.ACKNOWLEDGED, 0, None)
    assert limit.acknowledged_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"quantity": Decimal("500")}, "EXCHANGE_INSUFFICIENT_FUNDS"),  # 500 BTC on 1,000,000 USDT at 20x
        ({"quantity": Decimal("0.001")}, "EXCHANGE_INVALID_ORDER"),  # 64 USDT: under the 100 minimum notional
        ({"symbol": "DOGE/USDT:USDT"}, "EXCHANGE_BAD_SYMBOL"),  # not a market of the exchange
    ],
)
def test_a_rejection_gets_its_stable_code_and_a_scrubbed_message(submit_settings, exchange_double, fields, code):
    (account,) = link_accounts(exchange_double, 1)
    (row,) = make_orders([account], **fields)

    report = submit_orders([row.pk])

    row.refresh_from_db()
    assert (report.rejected, row.status, row.reject_code, row.attempts) == (1, S.REJECTED, code, 1)
    assert row.reject_message and "t-key-00000" not in row.reject_message and "secret" not in row.reject_message
    # acknowledged_at is when the exchange answered (outcomes.py stamps it on any answer).
    assert row.acknowledged_at is not None and row.filled_at is None
    assert not orders_on_double(exchange_double)


def test_one_table_maps_exchange_errors_to_codes():
    codes = [code for _, code, _, _, _ in errors.TABLE]
    assert len(codes) == len(set(codes))
    assert all(code.startswith("EXCHANGE_") for code in codes)


@pytest.mark.django_db
def test_an_answer_lost_after_the_exchange_accepted_is_looked_up_not_resent(submit_settings, exchange_double):
    exchange_double.state.unique_client_order_ids = False  # a resend would be a second order
    (account,) = link_accounts(exchange_double, 1)
    (row,) = make_orders([account])
    exchange_double.inject("timeout_after_accept", path=ORDER_PATH, times=1, seconds=2)

    report = submit_orders([row.pk])

    row.refresh_from_db()
    assert (row.status, row.attempts, report.retried) == (S.FILLED, 2, 1)
    assert orders_on_double(exchange_double) == {row.client_order_id: 1}
    assert len(posts(exchange_double, row.client_order_id)) == 1
    (lookup,) = lookups(exchange_double, row.client_order_id)
    # Not looked up before the request's validity window had passed: a late
    # copy of the lost request would have been refused by then.
    (post,) = posts(exchange_double)
    assert lookup.at - post.at >= submit_settings.EXCHANGE_ORDER_RECV_WINDOW_SECONDS


@pytest.mark.django_db
def test_a_row_a_dead_submitter_left_sent_is_looked_up_then_sent_once(submit_settings, exchange_double):
    exchange_double.state.unique_client_order_ids = False
    (account,) = link_accounts(exchange_double, 1)
    rows = make_orders([account], per_account=2)
    # Both were claimed (sent, attempt 1) by a submitter that died; only the
    # first had reached the exchange. Their lease is over.
    placed, lost = rows
    ExchangeOrder.objects.filter(pk__in=ids(rows)).update(
        status=S.SENT, attempts=1, submitted_at=timezone.now(), next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    place_directly(placed)

    report = submit_orders(None)  # the sweep

    assert report.claimed == 2
    for row in rows:
        row.refresh_from_db()
        assert (row.status, row.attempts) == (S.FILLED, 2)
        assert len(lookups(exchange_double, row.client_order_id)) == 1
    assert orders_on_double(exchange_double) == {placed.client_order_id: 1, lost.client_order_id: 1}
    # The one that was there was not sent again; the lost one was sent once.
    assert len(posts(exchange_double, placed.client_order_id)) == 1  # the test's own
    assert len(posts(exchange_double, lost.client_order_id)) == 1


@pytest.mark.django_db
def test_an_exchange_that_already_has_the_client_id_is_asked_for_it(submit_settings, exchange_double):
    (account,) = link_accounts(exchange_double, 1)
    (row,) = make_orders([account])
    earlier = place_directly(row)

    submit_orders([row.pk])  # pending: sent, refused as a duplicate (-4116), then looked up

    row.refresh_from_db()
    assert (row.status, row.exchange_order_id, row.attempts) == (S.FILLED, earlier["id"], 1)
    assert orders_on_double(exchange_double) == {row.client_order_id: 1}


@pytest.mark.django_db
def test_a_429_is_retried_after_its_retry_after(submit_settings, exchange_double):
    (account,) = link_accounts(exchange_double, 1)
    (row,) = make_orders([account])
    exchange_double.inject("status", status=429, retry_after=1, path=ORDER_PATH, times=1)

    report = submit_orders([row.pk])

    row.refresh_from_db()
    assert (row.status, row.attempts, report.retried) == (S.FILLED, 2, 1)
    first, second = posts(exchange_double, row.client_order_id)
    assert first.answered == 429 and second.answered == 200
    assert second.at - first.at >= 1.0
    # A 429 placed nothing: no look-up before the resend.
    assert not lookups(exchange_double, row.client_order_id)


@pytest.mark.django_db
def test_an_exchange_that_never_answers_ends_in_failed_after_bounded_attempts(submit_settings, exchange_double, heard):
    submit_settings.EXCHANGE_SUBMIT_MAX_ATTEMPTS = 3
    (account,) = link_accounts(exchange_double, 1)
    (row,) = make_orders([account])
    exchange_double.inject("status", status=503, path=ORDER_PATH, times=None)

    report = submit_orders([row.pk])

    row.refresh_from_db()
    # A 5xx may hide a placed order: every later attempt asks the exchange
    # first (its look-ups answer 503 too), so the order is never sent again;
    # 3 attempts and 2 more look-ups, then it is given up.
    assert (row.status, row.reject_code, row.attempts, report.failed) == (S.FAILED, "EXCHANGE_UNAVAILABLE", 5, 1)
    assert len(posts(exchange_double, row.client_order_id)) == 1
    assert len(lookups(exchange_double, row.client_order_id)) == 4
    assert heard == [[(row.client_order_id, S.FAILED)]]


@pytest.mark.django_db
def test_no_order_is_sent_with_a_key_that_may_not_trade(submit_settings, exchange_double):
    (bad,) = link_accounts(exchange_double, 1, prefix="bad", status=ExchangeAccountStatus.AUTH_FAILED)
    (withdraws,) = link_accounts(exchange_double, 1, prefix="wd", status=ExchangeAccountStatus.CAN_WITHDRAW)
    rows = make_orders([bad, withdraws])

    submit_orders(ids(rows))

    codes = dict(ExchangeOrder.objects.values_list("exchange_account_id", "reject_code"))
    assert codes == {bad.pk: "EXCHANGE_AUTH_FAILED", withdraws.pk: "EXCHANGE_KEY_CAN_WITHDRAW"}
    assert set(ExchangeOrder.objects.values_list("status", flat=True)) == {S.REJECTED}
    assert not exchange_double.state.seen(ORDER_PATH)


@pytest.mark.django_db
def test_final_and_unknown_rows_are_left_alone(submit_settings, exchange_double):
    (account,) = link_accounts(exchange_double, 1)
    (row,) = make_orders([account])
    submit_orders([row.pk])

    again = submit_orders([row.pk, row.pk + 1000])

    assert (again.claimed, again.attempts) == (0, 0)
    assert len(posts(exchange_double)) == 1


@pytest.mark.django_db
def test_the_sweep_leaves_a_just_committed_row_to_its_task_and_a_leased_one_to_its_holder(
    submit_settings, exchange_double
):
    (account,) = link_accounts(exchange_double, 1)
    fresh, leased = make_orders([account], per_account=2)
    ExchangeOrder.objects.filter(pk=leased.pk).update(
        status=S.SENT, attempts=1, next_attempt_at=timezone.now() + timedelta(seconds=30)
    )

    assert submit_orders(None).claimed == 0

    ExchangeOrder.objects.filter(pk=fresh.pk).update(decided_at=timezone.now() - timedelta(seconds=3))
    report = submit_orders(None)
    assert report.claimed == 1
    fresh.refresh_from_db()
    assert fresh.status == S.FILLED


@pytest.mark.django_db(transaction=True)
def test_submit_after_commit_queues_the_task_after_the_commit_only(submit_settings, exchange_double):
    from django.db import transaction

    (account,) = link_accounts(exchange_double, 1)
    kept, dropped = make_orders([account], per_account=2)
    with transaction.atomic():
        submit_after_commit([kept.pk])  # eager here: runs the task at the commit
        assert not exchange_double.state.seen(ORDER_PATH)
    with pytest.raises(RuntimeError), transaction.atomic():
        submit_after_commit([dropped.pk])
        raise RuntimeError("rolled back")

    kept.refresh_from_db()
    dropped.refresh_from_db()
    assert (kept.status, dropped.status) == (S.FILLED, S.PENDING)


@pytest.mark.django_db
def test_an_exchange_that_keeps_refusing_at_its_edge_gets_no_look_ups(submit_settings, exchange_double):
    submit_settings.EXCHANGE_SUBMIT_MAX_ATTEMPTS = 3
    (account,) = link_accounts(exchange_double, 1)
    (row,) = make_orders([account])
    exchange_double.inject("status", status=429, path=ORDER_PATH, times=None)

    submit_orders([row.pk])

    row.refresh_from_db()
    # A 429 places nothing: each attempt sends again, none looks up, and no
    # extra look-ups before giving up.
    assert (row.status, row.reject_code, row.attempts) == (S.FAILED, "EXCHANGE_UNAVAILABLE", 3)
    assert len(posts(exchange_double, row.client_order_id)) == 3
    assert not lookups(exchange_double, row.client_order_id)


JOB = Job(
    pk=1, client_order_id="ct-1-2", symbol="BTC/USDT:USDT", side="buy", order_type="limit",
    quantity=Decimal("0.010"), price=Decimal("60000"), reduce_only=False, attempt=1, was_sent=False,
)  # fmt: skip


@pytest.mark.parametrize(
    ("order", "status", "filled"),
    [
        ({"id": "9", "status": "open", "filled": 0.0}, S.ACKNOWLEDGED, Decimal("0")),
        ({"id": "9", "status": "open", "filled": 0.004, "average": 60000.0}, S.PARTIALLY_FILLED, Decimal("0.004")),
        ({"id": "9", "status": "closed", "filled": 0.01, "average": 60000.0}, S.FILLED, Decimal("0.01")),
        ({"id": "9", "status": "canceled", "filled": 0.004}, S.CANCELLED, Decimal("0.004")),
        ({"id": "9", "status": "expired", "filled": None}, S.CANCELLED, Decimal("0")),
        ({"id": "9", "status": "rejected", "filled": 0}, S.REJECTED, Decimal("0")),
        # More than the order's quantity (a unit mix-up) never breaks the row's constraint.
        ({"id": "9", "status": "closed", "filled": 0.02}, S.FILLED, Decimal("0.010")),
    ],
)
def test_a_ccxt_order_reads_as_an_outcome(order, status, filled):
    outcome = outcome_of(JOB, order, timezone.now())
    assert (outcome.status, outcome.filled_quantity, outcome.exchange_order_id) == (status, filled, "9")
    assert (outcome.reject_code == "EXCHANGE_REJECTED") == (status == S.REJECTED)


@pytest.mark.django_db
def test_an_exchange_ccxt_does_not_know_rejects_without_a_request(submit_settings, exchange_double):
    (account,) = link_accounts(exchange_double, 1)
    ExchangeAccount.objects.filter(pk=account.pk).update(exchange="nosuchexchange")
    (row,) = make_orders([account])

    submit_orders([row.pk])

    row.refresh_from_db()
    assert (row.status, row.reject_code) == (S.REJECTED, "UNKNOWN_EXCHANGE")
    assert not exchange_double.state.requests


@pytest.mark.django_db
def test_an_acknowledged_order_is_read_again_until_the_exchange_finishes_it(submit_settings, exchange_double):
    # A market order answered NEW: its portfolio's next event waits for it,
    # so the sweep reads it again (never resends it) until it is final.
    (account,) = link_accounts(exchange_double, 1)
    (row,) = make_orders([account])
    placed = place_directly(row)
    ExchangeOrder.objects.filter(pk=row.pk).update(
        status=S.ACKNOWLEDGED, exchange_order_id=str(placed["id"]), attempts=1,
        updated_at=timezone.now() - timedelta(seconds=5),
    )  # fmt: skip
    assert follow_up_unfinished() == 1

    row.refresh_from_db()
    assert (row.status, row.filled_quantity) == (S.FILLED, Decimal("0.002"))
    assert orders_on_double(exchange_double)[row.client_order_id] == 1
    assert follow_up_unfinished() == 0  # final: nothing left to read


@pytest.mark.django_db
def test_an_answer_the_engine_cannot_apply_fails_alone_and_is_reported(submit_settings, exchange_double, monkeypatch):
    from backoffice.models import JobError

    accounts = link_accounts(exchange_double, 2)
    rows = make_orders(accounts)
    poisoned = rows[0].client_order_id

    def engine(moved):
        if any(row.client_order_id == poisoned and outcome.status == S.FILLED for row, outcome in moved):
            raise ValueError("a fill the ledger refuses")

    monkeypatch.setattr(outcomes, "_engine_appliers", [engine])
    submit_orders(ids(rows))

    bad, good = (ExchangeOrder.objects.get(pk=row.pk) for row in rows)
    assert (bad.status, bad.reject_code) == (S.FAILED, "EXCHANGE_APPLY_FAILED")
    assert good.status == S.FILLED
    assert JobError.objects.filter(task="exchange.submit").exists()
    assert orders_on_double(exchange_double)[poisoned] == 1  # placed once; the reconciliation owns the rest
