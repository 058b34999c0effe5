"""The catalog: every filter and sort alone and combined, lists, favorites,
cursor pagination stable under inserts, and bad input."""

import pytest
from rest_framework.test import APIClient

from portfolios.models import PortfolioStatus
from tests.factories import UserFactory, token_for


def names(api, **params):
    r = api.get("/api/v1/catalog", params)
    assert r.status_code == 200, r.content
    return [item["name"] for item in r.json()["results"]]


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def five(shelf):
    """Five public portfolios with distinct figures (created in this order)."""
    shelf.make("Alpha", mode="margin", score="0.9", roi="5", pnl="500", win_rate="60", followers=10,
               min_investment="100", profit_share="10")  # fmt: skip
    shelf.make("Bravo", mode="spot", score="0.5", roi="25", pnl="2500", win_rate="40", followers=3,
               min_investment="1000", profit_share="20", max_followers=3)  # fmt: skip
    shelf.make("Charlie", mode="all", score="0.7", roi="-5", pnl="-500", win_rate="80", followers=50,
               min_investment="0", profit_share="0")  # fmt: skip
    shelf.make("Delta", mode="margin", score="0.1", roi="15", pnl="100", win_rate="20", followers=0,
               min_investment="50", profit_share="30")  # fmt: skip
    shelf.make("Echo", mode="spot", score="0.3", roi="0", pnl="0", win_rate="50", followers=7,
               min_investment="500", profit_share="5", max_followers=7)  # fmt: skip


# --- lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ("all", ["Alpha", "Charlie", "Bravo", "Echo", "Delta"]),
        ("margin", ["Alpha", "Charlie", "Delta"]),  # margin and "all" portfolios
        ("spot", ["Charlie", "Bravo", "Echo"]),
    ],
)
def test_lists(api, five, listed, expected):
    assert names(api, list=listed) == expected


def test_a_list_shows_its_lines_figures(api, shelf):
    shelf.make("Hybrid", mode="all", lines={"margin": {"pnl": "70"}, "spot": {"pnl": "-20"}, "all": {"pnl": "50"}})
    for listed, pnl in (("margin", "70.00000000"), ("spot", "-20.00000000"), ("all", "50.00000000")):
        (item,) = api.get("/api/v1/catalog", {"list": listed}).json()["results"]
        assert (item["line"], item["stats"]["pnl"]) == (listed, pnl)


def test_private_and_closed_portfolios_are_not_listed(api, shelf):
    shelf.make("Open")
    shelf.make("Hidden", is_public=False)
    closing = shelf.make("Closing")
    closing.status = PortfolioStatus.CLOSING
    closing.save(update_fields=["status"])
    assert names(api) == ["Open"]


# --- each filter alone -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"mode": "margin"}, ["Alpha", "Delta"]),
        ({"mode": "spot,all"}, ["Charlie", "Bravo", "Echo"]),
        ({"score_min": "0.5"}, ["Alpha", "Charlie", "Bravo"]),
        ({"score_max": "0.3"}, ["Echo", "Delta"]),
        ({"roi_min": "5", "roi_max": "20"}, ["Alpha", "Delta"]),
        ({"pnl_min": "0"}, ["Alpha", "Bravo", "Echo", "Delta"]),
        ({"pnl_max": "-1"}, ["Charlie"]),
        ({"win_rate_min": "50"}, ["Alpha", "Charlie", "Echo"]),
        ({"win_rate_max": "40"}, ["Bravo", "Delta"]),
        ({"followers_min": "7"}, ["Alpha", "Charlie", "Echo"]),
        ({"followers_max": "3"}, ["Bravo", "Delta"]),
        # A whole-number column: a fractional bound keeps the whole numbers inside it.
        ({"followers_min": "6.5"}, ["Alpha", "Charlie", "Echo"]),
        ({"followers_max": "3.9"}, ["Bravo", "Delta"]),
        ({"min_investment_max": "100"}, ["Alpha", "Charlie", "Delta"]),
        ({"min_investment_min": "500"}, ["Bravo", "Echo"]),
        ({"profit_share_max": "10"}, ["Alpha", "Charlie", "Echo"]),
        ({"profit_share_min": "20"}, ["Bravo", "Delta"]),
        ({"has_open_slots": "true"}, ["Alpha", "Charlie", "Delta"]),  # Bravo 3/3, Echo 7/7
        ({"has_open_slots": "false"}, ["Bravo", "Echo"]),
    ],
)
def test_each_filter(api, five, params, expected):
    assert names(api, **params) == expected


# --- each sort alone, both directions ------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-score", ["Alpha", "Charlie", "Bravo", "Echo", "Delta"]),
        ("score", ["Delta", "Echo", "Bravo", "Charlie", "Alpha"]),
        ("-roi", ["Bravo", "Delta", "Alpha", "Echo", "Charlie"]),
        ("roi", ["Charlie", "Echo", "Alpha", "Delta", "Bravo"]),
        ("-pnl", ["Bravo", "Alpha", "Delta", "Echo", "Charlie"]),
        ("pnl", ["Charlie", "Echo", "Delta", "Alpha", "Bravo"]),
        ("-followers", ["Charlie", "Alpha", "Echo", "Bravo", "Delta"]),
        ("followers", ["Delta", "Bravo", "Echo", "Alpha", "Charlie"]),
        ("-win_rate", ["Charlie", "Alpha", "Echo", "Bravo", "Delta"]),
        ("win_rate", ["Delta", "Bravo", "Echo", "Alpha", "Charlie"]),
        ("newest", ["Echo", "Delta", "Charlie", "Bravo", "Alpha"]),
        ("created_at", ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]),
    ],
)
def test_each_sort(api, five, sort, expected):
    assert names(api, sort=sort) == expected


# --- combined -----------------------------------------------------------------------------


def test_filters_and_sorts_combined(api, five, shelf):
    shelf.make("Foxtrot", mode="margin", score="0.9", roi="30", pnl="50", win_rate="70", followers=1,
               min_investment="10", profit_share="10")  # fmt: skip
    params = {
        "list": "margin",
        "score_min": "0.1",
        "win_rate_min": "20",
        "min_investment_max": "100",
        "profit_share_max": "30",
        "has_open_slots": "true",
        "sort": "-score,-roi",
    }
    assert names(api, **params) == ["Foxtrot", "Alpha", "Charlie", "Delta"]
    assert names(api, **{**params, "sort": "-score,roi"}) == ["Alpha", "Foxtrot", "Charlie", "Delta"]
    assert names(api, **{**params, "mode": "margin", "roi_min": "10"}) == ["Foxtrot", "Delta"]
    assert names(api, **{**params, "followers_min": "2", "sort": "followers"}) == ["Alpha", "Charlie"]


def test_equal_keys_fall_back_to_the_portfolio_id(api, shelf):
    for n in range(4):
        shelf.make(f"Tie {n}", score="0.5")
    assert names(api, sort="-score") == ["Tie 0", "Tie 1", "Tie 2", "Tie 3"]


# --- cursor pagination -----------------------------------------------------------------------


def walk(api, **params):
    seen, cursor = [], None
    while True:
        body = api.get("/api/v1/catalog", {**params, **({"cursor": cursor} if cursor else {})}).json()
        seen.append([item["name"] for item in body["results"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_pages_cover_the_sorted_list_exactly_once(api, shelf):
    for n in range(7):
        shelf.make(f"P{n}", score=str([0.5, 0.9, 0.5, 0.1, 0.5, 0.9, 0.3][n]), roi=str(n % 3))
    full = names(api, sort="-score,roi", limit=100)
    pages = walk(api, sort="-score,roi", limit=2)
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert [name for page in pages for name in page] == full


def test_cursor_is_stable_under_inserts_between_pages(api, shelf):
    for n in range(6):
        shelf.make(f"Old {n}", score=f"0.{9 - n}")  # 0.9 .. 0.4
    first = api.get("/api/v1/catalog", {"sort": "-score", "limit": 3}).json()
    assert [i["name"] for i in first["results"]] == ["Old 0", "Old 1", "Old 2"]
    # Inserted meanwhile: one before the cursor, one tied with it, one after.
    shelf.make("New top", score="0.95")
    shelf.make("New tie", score="0.7")  # same score as Old 2, larger id: after it
    shelf.make("New low", score="0.45")
    rest = walk(api, sort="-score", limit=3, cursor=first["next_cursor"])
    # walk() starts from the given cursor, then follows next_cursor.
    assert [name for page in rest for name in page] == ["New tie", "Old 3", "Old 4", "New low", "Old 5"]


def test_a_cursor_belongs_to_its_sort(api, shelf):
    for n in range(3):
        shelf.make(f"S{n}")
    cursor = api.get("/api/v1/catalog", {"sort": "-score", "limit": 1}).json()["next_cursor"]
    r = api.get("/api/v1/catalog", {"sort": "roi", "cursor": cursor})
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "INVALID_CURSOR", "cursor")
    r = api.get("/api/v1/catalog", {"cursor": "not-a-cursor"})
    assert (r.status_code, r.json()["code"]) == (400, "INVALID_CURSOR")


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"list": "bonds"}, "INVALID_LIST", "list"),
        ({"mode": "futures"}, "INVALID_MODE", "mode"),
        ({"roi_min": "lots"}, "INVALID_FILTER", "roi_min"),
        ({"score_max": "NaN"}, "INVALID_FILTER", "score_max"),
        ({"has_open_slots": "maybe"}, "INVALID_FILTER", "has_open_slots"),
        ({"sort": "-luck"}, "INVALID_SORT", "sort"),
        ({"sort": "score,-score"}, "INVALID_SORT", "sort"),
        ({"limit": "0"}, "INVALID_LIMIT", "limit"),
        ({"limit": "1000"}, "INVALID_LIMIT", "limit"),
        ({"list": "favorites"}, "AUTHENTICATION_REQUIRED", "list"),
    ],
)
def test_bad_input_is_a_4xx_with_a_code(api, five, params, code, field):
    r = api.get("/api/v1/catalog", params)
    assert 400 <= r.status_code < 500
    assert (r.json()["code"], r.json()["field"]) == (code, field)


# --- favorites ---------------------------------------------------------------------------------


def test_favorites_add_list_remove(api, five, shelf):
    user = UserFactory()
    api.force_authenticate(user)
    ids = {i["name"]: i["id"] for i in api.get("/api/v1/catalog").json()["results"]}
    assert api.put(f"/api/v1/favorites/{ids['Echo']}").status_code == 201
    assert api.put(f"/api/v1/favorites/{ids['Echo']}").status_code == 200  # idempotent
    assert api.put(f"/api/v1/favorites/{ids['Alpha']}").status_code == 201
    assert [i["name"] for i in api.get("/api/v1/favorites").json()["results"]] == ["Alpha", "Echo"]
    assert names(api, list="favorites", sort="pnl") == ["Echo", "Alpha"]
    flags = {i["name"]: i["is_favorite"] for i in api.get("/api/v1/catalog").json()["results"]}
    assert flags == {"Alpha": True, "Bravo": False, "Charlie": False, "Delta": False, "Echo": True}
    assert api.delete(f"/api/v1/favorites/{ids['Echo']}").status_code == 204
    assert api.delete(f"/api/v1/favorites/{ids['Echo']}").status_code == 204
    assert names(api, list="favorites") == ["Alpha"]
    # Another user's favorites are their own.
    api.force_authenticate(UserFactory())
    assert names(api, list="favorites") == []


def test_a_private_portfolio_cannot_be_favorited(api, shelf):
    hidden = shelf.make("Secret", is_public=False)
    api.force_authenticate(UserFactory())
    r = api.put(f"/api/v1/favorites/{hidden.pk}")
    assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")
    assert api.put("/api/v1/favorites/999999").status_code == 404
    anonymous = APIClient()
    assert anonymous.put(f"/api/v1/favorites/{hidden.pk}").status_code in (401, 403)


def test_a_page_costs_the_same_queries_whatever_its_size(api, shelf):
    """One query for the page, one for the reader's favorites among it: a page
    of 2 and a page of 6 cost the same, anonymous or signed in, on every list
    and on a second page (its cursor)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for n in range(12):
        shelf.make(f"P{n}", mode=("margin", "spot", "all")[n % 3], score=f"0.{n:02d}", followers=n % 4)
    user = UserFactory()
    signed_in = APIClient()
    signed_in.force_authenticate(user)
    for name in ("P1", "P5", "P9"):
        pk = next(i["id"] for i in signed_in.get("/api/v1/catalog").json()["results"] if i["name"] == name)
        signed_in.put(f"/api/v1/favorites/{pk}")

    def queries(client, **params) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as first:
            r = client.get("/api/v1/catalog", params)
        assert r.status_code == 200, r.content
        with CaptureQueriesContext(connection) as second:
            assert client.get("/api/v1/catalog", {**params, "cursor": r.json()["next_cursor"]}).status_code == 200
        return len(first), len(second)

    for client, lists in ((api, ("all", "margin")), (signed_in, ("all", "spot", "favorites"))):
        queries(client, list=lists[0], limit=2)  # the live settings' first read: not counted
        for listed in lists:
            for sort in ("-score", "-followers,-score", "newest"):
                small = queries(client, list=listed, sort=sort, limit=1 if listed == "favorites" else 2)
                large = queries(client, list=listed, sort=sort, limit=2 if listed == "favorites" else 6)
                assert small == large, (listed, sort, small, large)
                assert small[0] == (1 if client is api else 2), (listed, sort, small)


# --- the page body and its cache ---------------------------------------------------------------


def test_the_hand_built_item_is_what_the_schema_says(five):
    from portfolios import catalog
    from portfolios.catalog_api import catalog_item
    from portfolios.catalog_serializers import CatalogItemSerializer

    query = catalog.catalog_query({})
    models, values = catalog.catalog_page(query, None), catalog.catalog_page(query, None, values=True)
    assert [r.portfolio_id for r in models.rows] == [r["portfolio_id"] for r in values.rows]
    favorite = {models.rows[0].portfolio_id}
    for model, row in zip(models.rows, values.rows, strict=True):
        expected = CatalogItemSerializer(model, context={"favorite_ids": favorite}).data
        assert catalog_item(row, favorite) == expected


def test_a_public_page_is_cached_but_favorite_flags_are_the_readers(api, shelf, settings):
    from django.core.cache import cache

    cache.clear()
    settings.CATALOG_CACHE_SECONDS = 60
    first = shelf.make("First", score="0.5")
    assert names(api) == ["First"]
    shelf.make("Later", score="0.9")
    assert names(api) == ["First"]  # the cached page, until it expires
    assert names(api, sort="-score,pnl") == ["Later", "First"]  # another query: fresh
    user = UserFactory()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    api.put(f"/api/v1/favorites/{first.pk}")
    assert [(i["name"], i["is_favorite"]) for i in api.get("/api/v1/catalog").json()["results"]] == [("First", True)]
    assert names(api, list="favorites") == ["First"]
    api.delete(f"/api/v1/favorites/{first.pk}")
    assert names(api, list="favorites") == []  # never cached
    assert api.get("/api/v1/catalog").json()["results"][0]["is_favorite"] is False
    assert names(APIClient()) == ["First"]
    cache.clear()


@pytest.mark.django_db
def test_a_new_portfolio_is_listed_at_once_not_at_the_next_refresh(api):
    from portfolios.services import portfolio_create

    portfolio_create(leader=UserFactory(), name="Fresh Start", mode="margin")

    assert names(api) == ["Fresh Start"]
    assert names(api, list="margin") == ["Fresh Start"]
    assert names(api, list="spot") == []
