"""The leaderboard in Chromium: tabs, the sort and a bad filter swapped in by
htmx without a reload, Load more appending the next page, the star from the
mouse and from the keyboard (Tab, Space), and a phone's width."""

import re

from playwright.sync_api import expect

from portfolios.models import Favorite
from tests.browser.conftest import browser_marks
from tests.factories import PASSWORD, UserFactory
from tests.portfolios.conftest import Shelf
from tests.worker import wait_until

pytestmark = browser_marks


def _shelf() -> dict:
    """25 public portfolios (Load more has a second page at 20 a page)."""
    shelf = Shelf()
    made = {}
    for i in range(25):
        mode = ("margin", "spot", "all")[i % 3]
        curve = [[f"2026-01-0{d + 1}", str(1000 + (d * (i % 5 - 2)) * 10)] for d in range(6)]
        made[f"Port {i:02d}"] = shelf.make(
            f"Port {i:02d}",
            mode=mode,
            score=f"0.{50 - i:02d}",
            roi=str(i * 3 - 20),
            win_rate=str(40 + i),
            followers=i,
            lines={"all": {"equity_curve": curve, "max_drawdown_pct": "4.25"}},
        )
    return made


def _marker(page) -> None:
    page.evaluate("window.__sameDocument = true")


def _same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_leaderboard(page, shot):
    made = _shelf()
    reader = UserFactory(username="reader1")

    # Anonymous: the catalog, 20 rows, Load more appends the other 5.
    page.goto("/")
    rows = page.locator("#rows tr[data-portfolio-id]")
    expect(rows).to_have_count(20)
    expect(page.get_by_role("link", name="All", exact=True)).to_have_attribute("aria-current", "true")
    first = rows.first
    expect(first.locator("a.name")).to_have_text("Port 00")
    expect(first.locator("a.name")).to_have_attribute("href", f"/portfolios/{made['Port 00'].pk}/")
    expect(first.locator(".roi")).to_have_text("\u221220.00 %")
    expect(first.locator(".win-rate")).to_have_text("40.00 %")
    expect(first.locator("svg.spark")).to_be_visible()
    expect(page.locator("button.favourite")).to_have_count(0)  # anonymous: a link to log in
    shot(page, "anonymous")
    _marker(page)
    page.locator("#load-more").click()
    expect(rows).to_have_count(25)
    expect(page.locator("#load-more")).to_have_count(0)
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.portfolioId)")
    assert len(set(ids)) == 25
    assert _same_document(page)
    shot(page, "loaded-more")

    # The sort: htmx swaps the board, the address follows.
    page.select_option("#sort", "-roi")
    expect(page).to_have_url(re.compile(r"sort=-roi"))
    expect(rows.first.locator("a.name")).to_have_text("Port 24")
    expect(rows.first.locator(".roi")).to_have_text("+52.00 %")
    assert _same_document(page)

    # A bad filter: the API's message above the list, the field marked.
    page.fill("#id_roi_min", "lots")
    page.press("#id_roi_min", "Enter")
    expect(page.locator("#errors-roi_min")).to_contain_text("roi_min must be a number.")
    expect(page.locator("#id_roi_min")).to_have_attribute("aria-invalid", "true")
    expect(rows).to_have_count(0)
    shot(page, "bad-filter")
    page.fill("#id_roi_min", "25")
    page.press("#id_roi_min", "Enter")
    expect(page.locator("#errors-roi_min")).to_have_count(0)
    expect(rows).to_have_count(10)  # ROI 25, 28, ... 52
    expect(page.locator("#id_roi_min")).not_to_have_attribute("aria-invalid", "true")
    assert _same_document(page)

    # A tab keeps the filters and the sort.
    page.get_by_role("link", name="Margin", exact=True).click()
    expect(page.get_by_role("link", name="Margin", exact=True)).to_have_attribute("aria-current", "true")
    expect(page).to_have_url(re.compile(r"list=margin"))
    names = page.locator("#rows a.name").all_inner_texts()
    assert names and all(made[n].mode in ("margin", "all") for n in names)
    assert all(made[n].pk and int(n[-2:]) * 3 - 20 >= 25 for n in names)
    shot(page, "margin-tab")

    # Favourites ask an anonymous reader to log in.
    page.get_by_role("link", name="Favourites", exact=True).click()
    expect(page.locator("#favourites-login")).to_be_visible()
    page.locator("#favourites-login a", has_text="log in").click()
    page.fill("#id_username", reader.username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(re.compile(r"/\?.*list=favorites"))
    expect(page.locator("#empty")).to_be_visible()

    # The star with the mouse, without a reload.
    page.goto("/")
    _marker(page)
    target = made["Port 03"]
    star = page.locator(f'tr[data-portfolio-id="{target.pk}"] button.favourite')
    expect(star).to_have_attribute("aria-pressed", "false")
    star.click()
    expect(star).to_have_attribute("aria-pressed", "true")
    wait_until(lambda: Favorite.objects.filter(user=reader, portfolio=target).exists(), timeout=20)
    assert _same_document(page)
    shot(page, "starred")

    # From the keyboard: Tab from the name to the star, Space to press it (twice).
    other = made["Port 05"]
    page.locator(f'tr[data-portfolio-id="{other.pk}"] a.name').focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.id")
    assert focused == f"favourite-{other.pk}"
    page.keyboard.press("Space")
    other_star = page.locator(f"#favourite-{other.pk}")
    expect(other_star).to_have_attribute("aria-pressed", "true")
    wait_until(lambda: Favorite.objects.filter(user=reader, portfolio=other).exists(), timeout=20)
    expect(other_star).to_be_focused()  # the swap keeps the focus on the star
    page.keyboard.press("Space")
    expect(other_star).to_have_attribute("aria-pressed", "false")
    wait_until(lambda: not Favorite.objects.filter(user=reader, portfolio=other).exists(), timeout=20)
    assert _same_document(page)

    page.get_by_role("link", name="Favourites", exact=True).click()
    expect(page.locator("#rows a.name")).to_have_text(["Port 03"])
    shot(page, "favourites")

    # A phone: no horizontal scroll, the rows stacked.
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto("/")
    expect(rows).to_have_count(20)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "phone", full_page=False)
    page.select_option("#sort", "-followers")
    expect(rows.first.locator("a.name")).to_have_text("Port 24")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "phone-sorted", full_page=False)
