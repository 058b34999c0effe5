"""Leader earnings in the back office: figures per portfolio and window
(day, week, month, all time) worked out by hand for a history that crosses
day, week and month boundaries; the admin page, the accrual list's leader
filter and totals; staff reading the earnings API of any portfolio."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.auth.models import Permission

from fees.models import FeeAccrual
from fees.selectors import earning_window, earnings_by_portfolio, leader_earnings
from fees.services import fees_settle, leader_withdrawal_create
from tests.factories import StaffFactory, UserFactory
from tests.fees.conftest import D, accrue

pytestmark = pytest.mark.django_db


def at(*args):
    return time_machine.travel(datetime(*args, tzinfo=UTC), tick=False)


@pytest.fixture
def history(fee_world):
    """Leader L's portfolio P (15 % share, platform 40 %: the leader keeps
    60 % of each fee), one follower copying 1:1, and another leader M.

    Fri 2025-01-24 10:00  +100 -> fee 15.00, L's part  9.00; settled at 12:00
    Fri 2025-01-31 23:00  +200 -> fee 30.00, L's part 18.00
    Sat 2025-02-01 01:00  settled (18.00); 02:00 L withdraws 20.00
    Mon 2025-02-03 09:00  +50  -> fee  7.50, L's part  4.50 (not settled)
    Mon 2025-02-03 10:00  M: +100 -> fee 15.00, M's part 9.00 (not settled)
    Weeks start on Monday: 20 Jan, 27 Jan, 3 Feb. L's balance ends at 7.00."""
    portfolio = fee_world.leader()
    follower = fee_world.follower(portfolio, multiplier="1")
    other = fee_world.leader()
    other_follower = fee_world.follower(other, multiplier="1")
    with at(2025, 1, 24, 10):
        fee_world.round_trip(portfolio, "3200", "3300")
        accrue(follower)
    with at(2025, 1, 24, 12):
        fees_settle()
    with at(2025, 1, 31, 23):
        fee_world.round_trip(portfolio, "3000", "3200")
        accrue(follower)
    with at(2025, 2, 1, 1):
        fees_settle()
    with at(2025, 2, 1, 2):
        leader_withdrawal_create(leader=portfolio.leader, portfolio_id=portfolio.pk, amount=D("20"))
    with at(2025, 2, 3, 9):
        fee_world.round_trip(portfolio, "3000", "3050")
        accrue(follower)
    with at(2025, 2, 3, 10):
        fee_world.round_trip(other, "3000", "3100")
        accrue(other_follower)
    assert [a.leader_part for a in FeeAccrual.objects.order_by("pk")] == [D("9"), D("18"), D("4.5"), D("9")]
    return portfolio, other


def figures(portfolio, period, *args):
    window = earning_window(period, now=datetime(*args, tzinfo=UTC))
    (row,) = earnings_by_portfolio(leader_id=portfolio.leader_id, since=window.since, until=window.until)
    assert row["portfolio_id"] == portfolio.pk and row["leader"] == portfolio.leader.username
    return tuple(row[name] for name in ("accruals", "accrued", "settled", "withdrawn", "balance"))


@pytest.mark.parametrize(
    ("period", "now", "expected"),
    [
        # (accruals, accrued, settled, withdrawn, balance now)
        ("day", (2025, 1, 24, 18), (1, "9", "9", "0", "7")),
        ("day", (2025, 1, 31, 12), (1, "18", "0", "0", "7")),  # accrued late Friday, settled after midnight
        ("day", (2025, 2, 1, 12), (0, "0", "18", "20", "7")),
        ("day", (2025, 2, 2, 12), (0, "0", "0", "0", "7")),
        ("week", (2025, 1, 26, 23), (1, "9", "9", "0", "7")),  # Sunday: still the week of 20 January
        ("week", (2025, 1, 27, 0), (1, "18", "18", "20", "7")),  # Monday 00:00: the next week
        ("week", (2025, 2, 2, 23), (1, "18", "18", "20", "7")),
        ("week", (2025, 2, 3, 12), (1, "4.5", "0", "0", "7")),
        ("month", (2025, 1, 31, 23), (2, "27", "9", "0", "7")),  # January: the 18.00 settles in February
        ("month", (2025, 2, 1, 0), (1, "4.5", "18", "20", "7")),
        ("all", (2025, 2, 3, 12), (3, "31.5", "27", "20", "7")),
    ],
)
def test_earnings_per_window_worked_out_by_hand(history, period, now, expected):
    portfolio, _ = history
    count, *money = expected
    assert figures(portfolio, period, *now) == (count, *(D(m) for m in money))


def test_all_time_figures_agree_with_the_leaders_own_earnings(history):
    portfolio, _ = history
    (row,) = earnings_by_portfolio(leader_id=portfolio.leader_id)
    body = leader_earnings(leader_id=portfolio.leader_id)
    assert (row["accrued"], row["settled"], row["withdrawn"], row["balance"]) == (
        body["total_earned"],
        body["settled"],
        body["withdrawn"],
        body["available"],
    )
    assert (row["fees"], row["platform"]) == (D("52.5"), D("21")) == (body["fees_charged"], body["platform_cut"])
    assert body["pending"] == D("4.5")


def test_every_leader_when_none_is_chosen(history):
    portfolio, other = history
    window = earning_window("week", now=datetime(2025, 2, 3, tzinfo=UTC))
    rows = earnings_by_portfolio(since=window.since, until=window.until)
    assert {r["portfolio_id"]: r["accrued"] for r in rows} == {portfolio.pk: D("4.5"), other.pk: D("9")}
    assert earnings_by_portfolio(portfolio_id=other.pk)[0]["leader"] == other.leader.username


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError, match="day, week, month, all"):
        earning_window("year")


# --- the admin page ---------------------------------------------------------------------


@pytest.fixture
def staff_client(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


def test_the_page_shows_this_weeks_earnings_of_a_leader(history, staff_client):
    portfolio, other = history
    with at(2025, 2, 2, 15):  # Sunday: the week of 27 January
        response = staff_client.get(f"/admin/fees/earnings/?leader={portfolio.leader.username}&period=week")
    assert response.status_code == 200
    (group,) = response.context["leaders"]
    assert group.leader == portfolio.leader.username
    assert [r["portfolio_id"] for r in group.rows] == [portfolio.pk]
    assert (group.total["accrued"], group.total["settled"], group.total["withdrawn"]) == (D("18"), D("18"), D("20"))
    html = response.content.decode()
    assert f'data-portfolio="{portfolio.pk}"' in html and f'data-portfolio="{other.pk}"' not in html
    assert '<td class="accrued">18.00 USDT</td>' in html
    assert '<td class="withdrawn">20.00 USDT</td>' in html
    assert f"Total {portfolio.leader.username}" in html
    assert "2025-01-27 to 2025-02-03" in html


def test_the_page_for_every_leader_with_a_grand_total_and_a_chosen_day(history, staff_client):
    response = staff_client.get("/admin/fees/earnings/?period=day&on=2025-02-03")
    assert response.status_code == 200
    assert len(response.context["leaders"]) == 2
    assert response.context["grand_total"]["accrued"] == D("13.5")
    assert 'class="grand-total"' in response.content.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("period=year", "Unknown period"),
        ("leader=nobody-here", "No user named"),
        ("portfolio=abc", "Portfolio must be a portfolio id"),
        ("portfolio=0", "Portfolio must be a portfolio id"),
        (f"portfolio={10**30}", "Portfolio must be a portfolio id"),
        ("on=yesterday", "The date must read YYYY-MM-DD"),
        ("portfolio=%C2%B2", "Portfolio must be a portfolio id"),  # "²".isdigit() is True
        ("on=9999-12-31&period=month", "The date must be between"),
        ("on=0001-01-01&period=week", "The date must be between"),
    ],
)
def test_bad_filters_get_a_clear_message_not_a_500(staff_client, query, message):
    response = staff_client.get(f"/admin/fees/earnings/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_the_page_is_for_staff_with_the_fees_permission(client):
    assert client.get("/admin/fees/earnings/").status_code == 302  # to the login page
    client.force_login(UserFactory())
    assert client.get("/admin/fees/earnings/").status_code == 302
    staff = StaffFactory()
    client.force_login(staff)
    assert client.get("/admin/fees/earnings/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_feeaccrual"))
    client.force_login(staff)
    assert client.get("/admin/fees/earnings/").status_code == 200


def test_linked_from_the_fees_app_index(staff_client):
    assert "/admin/fees/earnings/" in staff_client.get("/admin/fees/").content.decode()


def test_fee_accruals_filtered_by_leader_with_totals_of_the_list(history, staff_client):
    portfolio, other = history
    response = staff_client.get(f"/admin/fees/feeaccrual/?leader={portfolio.leader.username}")
    assert response.status_code == 200
    assert response.context_data["cl"].result_count == 3
    totals = response.context_data["accrual_totals"]
    # fees 15 + 30 + 7.50; the leader's 60 %; 27.00 of it settled.
    assert totals == {
        "accruals": 3,
        "fees": "52.50 USDT",
        "accrued": "31.50 USDT",
        "platform": "21.00 USDT",
        "settled": "27.00 USDT",
        "pending": "4.50 USDT",
    }
    assert 'id="accrual-totals"' in response.content.decode()
    by_portfolio = staff_client.get(f"/admin/fees/feeaccrual/?portfolio_id={other.pk}")
    assert by_portfolio.context_data["accrual_totals"]["fees"] == "15.00 USDT"
    everyone = staff_client.get("/admin/fees/feeaccrual/").context_data["accrual_totals"]
    assert (everyone["accruals"], everyone["fees"]) == (4, "67.50 USDT")


def test_withdrawals_filtered_by_leader(history, staff_client):
    portfolio, other = history
    mine = staff_client.get(f"/admin/fees/leaderwithdrawal/?leader={portfolio.leader.username}")
    assert mine.context_data["cl"].result_count == 1
    theirs = staff_client.get(f"/admin/fees/leaderwithdrawal/?leader={other.leader.username}")
    assert theirs.context_data["cl"].result_count == 0


# --- the earnings API for staff -------------------------------------------------------------


def test_staff_read_the_earnings_api_of_any_portfolio(api, history):
    portfolio, _ = history
    api.force_authenticate(portfolio.leader)
    own = api.get(f"/api/v1/portfolios/{portfolio.pk}/earnings").json()
    api.force_authenticate(StaffFactory(is_superuser=True))
    staff = api.get(f"/api/v1/portfolios/{portfolio.pk}/earnings")
    assert staff.status_code == 200
    assert staff.json() == own
    assert (own["total_earned"], own["withdrawn"], own["available"]) == ("31.50000000", "20.00000000", "7.00000000")
    wide = api.get(f"/api/v1/fees/earnings?portfolio={portfolio.pk}")
    assert wide.status_code == 200 and wide.json()["total_earned"] == "31.50000000"


def test_staff_without_the_fees_permission_and_other_users_still_get_404(api, history):
    portfolio, other = history
    for user in (StaffFactory(), UserFactory(), other.leader):
        api.force_authenticate(user)
        assert api.get(f"/api/v1/portfolios/{portfolio.pk}/earnings").status_code == 404
        response = api.get(f"/api/v1/fees/earnings?portfolio={portfolio.pk}")
        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
    api.force_authenticate(StaffFactory(is_superuser=True))
    assert api.get("/api/v1/portfolios/999999999/earnings").status_code == 404
