"""The staff journeys of issue #16, in a real browser against a running server
(tests/browser/conftest.py): what a support or ops person clicks, and what the
pages show them. The data comes from the real services (a leader trades,
followers' copies fan out); every step leaves a screenshot under
var/screenshots/<journey>/."""

import csv
import io
import json
import re
import urllib.request
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import time_machine
from django.utils import timezone

from copytrading.models import Execution, LeaderEvent, Outcome
from copytrading.services import instruments_seed, price_set, wallet_deposit
from fees.models import FeeAccrual
from followers.models import Subscription, SubscriptionStatus
from followers.services import subscription_create
from portfolios.models import Portfolio
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from tests.browser.conftest import browser_marks, staff_login, staff_user
from tests.factories import UserFactory, token_for

pytestmark = browser_marks

D = Decimal
BTC_PERP = "BTC/USDT:USDT"
ETH_PERP = "ETH/USDT:USDT"


# --- a small world, made by the services ----------------------------------------------


def _leader(username: str, *, share: str = "0") -> Portfolio:
    user = UserFactory(username=username)
    wallet_deposit(user=user, amount=D("21000"))
    portfolio = portfolio_create(leader=user, name=f"{username}'s book", mode="margin", profit_share_pct=D(share))
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    return portfolio


def _follow(portfolio: Portfolio, username: str, *, multiplier: str = "0.5") -> Subscription:
    user = UserFactory(username=username)
    wallet_deposit(user=user, amount=D("5000"))
    return subscription_create(follower=user, portfolio=portfolio, amount=D("5000"), multiplier=D(multiplier))


def _buy(portfolio: Portfolio, symbol: str = BTC_PERP, quantity: str = "0.1") -> LeaderEvent:
    """The leader opens at market; the fan-out runs on commit (eager Celery)."""
    (event,) = portfolio_order_place(portfolio=portfolio, symbol=symbol, side="buy", quantity=D(quantity), leverage=10)
    return event


def _price(symbol: str, price: str) -> None:
    from copytrading.models import Instrument

    price_set(instrument=Instrument.objects.get(symbol=symbol), price=D(price))


# --- reading pages ----------------------------------------------------------------


def _open(page, url: str):
    """Go to ``url``; the page must answer 200 (a missing page fails here, by its URL)."""
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    return response


def _rows(page) -> list[str]:
    """The text of each row of the admin changelist on the page."""
    return [row.inner_text() for row in page.locator("#result_list tbody tr").all()]


def _table(page, selector: str) -> list[dict[str, str]]:
    """The rows of an HTML table as {lower-case header: cell text}."""
    table = page.locator(selector).first
    headers = [h.strip().lower() for h in table.locator("thead th").all_text_contents()]
    rows = []
    for tr in table.locator("tbody tr").all():
        cells = [c.strip() for c in tr.locator("th, td").all_text_contents()]
        rows.append(dict(zip(headers, cells, strict=False)))
    return rows


def _field(page, label: str) -> str:
    """The value shown beside a read-only field's label on an admin change page."""
    pattern = re.compile(rf"^\s*{re.escape(label)}\s*:?\s*$", re.IGNORECASE)
    row = page.locator(".form-row").filter(has=page.locator("label", has_text=pattern))
    assert row.count() >= 1, f"no field labelled {label!r} on {page.url}"
    return row.first.locator(".readonly").inner_text()


def _number(text: str) -> Decimal:
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", text)
    assert match, f"no number in {text!r}"
    return D(match.group().replace(",", ""))


# --- a. why a follower did not copy a trade ------------------------------------------


def test_why_a_follower_did_not_copy_a_trade(page, shot):
    instruments_seed()
    portfolio = _leader("whale-leader")
    _follow(portfolio, "big-follower", multiplier="0.5")
    # 0.1 BTC at a copy ratio of 0.001 is 0.0001 BTC, under BTC/USDT:USDT's minimum 0.001.
    _follow(portfolio, "tiny-follower", multiplier="0.001")
    event = _buy(portfolio, BTC_PERP, "0.1")
    ops = staff_user("support1")

    staff_login(page, ops)
    shot(page, "admin-index")
    _open(page, "/admin/copytrading/execution/")
    page.fill("#searchbar", "tiny-follower")
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r"[?&]q=tiny-follower"))
    shot(page, "executions-searched-by-username")
    rows = _rows(page)
    assert len(rows) == 1, rows  # the follower's one execution, not the big follower's
    assert "Skipped" in rows[0] or "SKIPPED" in rows[0], rows[0]

    page.locator("#result_list tbody tr").first.locator("th a, td a").first.click()
    page.wait_for_url(re.compile(r"/admin/copytrading/execution/\d+/change/"))
    shot(page, "execution-reason")
    execution_id = int(re.search(r"/execution/(\d+)/", page.url).group(1))
    assert Execution.objects.get(pk=execution_id).event_id == event.pk
    reason = _field(page, "Reason")
    assert "minimum" in reason.lower(), reason
    assert "0.001" in reason, reason  # the instrument's minimum quantity
    assert _number(_field(page, "Attempted quantity")) == D("0.1") * D("0.001")


# --- b. pause a follower, see who did it ------------------------------------------------


def test_pause_a_follower_and_see_the_audit_entry(page, shot):
    instruments_seed()
    portfolio = _leader("calm-leader")
    sub = _follow(portfolio, "paused-follower")
    _follow(portfolio, "other-follower")
    ops1 = staff_user("ops1")

    staff_login(page, ops1)
    _open(page, "/admin/followers/subscription/?q=paused-follower")
    page.check(f"input.action-select[value='{sub.pk}']")
    page.select_option("select[name=action]", "pause_selected")
    shot(page, "pause-selected")
    page.click("button[name=index]")
    page.wait_for_load_state()
    shot(page, "paused")
    assert "1 subscription(s) paused" in page.locator("ul.messagelist").inner_text()
    assert Subscription.objects.get(pk=sub.pk).status == SubscriptionStatus.PAUSED

    _open(page, "/admin/auditlog/logentry/")
    shot(page, "audit-log")
    entries = [row for row in _rows(page) if "ops1" in row and "paused-follower" in row]
    assert entries, _rows(page)
    assert any("pause" in row.lower() for row in entries), entries

    _open(page, f"/admin/followers/subscription/{sub.pk}/change/")
    assert page.locator("a.historylink").count() == 1, "no History link on the subscription's page"
    page.click("a.historylink")
    page.wait_for_url(re.compile(rf"/admin/followers/subscription/{sub.pk}/history/"))
    shot(page, "subscription-history")
    history = page.locator("#content").inner_text()
    assert "ops1" in history and "pause" in history.lower(), history


# --- c. the global kill switch -----------------------------------------------------------


def _api_order(server, portfolio: Portfolio, symbol: str, quantity: str) -> dict:
    request = urllib.request.Request(
        f"{server.url}/api/v1/portfolios/{portfolio.pk}/orders",
        data=json.dumps({"symbol": symbol, "side": "buy", "quantity": quantity, "leverage": 10}).encode(),
        headers={"Authorization": f"Token {token_for(portfolio.leader)}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201), response.status
        return json.loads(response.read())


def test_flip_the_global_kill_switch(page, shot, server):
    instruments_seed()
    portfolio = _leader("busy-leader")
    followers = [_follow(portfolio, f"copier-{n}") for n in range(3)]
    before = _buy(portfolio, ETH_PERP, "1")  # copied: the switch is off
    assert {e.outcome for e in Execution.objects.filter(event=before)} == {Outcome.COPIED}
    ops = staff_user("ops-lead")
    reason = "Exchange maintenance until 18:00 UTC"

    staff_login(page, ops)
    _open(page, "/admin/copytrading/livesettings/")
    shot(page, "live-settings")
    page.check("#id_copying_halted")
    page.fill("#id_copying_halted_reason", reason)
    shot(page, "kill-switch-ticked")
    page.click("input[name=_save]")
    page.wait_for_load_state()
    shot(page, "kill-switch-saved")
    assert "changed successfully" in page.locator("ul.messagelist").inner_text()
    assert page.locator(".errornote, .errorlist").count() == 0, page.locator("#content").inner_text()

    # The leader's next order, through the API (outside the browser): the server fans it out.
    _api_order(server, portfolio, ETH_PERP, "1")
    event = LeaderEvent.objects.filter(portfolio_id=portfolio.pk).latest("seq")
    assert event.pk != before.pk
    rows = Execution.objects.filter(event=event)
    assert sorted(rows.values_list("subscription_id", "outcome", "reason_code", "reason_detail")) == [
        (sub.pk, Outcome.SKIPPED, "COPYING_HALTED", reason) for sub in followers
    ]

    # One click from the leader event to its executions.
    _open(page, f"/admin/copytrading/leaderevent/{event.pk}/change/")
    link = page.locator(f"a[href*='event__id__exact={event.pk}']")
    assert link.count() >= 1, "no link from the leader event to its executions"
    link.first.click()
    page.wait_for_url(re.compile(rf"event__id__exact={event.pk}"))
    shot(page, "executions-of-the-halted-event")
    shown = _rows(page)
    assert len(shown) == len(followers), shown
    for row in shown:
        assert "Skipped" in row and "COPYING_HALTED" in row, row
    page.locator("#result_list tbody tr").first.locator("th a").first.click()
    page.wait_for_url(re.compile(r"/admin/copytrading/execution/\d+/change/"))
    shot(page, "halted-execution")
    assert reason in _field(page, "Reason")

    # Copying resumes: untick, save.
    _open(page, "/admin/copytrading/livesettings/")
    page.uncheck("#id_copying_halted")
    page.click("input[name=_save]")
    page.wait_for_load_state()
    assert "changed successfully" in page.locator("ul.messagelist").inner_text()
    shot(page, "kill-switch-off")
    _api_order(server, portfolio, ETH_PERP, "1")
    resumed = LeaderEvent.objects.filter(portfolio_id=portfolio.pk).latest("seq")
    assert {e.outcome for e in Execution.objects.filter(event=resumed)} == {Outcome.COPIED}


# --- d. export executions as CSV ---------------------------------------------------------


def test_export_executions_as_csv(page, shot):
    instruments_seed()
    portfolio = _leader("export-leader")
    other = _leader("unrelated-leader")
    subs = [_follow(portfolio, f"exported-{n}") for n in range(3)]
    _follow(other, "not-exported")
    first = _buy(portfolio, ETH_PERP, "1")
    second = _buy(portfolio, BTC_PERP, "0.1")
    _buy(other, ETH_PERP, "1")
    ops = staff_user("ops-reports")

    staff_login(page, ops)
    _open(page, f"/admin/copytrading/execution/?event__id__exact={second.pk}")
    shot(page, "filtered-executions")
    assert len(_rows(page)) == len(subs)
    assert page.locator("a.export-csv").count() == 1, "no Export CSV link (a.export-csv) on the execution list"
    with page.expect_download() as info:
        page.click("a.export-csv")
    download = info.value
    assert download.suggested_filename.endswith(".csv"), download.suggested_filename
    # The same link, fetched with the staff member's session: what the server says it is.
    answer = page.request.get(page.locator("a.export-csv").get_attribute("href"))
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv"), answer.headers
    body = Path(download.path()).read_text(encoding="utf-8-sig")
    table = list(csv.reader(io.StringIO(body)))
    header, data = table[0], table[1:]
    assert len(header) >= 3 and not any(_looks_like_number(cell) for cell in header), header
    expected = set(Execution.objects.filter(event=second).values_list("pk", flat=True))
    assert len(data) == len(expected), data
    id_column = _column(header, "id")
    assert {int(row[id_column]) for row in data} == expected
    assert first.pk not in {int(row[id_column]) for row in data}
    _open(page, "/admin/copytrading/execution/")
    shot(page, "after-export")


def _looks_like_number(cell: str) -> bool:
    return bool(re.fullmatch(r"-?\d+(\.\d+)?", cell.strip()))


def _column(header: list[str], name: str) -> int:
    names = [h.strip().lower() for h in header]
    for candidate in (name, f"execution {name}", f"execution_{name}"):
        if candidate in names:
            return names.index(candidate)
    raise AssertionError(f"no {name!r} column in {header}")


# --- e. a leader's earnings this week -----------------------------------------------------


def _round_trip(portfolio: Portfolio, entry: str, exit_: str) -> None:
    """The leader buys 1 ETH at ``entry`` and closes at ``exit_``; mirrors follow."""
    _price(ETH_PERP, entry)
    (opened,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)
    _price(ETH_PERP, exit_)
    portfolio_position_close(portfolio=portfolio, position_id=opened.payload["leader_position_id"])


def test_read_a_leaders_earnings_for_this_week(page, shot):
    instruments_seed()
    portfolio = _leader("earning-leader", share="15.00")
    follower = _follow(portfolio, "profitable-follower", multiplier="0.5")
    other = _leader("other-leader", share="15.00")
    _follow(other, "other-follower", multiplier="0.5")
    # Two weeks ago: the mirror's 0.5 ETH from 3000 to 3100, +50: a fee of 7.50.
    with time_machine.travel(timezone.now() - timedelta(days=14)):
        _round_trip(portfolio, "3000", "3100")
    # This week: 0.5 ETH from 3200 to 3600, +200: a fee of 30; the other leader earns the same.
    _round_trip(portfolio, "3200", "3600")
    _round_trip(other, "3200", "3600")
    assert sorted(FeeAccrual.objects.filter(subscription_id=follower.pk).values_list("profit", "fee")) == [
        (D("50"), D("7.5")),
        (D("200"), D("30")),
    ]
    ops = staff_user("ops-finance")

    staff_login(page, ops)
    _open(page, "/admin/fees/")
    shot(page, "fees-index")
    page.click("a[href*='/admin/fees/earnings/']")
    page.wait_for_url(re.compile(r"/admin/fees/earnings/"))
    _open(page, "/admin/fees/earnings/?leader=earning-leader&period=week")
    shot(page, "earnings-this-week")
    # The leader keeps the fee less the platform's default 20 % cut: 30 -> 24 this week.
    assert _earnings_row(page, portfolio) == D("24")
    _open(page, "/admin/fees/earnings/?leader=earning-leader&period=all")
    shot(page, "earnings-all-time")
    assert _earnings_row(page, portfolio) == D("24") + D("6")  # and 7.50 -> 6 two weeks ago


def _earnings_row(page, portfolio: Portfolio) -> Decimal:
    """The accrued amount of the leader's one portfolio on the earnings page,
    checked against the page's total; no other leader is on the page."""
    table = _table(page, "#content table")
    rows = [row for row in table if not row["leader"].startswith("Total")]
    assert [row["leader"] for row in rows] == ["earning-leader"], table
    (row,) = rows
    link = page.locator(f"#content table a[href*='/admin/portfolios/portfolio/{portfolio.pk}/']")
    assert link.count() == 1 or portfolio.name in row["portfolio"], row
    (total,) = [r for r in table if r["leader"].startswith("Total")]
    assert _number(total["accrued"]) == _number(row["accrued"]), total
    return _number(row["accrued"])
