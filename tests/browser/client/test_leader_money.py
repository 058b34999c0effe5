"""The leader's money page in Chromium: the period tabs swap the chart through
htmx, a withdrawal lands in the table, the CSV downloads, the rotated secret
is shown once, the close dialog opens and closes from the keyboard, and the
page fits a phone."""

import csv
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from config.celery import app as celery_app
from fees.models import LeaderWithdrawal
from fees.services import fees_settle
from portfolios.models import Portfolio
from tests.browser.conftest import browser_marks
from tests.factories import PASSWORD
from tests.fees.conftest import FeeWorld, accrue

pytestmark = browser_marks


@pytest.fixture
def earned(settings, instruments, django_capture_on_commit_callbacks) -> Portfolio:
    """9.00 of profit share settled for the leader (tests/web/test_leader_money.py),
    made with the tasks inline in this process (the page is what is tested)."""
    settings.PAPER_SPREAD_BPS = Decimal("0")
    celery_app.conf.task_always_eager = True
    try:
        world = FeeWorld(django_capture_on_commit_callbacks)
        portfolio = world.leader()
        sub = world.follower(portfolio)
        world.round_trip(portfolio, "3200", "3400")
        accrue(sub)
        fees_settle()
    finally:
        celery_app.conf.task_always_eager = False
    return portfolio


def test_leader_money(page, shot, earned):
    money_url = f"/me/portfolios/{earned.pk}/earnings/"
    page.goto(f"/login/?next={money_url}")
    page.fill("#id_username", earned.leader.username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(re.compile(re.escape(money_url) + "$"))
    expect(page.locator("#earnings-total")).to_have_text("9.00 USDT")
    expect(page.locator("#earnings-chart svg")).to_be_visible()
    expect(page.get_by_role("link", name="Day")).to_have_attribute("aria-current", "true")
    shot(page, "earnings-day")

    # The tabs swap the earnings card in place (htmx) and the address follows.
    page.get_by_role("link", name="Week").click()
    expect(page.locator("#earnings-chart")).to_have_attribute("data-period", "week")
    expect(page.get_by_role("link", name="Week")).to_have_attribute("aria-current", "true")
    expect(page).to_have_url(re.compile(r"period=week"))
    page.get_by_role("link", name="Month").click()
    expect(page.locator("#earnings-chart")).to_have_attribute("data-period", "month")
    expect(page.locator("#earnings-chart svg rect")).to_have_count(1)
    expect(page.locator("#earnings-table .earned")).to_have_text(["9.00 USDT"])
    shot(page, "earnings-month")

    # A refused withdrawal says why next to the amount; a good one lands in the table.
    page.fill("#id_amount", "100")
    page.click("#withdraw-submit")
    expect(page.locator("#errors-amount")).to_contain_text("available")
    expect(page.locator("#id_amount")).to_have_attribute("aria-invalid", "true")
    shot(page, "withdraw-refused")
    page.fill("#id_amount", "2.5")
    page.click("#withdraw-submit")
    expect(page.locator("#withdrawals tbody tr[data-withdrawal-id] .amount")).to_have_text(["2.50 USDT"])
    expect(page.locator("#earnings-available")).to_have_text("6.50 USDT")
    assert LeaderWithdrawal.objects.get(portfolio_id=earned.pk).amount == Decimal("2.50")
    shot(page, "withdrawn")

    # The CSV downloads with the session.
    with page.expect_download() as downloaded:
        page.click("#withdrawals-csv")
    rows = list(csv.reader(io.StringIO(Path(downloaded.value.path()).read_text())))
    assert rows[0] == ["id", "created_at", "portfolio_id", "amount", "requested_amount", "currency"]
    assert [(r[2], r[3], r[5]) for r in rows[1:]] == [(str(earned.pk), "2.50000000", "USDT")]

    # Rotating asks first, then shows the new secret once.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rotate-secret")
    secret = page.locator("#new-secret")
    expect(secret).to_have_value(re.compile(r"^whsec_[0-9a-f]{64}$"))
    assert secret.input_value() == Portfolio.objects.get(pk=earned.pk).webhook_secret
    expect(page.locator("#webhook-secret")).to_contain_text("shown only this once")
    expect(page.locator("#rotate-secret")).to_have_text("Rotate the secret")
    expect(secret).to_be_focused()
    shot(page, "secret-shown")
    page.reload()
    expect(page.locator("#new-secret")).to_have_count(0)
    expect(page.locator("#rotate-secret")).to_have_text("Rotate the secret")

    # The close dialog says what happens, and Escape leaves it without closing anything.
    page.locator("#close-portfolio").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#close-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Every follower is unfollowed")
    shot(page, "close-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert Portfolio.objects.get(pk=earned.pk).status == "active"

    # A phone: nothing scrolls sideways, the tables stack.
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    expect(page.locator("#earnings-total")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "phone")
    # The secret and its signing instructions fit too.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#rotate-secret")
    expect(page.locator("#new-secret")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "phone-secret")
