"""GraphQL at /graphql/: the catalog connection (same filters and sorts as
REST), portfolio detail with stats and score history, my subscriptions; a
constant number of queries whatever the list size."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from portfolios.models import PortfolioScore
from portfolios.services import portfolio_update
from portfolios.stats import stats_refresh
from tests.copytrading.world import World
from tests.factories import UserFactory, token_for

D = Decimal

CATALOG = """
query($first: Int, $after: String, $sort: String, $list: String, $roiMin: Decimal, $hasOpenSlots: Boolean) {
  catalog(first: $first, after: $after, sort: $sort, list: $list, roiMin: $roiMin, hasOpenSlots: $hasOpenSlots) {
    edges { cursor node { id name leader mode score roiPct pnl followerCount openSlots isFavorite } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def gql(client, query, **variables):
    r = client.post("/graphql/", json.dumps({"query": query, "variables": variables}), content_type="application/json")
    assert r.status_code in (200, 400), r.content
    return r.json()


@pytest.fixture
def client():
    return APIClient()


def test_catalog_connection_filters_sorts_and_pages(client, shelf):
    shelf.make("Alpha", score="0.9", roi="5")
    shelf.make("Bravo", score="0.5", roi="25", followers=3, max_followers=3)
    shelf.make("Charlie", score="0.7", roi="-5")
    body = gql(client, CATALOG, first=2, sort="-score")["data"]["catalog"]
    assert [e["node"]["name"] for e in body["edges"]] == ["Alpha", "Charlie"]
    assert body["pageInfo"]["hasNextPage"] is True
    rest = gql(client, CATALOG, first=2, sort="-score", after=body["pageInfo"]["endCursor"])["data"]["catalog"]
    assert [e["node"]["name"] for e in rest["edges"]] == ["Bravo"]
    assert rest["pageInfo"]["hasNextPage"] is False
    filtered = gql(client, CATALOG, sort="roi", roiMin="0", hasOpenSlots=True)["data"]["catalog"]
    assert [(e["node"]["name"], e["node"]["roiPct"]) for e in filtered["edges"]] == [("Alpha", "5.00")]
    # The same REST cursor rules: bound to its sort, a stable error code.
    bad = gql(client, CATALOG, sort="roi", after=body["pageInfo"]["endCursor"])
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


@pytest.mark.parametrize("size", [3, 30])
def test_catalog_queries_do_not_grow_with_the_page(client, shelf, size, django_assert_max_num_queries):
    user = UserFactory()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    for n in range(size):
        shelf.make(f"Book {n}", score=str(D(n) / 100))
    # token lookup + page + favorites of the page
    with django_assert_max_num_queries(3):
        body = gql(client, CATALOG, first=50)
    assert len(body["data"]["catalog"]["edges"]) == size
    assert body["data"]["catalog"]["edges"][0]["node"]["leader"].startswith("user-")


MINE = """
{ mySubscriptions { id portfolioName status result { funded pnl roiPct feesPaid } } }
"""


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


@pytest.mark.parametrize("size", [1, 6])
def test_my_subscriptions_in_constant_queries(client, world, size, django_assert_max_num_queries):
    from copytrading.services import wallet_deposit
    from followers.services import subscription_create

    me = UserFactory()
    wallet_deposit(user=me, amount=D("10000"))
    for _ in range(size):
        subscription_create(follower=me, portfolio=world.leader(), amount=D("100"), multiplier=D("0.5"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(me)}")
    # token, subscriptions, the wallets' figures (5 set-based queries) and
    # their values at the marks (1; more on SQLite, still constant)
    with django_assert_max_num_queries(8 if connection.vendor == "postgresql" else 11):
        body = gql(client, MINE)
    rows = body["data"]["mySubscriptions"]
    assert len(rows) == size
    assert rows[0]["result"] == {"funded": "100.00000000", "pnl": "0E-8", "roiPct": "0.00", "feesPaid": "0"}


def test_anonymous_has_no_subscriptions_and_a_bad_token_is_refused(client, db):
    assert gql(client, MINE) == {"data": {"mySubscriptions": []}}
    client.credentials(HTTP_AUTHORIZATION="Token nope")
    r = client.post("/graphql/", json.dumps({"query": MINE}), content_type="application/json")
    assert r.status_code == 401


DETAIL = """
query($id: Int!) {
  portfolio(id: $id) {
    name score
    lines { line pnl roiPct winRatePct tradeCount maxDrawdownPct equityCurve { day equity } }
    averageFollower { followers pnl series { day pnl } }
    scoreHistory { computedAt score winRate }
  }
}
"""


def test_portfolio_detail_with_stats_and_score_history(client, world):
    portfolio = world.leader(mode="margin")
    stats_refresh()
    PortfolioScore.objects.create(
        portfolio=portfolio, computed_at=datetime(2026, 5, 1, tzinfo=UTC), score=D("0.5"), win_rate=D("0.5"),
        follower_health=D("0"), profitability=D("1"), consistency=D("0.25"), activity=D("1"), popularity=D("0"),
    )  # fmt: skip
    body = gql(client, DETAIL, id=portfolio.pk)["data"]["portfolio"]
    assert body["name"] == portfolio.name
    assert {line["line"]: line["pnl"] for line in body["lines"]} == {"all": "0E-8", "margin": "0E-8", "spot": "0E-8"}
    assert body["lines"][0]["equityCurve"][0]["equity"] == "20000.00000000"
    assert body["scoreHistory"] == [
        {"computedAt": "2026-05-01T00:00:00+00:00", "score": "0.500000", "winRate": "0.500000"}
    ]
    assert body["averageFollower"]["followers"] == 0
    # A private portfolio is visible to its leader only.
    portfolio_update(portfolio=portfolio, is_public=False, passcode="12345678")
    assert gql(client, DETAIL, id=portfolio.pk)["data"]["portfolio"] is None
    client.force_login(portfolio.leader)
    assert gql(client, DETAIL, id=portfolio.pk)["data"]["portfolio"]["name"] == portfolio.name
