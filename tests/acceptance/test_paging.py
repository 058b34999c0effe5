"""One way to page (issue #11, point 13): every list under /api/v1/ answers
``{"results", "next_cursor"}``, honours ``limit`` (1-200, default 50), walks
with an opaque signed ``cursor``, and refuses a bad limit or cursor with 400."""

from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from copytrading import paging
from copytrading.errors import DomainError
from copytrading.models import Order, OrderStatus
from followers.services import subscription_pause
from portfolios import copy_templates
from portfolios.stats import stats_refresh
from tests.copytrading.world import ETH_PERP
from tests.followers.conftest import FollowerWorld, client_for

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return FollowerWorld(instruments, django_capture_on_commit_callbacks)


def add_orders(portfolio, instrument, n: int) -> list[int]:
    """n filled orders on the leader's trading account (rows only: what a list reads)."""
    rows = Order.objects.bulk_create(
        Order(
            account_id=portfolio.trading_account_id,
            instrument=instrument,
            side="buy",
            order_type="market",
            quantity=D("0.01"),
            price=D("3200"),
            status=OrderStatus.FILLED,
        )
        for _ in range(n)
    )
    if not rows or rows[0].pk is None:  # SQLite before RETURNING: read them back
        return list(
            Order.objects.filter(account_id=portfolio.trading_account_id)
            .order_by("-id")[:n]
            .values_list("id", flat=True)
        )
    return [r.pk for r in rows]


def walk(client, url: str, **params) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        response = client.get(url, {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"results", "next_cursor"}
        pages.append(body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the walk does not end"


@pytest.fixture
def book(world):
    portfolio = world.leader()
    return portfolio, client_for(portfolio.leader), f"/api/v1/portfolios/{portfolio.pk}/orders"


def test_a_list_over_200_rows_walks_every_row_once_in_pages_of_the_limit(book, instruments):
    portfolio, client, url = book
    created = add_orders(portfolio, instruments[ETH_PERP], 450)
    pages = walk(client, url, limit=200)
    assert [len(p) for p in pages] == [200, 200, 50]
    seen = [row["id"] for page in pages for row in page]
    assert seen == sorted(created, reverse=True)  # newest first, each once, none missing


def test_the_default_limit_is_50_and_a_limit_is_honoured(book, instruments):
    portfolio, client, url = book
    add_orders(portfolio, instruments[ETH_PERP], 60)
    body = client.get(url).json()
    assert (len(body["results"]), body["next_cursor"] is not None) == (paging.DEFAULT_LIMIT, True)
    body = client.get(url, {"limit": 7}).json()
    assert len(body["results"]) == 7
    assert len(client.get(url, {"limit": 200}).json()["results"]) == 60
    # An empty cursor is the first page.
    assert client.get(url, {"limit": 7, "cursor": ""}).json() == body


def test_rows_inserted_or_deleted_between_pages_neither_repeat_nor_hide_others(book, instruments):
    portfolio, client, url = book
    created = sorted(add_orders(portfolio, instruments[ETH_PERP], 30), reverse=True)
    first = client.get(url, {"limit": 10}).json()
    assert [r["id"] for r in first["results"]] == created[:10]

    newer = add_orders(portfolio, instruments[ETH_PERP], 5)  # land before the cursor
    gone = created[15]  # deleted before it was shown
    Order.objects.filter(pk=gone).delete()
    Order.objects.filter(pk=created[3]).delete()  # already shown: must not shift the next page

    rest = walk(client, url, limit=10, cursor=first["next_cursor"])
    seen = [r["id"] for r in first["results"]] + [r["id"] for page in rest for r in page]
    assert len(seen) == len(set(seen))
    assert seen == [pk for pk in created if pk != gone]
    assert not set(newer) & set(seen)


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "1.5", "", "1e2", " 5", "5_0", "9999999"])
def test_a_bad_limit_is_400_not_clamped(book, api, limit):
    _, client, url = book
    for reader, path in ((client, url), (api, "/api/v1/catalog"), (api, "/api/v1/market/prices")):
        response = reader.get(path, {"limit": limit})
        assert response.status_code == 400, (path, limit)
        assert (response.json()["code"], response.json()["field"]) == ("INVALID_LIMIT", "limit")


def test_a_bad_tampered_or_foreign_cursor_is_400(book, instruments):
    portfolio, client, url = book
    add_orders(portfolio, instruments[ETH_PERP], 5)
    cursor = client.get(url, {"limit": 2}).json()["next_cursor"]
    assert cursor
    payload, signature = cursor.rsplit(":", 1)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    positions_cursor = paging.encode_cursor("PortfolioPositionListView", [1])
    for bad in ("garbage", "a:b", cursor + "x", f"{payload}:{flipped}", positions_cursor, "eyJ2IjpbXX0"):
        response = client.get(url, {"cursor": bad})
        assert response.status_code == 400, bad
        assert (response.json()["code"], response.json()["field"]) == ("INVALID_CURSOR", "cursor")
    # The same cursor is still good where it came from.
    assert client.get(url, {"limit": 2, "cursor": cursor}).status_code == 200


def test_a_catalog_cursor_is_bound_to_its_sort_and_signed(world, api):
    leaders = [world.leader() for _ in range(3)]
    stats_refresh(portfolio_ids=[p.pk for p in leaders])
    pages = walk(api, "/api/v1/catalog", limit=1, sort="-pnl")
    assert sorted(r["id"] for page in pages for r in page) == sorted(p.pk for p in leaders)
    cursor = api.get("/api/v1/catalog", {"limit": 1, "sort": "-pnl"}).json()["next_cursor"]
    other_sort = api.get("/api/v1/catalog", {"limit": 1, "sort": "roi", "cursor": cursor})
    assert (other_sort.status_code, other_sort.json()["code"]) == (400, "INVALID_CURSOR")
    unsigned = api.get("/api/v1/catalog", {"limit": 1, "sort": "-pnl", "cursor": cursor.rsplit(":", 1)[0]})
    assert (unsigned.status_code, unsigned.json()["code"]) == (400, "INVALID_CURSOR")


def test_lists_built_in_python_page_the_same_way(world):
    portfolio = world.leader()
    leader = client_for(portfolio.leader)
    for n in range(5):
        copy_templates.copy_template_create(portfolio=portfolio, name=f"T{n}", multiplier=D("0.1"))
    pages = walk(leader, f"/api/v1/portfolios/{portfolio.pk}/templates", limit=3)
    assert [len(p) for p in pages] == [3, 3, 2]
    ids = [t["id"] for page in pages for t in page]
    assert ids[:3] == ["conservative", "balanced", "aggressive"]
    assert ids[3:] == sorted(ids[3:], key=int) and len(set(ids)) == 8


# --- every list of the API -------------------------------------------------------------


def list_operations(schema: dict) -> list[tuple[str, dict]]:
    found = []
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if path.startswith("/api/v1/") and get and "200" in get["responses"]:
            content = get["responses"]["200"].get("content", {}).get("application/json")
            if content:
                found.append((path, get, content["schema"]))
    return found


def test_the_schema_has_no_bare_list_and_describes_every_page_exactly(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    pages = []
    for path, operation, body in list_operations(schema):
        assert body.get("type") != "array", f"{path} answers a bare list"
        ref = body.get("$ref", "").rsplit("/", 1)[-1]
        if not ref.endswith("Page"):
            continue
        pages.append(path)
        page = components[ref]
        assert set(page["properties"]) == {"results", "next_cursor"} and set(page["required"]) == set(
            page["properties"]
        )
        assert page["properties"]["results"]["type"] == "array"
        assert page["properties"]["next_cursor"]["nullable"] is True
        params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, path
        assert params["cursor"]["schema"]["type"] == "string", path
        assert operation["operationId"].endswith("_list"), path
    expected = {
        "/api/v1/market/instruments", "/api/v1/market/prices", "/api/v1/portfolios", "/api/v1/portfolios/{id}/orders",
        "/api/v1/portfolios/{id}/positions", "/api/v1/portfolios/{id}/holdings", "/api/v1/portfolios/{id}/events",
        "/api/v1/portfolios/{id}/templates", "/api/v1/templates", "/api/v1/portfolios/{id}/withdrawals",
        "/api/v1/portfolios/{id}/closed-trades", "/api/v1/catalog", "/api/v1/catalog/{id}/scores",
        "/api/v1/catalog/{id}/closed-trades", "/api/v1/favorites", "/api/v1/subscriptions",
        "/api/v1/subscriptions/{id}/positions", "/api/v1/subscriptions/{id}/holdings",
        "/api/v1/subscriptions/{id}/executions", "/api/v1/subscriptions/{id}/orders", "/api/v1/notifications",
        "/api/v1/exchange-accounts",
    }  # fmt: skip
    assert set(pages) == expected


def test_every_list_answers_a_page_of_at_most_limit_rows(world, api):
    portfolio = world.leader()
    sub = world.subscribe(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    stats_refresh(portfolio_ids=[portfolio.pk])
    leader, follower = client_for(portfolio.leader), client_for(sub.follower)
    follower.put(f"/api/v1/favorites/{portfolio.pk}")
    p, s = portfolio.pk, sub.pk
    urls = [
        (api, "/api/v1/market/instruments"), (api, "/api/v1/market/prices"), (api, "/api/v1/catalog"),
        (api, f"/api/v1/catalog/{p}/scores"), (api, f"/api/v1/catalog/{p}/closed-trades"),
        (leader, "/api/v1/portfolios"), (leader, f"/api/v1/portfolios/{p}/orders"),
        (leader, f"/api/v1/portfolios/{p}/positions"), (leader, f"/api/v1/portfolios/{p}/holdings"),
        (leader, f"/api/v1/portfolios/{p}/events"), (leader, f"/api/v1/portfolios/{p}/templates"),
        (leader, "/api/v1/templates"), (leader, f"/api/v1/portfolios/{p}/withdrawals"),
        (leader, f"/api/v1/portfolios/{p}/closed-trades?line=spot"), (follower, "/api/v1/favorites"),
        (follower, "/api/v1/subscriptions"), (follower, f"/api/v1/subscriptions/{s}/positions"),
        (follower, f"/api/v1/subscriptions/{s}/holdings"), (follower, f"/api/v1/subscriptions/{s}/executions"),
        (follower, f"/api/v1/subscriptions/{s}/orders"), (follower, "/api/v1/exchange-accounts"),
    ]  # fmt: skip
    for client, url in urls:
        response = client.get(url, {"limit": 1})
        assert response.status_code == 200, (url, response.content)
        body = response.json()
        assert set(body) == {"results", "next_cursor"}, url
        assert len(body["results"]) <= 1, url
    prices = api.get("/api/v1/market/prices", {"limit": 200}).json()["results"]
    assert {"symbol": ETH_PERP, "price": "3200.00000000"}.items() <= next(
        r for r in prices if r["symbol"] == ETH_PERP
    ).items()
    # The subscription list still carries each copy's risk view.
    listed = follower.get("/api/v1/subscriptions").json()["results"]
    assert [(r["id"], "risk" in r) for r in listed] == [(s, True)]
    subscription_pause(subscription=sub)
    assert follower.get("/api/v1/subscriptions").json()["results"][0]["status"] == "paused"


def test_a_page_reads_a_constant_number_of_queries(book, instruments):
    from django.test.utils import CaptureQueriesContext

    portfolio, client, url = book
    add_orders(portfolio, instruments[ETH_PERP], 3)
    with CaptureQueriesContext(connection) as small:
        client.get(url, {"limit": 200})
    add_orders(portfolio, instruments[ETH_PERP], 150)
    with CaptureQueriesContext(connection) as large:
        client.get(url, {"limit": 200})
    assert len(large.captured_queries) == len(small.captured_queries)


def test_graphql_catalog_still_pages_with_the_same_cursors(world, api):
    leaders = [world.leader() for _ in range(3)]
    stats_refresh(portfolio_ids=[p.pk for p in leaders])
    query = (
        "query($after: String) { catalog(first: 2, after: $after) "
        "{ edges { node { id } } pageInfo { hasNextPage endCursor } } }"
    )
    seen, after, first_end = [], None, None
    for _ in range(3):
        body = api.post("/graphql/", {"query": query, "variables": {"after": after}}, format="json").json()
        assert "errors" not in body, body
        data = body["data"]["catalog"]
        seen += [int(e["node"]["id"]) for e in data["edges"]]
        after = data["pageInfo"]["endCursor"]
        first_end = first_end or after
        if not data["pageInfo"]["hasNextPage"]:
            break
    assert sorted(seen) == sorted(p.pk for p in leaders)
    # A GraphQL cursor and a REST one are the same token.
    assert APIClient().get("/api/v1/catalog", {"limit": 2}).json()["next_cursor"] == first_end


def test_a_cursor_keeps_the_types_of_its_keys_and_is_deterministic():
    from datetime import UTC, datetime

    keys = (D("-12.50000000"), datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC), 7, "ETH")
    cursor = paging.encode_cursor("scores", keys)
    assert cursor == paging.encode_cursor("scores", keys)
    assert paging.decode_cursor(cursor, "scores", 4) == keys
    for scope, size in (("other", 4), ("scores", 3)):
        with pytest.raises(DomainError) as refused:
            paging.decode_cursor(cursor, scope, size)
        assert refused.value.code == "INVALID_CURSOR"
