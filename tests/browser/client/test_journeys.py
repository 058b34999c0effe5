"""The client journeys of issue #19 in a real Chromium, across the pages,
against the whole stack (tests/browser/client/conftest.py: daphne in services
mode, PostgreSQL, Redis, a real Celery worker). Each step leaves a numbered
screenshot under var/screenshots/<journey>/; with SAVE_DOC_SCREENSHOTS=1 a few
are also written to docs/screenshots/web-*.png (CI leaves docs alone).

The pages are found by the DOM contract the page authors honour (ids, data-*
attributes, roles and labels), never by layout. The world comes from
journey_data: set-up through the services (inline in this process), what a
journey watches happen through the server's API (the real worker fans it out).
Waits are Playwright's auto-retrying ``expect`` or ``wait_until`` on the
database, never a sleep.
"""

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from playwright.sync_api import expect
from rest_framework.test import APIClient

from copytrading.models import Execution, Outcome, Position, PositionStatus
from copytrading.templatetags.web import money
from fees.models import FeeAccrual
from fees.selectors import leader_earnings
from followers.models import Subscription, SubscriptionStatus
from portfolios.models import PortfolioStats
from tests.browser.client import journey_data as data
from tests.browser.conftest import CHROMIUM, HAVE_CHROMIUM, browser_marks
from tests.conftest import ON_POSTGRES
from tests.worker import wait_until

pytestmark = browser_marks

# CI's browser lane sets it (.ci/run): there, what would make these journeys
# skip fails the run instead (a skipped lane would pass green and prove nothing).
if os.environ.get("BROWSER_JOURNEYS_REQUIRED") == "1":
    _missing = [
        what
        for present, what in (
            (HAVE_CHROMIUM, f"Chromium at {CHROMIUM}"),
            (ON_POSTGRES, "DATABASE_URL (PostgreSQL)"),
            (bool(os.environ.get("REDIS_URL")), "REDIS_URL"),
        )
        if not present
    ]
    if _missing:
        pytest.fail(f"BROWSER_JOURNEYS_REQUIRED, but missing: {', '.join(_missing)}", pytrace=False)

D = Decimal
DOCS = Path(settings.BASE_DIR) / "docs" / "screenshots"
PHONE = {"width": 375, "height": 800}
LIVE = 20_000  # ms: a tick reaches the page through the worker and the stream


# --- reading and driving pages ------------------------------------------------------


def _open(page, url: str):
    """Go to ``url``; it must answer 200 (a missing page fails here, by its URL)."""
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    return response


def _login(page, user, password: str = data.PASSWORD) -> None:
    _open(page, "/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("#login-submit")
    assert "/login/" not in page.url, f"the login was refused: {page.locator('main').inner_text()}"


def _logout(page) -> None:
    with page.expect_navigation():
        page.click("#logout")


def _number(text: str) -> Decimal:
    """The first number in a formatted figure: "+1,234.50 USDT" is 1234.50 (the
    filters' real minus sign counts as a minus)."""
    text = text.replace("\u2212", "-")
    match = re.search(r"[-+]?\d[\d,]*(?:\.\d+)?", text)
    assert match, f"no number in {text!r}"
    return D(match.group().replace(",", ""))


def _set(page, selector: str, value: str) -> None:
    """Fill an input or choose a <select>'s option by value, else by label."""
    field = page.locator(selector)
    if field.evaluate("el => el.tagName") == "SELECT":
        values = field.locator("option").evaluate_all("os => os.map(o => o.value)")
        field.select_option(value=value) if value in values else field.select_option(label=value)
    else:
        field.fill(value)


def _eventually_visible(page, locator, *, timeout: int = 5_000) -> None:
    """Visible live, or at the latest after a reload (for what a page shows
    as of its rendering; the effect itself was waited for in the database)."""
    try:
        expect(locator).to_be_visible(timeout=timeout)
    except AssertionError:
        page.reload()
        expect(locator).to_be_visible()


def _no_horizontal_scroll(page, what: str) -> None:
    widths = page.evaluate(
        """() => {
            const limit = window.innerWidth;
            const wide = [...document.querySelectorAll('body *')]
                .filter(el => el.getBoundingClientRect().right > limit + 1)
                .slice(0, 5)
                .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                     (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : ''));
            return {scroll: document.documentElement.scrollWidth, inner: limit, wide};
        }"""
    )
    assert widths["scroll"] <= widths["inner"], f"{what} scrolls sideways at {widths['inner']} px: {widths}"


def _focused(page) -> dict:
    """The focused element: its id, and whether the focus shows (:focus-visible with an outline)."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = el ? getComputedStyle(el) : null;
            const outlined = style && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
            const shadowed = style && style.boxShadow !== 'none';
            return {
                id: el ? el.id : '',
                tag: el ? el.tagName : '',
                visible: !!el && el.matches(':focus-visible') && (outlined || shadowed),
            };
        }"""
    )


def _tab_to(page, element_id: str, *, most: int = 80, key: str = "Tab") -> dict:
    """Press Tab until ``#element_id`` has the focus; its focus must show."""
    for _ in range(most):
        page.keyboard.press(key)
        focused = _focused(page)
        if focused["id"] == element_id:
            assert focused["visible"], f"#{element_id} has the focus but does not show it: {focused}"
            return focused
    raise AssertionError(f"#{element_id} is not reached by {key} within {most} presses")


def _doc(page, name: str, *, full_page: bool = False) -> None:
    """docs/screenshots/web-<name>.png, only when SAVE_DOC_SCREENSHOTS=1 (CI leaves docs alone)."""
    if os.environ.get("SAVE_DOC_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / f"web-{name}.png"), full_page=full_page)


def _simulated(portfolio_id: int, **body) -> dict:
    """What the API's simulator answers for this input (another reader: the
    follower's own per-minute allowance is left to the page)."""
    client = APIClient()
    client.force_authenticate(data.person("preview-reader"))
    answer = client.post(f"/api/v1/portfolios/{portfolio_id}/simulate", body, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()


def _api_refusal(user, body: dict) -> dict:
    """The API's refusal of the same subscribe (nothing is stored on a refusal)."""
    client = APIClient()
    client.force_authenticate(user)
    answer = client.post("/api/v1/subscriptions", body, format="json")
    assert answer.status_code >= 400, answer.content
    return answer.json()


def _open_copy_dialog(page, portfolio_id: int) -> None:
    _open(page, f"/portfolios/{portfolio_id}/")
    page.click("#copy-button")
    expect(page.locator("#copy-dialog")).to_be_visible()
    expect(page.locator("#copy-dialog #copy-form")).to_be_visible()


def _mirrors(subscription: Subscription):
    return Position.objects.filter(account_id=subscription.copy_account_id, status=PositionStatus.OPEN)


# --- 1. a follower, from registering to the money back --------------------------------


def test_follower_copies_watches_pauses_and_unfollows(page, shot, server):
    books = data.world()
    margin, spot = books["margin"].portfolio, books["spot"].portfolio
    staff = data.staff_api(server)
    leader = data.leader_api(server, books["margin"])

    # Register; the wallet opens; deposit.
    _open(page, "/register/")
    page.fill("#id_username", "new-follower")
    page.fill("#id_password", "a-long-pass-phrase-9")
    shot(page, "register")
    with page.expect_navigation():
        page.click("#register-submit")
    assert page.url.endswith("/me/wallet/"), page.url
    follower = get_user_model().objects.get(username="new-follower")
    page.fill("#id_amount", "5000")
    with page.expect_navigation():
        page.click("#deposit-submit")
    expect(page.locator("#wallet-balance")).to_have_text(money(D("5000")))
    shot(page, "deposited")
    assert data.main_balance(follower) == D("5000")

    # The leaderboard: the Margin tab leaves the spot book out; a sort.
    # (A public list is served from a 5-second cache: one an earlier test filled is reloaded past.)
    _open(page, "/")
    _eventually_visible(page, page.locator(f"[data-portfolio-id='{margin.pk}']"), timeout=6_000)
    shot(page, "leaderboard")
    page.get_by_role("link", name="Margin", exact=True).click()
    expect(page.get_by_role("link", name="Margin", exact=True)).to_have_attribute("aria-current", "true")
    _eventually_visible(page, page.locator(f"[data-portfolio-id='{margin.pk}']"), timeout=6_000)
    expect(page.locator(f"[data-portfolio-id='{spot.pk}']")).to_have_count(0)
    options = page.locator("#sort option").evaluate_all("os => os.map(o => o.value)")
    assert "-roi" in options, options
    page.select_option("#sort", "-roi")
    page.wait_for_url(re.compile(r"[?&]sort=-roi"))
    expect(page.get_by_role("link", name="Margin", exact=True)).to_have_attribute("aria-current", "true")
    by_roi = list(
        PortfolioStats.objects.filter(line="margin", portfolio__mode="margin")
        .order_by("-roi_pct", "portfolio_id")
        .values_list("portfolio_id", flat=True)
    )
    assert len(by_roi) == 3, by_roi
    listed = page.locator("[data-portfolio-id]")
    expect(listed).to_have_count(len(by_roi))
    for place, portfolio_id in enumerate(by_roi):  # each expect waits for the swap
        expect(listed.nth(place)).to_have_attribute("data-portfolio-id", str(portfolio_id))
    row = page.locator(f"[data-portfolio-id='{margin.pk}']")
    expect(page.locator(f"[data-portfolio-id='{spot.pk}']")).to_have_count(0)
    stats = PortfolioStats.objects.get(portfolio=margin, line="margin")
    assert _number(row.locator(".roi").inner_text()) == stats.roi_pct.quantize(D("0.01"))
    assert _number(row.locator(".win-rate").inner_text()) == stats.win_rate_pct.quantize(D("0.01"))
    expect(row.locator("svg.spark")).to_have_count(1)
    shot(page, "leaderboard-margin-sorted")
    _doc(page, "leaderboard")

    # The portfolio page, the copy dialog, a template, the preview.
    row.get_by_role("link", name=margin.name).first.click()
    page.wait_for_url(re.compile(rf"/portfolios/{margin.pk}/$"))
    expect(page.locator("h1")).to_have_text(margin.name)
    expect(page.locator("#equity-chart svg")).to_be_visible()
    shot(page, "portfolio")
    page.click("#copy-button")
    dialog = page.locator("#copy-dialog")
    expect(dialog.locator("#copy-form")).to_be_visible()
    expect(dialog.get_by_role("heading", name=f"Copy {margin.name}")).to_have_count(1)  # one title, not two
    page.fill("#id_amount", "2000")
    page.select_option("#id_template", label="Balanced")
    replay = _simulated(margin.pk, amount="2000", template="balanced", days=30)
    roi = D(replay["roi_pct"]).quantize(D("0.01"))
    expect(page.locator("#preview-roi")).to_contain_text(f"{abs(roi):,.2f}")
    expect(page.locator("#preview-counts")).to_contain_text(re.compile(rf"{replay['copied']}\s+\w*\s*copied", re.I))
    assert _number(page.locator("#preview-pnl").inner_text()) == D(replay["pnl"]).quantize(D("0.01"))
    expect(page.locator("#preview-fees")).to_contain_text(f"{D(replay['fees']):,.2f}")
    shot(page, "copy-preview")
    _doc(page, "portfolio-copy-dialog")

    # Copy: my copies, live.
    page.click("#copy-submit")
    page.wait_for_url(re.compile(r"/me/copies/$"))
    subscription = Subscription.objects.get(follower=follower, portfolio=margin)
    assert subscription.template_ref == "balanced"
    copy = page.locator(f"[data-subscription-id='{subscription.pk}']")
    expect(copy).to_be_visible()
    expect(copy.locator(".portfolio-name")).to_contain_text(margin.name)
    expect(page.locator("[data-live-status]").first).to_have_attribute("data-live-status", "live", timeout=LIVE)
    shot(page, "my-copies")

    # The leader opens a position (the API on the server; the real worker copies it).
    leader.order(margin.pk, data.ETH_PERP, "buy", "2")
    wait_until(lambda: _mirrors(subscription).exists(), timeout=60)
    (mirror,) = _mirrors(subscription)
    _eventually_visible(page, page.locator(f"[data-position-id='{mirror.pk}']"))
    expect(page.locator("[data-live-status]").first).to_have_attribute("data-live-status", "live", timeout=LIVE)
    shot(page, "mirror-opened")

    # A tick through the staff price API moves the unrealized PnL, without a reload.
    page.evaluate("window.__marker = 'this page was not reloaded'")
    unrealized = copy.locator(".unrealized")
    before = unrealized.inner_text()
    staff.tick(data.ETH_PERP, "3300")
    expected = (mirror.quantity * (D("3300") - mirror.entry_price)).quantize(D("0.01"))
    assert expected > 0
    expect(unrealized).not_to_have_text(before, timeout=LIVE)
    expect(unrealized).to_contain_text(f"{expected:,.2f}", timeout=LIVE)
    assert page.evaluate("window.__marker") == "this page was not reloaded"
    shot(page, "unrealized-moved-live")
    _doc(page, "my-copies-live")

    # Pause.
    copy.locator("[data-action='pause']").click()
    expect(copy.locator(".status")).to_contain_text(re.compile("paused", re.I))
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.PAUSED
    shot(page, "paused")

    # Unfollow, through the confirmation that says what happens to the open positions.
    copy.locator("[data-action='unfollow']").click()
    confirm = page.locator("dialog[open]").filter(has=page.locator("button.confirm-unfollow"))
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(re.compile(r"\d+ open (mirror|position)s? will be closed", re.I))
    shot(page, "unfollow-confirmation")
    confirm.locator("button.confirm-unfollow").click()
    wait_until(lambda: Subscription.objects.get(pk=subscription.pk).status == SubscriptionStatus.ENDED, timeout=30)
    expect(page.locator(f"[data-subscription-id='{subscription.pk}'] [data-action='pause']")).to_have_count(0)

    # The money is back in the wallet: what the ledger says, as the page formats it.
    funded, returned, balance = data.money_back(follower)
    assert funded == D("2000") and returned > funded  # the mirror closed at a profit, less the profit share
    assert balance == D("5000") - funded + returned
    _open(page, "/me/wallet/")
    expect(page.locator("#wallet-balance")).to_have_text(money(balance))
    shot(page, "money-back")


# --- 2. a leader trades, is copied, and earns -------------------------------------------


def test_leader_trades_is_copied_and_earns(page, shot, server):
    data.instruments_seed()
    book = data.leader("desk-lead", "Desk Book", share="20")
    portfolio = book.portfolio
    follower = data.person("desk-follower", deposit="6000")
    subscription = data.follow(portfolio, follower, amount="5000")
    staff = data.staff_api(server)

    _login(page, book.user)
    _open(page, "/me/portfolios/")
    mine = page.locator(f"[data-portfolio-id='{portfolio.pk}']")
    expect(mine).to_be_visible()
    shot(page, "my-portfolios")
    mine.locator(f"a[href$='/me/portfolios/{portfolio.pk}/']").first.click()
    page.wait_for_url(re.compile(rf"/me/portfolios/{portfolio.pk}/$"))
    expect(page.locator("#followers-count")).to_contain_text("1")
    expect(page.locator("[data-live-status]").first).to_have_attribute("data-live-status", "live", timeout=LIVE)
    shot(page, "desk")

    # A market order through the desk's form; the real worker copies it.
    _set(page, "#id_instrument", data.ETH_PERP)
    _set(page, "#id_side", "buy")
    _set(page, "#id_quantity", "1")
    _set(page, "#id_leverage", "10")
    page.click("#order-submit")
    position = page.locator("#positions [data-position-id]")
    _eventually_visible(page, position)
    wait_until(lambda: Execution.objects.filter(subscription_id=subscription.pk).exists(), timeout=60)
    (execution,) = Execution.objects.filter(subscription_id=subscription.pk)
    assert execution.outcome == Outcome.COPIED, (execution.outcome, execution.reason_code)
    _eventually_visible(page, page.locator("#recent-events .copied").filter(has_text="1"))
    expect(page.locator("#followers-count")).to_contain_text("1")
    shot(page, "order-copied")

    # The price goes up (staff price API): the desk's unrealized PnL follows, live.
    (leader_position,) = Position.objects.filter(account_id=portfolio.trading_account_id, status=PositionStatus.OPEN)
    staff.tick(data.ETH_PERP, "3520")
    gain = (leader_position.quantity * (D("3520") - leader_position.entry_price)).quantize(D("0.01"))
    expect(page.locator(f"#positions [data-position-id='{leader_position.pk}'] .unrealized")).to_contain_text(
        f"{gain:,.2f}", timeout=LIVE
    )
    shot(page, "price-up")
    _doc(page, "leader-desk", full_page=True)

    # Close at a profit: the follower's mirror closes too (the worker), and its
    # profit share accrues at that close; the minute job settles it (run here as beat would).
    page.locator(f"#positions [data-position-id='{leader_position.pk}'] [data-action='close']").click()
    wait_until(lambda: FeeAccrual.objects.filter(portfolio_id=portfolio.pk).exists(), timeout=60)
    expect(page.locator(f"#positions [data-position-id='{leader_position.pk}']")).to_have_count(0, timeout=LIVE)
    shot(page, "closed")
    data.settle_like_beat()
    earned = leader_earnings(leader_id=book.user.pk, portfolio_id=portfolio.pk)
    assert earned["total_earned"] > 0 and earned["available"] > 0, earned

    _open(page, f"/me/portfolios/{portfolio.pk}/earnings/")
    expect(page.locator("#earnings-total")).to_have_text(money(earned["total_earned"]))
    expect(page.locator("#earnings-available")).to_have_text(money(earned["available"]))  # settled
    expect(page.locator("#earnings-chart svg")).to_be_visible()
    shot(page, "earnings")


# --- 3. bad input in the copy dialog ------------------------------------------------------


def test_bad_input_in_the_copy_dialog_is_answered_next_to_the_field(page, shot):
    books = data.world(spot_too=False)
    margin = books["margin"].portfolio
    follower = data.person("careful-follower", deposit="5000")
    _login(page, follower)
    _open_copy_dialog(page, margin.pk)
    form = page.locator("#copy-form")

    # Below the portfolio's minimum investment.
    expected = _api_refusal(follower, {"portfolio": margin.pk, "amount": "50", "template": "balanced"})
    assert expected["field"] == "amount", expected
    page.fill("#id_amount", "50")
    page.select_option("#id_template", label="Balanced")
    page.click("#copy-submit")
    expect(form.locator("#errors-amount")).to_contain_text(expected["detail"])
    expect(form.locator("#id_amount")).to_have_attribute("aria-invalid", "true")
    assert "errors-amount" in (form.locator("#id_amount").get_attribute("aria-describedby") or "")
    shot(page, "amount-below-minimum")

    # A custom setting out of its range.
    body = {"portfolio": margin.pk, "amount": "2000", "max_drawdown_pct": "101"}
    expected = _api_refusal(follower, body)
    assert expected["field"] == "max_drawdown_pct", expected
    page.select_option("#id_template", value="")
    expect(form.locator("#id_max_drawdown_pct")).to_be_visible()
    form.locator("#id_amount").fill("2000")
    form.locator("#id_max_drawdown_pct").fill("101")
    page.click("#copy-submit")
    expect(form.locator("#errors-max_drawdown_pct")).to_contain_text(expected["detail"])
    expect(form.locator("#id_max_drawdown_pct")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("#errors-amount")).to_have_count(0)  # the amount is right now
    shot(page, "setting-out-of-range")

    assert page.url.endswith(f"/portfolios/{margin.pk}/"), page.url  # still on the page, the dialog open
    assert not Subscription.objects.filter(follower=follower).exists()
    assert data.main_balance(follower) == D("5000")


# --- 4. every page at phone width --------------------------------------------------------


def test_every_page_fits_a_phone(page, shot):
    books = data.world(spot_too=False)
    book = books["margin"]
    margin = book.portfolio
    follower = data.person("phone-follower", deposit="5000")
    data.follow(margin, follower, amount="2000")
    data.portfolio_order_place(portfolio=margin, symbol=data.ETH_PERP, side="buy", quantity=D("2"), leverage=10)
    page.set_viewport_size(PHONE)

    def check(url: str, name: str) -> None:
        _open(page, url)
        _no_horizontal_scroll(page, url)
        shot(page, name)

    check("/login/", "login")
    check("/register/", "register")
    check("/", "leaderboard")
    check(f"/portfolios/{margin.pk}/", "portfolio")

    _login(page, follower)
    _open_copy_dialog(page, margin.pk)
    page.fill("#id_amount", "2000")
    page.select_option("#id_template", label="Balanced")
    expect(page.locator("#preview-roi")).to_contain_text(re.compile(r"[1-9]"))
    _no_horizontal_scroll(page, "the copy dialog")
    shot(page, "copy-dialog")
    _doc(page, "phone-copy-dialog")
    check("/me/copies/", "my-copies")
    check("/me/notifications/", "notifications")
    check("/me/wallet/", "wallet")

    _logout(page)
    _login(page, book.user)
    check("/me/portfolios/", "my-portfolios")
    check(f"/me/portfolios/{margin.pk}/", "desk")
    check(f"/me/portfolios/{margin.pk}/earnings/", "earnings")


# --- 5. the copy dialog from the keyboard ------------------------------------------------


def test_the_copy_dialog_works_from_the_keyboard(page, shot):
    books = data.world(spot_too=False)
    margin = books["margin"].portfolio
    follower = data.person("keyboard-follower", deposit="5000")
    _login(page, follower)
    _open(page, f"/portfolios/{margin.pk}/")
    page.locator("body").focus()

    _tab_to(page, "copy-button")
    shot(page, "copy-button-focused")
    page.keyboard.press("Enter")
    expect(page.locator("#copy-dialog #copy-form")).to_be_visible()

    _tab_to(page, "id_amount")
    page.keyboard.press("Control+A")
    page.keyboard.type("1500")
    _tab_to(page, "id_template")
    template = page.locator("#id_template")
    for _ in range(8):
        if template.evaluate("s => s.options[s.selectedIndex].text.trim()") == "Balanced":
            break
        page.keyboard.press("ArrowDown")
    else:
        raise AssertionError("Balanced is not reached with the arrow keys")
    expect(page.locator("#preview-counts")).to_contain_text(re.compile(r"\d"))
    shot(page, "filled-from-the-keyboard")

    _tab_to(page, "copy-submit")
    shot(page, "submit-focused")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/me/copies/$"))
    subscription = Subscription.objects.get(follower=follower, portfolio=margin)
    assert (subscription.template_ref, data.money_back(follower)[0]) == ("balanced", D("1500"))
    shot(page, "copied")
