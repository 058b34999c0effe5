"""Closing a portfolio: active -> closing -> archived, by the leader or by staff."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from copytrading import ledger
from copytrading.errors import DomainError
from copytrading.models import Account, Holding, Notification, Transfer, TransferKind
from copytrading.services import wallet_deposit
from fees.models import AccrualStatus, FeeAccrual
from fees.services import fees_settle
from followers.services import subscription_create
from portfolios import lifecycle
from portfolios.lifecycle_tasks import reconcile_closing_portfolios
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.services import portfolio_order_place, portfolio_update
from tests.copytrading.world import ETH_PERP, World
from tests.factories import UserFactory
from tests.portfolios.lifecycle_world import assert_detached_exactly_once, closing_scene, returned_total

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def status_of(portfolio) -> str:
    return Portfolio.objects.values_list("status", flat=True).get(pk=portfolio.pk)


def test_the_leader_closes_followers_are_detached_once_and_it_is_archived(world, api):
    portfolio, subs = closing_scene(world)
    api.force_authenticate(portfolio.leader)
    with world.capture(execute=True):
        r = api.post(f"/api/v1/portfolios/{portfolio.pk}/close", {}, format="json")
    assert r.status_code == 202, r.content
    assert r.json()["status"] in (PortfolioStatus.CLOSING, PortfolioStatus.ARCHIVED)
    assert_detached_exactly_once(portfolio, subs, lifecycle.CLOSED_BY_LEADER)
    # Each follower got back the whole wallet: 5000 + a 1 ETH mirror's 100 profit, less the 10 % share.
    assert returned_total(subs) == D("3") * (D("5000") + D("100") - D("10"))

    # The wind-down settled the profit share the detaches accrued (no wait
    # for the minute job) and archived at once.
    assert status_of(portfolio) == PortfolioStatus.ARCHIVED
    assert fees_settle().claimed == 0
    assert not FeeAccrual.objects.filter(portfolio_id=portfolio.pk).exclude(status=AccrualStatus.SETTLED).exists()

    # Every step again changes nothing.
    with world.capture(execute=True):
        assert lifecycle.portfolio_close(portfolio=portfolio, actor=portfolio.leader).status == "archived"
    assert lifecycle.followers_detach(portfolio_id=portfolio.pk) == 0
    assert lifecycle.portfolio_wind_down(portfolio_id=portfolio.pk) == PortfolioStatus.ARCHIVED
    assert reconcile_closing_portfolios() == {"closing": 0, "archived": 0}
    assert_detached_exactly_once(portfolio, subs, lifecycle.CLOSED_BY_LEADER)
    kinds = (
        Notification.objects.filter(user_id=portfolio.leader_id, kind__startswith="portfolio_")
        .order_by("pk")
        .values_list("kind", flat=True)
    )
    assert list(kinds) == ["portfolio_closing", "portfolio_archived"]
    # The leader's trading account was emptied into their main wallet, once.
    trading = Account.objects.get(pk=portfolio.trading_account_id)
    assert (trading.balance, trading.locked, trading.is_closed) == (0, 0, True)
    (back,) = Transfer.objects.filter(debit_id=trading.pk, kind=TransferKind.LEADER_RETURN)
    assert back.credit_id == ledger.main_account_for(portfolio.leader).pk
    assert ledger.ledger_check().ok


def test_archiving_sells_the_leaders_spot_holdings_and_returns_the_cash(world):
    portfolio = world.leader(mode="all", fund="20000")
    world.price("BTC/USDT", "60000")
    world.trade(portfolio, "BTC/USDT", "buy", "0.1", leverage=1)
    main = ledger.main_account_for(portfolio.leader)
    main_before = Account.objects.get(pk=main.pk).balance
    world.price("BTC/USDT", "61000")
    with world.capture(execute=True):
        lifecycle.portfolio_close(portfolio=portfolio, actor=portfolio.leader)
    assert status_of(portfolio) == PortfolioStatus.ARCHIVED
    assert not Holding.objects.filter(account_id=portfolio.trading_account_id, quantity__gt=0).exists()
    # 20000 - 6000 paid + 6100 from the sale, all back in the main wallet.
    assert Account.objects.get(pk=main.pk).balance - main_before == D("20100")
    assert Account.objects.get(pk=portfolio.trading_account_id).balance == 0
    assert ledger.ledger_check().ok


def test_detaching_twice_detaches_each_follower_once(world):
    portfolio, subs = closing_scene(world)
    # Closing without the background wind-down (as if the worker died).
    lifecycle.portfolio_close(portfolio=portfolio, actor=portfolio.leader)
    assert status_of(portfolio) == PortfolioStatus.CLOSING
    with world.capture(execute=True):
        lifecycle.leader_book_close(portfolio_id=portfolio.pk)
    first = lifecycle.followers_detach(portfolio_id=portfolio.pk)
    second = lifecycle.followers_detach(portfolio_id=portfolio.pk)
    assert (first, second) == (3, 0)
    assert_detached_exactly_once(portfolio, subs, lifecycle.CLOSED_BY_LEADER)


def test_a_closing_portfolio_takes_no_follower_no_order_and_no_edit(world):
    portfolio, _ = closing_scene(world, followers=1)
    with world.capture(execute=True):
        lifecycle.portfolio_close(portfolio=portfolio, actor=portfolio.leader)
    newcomer = UserFactory()
    wallet_deposit(user=newcomer, amount=D("1000"))
    with pytest.raises(DomainError) as info:
        subscription_create(follower=newcomer, portfolio=portfolio, amount=D("500"), multiplier=D("0.5"))
    assert (info.value.code, info.value.status) == ("PORTFOLIO_NOT_ACTIVE", 409)
    with pytest.raises(DomainError) as info:
        portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=5)
    assert (info.value.code, info.value.status) == ("PORTFOLIO_NOT_ACTIVE", 409)
    with pytest.raises(DomainError) as info:
        portfolio_update(portfolio=portfolio, description="still here")
    assert info.value.code == "PORTFOLIO_NOT_ACTIVE"


def test_the_leader_api_refuses_orders_on_a_closing_portfolio(world, api):
    portfolio, _ = closing_scene(world, followers=1)
    with world.capture(execute=True):
        lifecycle.portfolio_close(portfolio=portfolio, actor=portfolio.leader)
    api.force_authenticate(portfolio.leader)
    r = api.post(
        f"/api/v1/portfolios/{portfolio.pk}/orders",
        {"symbol": ETH_PERP, "side": "buy", "quantity": "1", "leverage": 5},
        format="json",
    )
    assert (r.status_code, r.json()["code"]) == (409, "PORTFOLIO_NOT_ACTIVE")


def test_staff_force_close_needs_a_reason_and_the_followers_see_it(world):
    portfolio, subs = closing_scene(world, followers=2)
    staff = UserFactory(is_staff=True)
    with pytest.raises(DomainError) as info:
        lifecycle.portfolio_close(portfolio=portfolio, actor=staff, reason="   ", forced=True)
    assert (info.value.code, info.value.field) == ("CLOSE_REASON_REQUIRED", "reason")
    assert status_of(portfolio) == PortfolioStatus.ACTIVE
    with world.capture(execute=True):
        lifecycle.portfolio_close(portfolio=portfolio, actor=staff, reason="Misleading  marketing", forced=True)
    portfolio.refresh_from_db()
    assert (portfolio.close_reason, portfolio.closed_by_id) == ("Misleading marketing", staff.pk)
    assert_detached_exactly_once(portfolio, subs, "portfolio_closed_by_staff: Misleading marketing")
    note = Notification.objects.filter(user_id=subs[0].follower_id, kind="portfolio_closed").get()
    assert note.body.endswith("Reason given by staff: Misleading marketing")
    fees_settle()
    reconcile_closing_portfolios()
    assert status_of(portfolio) == PortfolioStatus.ARCHIVED


def test_the_admin_action_force_closes_with_a_reason(world, client):
    portfolio, subs = closing_scene(world, followers=2)
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "x" * 12)
    client.force_login(admin)
    url = "/admin/portfolios/portfolio/"
    form = {"action": "force_close", "_selected_action": [portfolio.pk]}
    r = client.post(url, form)
    assert r.status_code == 200 and b"reason" in r.content  # the form asking for the reason
    assert status_of(portfolio) == PortfolioStatus.ACTIVE
    r = client.post(url, {**form, "apply": "1", "reason": ""})
    assert r.status_code == 200 and status_of(portfolio) == PortfolioStatus.ACTIVE  # still asking
    with world.capture(execute=True):
        r = client.post(url, {**form, "apply": "1", "reason": "Fraud report #42"})
    assert r.status_code == 302
    assert_detached_exactly_once(portfolio, subs, "portfolio_closed_by_staff: Fraud report #42")


def test_another_leader_cannot_close(world, api):
    portfolio, _ = closing_scene(world, followers=1)
    api.force_authenticate(UserFactory())
    r = api.post(f"/api/v1/portfolios/{portfolio.pk}/close", {}, format="json")
    assert r.status_code == 404
    assert status_of(portfolio) == PortfolioStatus.ACTIVE
