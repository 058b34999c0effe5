"""A portfolio bound to the leader's exchange account (issue #15 §1), against
the exchange double through ccxt: binding, the leader's fills detected by the
trade poll and turned into leader events exactly once, the leader's API orders
sent to the exchange."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from copytrading.exchanges import crypto
from copytrading.exchanges.client import exchange_client
from copytrading.exchanges.instruments import instruments_sync, markets_load
from copytrading.exchanges.models import (
    ExchangeAccount,
    ExchangeAccountStatus,
    ExchangeOrder,
    LeaderTradeCursor,
    LeaderTradePoll,
)
from copytrading.models import Account, InboxMessage, LeaderEvent, Position, PositionStatus, Transfer, TransferKind
from portfolios import exchange
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place
from tests.exchange_double.fixtures import API_KEY, API_SECRET
from tests.factories import UserFactory, token_for

D = Decimal
BTC = "BTC/USDT:USDT"


def linked_account(user, *, exchange_id="binanceusdm", api_key=API_KEY, secret=API_SECRET, status=None):
    now = timezone.now()
    return ExchangeAccount.objects.create(
        user=user,
        exchange=exchange_id,
        label="futures",
        api_key_encrypted=crypto.encrypt(api_key),
        secret_encrypted=crypto.encrypt(secret),
        api_key_hint=crypto.mask(api_key),
        api_key_fingerprint=crypto.fingerprint(exchange_id, api_key),
        status=status or ExchangeAccountStatus.VALID,
        created_at=now,
        last_validated_at=now,
    )


@pytest.fixture
def synced(db, exchange_settings):
    markets, mode = markets_load("binanceusdm")
    instruments_sync(exchange_id="binanceusdm", markets=markets, precision_mode=mode)


@pytest.fixture
def leader(db):
    return UserFactory(username="leader")


@pytest.fixture
def portfolio(leader):
    return portfolio_create(leader=leader, name="on binance", mode="margin")


@pytest.fixture
def linked(leader):
    return linked_account(leader)


@pytest.fixture
def bound(synced, portfolio, linked):
    exchange.portfolio_exchange_bind(portfolio=portfolio, exchange_account_id=linked.pk)
    return portfolio


def on_exchange():
    """The leader's own client on the exchange (what they trade with, outside the service)."""
    return exchange_client("binanceusdm", api_key=API_KEY, secret=API_SECRET)


def events_of(portfolio):
    return list(LeaderEvent.objects.filter(portfolio_id=portfolio.pk).order_by("seq"))


def api_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


# --- binding ------------------------------------------------------------------


@pytest.mark.django_db
def test_binding_mirrors_the_exchange_balance_and_returns_the_paper_money(synced, portfolio, linked, leader):
    from copytrading import ledger

    main = ledger.main_account_for(leader)
    ledger.transfer(
        debit_id=ledger.system_account("EXTERNAL").pk, credit_id=main.pk, amount=D("500"), kind="DEPOSIT", key="dep"
    )
    portfolio_fund(portfolio=portfolio, amount=D("300"))

    exchange.portfolio_exchange_bind(portfolio=portfolio, exchange_account_id=linked.pk)

    trading = Account.objects.get(pk=portfolio.trading_account_id)
    assert trading.exchange_account_id == linked.pk
    assert trading.balance == D("10000")  # the double's USDT wallet
    main.refresh_from_db()
    assert main.balance == D("500")  # the 300 of paper money came back
    assert Transfer.objects.filter(credit=trading, kind=TransferKind.EXCHANGE_SYNC, amount=D("10000")).exists()
    assert LeaderTradePoll.objects.filter(account=trading).exists()


@pytest.mark.django_db
def test_bind_and_unbind_through_the_api(synced, portfolio, linked, leader):
    api = api_for(leader)
    url = f"/api/v1/portfolios/{portfolio.pk}/exchange-account"
    answer = api.post(url, {"exchange_account_id": linked.pk}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["exchange_account_id"] == linked.pk
    assert D(answer.json()["balance"]) == D("10000")
    # Again: the same binding, nothing moved twice.
    assert api.post(url, {"exchange_account_id": linked.pk}, format="json").status_code == 200
    assert Transfer.objects.filter(kind=TransferKind.EXCHANGE_SYNC).count() == 1

    answer = api.delete(url)
    assert answer.status_code == 200
    assert answer.json()["exchange_account_id"] is None
    assert D(answer.json()["balance"]) == 0
    assert not LeaderTradePoll.objects.exists()


@pytest.mark.django_db
def test_binding_errors(synced, portfolio, linked, leader):
    url = f"/api/v1/portfolios/{portfolio.pk}/exchange-account"
    stranger = UserFactory(username="stranger")
    # Someone else's portfolio: not found.
    answer = api_for(stranger).post(url, {"exchange_account_id": linked.pk}, format="json")
    assert answer.status_code == 404
    # Someone else's exchange account: not found either.
    theirs = linked_account(stranger, api_key="other-key")
    answer = api_for(leader).post(url, {"exchange_account_id": theirs.pk}, format="json")
    assert (answer.status_code, answer.json()["code"]) == (404, "NOT_FOUND")
    # A key that was refused.
    refused = linked_account(leader, api_key="refused-key", status=ExchangeAccountStatus.AUTH_FAILED)
    answer = api_for(leader).post(url, {"exchange_account_id": refused.pk}, format="json")
    assert (answer.status_code, answer.json()["code"]) == (409, "EXCHANGE_ACCOUNT_NOT_VALID")
    # Already bound to another portfolio.
    other = portfolio_create(leader=leader, name="second", mode="margin")
    exchange.portfolio_exchange_bind(portfolio=other, exchange_account_id=linked.pk)
    answer = api_for(leader).post(url, {"exchange_account_id": linked.pk}, format="json")
    assert (answer.status_code, answer.json()["code"]) == (409, "EXCHANGE_ACCOUNT_IN_USE")
    assert Account.objects.get(pk=portfolio.trading_account_id).exchange_account_id is None
    # A spot/all portfolio is not bindable yet.
    both = portfolio_create(leader=leader, name="both", mode="all")
    answer = api_for(leader).post(
        f"/api/v1/portfolios/{both.pk}/exchange-account", {"exchange_account_id": linked.pk}, format="json"
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "PORTFOLIO_MODE_NOT_BINDABLE")


@pytest.mark.django_db
def test_a_portfolio_with_open_positions_cannot_be_bound(synced, portfolio, linked, leader):
    from copytrading import ledger
    from copytrading.models import Instrument

    ledger.transfer(
        debit_id=ledger.system_account("EXTERNAL").pk,
        credit_id=ledger.main_account_for(leader).pk,
        amount=D("10000"),
        kind="DEPOSIT",
        key="dep",
    )
    portfolio_fund(portfolio=portfolio, amount=D("10000"))
    Instrument.objects.filter(symbol=BTC).update(mark_price=D("64000"))
    portfolio_order_place(portfolio=portfolio, symbol=BTC, side="buy", quantity=D("0.010"), leverage=10)

    answer = api_for(leader).post(
        f"/api/v1/portfolios/{portfolio.pk}/exchange-account", {"exchange_account_id": linked.pk}, format="json"
    )
    assert (answer.status_code, answer.json()["code"]) == (409, "PORTFOLIO_NOT_FLAT")
    assert Account.objects.get(pk=portfolio.trading_account_id).exchange_account_id is None
    assert not LeaderTradePoll.objects.exists()


@pytest.mark.django_db
def test_the_database_refuses_two_open_accounts_on_one_exchange_account(bound, linked, leader):
    from django.db import IntegrityError, transaction

    other = portfolio_create(leader=leader, name="second", mode="margin")
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=other.trading_account_id).update(exchange_account=linked)


# --- detection ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_fill_on_the_exchange_becomes_one_position_open_event_at_the_exchange_price(bound, exchange_double):
    exchange_double.state.set_mark("BTCUSDT", "65000.00")
    on_exchange().set_leverage(10, BTC)
    on_exchange().create_order(BTC, "market", "buy", 0.010)

    report = exchange.leader_trades_poll(account_id=bound.trading_account_id)

    assert (report.trades, len(report.events), report.error) == (1, 1, "")
    (event,) = events_of(bound)
    assert event.kind == "position_open"
    assert (D(event.payload["price"]), D(event.payload["quantity"]), event.payload["leverage"]) == (
        D("65000"),
        D("0.010"),
        10,
    )
    position = Position.objects.get(account_id=bound.trading_account_id, status=PositionStatus.OPEN)
    assert (position.side, position.quantity, position.entry_price, position.leverage) == (
        "long",
        D("0.010"),
        D("65000"),
        10,
    )
    # margin = 0.010 x 65000 / 10 locked out of the mirrored balance, the
    # exchange's fee (0.04 % of 650) paid out of it, as on the exchange
    trading = Account.objects.get(pk=bound.trading_account_id)
    assert (trading.locked, trading.balance) == (D("65"), D("10000") - D("0.26"))
    assert Transfer.objects.filter(debit=trading, kind=TransferKind.TRADING_FEE).count() == 1


@pytest.mark.django_db
def test_a_partial_close_on_the_exchange_becomes_a_position_reduce(bound, exchange_double):
    on_exchange().create_order(BTC, "market", "buy", 0.030)
    exchange.leader_trades_poll(account_id=bound.trading_account_id)
    exchange_double.state.set_mark("BTCUSDT", "66000.00")
    on_exchange().create_order(BTC, "market", "sell", 0.010)

    exchange.leader_trades_poll(account_id=bound.trading_account_id)

    kinds = [(e.kind, e.payload.get("quantity"), e.payload["price"]) for e in events_of(bound)]
    assert kinds == [
        ("position_open", "0.03000000", "64000.00000000"),
        ("position_reduce", "0.01000000", "66000.00000000"),
    ]
    position = Position.objects.get(account_id=bound.trading_account_id, status=PositionStatus.OPEN)
    assert position.quantity == D("0.020")


@pytest.mark.django_db
def test_a_close_and_a_flip_on_the_exchange(bound, exchange_double):
    on_exchange().create_order(BTC, "market", "buy", 0.020)
    on_exchange().create_order(BTC, "market", "sell", 0.050)  # closes 0.020, opens a 0.030 short

    exchange.leader_trades_poll(account_id=bound.trading_account_id)

    assert [e.kind for e in events_of(bound)] == ["position_open", "position_close", "position_open"]
    position = Position.objects.get(account_id=bound.trading_account_id, status=PositionStatus.OPEN)
    assert (position.side, position.quantity) == ("short", D("0.030"))


@pytest.mark.django_db
def test_polling_again_and_overlapping_cursors_give_one_event_per_trade(bound, exchange_double):
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    exchange.leader_trades_poll(account_id=bound.trading_account_id)
    again = exchange.leader_trades_poll(account_id=bound.trading_account_id)
    assert again.trades == 0  # the cursor is past them

    # An overlap (a cursor moved back, as after a restore or a stream and a
    # poll seeing the same trades): the inbox keeps them to one event each.
    bound_ms = int(LeaderTradePoll.objects.get().bound_at.timestamp() * 1000)
    LeaderTradeCursor.objects.filter(symbol=BTC).update(last_trade_ms=bound_ms, last_trade_id="")
    overlap = exchange.leader_trades_poll(account_id=bound.trading_account_id)

    assert (overlap.trades, overlap.duplicates, overlap.events) == (2, 2, [])
    assert [e.kind for e in events_of(bound)] == ["position_open", "position_open"]
    assert InboxMessage.objects.filter(source="exchange").count() == 2
    position = Position.objects.get(account_id=bound.trading_account_id, status=PositionStatus.OPEN)
    assert position.quantity == D("0.020")


@pytest.mark.django_db
def test_trades_before_the_binding_are_not_the_portfolios(synced, portfolio, linked, exchange_double):
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    exchange_double.state.clock_offset_ms = 0
    import time

    time.sleep(0.01)
    exchange.portfolio_exchange_bind(portfolio=portfolio, exchange_account_id=linked.pk)

    report = exchange.leader_trades_poll(account_id=portfolio.trading_account_id)
    assert (report.trades, events_of(portfolio)) == (0, [])


@pytest.mark.django_db
def test_exchange_down_loses_nothing_the_next_poll_catches_up(bound, exchange_double):
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    exchange_double.inject("status", path="/fapi/v1/userTrades", status=503, times=None)

    down = exchange.leader_trades_poll(account_id=bound.trading_account_id)
    assert (down.error, down.events, events_of(bound)) == ("EXCHANGE_UNAVAILABLE", [], [])

    exchange_double.state.clear_faults()
    on_exchange().create_order(BTC, "market", "buy", 0.020)
    up = exchange.leader_trades_poll(account_id=bound.trading_account_id)
    assert len(up.events) == 2
    assert [D(e.payload["quantity"]) for e in events_of(bound)] == [D("0.010"), D("0.020")]


@pytest.mark.django_db
def test_an_unbound_account_is_not_polled(synced, portfolio):
    report = exchange.leader_trades_poll(account_id=portfolio.trading_account_id)
    assert report.skipped


@pytest.mark.django_db
def test_the_beat_sweep_polls_each_bound_account(bound):
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    from portfolios.exchange_tasks import sweep_leader_trades

    assert sweep_leader_trades() == 1  # eager: the account's poll ran in place
    assert [e.kind for e in events_of(bound)] == ["position_open"]


# --- the leader's orders ---------------------------------------------------------


@pytest.mark.django_db
def test_a_bound_portfolios_api_order_goes_to_the_exchange_and_becomes_an_event(
    bound,
    leader,
    exchange_double,
    django_capture_on_commit_callbacks,
):
    api = api_for(leader)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        answer = api.post(
            f"/api/v1/portfolios/{bound.pk}/orders",
            {"symbol": BTC, "side": "buy", "quantity": "0.010", "type": "market", "leverage": 5},
            format="json",
        )
    assert queued  # the poll of the account, after the commit
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["client_order_id"].startswith(f"ct-l{bound.pk}-") and len(body["client_order_id"]) <= 36
    assert body["status"] == "filled"
    (on_double,) = exchange_double.state.accounts[API_KEY].orders.values()
    assert (on_double.client_order_id, str(on_double.order_id)) == (body["client_order_id"], body["exchange_order_id"])
    row = ExchangeOrder.objects.get(client_order_id=body["client_order_id"])
    assert (row.status, row.order_id) == ("filled", None)
    # The poll ran after the commit (eager): the fill is the leader's event.
    (event,) = events_of(bound)
    assert (event.kind, D(event.payload["quantity"]), event.payload["leverage"]) == ("position_open", D("0.010"), 5)
    assert exchange_double.state.accounts[API_KEY].leverage == {"BTCUSDT": 5}


@pytest.mark.django_db
def test_a_refused_order_is_400_with_a_stable_code_and_nothing_recorded_as_traded(bound, leader):
    answer = api_for(leader).post(
        f"/api/v1/portfolios/{bound.pk}/orders",
        {"symbol": BTC, "side": "buy", "quantity": "0.0015", "type": "market", "leverage": 5},
        format="json",
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "EXCHANGE_INVALID_ORDER")
    assert ExchangeOrder.objects.get().status == "rejected"
    assert events_of(bound) == []


@pytest.mark.django_db
def test_exchange_down_is_503_exchange_unavailable(bound, leader, exchange_double):
    exchange_double.inject("status", path="/fapi/v1/order", status=502, times=None)
    answer = api_for(leader).post(
        f"/api/v1/portfolios/{bound.pk}/orders",
        {"symbol": BTC, "side": "buy", "quantity": "0.010", "type": "market", "leverage": 5},
        format="json",
    )
    assert (answer.status_code, answer.json()["code"]) == (503, "EXCHANGE_UNAVAILABLE")
    assert answer.headers["Retry-After"]
    assert ExchangeOrder.objects.get().status == "failed"
    assert exchange_double.state.accounts[API_KEY].orders == {}


@pytest.mark.django_db
def test_paper_only_actions_are_refused_on_a_bound_portfolio(bound):
    from copytrading.errors import Conflict

    with pytest.raises(Conflict) as refused:
        portfolio_order_place(portfolio=bound, symbol=BTC, side="buy", quantity=D("0.010"), leverage=5)
    assert refused.value.code == "PORTFOLIO_ON_EXCHANGE"
    with pytest.raises(Conflict):
        portfolio_fund(portfolio=bound, amount=D("1"))


# --- two pollers at once (PostgreSQL, one thread and connection each) -------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_pollers_racing_make_one_event(bound, exchange_double):
    assert connection.vendor == "postgresql"
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    # The first poller is still reading the exchange when the second arrives.
    exchange_double.inject("latency", path="/fapi/v1/userTrades", seconds=0.5, times=None)
    barrier = threading.Barrier(2)
    reports: list[object] = [None, None]

    def poll(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            reports[i] = exchange.leader_trades_poll(account_id=bound.trading_account_id)
        except BaseException as exc:  # noqa: BLE001 - reported in the assertion
            reports[i] = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(r.skipped for r in reports) == [False, True], reports
    (polled,) = [r for r in reports if not r.skipped]
    assert len(polled.events) == 1
    assert LeaderEvent.objects.filter(portfolio_id=bound.pk).count() == 1
    # The skipped poller never asked the exchange: one userTrades call per symbol.
    assert (
        sum(r.path == "/fapi/v1/userTrades" and "BTCUSDT" in str(r.params) for r in exchange_double.state.requests) == 1
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_poll_after_a_racing_poll_finds_nothing_new(bound, exchange_double):
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    first = exchange.leader_trades_poll(account_id=bound.trading_account_id)
    second = exchange.leader_trades_poll(account_id=bound.trading_account_id)
    assert (len(first.events), second.trades, second.skipped) == (1, 0, False)


# --- the signal webhook ------------------------------------------------------------


@pytest.mark.django_db
def test_a_signal_on_a_bound_portfolio_goes_to_the_exchange_once(bound, exchange_double):
    from portfolios.webhooks import portfolio_webhook_secret_rotate
    from tests.acceptance.test_signal_webhook import post_signal

    secret = portfolio_webhook_secret_rotate(portfolio=bound)
    message = {"id": "sig-1", "symbol": BTC, "side": "buy", "quantity": "0.010", "leverage": 5}
    first = post_signal(bound.pk, secret, message)
    assert first.status_code == 202, first.content
    client_order_id = first.json()["exchange_order"]["client_order_id"]
    assert client_order_id == exchange.leader_client_order_id(bound.pk, "signal:sig-1")
    # Redelivered: the inbox answers it; the exchange has one order.
    assert post_signal(bound.pk, secret, message).json()["duplicate"] is True
    assert [o.client_order_id for o in exchange_double.state.accounts[API_KEY].orders.values()] == [client_order_id]

    exchange.leader_trades_poll(account_id=bound.trading_account_id)
    assert [e.kind for e in events_of(bound)] == ["position_open"]


@pytest.mark.django_db
def test_a_signal_whose_first_delivery_reached_the_exchange_but_rolled_back_is_not_placed_again(bound, exchange_double):
    # The exchange took the order, then the request's transaction rolled back
    # (no inbox row, no ExchangeOrder): the redelivery asks the exchange first.
    from portfolios.webhooks import portfolio_webhook_secret_rotate
    from tests.acceptance.test_signal_webhook import post_signal

    exchange_double.state.unique_client_order_ids = False  # a second send would show as a second order
    client_order_id = exchange.leader_client_order_id(bound.pk, "signal:sig-9")
    on_exchange().create_order(BTC, "market", "buy", 0.010, None, {"clientOrderId": client_order_id})
    secret = portfolio_webhook_secret_rotate(portfolio=bound)

    answer = post_signal(bound.pk, secret, {"id": "sig-9", "symbol": BTC, "side": "buy", "quantity": "0.010"})

    assert answer.status_code == 202, answer.content
    assert exchange_double.state.client_order_ids()[client_order_id] == 1
    assert ExchangeOrder.objects.get(client_order_id=client_order_id).status == "filled"


@pytest.mark.django_db
def test_a_trade_the_book_cannot_take_is_refused_once_and_the_poll_goes_on(bound, exchange_double):
    # Money the service never saw (deposited on the exchange after the bind)
    # pays for a position whose margin is above the mirrored balance: the
    # ledger refuses it. The trade is recorded refused; later trades still copy.
    with exchange_double.state.lock:
        exchange_double.state.accounts[API_KEY].balances["USDT"] = D("100000")
    on_exchange().set_leverage(1, BTC)
    on_exchange().create_order(BTC, "market", "buy", 0.5)  # 32,000 of margin against 10,000 mirrored

    first = exchange.leader_trades_poll(account_id=bound.trading_account_id)
    on_exchange().create_order(BTC, "market", "buy", 0.01)
    second = exchange.leader_trades_poll(account_id=bound.trading_account_id)

    assert (first.rejected, first.events) == (1, [])
    assert InboxMessage.objects.filter(status="rejected").count() == 1
    assert [e.kind for e in events_of(bound)] == ["position_open"] and len(second.events) == 1


@pytest.mark.django_db
def test_the_paper_matching_never_liquidates_a_bound_portfolios_position(bound):
    from copytrading.models import Instrument
    from copytrading.services import price_set

    on_exchange().set_leverage(20, BTC)
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    exchange.leader_trades_poll(account_id=bound.trading_account_id)

    price_set(instrument=Instrument.objects.get(symbol=BTC), price=D("50000"))  # far past a 20x long's margin

    assert Position.objects.get(account_id=bound.trading_account_id).status == PositionStatus.OPEN
    assert [e.kind for e in events_of(bound)] == ["position_open"]  # the exchange decides; its trade will say


# --- delivery through a real worker ----------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_with_a_real_worker_the_api_order_and_the_beat_sweep_become_events(bound, leader, exchange_double):
    from portfolios.exchange_tasks import sweep_leader_trades
    from tests.worker import celery_worker, wait_until

    api = api_for(leader)
    with celery_worker(extra_env={"EXCHANGE_URL_OVERRIDE": exchange_double.url}):
        answer = api.post(
            f"/api/v1/portfolios/{bound.pk}/orders",
            {"symbol": BTC, "side": "buy", "quantity": "0.010", "type": "market", "leverage": 5},
            format="json",
        )
        assert answer.status_code == 202, answer.content
        # The poll queued after the commit ran on the worker.
        wait_until(lambda: len(events_of(bound)) == 1, timeout=60)
        # A trade made on the exchange directly: the beat's sweep finds it.
        on_exchange().create_order(BTC, "market", "sell", 0.004)
        sweep_leader_trades.delay()
        wait_until(lambda: len(events_of(bound)) == 2, timeout=60)
    assert [e.kind for e in events_of(bound)] == ["position_open", "position_reduce"]


@pytest.mark.django_db
def test_a_portfolio_created_bound_or_not_at_all(synced, linked, leader):
    from portfolios.models import Portfolio

    api = api_for(leader)
    stranger_account = linked_account(UserFactory(username="stranger"), api_key="other-key")
    refused = api.post("/api/v1/portfolios", {"name": "x", "exchange_account_id": stranger_account.pk}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (404, "NOT_FOUND")
    assert not Portfolio.objects.filter(name="x").exists()

    created = api.post("/api/v1/portfolios", {"name": "y", "exchange_account_id": linked.pk}, format="json")
    assert created.status_code == 201, created.content
    portfolio = Portfolio.objects.get(pk=created.json()["id"])
    assert Account.objects.get(pk=portfolio.trading_account_id).exchange_account_id == linked.pk


# --- spot ---------------------------------------------------------------------------

SPOT_BTC = "BTC/USDT"


@pytest.fixture
def spot_bound(db, exchange_settings, leader):
    markets, mode = markets_load("binance")
    instruments_sync(exchange_id="binance", markets=markets, precision_mode=mode)
    account = linked_account(leader, exchange_id="binance")
    portfolio = portfolio_create(leader=leader, name="spot on binance", mode="spot")
    exchange.portfolio_exchange_bind(portfolio=portfolio, exchange_account_id=account.pk)
    return portfolio


def on_spot():
    return exchange_client("binance", api_key=API_KEY, secret=API_SECRET)


@pytest.mark.django_db
def test_spot_buys_and_sells_on_the_exchange_become_spot_events(spot_bound, exchange_double):
    from copytrading.models import Holding

    assert Account.objects.get(pk=spot_bound.trading_account_id).balance == D("10000")
    on_spot().create_order(SPOT_BTC, "market", "buy", 0.01)
    exchange_double.state.set_mark("BTCUSDT", "65000.00", spot=True)
    on_spot().create_order(SPOT_BTC, "market", "sell", 0.004)

    report = exchange.leader_trades_poll(account_id=spot_bound.trading_account_id)

    assert (report.trades, len(report.events)) == (2, 2)
    buy, sell = events_of(spot_bound)
    assert (buy.kind, D(buy.payload["quantity"]), D(buy.payload["price"])) == ("spot_buy", D("0.01"), D("64000"))
    assert (sell.kind, D(sell.payload["quantity"]), D(sell.payload["quantity_before"])) == (
        "spot_sell",
        D("0.004"),
        D("0.01"),
    )
    assert Holding.objects.get(account_id=spot_bound.trading_account_id, asset="BTC").quantity == D("0.006")
    # 10000 - 640 + 260, less the sell's fee in USDT (0.04 % of 260); the buy's fee was in BTC
    assert Account.objects.get(pk=spot_bound.trading_account_id).balance == D("9620") - D("0.104")


@pytest.mark.django_db
def test_a_spot_sell_of_what_the_book_never_bought_is_rejected_and_passed(spot_bound, exchange_double):
    from copytrading.exchanges.models import LeaderTradePoll

    # BTC the leader held before binding (the double's spot book), sold after.
    from tests.exchange_double.binance_spot import spot_book

    spot_book(exchange_double.state.accounts[API_KEY]).balances["BTC"] = D("1")
    on_spot().create_order(SPOT_BTC, "market", "sell", 0.01)
    on_spot().create_order(SPOT_BTC, "market", "buy", 0.01)

    report = exchange.leader_trades_poll(account_id=spot_bound.trading_account_id)

    assert (report.trades, report.rejected, len(report.events)) == (2, 1, 1)
    assert [e.kind for e in events_of(spot_bound)] == ["spot_buy"]
    rejected = InboxMessage.objects.get(source="exchange", status="rejected")
    assert rejected.result["code"] == "INSUFFICIENT_HOLDING"
    # The cursor is past both: the refusal is not retried forever.
    assert exchange.leader_trades_poll(account_id=spot_bound.trading_account_id).trades == 0
    assert LeaderTradePoll.objects.get().cursors.get(symbol=SPOT_BTC).last_trade_id


@pytest.mark.django_db
def test_a_spot_api_order_goes_to_the_exchange(spot_bound, leader, exchange_double):
    from tests.exchange_double.binance_spot import spot_book

    answer = api_for(leader).post(
        f"/api/v1/portfolios/{spot_bound.pk}/orders",
        {"symbol": SPOT_BTC, "side": "buy", "quantity": "0.01", "type": "market"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    (order,) = spot_book(exchange_double.state.accounts[API_KEY]).orders.values()
    assert order.client_order_id == answer.json()["client_order_id"]
    exchange.leader_trades_poll(account_id=spot_bound.trading_account_id)
    assert [e.kind for e in events_of(spot_bound)] == ["spot_buy"]


@pytest.mark.django_db
def test_trades_on_several_symbols_become_events_in_the_exchanges_order(bound):
    import time

    eth = "ETH/USDT:USDT"
    on_exchange().create_order(eth, "market", "buy", 0.100)
    time.sleep(0.01)
    on_exchange().create_order(BTC, "market", "buy", 0.010)
    time.sleep(0.01)
    on_exchange().create_order(eth, "market", "sell", 0.100)

    exchange.leader_trades_poll(account_id=bound.trading_account_id)

    assert [(e.kind, e.payload["symbol"]) for e in events_of(bound)] == [
        ("position_open", eth),
        ("position_open", BTC),
        ("position_close", eth),
    ]
    assert set(LeaderTradeCursor.objects.values_list("symbol", flat=True)) == {BTC, eth}


def test_a_long_outage_is_read_in_seven_day_windows_up_to_now():
    """Binance answers at most 7 days from a start time: a cursor 20 days old
    is read in three windows, and a trade in the last one is found even
    though the first two have none."""
    from copytrading.exchanges.leader import TRADES_WINDOW_MS, trades_since

    now = 10 * TRADES_WINDOW_MS
    since = now - 20 * 24 * 3600 * 1000
    asked = []

    class Client:
        def fetch_my_trades(self, symbol, since_ms, limit, params):
            asked.append((since_ms, params.get("until")))
            if since_ms <= now - 1000 < (params.get("until") or now + 1):
                return [{"id": "7", "symbol": symbol, "side": "buy", "price": 1, "amount": 2, "timestamp": now - 1000,
                         "info": {"price": "1", "qty": "2"}}]  # fmt: skip
            return []

    trades = trades_since(Client(), BTC, since, now_ms=now)

    assert [(t.trade_id, t.amount) for t in trades] == [("7", D("2"))]
    assert asked == [
        (since, since + TRADES_WINDOW_MS),
        (since + TRADES_WINDOW_MS, since + 2 * TRADES_WINDOW_MS),
        (since + 2 * TRADES_WINDOW_MS, None),
    ]


@pytest.mark.django_db
def test_archiving_a_bound_spot_portfolio_sells_nothing_on_the_exchange(spot_bound, leader, exchange_double):
    from copytrading.models import Holding
    from portfolios.lifecycle import portfolio_archive, portfolio_close

    on_spot().create_order(SPOT_BTC, "market", "buy", 0.01)
    exchange.leader_trades_poll(account_id=spot_bound.trading_account_id)
    posts_before = len(exchange_double.state.seen("/api/v3/order", "POST"))

    portfolio_close(portfolio=spot_bound, actor=leader)
    assert portfolio_archive(portfolio_id=spot_bound.pk)

    assert len(exchange_double.state.seen("/api/v3/order", "POST")) == posts_before  # the leader's coins stay put
    assert Holding.objects.get(account_id=spot_bound.trading_account_id, asset="BTC").quantity == 0
    assert Account.objects.get(pk=spot_bound.trading_account_id).is_closed
