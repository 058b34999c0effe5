"""The leader's desk in Chromium against daphne and a real Celery worker: a
market order placed on the desk is fanned out by the worker to the follower
(made through the services) and the desk shows it COPIED in #recent-events
without a reload; a price tick through the staff price API moves the
position's unrealized PnL over the stream; the position closes; a phone-width
screen does not scroll sideways; a refused quantity is said next to its field."""

import json
import re
import urllib.request
from decimal import Decimal

from playwright.sync_api import expect

from copytrading.models import Execution, Order, Position, PositionStatus
from copytrading.services import instruments_seed, wallet_deposit
from copytrading.templatetags.web import signed_money
from followers.services import subscription_create
from portfolios.services import portfolio_create, portfolio_fund
from tests.browser.conftest import browser_marks
from tests.factories import PASSWORD, StaffFactory, UserFactory, token_for
from tests.worker import wait_until

pytestmark = browser_marks

D = Decimal
BTC = "BTC/USDT:USDT"


def set_price(server, token: str, symbol: str, price: str) -> None:
    """A tick through the staff price API, as an operator's feed sends it."""
    request = urllib.request.Request(
        f"{server.url}/api/v1/market/prices",
        data=json.dumps({"symbol": symbol, "price": price}).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def log_in(page, user) -> None:
    page.goto("/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(lambda url: "/login/" not in url)


def test_a_leader_trades_on_the_desk_and_sees_the_copy_live(page, server, shot, settings):
    instruments_seed()
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("30000"))
    portfolio = portfolio_create(leader=leader, name="Desk journey", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    follower = UserFactory()
    wallet_deposit(user=follower, amount=D("5000"))
    subscription = subscription_create(follower=follower, portfolio=portfolio, amount=D("5000"), multiplier=D("0.5"))
    staff_token = token_for(StaffFactory())
    set_price(server, staff_token, BTC, "64000")

    log_in(page, leader)
    page.goto("/me/portfolios/")
    shot(page, "my-portfolios")
    page.click(f'[data-portfolio-id="{portfolio.pk}"] a')
    expect(page).to_have_url(re.compile(rf"/me/portfolios/{portfolio.pk}/$"))
    expect(page.locator("h1")).to_have_text("Desk journey")
    expect(page.locator("[data-live-status]").first).to_have_attribute("data-live-status", "live")
    expect(page.locator("#followers-count")).to_have_text("1")
    shot(page, "desk")

    # The order, from the keyboard: the form's controls are labelled and reachable.
    page.select_option("#id_instrument", BTC)
    page.select_option("#id_side", "buy")
    page.fill("#id_quantity", "0.0001")  # below the instrument's minimum: refused next to the field
    page.click("#order-submit")
    expect(page.locator("#errors-quantity")).to_be_visible()
    expect(page.locator("#id_quantity")).to_have_attribute("aria-invalid", "true")
    shot(page, "refused")
    page.fill("#id_quantity", "0.1")
    page.fill("#id_leverage", "10")
    page.focus("#order-submit")
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_contain_text("Order placed")
    position = page.locator("#positions [data-position-id]")
    expect(position).to_have_count(1)
    assert Order.objects.filter(account_id=portfolio.trading_account_id).count() == 1  # the refusal placed nothing
    shot(page, "order-placed")

    # The real worker copies it; the polled fragment shows it, no reload.
    wait_until(lambda: Execution.objects.filter(subscription_id=subscription.pk).exists(), timeout=60)
    expect(page.locator("#recent-events .copied").first).to_have_text("1", timeout=30_000)
    assert Execution.objects.get(subscription_id=subscription.pk).outcome == "COPIED"
    shot(page, "copied")

    # A tick moves the unrealized PnL over the stream: (65000 - entry) x 0.1.
    entry = Position.objects.get(account_id=portfolio.trading_account_id).entry_price
    moved = signed_money((D("65000") - entry) * D("0.1"))
    unrealized = position.locator(".unrealized")
    expect(unrealized).not_to_have_text(moved)
    set_price(server, staff_token, BTC, "65000")
    expect(unrealized).to_have_text(moved, timeout=20_000)
    expect(unrealized).to_have_class(re.compile(r"\bup\b"))
    expect(page.locator("#unrealized-total")).to_have_text(moved)
    shot(page, "tick")

    # A second follower arrives: the count moves without a reload.
    second = UserFactory()
    wallet_deposit(user=second, amount=D("3000"))
    subscription_create(follower=second, portfolio=portfolio, amount=D("3000"), multiplier=D("0.5"))
    expect(page.locator("#followers-count")).to_have_text("2", timeout=20_000)

    # The phone: nothing scrolls sideways.
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "phone")
    page.goto("/me/portfolios/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.go_back()

    # Close it: the leader's position and then the follower's mirror.
    page.locator('#positions [data-action="close"]').first.click()
    expect(page.locator(".flash")).to_contain_text("Position closed")
    expect(page.locator("#positions [data-position-id]")).to_have_count(0)
    leader_position = Position.objects.get(account_id=portfolio.trading_account_id)
    assert leader_position.status == PositionStatus.CLOSED
    wait_until(
        lambda: not Position.objects.filter(leader_position=leader_position, status=PositionStatus.OPEN).exists(),
        timeout=60,
    )
    shot(page, "closed")
