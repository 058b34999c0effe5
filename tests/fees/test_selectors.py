"""Fee statistics: follower fees per day/week/month/total, leader earnings."""

from datetime import UTC, date, datetime

import pytest
import time_machine

from fees.selectors import leader_earnings, subscription_fee_stats
from fees.services import fees_settle, leader_withdrawal_create
from tests.fees.conftest import D, accrue

pytestmark = pytest.mark.django_db


def at(*args):
    return time_machine.travel(datetime(*args, tzinfo=UTC), tick=False)


@pytest.fixture
def history(fee_world):
    """Two followers of one portfolio (15 %, platform 40 %), three profitable
    round trips on three dates and one losing one."""
    portfolio = fee_world.leader()
    big = fee_world.follower(portfolio, multiplier="1")
    small = fee_world.follower(portfolio, multiplier="0.5")
    trips = [
        ((2025, 1, 15, 10), "3200", "3400"),  # +200 / +100 -> fees 30 / 15
        ((2025, 1, 16, 9), "3200", "3300"),  # +100 / +50 -> fees 15 / 7.5
        ((2025, 2, 3, 12), "3000", "2900"),  # a loss: nothing
        ((2025, 2, 3, 18), "3000", "3020"),  # +20 / +10 -> fees 3 / 1.5
    ]
    for when, entry, exit_ in trips:
        with at(*when):
            fee_world.round_trip(portfolio, entry, exit_)
            accrue(big, small)
    with at(2025, 2, 3, 19):
        fees_settle(limit=4)  # the two January trips: the February fees stay pending
    return portfolio, big, small


def test_follower_fees_per_day_week_month_and_total(history):
    _, big, _ = history
    stats = subscription_fee_stats(subscription_id=big.pk, now=datetime(2025, 2, 5, tzinfo=UTC))
    assert stats["total"] == {"count": 3, "fees": D("48"), "fees_due": D("48")}
    assert stats["by_day"] == [
        {"period": date(2025, 1, 15), "count": 1, "fees": D("30")},
        {"period": date(2025, 1, 16), "count": 1, "fees": D("15")},
        {"period": date(2025, 2, 3), "count": 1, "fees": D("3")},
    ]
    # Weeks start on Monday: 13 January and 3 February.
    assert stats["by_week"] == [
        {"period": date(2025, 1, 13), "count": 2, "fees": D("45")},
        {"period": date(2025, 2, 3), "count": 1, "fees": D("3")},
    ]
    assert stats["by_month"] == [
        {"period": date(2025, 1, 1), "count": 2, "fees": D("45")},
        {"period": date(2025, 2, 1), "count": 1, "fees": D("3")},
    ]


def test_the_daily_series_covers_the_last_31_days_only(history):
    _, big, _ = history
    stats = subscription_fee_stats(subscription_id=big.pk, now=datetime(2025, 2, 20, tzinfo=UTC))
    assert [row["period"] for row in stats["by_day"]] == [date(2025, 2, 3)]
    assert stats["total"]["fees"] == D("48")  # the total is all time


def test_leader_earnings_all_time_by_month_by_follower_pending_and_withdrawn(history):
    portfolio, big, small = history
    with at(2025, 2, 4, 8):
        leader_withdrawal_create(leader=portfolio.leader, portfolio_id=portfolio.pk, amount=D("10.009"))
        body = leader_earnings(leader_id=portfolio.leader_id, portfolio_id=portfolio.pk)

    # Fees 72 in all: the leader's 60 % is 43.20; the February 4.50 of fees (2.70) is pending.
    assert (body["total_earned"], body["fees_charged"], body["platform_cut"]) == (D("43.2"), D("72"), D("28.8"))
    assert (body["settled"], body["pending"], body["accruals"]) == (D("40.5"), D("2.7"), 6)
    assert (body["withdrawn"], body["available"], body["follower_count"]) == (D("10"), D("30.5"), 2)
    assert body["by_month"] == [
        {"period": date(2025, 1, 1), "count": 4, "earned": D("40.5")},
        {"period": date(2025, 2, 1), "count": 2, "earned": D("2.7")},
    ]
    assert [(r["period"], r["earned"]) for r in body["by_day"]] == [
        (date(2025, 1, 15), D("27")),
        (date(2025, 1, 16), D("13.5")),
        (date(2025, 2, 3), D("2.7")),
    ]
    assert body["by_follower"] == [
        {
            "subscription_id": big.pk,
            "follower": big.follower.username,
            "count": 3,
            "earned": D("28.8"),
            "fees": D("48"),
        },
        {
            "subscription_id": small.pk,
            "follower": small.follower.username,
            "count": 3,
            "earned": D("14.4"),
            "fees": D("24"),
        },
    ]
    # All portfolios of the leader: the same, as there is one.
    everything = leader_earnings(leader_id=portfolio.leader_id, now=datetime(2025, 2, 4, tzinfo=UTC))
    assert everything["total_earned"] == D("43.2")
    assert leader_earnings(leader_id=big.follower_id)["total_earned"] == 0
