"""My copies in Chromium against the whole stack: a copy whose mirror the real
worker opened, a price tick through the staff price API moving its
unrealized PnL on the page without a reload, a top up refused then done in
the dialog, pause, unfollow through the confirmation and the money back in
the wallet; and the page at phone width."""

import json
import urllib.request
from decimal import Decimal

from playwright.sync_api import expect

from config.celery import app as celery_app
from copytrading import ledger
from copytrading.models import Position, PositionStatus
from copytrading.services import instruments_seed, wallet_deposit
from copytrading.templatetags.web import money
from followers.models import SubscriptionStatus
from followers.services import subscription_create
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place
from tests.browser.conftest import browser_marks
from tests.factories import PASSWORD, StaffFactory, UserFactory, token_for
from tests.worker import wait_until

pytestmark = browser_marks

D = Decimal
ETH_PERP = "ETH/USDT:USDT"
BTC_PERP = "BTC/USDT:USDT"


def copy_with_a_mirror():
    """A follower copying a leader who went long 2 ETH (the follower's 0.5x
    mirror is opened by the worker)."""
    celery_app.conf.task_always_eager = False  # the real worker fans out
    instruments_seed()
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("21000"))
    portfolio = portfolio_create(leader=leader, name="Steady ETH", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    follower = UserFactory()
    wallet_deposit(user=follower, amount=D("6000"))
    sub = subscription_create(follower=follower, portfolio=portfolio, amount=D("5000"), multiplier=D("0.5"))
    portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("2"), leverage=10)
    wait_until(lambda: Position.objects.filter(account_id=sub.copy_account_id, status=PositionStatus.OPEN).exists())
    return sub


def log_in(page, user) -> None:
    page.goto("/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def set_price(server, symbol: str, price: str) -> None:
    """A tick through the staff price API, as an operator's script sends it."""
    request = urllib.request.Request(
        f"{server.url}/api/v1/market/prices",
        data=json.dumps({"symbol": symbol, "price": price}).encode(),
        headers={"Authorization": f"Token {token_for(StaffFactory())}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def test_my_copies_live_and_its_actions(page, shot, server):
    sub = copy_with_a_mirror()
    log_in(page, sub.follower)
    page.goto("/me/copies/")
    card = page.locator(f'#copies-live [data-subscription-id="{sub.pk}"]')
    expect(card.locator(".portfolio-name")).to_have_text("Steady ETH")
    expect(page.locator("[data-live-status]")).to_have_text("live")
    mirror = card.locator("[data-position-id]")
    expect(mirror).to_have_count(1)
    shot(page, "copy-with-a-mirror")

    # A tick moves the unrealized PnL in place: the page does not navigate.
    page.evaluate("window.__samePage = true")
    before = card.locator(".unrealized").text_content()
    set_price(server, ETH_PERP, "2900")
    expect(card.locator(".unrealized")).not_to_have_text(before, timeout=30_000)
    expect(card.locator(".unrealized")).to_have_class("unrealized down")
    expect(mirror.first.locator(".pnl")).to_contain_text("\u2212")
    assert page.evaluate("window.__samePage === true"), "the page reloaded"
    shot(page, "after-a-tick")

    # The leader opens another trade: its mirror shows on the card, still without a reload.
    portfolio_order_place(portfolio=sub.portfolio, symbol=BTC_PERP, side="buy", quantity=D("0.1"), leverage=10)
    expect(mirror).to_have_count(2, timeout=30_000)
    expect(card.locator(".executions summary")).to_have_text("Last executions (2)")
    assert page.evaluate("window.__samePage === true"), "the page reloaded"

    # Top up from the keyboard: too much is refused next to the amount, then a fitting sum.
    # Focus and Enter in one step: a live redraw of the card between them would
    # replace the focused button.
    card.locator('[data-action="top-up"]').press("Enter")
    dialog = page.locator("#copy-action")
    expect(dialog.locator("#id_amount")).to_be_visible()
    dialog.locator("#id_amount").fill("999999")
    page.keyboard.press("Enter")
    expect(dialog.locator("#errors-amount")).to_contain_text("Your main wallet has")
    expect(dialog.locator("#id_amount")).to_have_attribute("aria-invalid", "true")
    shot(page, "top-up-refused")
    dialog.locator("#id_amount").fill("250")
    dialog.locator("#copy-action-submit").click()
    expect(dialog).to_be_hidden()
    expect(card.locator(".invested")).to_have_text("5,250.00 USDT")

    card.locator('[data-action="pause"]').click()
    expect(card.locator(".status")).to_have_text("Paused")
    expect(card.locator(".pause-reason")).to_have_text("Paused by you.")
    shot(page, "paused")

    card.locator('[data-action="unfollow"]').click()
    consequences = dialog.locator("#unfollow-consequences")
    expect(consequences).to_contain_text("2 open mirrors will be closed at the market price")
    shot(page, "unfollow-confirmation")
    dialog.locator("button.confirm-unfollow").click()
    expect(page.locator(f'#ended [data-subscription-id="{sub.pk}"]')).to_have_count(1)
    expect(page.locator("#copies-empty")).to_be_visible()
    expect(page.locator("#unfollow-result")).to_contain_text("went back to your main wallet")
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ENDED
    shot(page, "ended")

    page.goto("/me/wallet/")
    balance = ledger.main_account_for(sub.follower).balance
    assert balance > D("5000")  # 750 never committed + what the copy wallet held
    expect(page.locator("#wallet-balance")).to_have_text(money(balance))
    shot(page, "money-back")


def test_my_copies_at_phone_width(page, shot, server):
    sub = copy_with_a_mirror()
    page.set_viewport_size({"width": 375, "height": 800})
    log_in(page, sub.follower)
    page.goto("/me/copies/")
    expect(page.locator(f'[data-subscription-id="{sub.pk}"] [data-position-id]')).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    shot(page, "phone")
    page.locator('[data-action="settings"]').click()
    expect(page.locator("#copy-action #id_multiplier")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    shot(page, "phone-settings")
