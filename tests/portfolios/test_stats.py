"""Portfolio and follower statistics on a small scenario, exact to the cent.

The leader (mode "all", 20,000 funded) and one follower (5,000, progressive
0.5) live through three days, no spread, no profit share:
- day 1: long 1 ETH perp 3200 -> 3300, closed: leader +100, follower +50;
- day 2: long 0.1 BTC perp 64000 -> 63000, closed: leader -100, follower -50;
- day 3: buy 0.1 BTC spot at 64000, sell half at 65000: leader +50
  (3250 - 3200), follower buys 0.05 and sells 0.025: +25 (1625 - 1600).
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from copytrading.models import Position
from portfolios.models import FollowerDailyStats, PortfolioStats
from portfolios.stats import stats_refresh
from tests.copytrading.world import BTC_PERP, ETH_PERP, World
from tests.factories import StaffFactory

D = Decimal
DAY1 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
DAY3 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def scenario(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    world = World(instruments, django_capture_on_commit_callbacks)
    with time_machine.travel(DAY1, tick=False):
        portfolio = world.leader(mode="all")
        sub = world.follower(portfolio, amount="5000", multiplier="0.5")
        world.price(ETH_PERP, "3200")
        world.trade(portfolio, ETH_PERP, "buy", "1")
        world.price(ETH_PERP, "3300")
        eth = Position.objects.get(account_id=portfolio.trading_account_id, status="open")
        world.close(portfolio, eth.pk)
    with time_machine.travel(DAY2, tick=False):
        world.price(BTC_PERP, "64000")
        world.trade(portfolio, BTC_PERP, "buy", "0.1")
        world.price(BTC_PERP, "63000")
        btc = Position.objects.get(account_id=portfolio.trading_account_id, status="open")
        world.close(portfolio, btc.pk)
    with time_machine.travel(DAY3, tick=False):
        world.price("BTC/USDT", "64000")
        world.trade(portfolio, "BTC/USDT", "buy", "0.1", leverage=1)
        world.price("BTC/USDT", "65000")
        world.trade(portfolio, "BTC/USDT", "sell", "0.05", leverage=1)
        stats_refresh()
    return portfolio, sub, (eth, btc)


def figures(portfolio, line):
    return PortfolioStats.objects.get(portfolio=portfolio, line=line)


def test_margin_line(scenario):
    portfolio, _, _ = scenario
    margin = figures(portfolio, "margin")
    assert margin.pnl == D("0")
    assert margin.roi_pct == D("0.00")
    assert (margin.trade_count, margin.closed_count, margin.win_count) == (4, 2, 1)
    assert margin.win_rate_pct == D("50.00")
    # 20000 -> 20100 -> 20000: 100 below a 20100 peak.
    assert margin.max_drawdown_pct == D("0.50")
    assert margin.follower_count == 1
    assert margin.equity_curve == [["2026-03-02", "20100.00000000"], ["2026-03-03", "20000.00000000"]]


def test_spot_and_all_lines(scenario):
    portfolio, _, _ = scenario
    spot = figures(portfolio, "spot")
    assert (spot.pnl, spot.roi_pct, spot.win_rate_pct) == (D("50"), D("0.25"), D("100.00"))
    assert (spot.trade_count, spot.closed_count, spot.max_drawdown_pct) == (2, 1, D("0.00"))
    everything = figures(portfolio, "all")
    assert (everything.pnl, everything.roi_pct) == (D("50"), D("0.25"))
    assert (everything.trade_count, everything.closed_count, everything.win_count) == (6, 3, 2)
    assert everything.win_rate_pct == D("66.67")
    assert everything.max_drawdown_pct == D("0.50")
    assert everything.equity_curve[-1] == ["2026-03-04", "20050.00000000"]


def test_average_follower_and_refresh_is_idempotent(scenario):
    portfolio, _, _ = scenario
    day = FollowerDailyStats.objects.get(portfolio=portfolio)
    assert (day.day.isoformat(), day.followers, day.average_pnl, day.average_roi_pct) == (
        "2026-03-04",
        1,
        D("25"),
        D("0.50"),
    )
    with time_machine.travel(DAY3, tick=False):
        stats_refresh(portfolio_ids=[portfolio.pk])
    assert PortfolioStats.objects.filter(portfolio=portfolio).count() == 3
    assert FollowerDailyStats.objects.filter(portfolio=portfolio).count() == 1
    assert figures(portfolio, "all").pnl == D("50")


def test_stats_endpoints(scenario):
    portfolio, sub, (eth, btc) = scenario
    api = APIClient()
    body = api.get(f"/api/v1/catalog/{portfolio.pk}").json()
    assert body["stats"]["lines"]["spot"]["pnl"] == "50.00000000"
    assert body["stats"]["average_follower"]["pnl"] == "25.00000000"
    assert body["stats"]["average_follower"]["series"] == [
        {"day": "2026-03-04", "followers": 1, "pnl": "25.00000000", "roi_pct": "0.50"}
    ]

    page = api.get(f"/api/v1/catalog/{portfolio.pk}/closed-trades", {"line": "margin", "limit": 1}).json()
    assert [(t["id"], t["pnl"]) for t in page["results"]] == [(btc.pk, "-100.00000000")]
    page = api.get(
        f"/api/v1/catalog/{portfolio.pk}/closed-trades", {"line": "margin", "limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [(t["id"], t["pnl"]) for t in page["results"]] == [(eth.pk, "100.00000000")]
    assert page["next_cursor"] is None
    spot = api.get(f"/api/v1/catalog/{portfolio.pk}/closed-trades", {"line": "spot"}).json()
    assert [t["pnl"] for t in spot["results"]] == ["50.00000000"]
    bad = api.get(f"/api/v1/catalog/{portfolio.pk}/closed-trades", {"line": "bonds"})
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_LINE")

    api.force_authenticate(sub.follower)
    mine = api.get("/api/v1/subscriptions/stats").json()
    assert mine["subscriptions"] == [
        {
            "subscription": sub.pk,
            "portfolio": portfolio.pk,
            "funded": "5000.00000000",
            "withdrawn": "0.00000000",
            # Still held: 0.025 BTC bought at 64000 (cost 1600), now 65000 (1625).
            "equity": "5050.00000000",
            "pnl": "25.00000000",
            "unrealized_pnl": "25.00000000",
            "total_pnl": "50.00000000",
            "roi_pct": "0.50",
            "fees_paid": "0.00000000",
        }
    ]
    assert mine["total"]["pnl"] == "25.00000000"
    assert (mine["total"]["equity"], mine["total"]["unrealized_pnl"], mine["total"]["total_pnl"]) == (
        "5050.00000000",
        "25.00000000",
        "50.00000000",
    )


def test_portfolio_stats_show_equity_at_the_marks(scenario, django_capture_on_commit_callbacks):
    """The leader holds 0.05 BTC bought at 64000 (cost 3200): at 65000 it is
    worth 3250 (+50 unrealized); cash 20000 + 100 - 100 - 6400 + 3250 =
    16850, equity 16850 + 3250 = 20100. A price move shows at once (the
    lines stay as refreshed)."""
    portfolio, _, _ = scenario
    api = APIClient()
    stats = api.get(f"/api/v1/catalog/{portfolio.pk}").json()["stats"]
    assert (stats["equity"], stats["unrealized_pnl"]) == ("20100.00000000", "50.00000000")
    staff = APIClient()
    staff.force_authenticate(StaffFactory())
    with django_capture_on_commit_callbacks(execute=True):
        moved = staff.post("/api/v1/market/prices", {"symbol": "BTC/USDT", "price": "63000"}, format="json")
    assert moved.status_code == 200
    api.force_authenticate(portfolio.leader)
    stats = api.get(f"/api/v1/portfolios/{portfolio.pk}/stats").json()
    # 0.05 x 63000 = 3150: -50 unrealized, equity 16850 + 3150 = 20000.
    assert (stats["equity"], stats["unrealized_pnl"]) == ("20000.00000000", "-50.00000000")
    assert stats["lines"]["spot"]["pnl"] == "50.00000000"
