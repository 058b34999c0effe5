"""REST parity of the live figures (issue #13, point 4): positions, holdings
and subscriptions carry the mark, unrealized PnL and equity, checked against
hand-computed numbers after a price move through the staff price API, in a
constant number of queries per page; GraphQL shows the same."""

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from copytrading.models import Holding, Instrument, Position, PositionStatus, Product
from risk.selectors import watchdog_figures
from risk.services import utc_day_start
from tests.copytrading.world import ETH_PERP
from tests.factories import StaffFactory, UserFactory, token_for
from tests.followers.conftest import client_for

D = Decimal


@pytest.fixture
def staff(db):
    client = APIClient()
    client.force_authenticate(StaffFactory())
    return client


def move(staff, world, symbol: str, price: str) -> None:
    """A price move through the staff price API (matching runs, on commit)."""
    with world.capture(execute=True):
        response = staff.post("/api/v1/market/prices", {"symbol": symbol, "price": price}, format="json")
    assert response.status_code == 200, response.content


@pytest.fixture
def book(world, staff):
    """The leader (mode all, 20,000) opens long 1 ETH perp at 3200 (x10:
    margin 320) and buys 0.1 BTC spot at 64000; the follower (5,000,
    progressive 0.5, daily loss limits 100 realized / 80 unrealized) mirrors
    0.5 ETH (margin 160) and 0.05 BTC (cost 3200). Then ETH moves to 3000
    and BTC to 65000."""
    portfolio = world.leader(mode="all")
    sub = world.subscribe(portfolio, daily_loss_limit_realized=D("100"), daily_loss_limit_unrealized=D("80"))
    world.trade(portfolio, ETH_PERP, "buy", "1")
    world.trade(portfolio, "BTC/USDT", "buy", "0.1", leverage=1)
    move(staff, world, ETH_PERP, "3000")
    move(staff, world, "BTC/USDT", "65000")
    return portfolio, sub


def only(row: dict, *names: str) -> dict:
    return {name: row[name] for name in names}


LIVE_POSITION = ("side", "quantity", "entry_price", "margin", "mark_price", "unrealized_pnl", "notional",
                 "margin_level_pct")  # fmt: skip


def test_the_leader_sees_their_positions_and_holdings_at_the_marks(book):
    portfolio, _ = book
    leader = client_for(portfolio.leader)
    [position] = leader.get(f"/api/v1/portfolios/{portfolio.pk}/positions").json()["results"]
    # (3000 - 3200) x 1 = -200; (320 - 200) / 320 = 37.5 %
    assert only(position, *LIVE_POSITION) == {
        "side": "long",
        "quantity": "1.00000000",
        "entry_price": "3200.00000000",
        "margin": "320.00000000",
        "mark_price": "3000.00000000",
        "unrealized_pnl": "-200.00000000",
        "notional": "3000.00000000",
        "margin_level_pct": "37.50000000",
    }
    [holding] = leader.get(f"/api/v1/portfolios/{portfolio.pk}/holdings").json()["results"]
    assert holding == {
        "asset": "BTC",
        "quantity": "0.10000000",
        "reserved": "0.00000000",
        "cost_basis": "6400.00000000",
        "mark_price": "65000.00000000",
        "value": "6500.00000000",
        "unrealized_pnl": "100.00000000",
    }


def test_the_follower_sees_mirrors_holdings_and_the_copy_at_the_marks(book, world, staff):
    _, sub = book
    follower = client_for(sub.follower)
    [mirror] = follower.get(f"/api/v1/subscriptions/{sub.pk}/positions").json()["results"]
    # (3000 - 3200) x 0.5 = -100; (160 - 100) / 160 = 37.5 %
    assert only(mirror, *LIVE_POSITION) == {
        "side": "long",
        "quantity": "0.50000000",
        "entry_price": "3200.00000000",
        "margin": "160.00000000",
        "mark_price": "3000.00000000",
        "unrealized_pnl": "-100.00000000",
        "notional": "1500.00000000",
        "margin_level_pct": "37.50000000",
    }
    [holding] = follower.get(f"/api/v1/subscriptions/{sub.pk}/holdings").json()["results"]
    assert only(holding, "asset", "cost_basis", "mark_price", "value", "unrealized_pnl") == {
        "asset": "BTC",
        "cost_basis": "3200.00000000",
        "mark_price": "65000.00000000",
        "value": "3250.00000000",
        "unrealized_pnl": "50.00000000",
    }

    # Cash 5000 - 3200 = 1800 (the margin stays in it); equity 1800 - 100 +
    # 3250 = 4950; unrealized -100 + 50 = -50; nothing realized; ROI -50/5000.
    expected = {
        "balance": "1800.00000000",
        "equity": "4950.00000000",
        "unrealized_pnl": "-50.00000000",
        "realized_pnl": "0.00000000",
        "total_pnl": "-50.00000000",
        "roi_pct": "-1.00",
        "margin_level_pct": "3093.75000000",  # 4950 / 160
        "realized_loss_today": "0.00000000",
        "unrealized_loss": "50.00000000",
        "daily_loss_limit_realized": "100.00000000",
        "daily_loss_headroom_realized": "100.00000000",
        "daily_loss_limit_unrealized": "80.00000000",
        "daily_loss_headroom_unrealized": "30.00000000",
    }
    listed = follower.get("/api/v1/subscriptions").json()["results"]
    assert [row["figures"] for row in listed] == [expected]
    detail = follower.get(f"/api/v1/subscriptions/{sub.pk}").json()
    assert detail["figures"] == expected and (detail["status"], detail["pause_reason"]) == ("active", "")

    # The same figures the watchdog measures.
    figures = watchdog_figures([sub.copy_account_id], day_start=utc_day_start(sub.created_at))[sub.copy_account_id]
    assert (figures.equity, figures.total_unrealized) == (D("4950"), D("-50"))

    # ETH back to 3100 (-50 on the mirror), BTC down to 64000 (0 on the holding).
    move(staff, world, ETH_PERP, "3100")
    move(staff, world, "BTC/USDT", "64000")
    figures = follower.get(f"/api/v1/subscriptions/{sub.pk}").json()["figures"]
    assert only(figures, "equity", "unrealized_pnl", "daily_loss_headroom_unrealized") == {
        "equity": "4950.00000000",  # 1800 - 50 + 3200
        "unrealized_pnl": "-50.00000000",
        "daily_loss_headroom_unrealized": "30.00000000",
    }
    move(staff, world, "BTC/USDT", "66000")  # holding +100: the copy is in profit
    figures = follower.get(f"/api/v1/subscriptions/{sub.pk}").json()["figures"]
    assert only(figures, "equity", "unrealized_pnl", "total_pnl", "roi_pct", "unrealized_loss") == {
        "equity": "5050.00000000",
        "unrealized_pnl": "50.00000000",
        "total_pnl": "50.00000000",
        "roi_pct": "1.00",
        "unrealized_loss": "0.00000000",
    }


def test_a_closed_position_has_no_live_figures_and_another_quote_does_not_value_a_holding(book, world, staff):
    portfolio, sub = book
    position = Position.objects.get(account_id=portfolio.trading_account_id, status=PositionStatus.OPEN)
    world.close(portfolio, position.pk)
    leader = client_for(portfolio.leader)
    [closed] = leader.get(f"/api/v1/portfolios/{portfolio.pk}/positions").json()["results"]
    assert (closed["status"], closed["realized_pnl"]) == ("closed", "-200.00000000")
    assert only(closed, "mark_price", "unrealized_pnl", "notional", "margin_level_pct") == dict.fromkeys(
        ("mark_price", "unrealized_pnl", "notional", "margin_level_pct")
    )
    # ETH/BTC is a spot pair of another quote: a BTC holding is valued by BTC/USDT only.
    move(staff, world, "BTC/EUR", "1")
    [holding] = leader.get(f"/api/v1/portfolios/{portfolio.pk}/holdings").json()["results"]
    assert (holding["mark_price"], holding["value"]) == ("65000.00000000", "6500.00000000")
    # Without a priced primary-currency pair: no mark, unrealized null (not 0), valued at cost.
    Instrument.objects.filter(symbol="BTC/USDT").update(mark_price=None)
    [holding] = leader.get(f"/api/v1/portfolios/{portfolio.pk}/holdings").json()["results"]
    assert only(holding, "mark_price", "value", "unrealized_pnl") == {
        "mark_price": None,
        "value": "6400.00000000",
        "unrealized_pnl": None,
    }
    figures = client_for(sub.follower).get(f"/api/v1/subscriptions/{sub.pk}").json()["figures"]
    # The mirror was closed with the leader at 3000 (-100 realized); BTC at cost 3200.
    assert only(figures, "equity", "unrealized_pnl", "realized_pnl", "realized_loss_today") == {
        "equity": "4900.00000000",
        "unrealized_pnl": "0.00000000",
        "realized_pnl": "-100.00000000",
        "realized_loss_today": "100.00000000",
    }


def test_another_user_sees_none_of_it(book):
    portfolio, sub = book
    stranger = client_for(UserFactory())
    for url in (
        f"/api/v1/subscriptions/{sub.pk}",
        f"/api/v1/subscriptions/{sub.pk}/positions",
        f"/api/v1/subscriptions/{sub.pk}/holdings",
        f"/api/v1/portfolios/{portfolio.pk}/positions",
        f"/api/v1/portfolios/{portfolio.pk}/holdings",
    ):
        assert stranger.get(url).status_code == 404, url
    assert stranger.get("/api/v1/subscriptions").json()["results"] == []


# --- constant queries per page ----------------------------------------------------------


def _page_queries(client, url: str, rows: int) -> int:
    with CaptureQueriesContext(connection) as queries:
        body = client.get(url, {"limit": 200}).json()
    assert len(body["results"]) == rows
    return len(queries)


def _fill(account_id: int, size: int, prefix: str) -> None:
    """``size`` open positions and holdings in one wallet (rows written
    directly: this measures the read, not the trading)."""
    instruments = Instrument.objects.bulk_create(
        [
            Instrument(symbol=f"{prefix}{i}/USDT", product=Product.SPOT, base=f"{prefix}{i}", quote="USDT",
                       qty_step=D("0.01"), min_qty=D("0.01"), max_qty=D("1000"), price_tick=D("0.01"),
                       min_notional=D("1"), max_leverage=10, mark_price=D(10 + i))
            for i in range(size)
        ]
    )  # fmt: skip
    Position.objects.bulk_create(
        [
            Position(account_id=account_id, instrument=i, side="long", quantity=D(1), opened_quantity=D(1),
                     entry_price=D(10), leverage=10, margin=D(1))
            for i in instruments
        ]
    )  # fmt: skip
    Holding.objects.bulk_create(
        [Holding(account_id=account_id, asset=i.base, quantity=D(2), cost_basis=D(20)) for i in instruments]
    )


@pytest.mark.parametrize("kind", ["positions", "holdings"])
def test_a_page_of_positions_or_holdings_costs_the_same_queries_at_2_and_50_rows(world, kind):
    counts = []
    for size in (2, 50):
        portfolio = world.leader()
        _fill(portfolio.trading_account_id, size, f"L{size}X")
        leader = client_for(portfolio.leader)
        counts.append(_page_queries(leader, f"/api/v1/portfolios/{portfolio.pk}/{kind}", size))
        sub = world.subscribe(portfolio)
        if kind == "holdings":
            _fill(sub.copy_account_id, size, f"F{size}X")
        follower = client_for(sub.follower)
        rows = size if kind == "holdings" else 0
        counts.append(_page_queries(follower, f"/api/v1/subscriptions/{sub.pk}/{kind}", rows))
    assert counts[0] == counts[2] and counts[1] == counts[3], counts
    # Every row is valued: the last of the 50 at its own mark.
    body = client_for(portfolio.leader).get(f"/api/v1/portfolios/{portfolio.pk}/{kind}", {"limit": 200}).json()
    last = max(body["results"], key=lambda row: D(row["mark_price"]))
    assert last["mark_price"] == "59.00000000"
    assert last["unrealized_pnl"] == ("49.00000000" if kind == "positions" else "98.00000000")


def test_a_page_of_subscriptions_costs_the_same_queries_at_2_and_50_rows(world):
    counts = []
    for size in (2, 50):
        me = world.person(deposit=str(100 * size))
        for _ in range(size):
            world.subscribe(world.leader(), user=me, amount="100", daily_loss_limit_realized=D("10"))
        counts.append(_page_queries(client_for(me), "/api/v1/subscriptions", size))
    assert counts[0] == counts[1], counts


# --- GraphQL --------------------------------------------------------------------------

MINE = """
{ mySubscriptions {
    id status pauseReason
    result { equity pnl unrealizedPnl totalPnl }
    figures { equity unrealizedPnl realizedPnl roiPct marginLevelPct dailyLossHeadroomUnrealized }
    positions { symbol markPrice unrealizedPnl notional marginLevelPct }
    holdings { asset markPrice value unrealizedPnl }
} }
"""


def test_graphql_shows_the_same_live_figures(book):
    _, sub = book
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(sub.follower)}")
    response = client.post("/graphql/", json.dumps({"query": MINE}), content_type="application/json")
    [row] = response.json()["data"]["mySubscriptions"]
    assert row == {
        "id": sub.pk,
        "status": "active",
        "pauseReason": "",
        "result": {
            "equity": "4950.00000000",
            "pnl": "0E-8",
            "unrealizedPnl": "-50.00000000",
            "totalPnl": "-50.00000000",
        },
        "figures": {
            "equity": "4950.00000000",
            "unrealizedPnl": "-50.00000000",
            "realizedPnl": "0.00000000",
            "roiPct": "-1.00",
            "marginLevelPct": "3093.75000000",
            "dailyLossHeadroomUnrealized": "30.00000000",
        },
        "positions": [
            {
                "symbol": ETH_PERP,
                "markPrice": "3000.00000000",
                "unrealizedPnl": "-100.00000000",
                "notional": "1500.00000000",
                "marginLevelPct": "37.50000000",
            }
        ],
        "holdings": [
            {"asset": "BTC", "markPrice": "65000.00000000", "value": "3250.00000000", "unrealizedPnl": "50.00000000"}
        ],
    }


def test_graphql_live_figures_in_constant_queries(world):
    counts = []
    for size in (1, 6):
        me = world.person(deposit=str(100 * size))
        for _ in range(size):
            world.subscribe(world.leader(), user=me, amount="100")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(me)}")
        with CaptureQueriesContext(connection) as queries:
            response = client.post("/graphql/", json.dumps({"query": MINE}), content_type="application/json")
        assert len(response.json()["data"]["mySubscriptions"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
