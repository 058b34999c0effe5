"""The leader's pages: my portfolios with the create form, and a portfolio's
desk (orders, positions, followers, recent events). Each form writes through
the service its API endpoint calls; refusals are the API's messages next to
their fields and change nothing; another leader's portfolio is a 404."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from copytrading.models import Execution, Holding, LeaderEvent, Order, Position, PositionStatus, Transfer
from copytrading.services import wallet_deposit
from followers.services import subscription_create
from portfolios.models import Portfolio
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place
from tests.factories import UserFactory, token_for

D = Decimal
BTC = "BTC/USDT:USDT"


@pytest.fixture
def leader(db, instruments, settings):
    settings.PAPER_SPREAD_BPS = D("0")
    user = UserFactory()
    wallet_deposit(user=user, amount=D("30000"))
    return user


@pytest.fixture
def portfolio(leader):
    portfolio = portfolio_create(leader=leader, name="Steady BTC", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    return portfolio


@pytest.fixture
def desk(client, leader, portfolio):
    client.force_login(leader)
    return client


def follow(portfolio) -> int:
    user = UserFactory()
    wallet_deposit(user=user, amount=D("5000"))
    return subscription_create(follower=user, portfolio=portfolio, amount=D("5000"), multiplier=D("0.5")).pk


def said(answer) -> list[str]:
    """The messages a refused form shows (for a failing assertion)."""
    return re.findall(r'<ul class="field-errors".*?</ul>', answer.content.decode(), re.S)


def order(client, portfolio, **fields):
    body = {"symbol": BTC, "side": "buy", "quantity": "0.1", "type": "market", "leverage": "10", **fields}
    return client.post(f"/me/portfolios/{portfolio.pk}/orders/", body)


# --- access -------------------------------------------------------------------------------


def test_anonymous_is_sent_to_log_in(client, portfolio):
    for url in ("/me/portfolios/", f"/me/portfolios/{portfolio.pk}/", f"/me/portfolios/{portfolio.pk}/events/"):
        answer = client.get(url)
        assert answer.status_code == 302 and answer["Location"].startswith(f"/login/?next={url}")
    answer = order(client, portfolio)
    assert answer.status_code == 302 and answer["Location"].startswith("/login/")
    assert not Order.objects.exists()


def test_another_leaders_portfolio_is_not_found_on_every_route(client, portfolio):
    position = portfolio_order_place(portfolio=portfolio, symbol=BTC, side="buy", quantity=D("0.1"), leverage=10)
    position_id = Position.objects.get(status=PositionStatus.OPEN).pk
    (limit,) = portfolio_order_place(
        portfolio=portfolio, symbol=BTC, side="buy", quantity=D("0.1"), leverage=10, order_type="limit", price=D("1000")
    )
    assert position and limit
    order_id = Order.objects.get(status="open").pk
    client.force_login(UserFactory())
    base = f"/me/portfolios/{portfolio.pk}"
    for url in (f"{base}/", f"{base}/events/", f"{base}/book/"):
        assert client.get(url).status_code == 404
    for url in (f"{base}/orders/", f"{base}/positions/{position_id}/close/", f"{base}/orders/{order_id}/cancel/"):
        assert client.post(url, {"symbol": BTC, "side": "buy", "quantity": "1"}).status_code == 404
    assert client.post(f"{base}/fund/", {"amount": "10"}).status_code == 404
    assert Position.objects.get(pk=position_id).status == PositionStatus.OPEN
    assert Order.objects.get(pk=order_id).status == "open"
    assert Order.objects.count() == 2


def test_every_write_needs_the_csrf_token(leader, portfolio):
    client = Client(enforce_csrf_checks=True)
    client.force_login(leader)
    assert order(client, portfolio).status_code == 403
    assert client.post("/me/portfolios/", {"name": "Sneaky"}).status_code == 403
    assert not Order.objects.exists() and Portfolio.objects.count() == 1


# --- my portfolios ------------------------------------------------------------------------


def test_my_portfolios_lists_mine_with_equity_followers_and_status(desk, leader, portfolio):
    follow(portfolio)
    other = portfolio_create(leader=UserFactory(), name="Not mine")
    html = desk.get("/me/portfolios/").content.decode()
    assert f'data-portfolio-id="{portfolio.pk}"' in html
    assert f'href="/me/portfolios/{portfolio.pk}/"' in html
    assert "20,000.00 USDT" in html
    assert 'class="num followers">1<' in html
    assert f'data-portfolio-id="{other.pk}"' not in html
    assert 'id="create-portfolio"' in html


def test_create_a_portfolio_through_the_service(desk, leader):
    answer = desk.post(
        "/me/portfolios/",
        {"name": "Quiet ETH", "mode": "spot", "profit_share_pct": "", "min_investment": "100", "is_public": "false",
         "passcode": "12345678", "description": "Slow and steady."},
    )  # fmt: skip
    assert answer.status_code == 302, said(answer)
    created = Portfolio.objects.get(leader=leader, name="Quiet ETH")
    assert answer.status_code == 302 and answer["Location"] == f"/me/portfolios/{created.pk}/"
    assert created.mode == "spot" and created.min_investment == D("100") and not created.is_public
    assert created.passcode_hash and created.description == "Slow and steady."
    assert desk.get(answer["Location"]).status_code == 200


@pytest.mark.parametrize(
    ("form", "field", "status", "said"),
    [
        ({"name": ""}, "name", 400, "This field is required"),
        ({"name": "Shit coin"}, "name", 400, "offensive language"),
        ({"name": "Steady BTC"}, "name", 409, "You already have a portfolio with this name."),
        ({"name": "Fine", "mode": "futures"}, "mode", 400, "is not a valid choice"),
        ({"name": "Fine", "min_investment": "-5"}, "min_investment", 400, ""),
        ({"name": "Fine", "profit_share_pct": "150"}, "profit_share_pct", 400, ""),
        ({"name": "Fine", "is_public": "false"}, "passcode", 400, "8-digit passcode"),
        ({"name": "Fine", "x_url": "https://evil.example/me"}, "x_url", 400, ""),
    ],
)
def test_create_refusals_are_next_to_their_fields(desk, leader, portfolio, form, field, status, said):
    answer = desk.post("/me/portfolios/", form)
    html = answer.content.decode()
    assert answer.status_code == status
    assert f'id="errors-{field}"' in html
    assert f'id="id_{field}"' in html and 'aria-invalid="true"' in html
    assert said in html
    assert Portfolio.objects.filter(leader=leader).count() == 1


# --- the desk -------------------------------------------------------------------------------


def test_the_desk_shows_the_figures_the_api_gives(desk, leader, portfolio, api):
    portfolio_order_place(portfolio=portfolio, symbol=BTC, side="buy", quantity=D("0.1"), leverage=10)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(leader)}")
    account = api.get(f"/api/v1/portfolios/{portfolio.pk}").json()["trading_account"]
    (position,) = api.get(f"/api/v1/portfolios/{portfolio.pk}/positions").json()["results"]
    html = desk.get(f"/me/portfolios/{portfolio.pk}/").content.decode()
    free = f"{D(account['free']).quantize(D('0.01')):,} USDT"
    assert f'<dd id="free">{free}</dd>' in html
    assert f'<dd id="balance">{D(account["balance"]).quantize(D("0.01")):,} USDT</dd>' in html
    assert f'data-position-id="{position["id"]}"' in html
    assert "data-live-status" in html and 'id="order-form"' in html and 'id="recent-events"' in html
    assert f'href="/me/portfolios/{portfolio.pk}/earnings/"' in html
    assert 'id="followers-count">0<' in html


def test_an_order_is_placed_copied_and_counted(desk, portfolio, django_capture_on_commit_callbacks):
    subscription_id = follow(portfolio)
    with django_capture_on_commit_callbacks(execute=True):
        answer = order(desk, portfolio, key="k-1")
    assert answer.status_code == 302 and answer["Location"] == f"/me/portfolios/{portfolio.pk}/"
    leader_position = Position.objects.get(account_id=portfolio.trading_account_id)
    assert leader_position.quantity == D("0.1") and leader_position.leverage == 10
    event = LeaderEvent.objects.get(portfolio_id=portfolio.pk)
    assert Execution.objects.get(event=event, subscription_id=subscription_id).outcome == "COPIED"
    html = desk.get(answer["Location"]).content.decode()
    assert "Order placed" in html
    assert 'id="followers-count">1<' in html
    assert f'data-event-id="{event.pk}"' in html and 'class="num copied">1<' in html
    assert f'data-position-id="{leader_position.pk}"' in html
    assert re.search(rf'<option value="{re.escape(BTC)}"[^>]* selected>', html)  # the last instrument stays
    fragment = desk.get(f"/me/portfolios/{portfolio.pk}/events/").content.decode()
    assert fragment.startswith('<section class="card" id="recent-events"') or 'id="recent-events"' in fragment
    assert 'class="num copied">1<' in fragment


def test_a_double_submitted_order_is_placed_once(desk, portfolio):
    assert order(desk, portfolio, key="same").status_code == 302
    assert order(desk, portfolio, key="same").status_code == 302
    assert Order.objects.filter(account_id=portfolio.trading_account_id).count() == 1
    assert order(desk, portfolio, key="other").status_code == 302
    assert Order.objects.filter(account_id=portfolio.trading_account_id).count() == 2


@pytest.mark.parametrize(
    ("fields", "field", "said"),
    [
        ({"quantity": "0.0001"}, "quantity", ""),
        ({"quantity": ""}, "quantity", "This field is required"),
        ({"quantity": "abc"}, "quantity", ""),
        ({"leverage": "0"}, "leverage", ""),
        ({"leverage": "500"}, "leverage", ""),
        ({"leverage": "²"}, "leverage", ""),  # a digit to str.isdigit, not to int()
        ({"symbol": "NOPE/USDT"}, "symbol", ""),
        ({"symbol": "BTC/USDT"}, "symbol", "cannot trade spot"),
        ({"side": "hold"}, "side", ""),
        ({"type": "limit"}, "price", "A limit order needs a price."),
        ({"type": "trailing_stop"}, "type", ""),
    ],
)
def test_order_refusals_are_next_to_their_fields_and_change_nothing(desk, portfolio, fields, field, said):
    answer = order(desk, portfolio, key="r-1", **fields)
    html = answer.content.decode()
    assert answer.status_code == 400, html[-2000:]
    assert f'id="errors-{field}"' in html and said in html
    assert 'aria-invalid="true"' in html
    assert not Order.objects.exists() and not LeaderEvent.objects.exists()
    # The refused key is free again: the corrected order goes through.
    assert order(desk, portfolio, key="r-1").status_code == 302
    assert Order.objects.count() == 1


def test_insufficient_balance_is_said_and_nothing_changes(desk, portfolio):
    answer = order(desk, portfolio, quantity="50", leverage="1")
    assert answer.status_code == 400
    html = answer.content.decode()
    assert 'id="errors-quantity"' in html and "20000.00000000 is available" in html, said(answer)
    assert not Order.objects.exists() and not Position.objects.exists()


def test_close_a_position_closes_it_and_its_mirrors(desk, portfolio, django_capture_on_commit_callbacks):
    follow(portfolio)
    with django_capture_on_commit_callbacks(execute=True):
        order(desk, portfolio)
    position = Position.objects.get(account_id=portfolio.trading_account_id)
    mirror = Position.objects.get(leader_position=position)
    url = f"/me/portfolios/{portfolio.pk}/positions/{position.pk}/close/"
    with django_capture_on_commit_callbacks(execute=True):
        answer = desk.post(url, {"key": "c-1"})
    assert answer.status_code == 302
    position.refresh_from_db()
    mirror.refresh_from_db()
    assert position.status == PositionStatus.CLOSED and mirror.status == PositionStatus.CLOSED
    # Closing it again is refused on its row, not a 500.
    answer = desk.post(url, {"key": "c-2"})
    assert answer.status_code in (404, 409)
    assert "field-errors" in answer.content.decode()
    # A quantity that is not a number is the serializer's message.
    assert desk.post(url, {"quantity": "x"}).status_code == 400


def test_cancel_an_open_limit_order(desk, portfolio):
    order(desk, portfolio, type="limit", price="50000", key="l-1")
    limit = Order.objects.get(status="open")
    assert f'data-order-id="{limit.pk}"' in desk.get(f"/me/portfolios/{portfolio.pk}/").content.decode()
    url = f"/me/portfolios/{portfolio.pk}/orders/{limit.pk}/cancel/"
    assert desk.post(url, {"key": "x-1"}).status_code == 302
    limit.refresh_from_db()
    assert limit.status == "cancelled"
    again = desk.post(url, {"key": "x-2"})
    assert again.status_code in (404, 409) and "field-errors" in again.content.decode()


def test_fund_the_trading_account_once_per_submit(desk, leader, portfolio):
    before = Transfer.objects.count()
    form = {"amount": "1000", "key": "f-1"}
    assert desk.post(f"/me/portfolios/{portfolio.pk}/fund/", form).status_code == 302
    assert desk.post(f"/me/portfolios/{portfolio.pk}/fund/", form).status_code == 302
    assert Transfer.objects.count() == before + 1
    portfolio.trading_account.refresh_from_db()
    assert portfolio.trading_account.balance == D("21000")
    answer = desk.post(f"/me/portfolios/{portfolio.pk}/fund/", {"amount": "999999", "key": "f-2"})
    assert answer.status_code in (400, 409) and "field-errors" in answer.content.decode()
    answer = desk.post(f"/me/portfolios/{portfolio.pk}/fund/", {"amount": "-1", "key": "f-3"})
    assert answer.status_code == 400 and 'id="errors-amount"' in answer.content.decode()
    assert Transfer.objects.count() == before + 1


def test_a_spot_desk_shows_holdings_and_sells_them(client, leader):
    spot = portfolio_create(leader=leader, name="Spot stack", mode="spot")
    portfolio_fund(portfolio=spot, amount=D("10000"))
    client.force_login(leader)
    html = client.get(f"/me/portfolios/{spot.pk}/").content.decode()
    assert 'value="BTC/USDT"' in html and 'value="BTC/USDT:USDT"' not in html  # the mode's instruments only
    assert order(client, spot, symbol="BTC/USDT", quantity="0.01", key="s-1").status_code == 302
    book = client.get(f"/me/portfolios/{spot.pk}/book/").content.decode()
    assert book.startswith('<section class="card" id="positions"') and 'data-holding-asset="BTC"' in book
    assert 'name="symbol" value="BTC/USDT"' in book and 'data-action="close"' in book
    answer = order(client, spot, symbol="BTC/USDT", side="sell", quantity="0.01", key="s-2")
    assert answer.status_code == 302
    assert not Holding.objects.filter(account_id=spot.trading_account_id, quantity__gt=0).exists()
    assert 'data-holding-asset="BTC"' not in client.get(f"/me/portfolios/{spot.pk}/").content.decode()


def test_create_on_an_exchange_account_that_is_not_mine_is_refused(desk, leader):
    from tests.portfolios.test_exchange_leader import linked_account

    mine, theirs = linked_account(leader), linked_account(UserFactory(), api_key="another-key-123456")
    html = desk.get("/me/portfolios/").content.decode()
    assert f'<option value="{mine.pk}"' in html and f'<option value="{theirs.pk}"' not in html
    answer = desk.post("/me/portfolios/", {"name": "Bound", "exchange_account_id": str(theirs.pk)})
    assert answer.status_code in (400, 404), said(answer)
    assert said(answer) and not Portfolio.objects.filter(name="Bound").exists()
    answer = desk.post("/me/portfolios/", {"name": "Bound", "exchange_account_id": "x"})
    assert answer.status_code == 400 and 'id="errors-exchange_account_id"' in answer.content.decode()


def test_tpsl_of_a_position_is_set_cleared_and_refused_next_to_its_field(desk, portfolio):
    order(desk, portfolio)
    position = Position.objects.get(account_id=portfolio.trading_account_id)
    url = f"/me/portfolios/{portfolio.pk}/positions/{position.pk}/tpsl/"
    assert desk.post(url, {"take_profit": "70000", "stop_loss": "60000"}).status_code == 302
    position.refresh_from_db()
    assert (position.take_profit, position.stop_loss) == (D("70000"), D("60000"))
    answer = desk.post(url, {"take_profit": "1000", "stop_loss": "60000"})  # a long's TP below its entry
    html = answer.content.decode()
    assert answer.status_code == 400 and 'id="errors-take_profit"' in html, said(answer)
    assert 'value="1000"' in html
    answer = desk.post(url, {"take_profit": "abc", "stop_loss": ""})
    assert answer.status_code == 400 and 'id="errors-take_profit"' in answer.content.decode(), said(answer)
    position.refresh_from_db()
    assert (position.take_profit, position.stop_loss) == (D("70000"), D("60000"))
    assert desk.post(url, {"take_profit": "", "stop_loss": "60000"}).status_code == 302
    position.refresh_from_db()
    assert (position.take_profit, position.stop_loss) == (None, D("60000"))
