"""A portfolio's page in Chromium: the charts are SVG, Copy sends an
anonymous reader to log in and back, the copy dialog opens from the keyboard
with its content loaded by htmx and closes with Escape, and a phone-width
screen does not scroll sideways."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from django.db.models import Q
from django.utils import timezone
from playwright.sync_api import expect

from copytrading.models import Instrument, Position, Transfer
from copytrading.services import instruments_seed, price_set, wallet_deposit
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from portfolios.stats import stats_refresh
from tests.browser.conftest import browser_marks
from tests.factories import PASSWORD, UserFactory

pytestmark = browser_marks

D = Decimal
ETH_PERP = "ETH/USDT:USDT"


def traded_portfolio():
    """A funded margin portfolio with a win and a loss, its money moves spread
    over the last days (so the charts have a line), its figures refreshed."""
    instruments_seed()
    eth = Instrument.objects.get(symbol=ETH_PERP)
    leader = UserFactory(username="momentum-ann")
    wallet_deposit(user=leader, amount=D("21000"))
    portfolio = portfolio_create(leader=leader, name="Momentum", mode="margin", description="Trend following on ETH.")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    for entry, exit_ in (("3200", "3300"), ("3300", "3250"), ("3250", "3400")):
        price_set(instrument=eth, price=D(entry))
        portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)
        price_set(instrument=eth, price=D(exit_))
        position = Position.objects.get(account_id=portfolio.trading_account_id, status="open")
        portfolio_position_close(portfolio=portfolio, position_id=position.pk)
    account = portfolio.trading_account_id
    moves = list(Transfer.objects.filter(Q(credit_id=account) | Q(debit_id=account)).order_by("pk"))
    now = timezone.now()
    for age, move in enumerate(reversed(moves)):
        Transfer.objects.filter(pk=move.pk).update(created_at=now - timedelta(days=age))
    stats_refresh(portfolio_ids=[portfolio.pk])
    return portfolio


def log_in(page, user) -> None:
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")


def test_portfolio_page(page, shot):
    portfolio = traded_portfolio()
    follower = UserFactory(username="fiona")
    url = f"/portfolios/{portfolio.pk}/"

    # Anonymous: the figures and the charts, drawn as SVG on the server.
    page.goto(url)
    expect(page.locator("h1")).to_have_text("Momentum")
    expect(page.locator("#equity-chart svg")).to_be_visible()
    expect(page.locator("#drawdown-chart svg")).to_be_visible()
    expect(page.locator("#stats #stat-trades")).to_have_text("6")
    expect(page.locator("#instruments")).to_contain_text(ETH_PERP)
    expect(page.locator("#closed-trades [data-trade-id]")).to_have_count(3)
    shot(page, "anonymous")

    # Copy sends an anonymous reader to log in, and back here after.
    page.click("#copy-button")
    page.wait_for_url(lambda at: urlsplit(at).path == "/login/")
    assert parse_qs(urlsplit(page.url).query)["next"] == [url]
    log_in(page, follower)
    page.wait_for_url(lambda at: urlsplit(at).path == url)

    # The dialog opens from the keyboard, its content loaded by htmx.
    page.locator("#copy-button").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#copy-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#copy-dialog-body")).not_to_contain_text("Loading")
    shot(page, "copy-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.activeElement && document.activeElement.id") == "copy-button"

    # A period of the charts: a link, the charts redrawn by the server.
    page.get_by_role("link", name="7 days").click()
    expect(page.get_by_role("link", name="7 days")).to_have_attribute("aria-current", "true")
    expect(page.locator("#equity-chart svg")).to_be_visible()
    assert parse_qs(urlsplit(page.url).query)["days"] == ["7"]
    shot(page, "seven-days")

    # A phone: no sideways scroll, the closed trades stacked into cards.
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    expect(page.locator("#equity-chart svg")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.locator("#closed-trades thead")).to_be_hidden()
    shot(page, "phone")
    page.click("#copy-button")
    expect(dialog).to_be_visible()
    expect(page.locator("#copy-dialog-body")).not_to_contain_text("Loading")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "phone-copy-dialog", full_page=False)
