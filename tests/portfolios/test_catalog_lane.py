"""The catalog's fast paths answer what the slow ones answer, byte for byte:
the hand-written page statement against the ORM's queryset, and the web
process's short lane (config/catalog_lane.py) against Django's full chain
(status, headers, body and the request metrics)."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.db import OperationalError, connection, connections
from prometheus_client import REGISTRY

from config.catalog_lane import CatalogLane
from config.sync_handler import SyncChainASGIHandler
from portfolios import catalog
from tests.factories import UserFactory, token_for

pytestmark = pytest.mark.django_db(transaction=True)

QUERIES = [
    "",
    "list=margin&sort=-roi",
    "list=spot&roi_min=0&sort=-pnl,-score",
    "has_open_slots=true&sort=-followers,-score",
    "has_open_slots=false",
    "min_investment_max=100&profit_share_max=20&sort=newest",
    "mode=margin,all&followers_min=1&sort=score",
    "win_rate_min=40&score_min=0.3&sort=-win_rate",
    "sort=created_at,-roi&pnl_max=1000",
]


@pytest.fixture
def shelf_full(shelf):
    """Ties on every key (the keyset's equal branches), every mode, a private one."""
    for n in range(12):
        shelf.make(
            f"P{n:02}",
            mode=("margin", "spot", "all")[n % 3],
            score=("0.9", "0.5", "0.5", "0.1")[n % 4],
            roi=("5", "-5", "5")[n % 3],
            pnl=("500", "0", "-20.5")[n % 3],
            win_rate=("60", "40")[n % 2],
            followers=n % 4,
            max_followers=(1000, 2)[n % 2],
            min_investment=("0", "100", "1000")[n % 3],
            profit_share=("0", "20", "30")[n % 3],
        )
    shelf.make("Private", is_public=False, score="0.99")


def every_page(query_string: str) -> list[catalog.CatalogQuery]:
    """The query's pages of 3 rows, through the cursors the API gives out."""
    from django.http import QueryDict

    params = QueryDict(query_string + "&limit=3", mutable=True)
    queries = []
    while True:
        query = catalog.catalog_query(params)
        queries.append(query)
        page = catalog.catalog_page(query, values=True)
        if page.next_cursor is None:
            return queries
        params["cursor"] = page.next_cursor


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the hand-written statement is PostgreSQL's")
@pytest.mark.parametrize("query_string", QUERIES)
def test_the_page_statement_reads_what_the_orm_reads(shelf_full, query_string):
    for query in every_page(query_string):
        orm = list(catalog._filtered_rows(query).values(*catalog.PAGE_FIELDS)[: query.limit + 1])
        rows = catalog._page_rows(query, None)
        assert rows == orm
        assert [[type(v) for v in r.values()] for r in rows] == [[type(v) for v in r.values()] for r in orm]
    assert len(every_page(query_string)) > 1 or query_string  # the default list spans pages


class Counting:
    def __init__(self, app):
        self.app, self.calls = app, 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        return await self.app(scope, receive, send)


@pytest.fixture
def web_connections(monkeypatch):
    """As in the web process (a pool): a request's connection is released when it
    finishes, not kept by a thread the test then leaves behind."""
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


@pytest.fixture
def apps(web_connections):
    django = Counting(SyncChainASGIHandler())
    return django, CatalogLane(django, workers=2)


def get(app, path: str, headers=(), method="GET", body=b"") -> dict:
    async def call():
        sent = [(b"host", b"testserver"), (b"x-request-id", b"req-1"), *headers]
        communicator = HttpCommunicator(app, method, path, body=body, headers=sent)
        return await communicator.get_response(timeout=10)

    return async_to_sync(call)()


ANSWERED = [
    *[(f"/api/v1/catalog?{q}", ()) for q in QUERIES],
    ("/api/v1/catalog?limit=2&sort=newest", ((b"accept", b"*/*"),)),
    ("/api/v1/catalog?limit=2", ((b"accept", b"application/json"),)),
]


@pytest.mark.parametrize(("path", "headers"), ANSWERED)
def test_the_lane_answers_what_django_answers(apps, shelf_full, path, headers):
    django, lane = apps
    expected = get(django, path, headers)
    assert expected["status"] == 200
    answered = get(lane, path, headers)
    assert django.calls == 1  # the lane answered the second one itself
    assert answered == expected  # status, every header in its order, the body


def test_a_second_page_through_the_lane(apps, shelf_full):
    django, lane = apps
    first = get(lane, "/api/v1/catalog?limit=2&sort=-followers,-score")
    cursor = __import__("json").loads(first["body"])["next_cursor"]
    path = f"/api/v1/catalog?limit=2&sort=-followers,-score&cursor={cursor}"
    assert get(lane, path) == get(django, path)
    assert django.calls == 1


@pytest.mark.parametrize(
    ("path", "headers", "method"),
    [
        ("/api/v1/catalog?sort=bogus", (), "GET"),  # the view's 400
        ("/api/v1/catalog?limit=0", (), "GET"),
        ("/api/v1/catalog?list=favorites", (), "GET"),  # 401: signed in only
        ("/api/v1/catalog?format=json", (), "GET"),
        ("/api/v1/catalog", ((b"accept", b"text/html"),), "GET"),  # the browsable API
        ("/api/v1/catalog", ((b"accept", b"application/json; indent=2"),), "GET"),
        ("/api/v1/catalog", ((b"cookie", b"sessionid=nope"),), "GET"),
        ("/api/v1/catalog", ((b"cookie", b"csrftoken=abc"),), "GET"),  # Django replaces a malformed one
        ("/api/v1/catalog", ((b"authorization", b"Token nope"),), "GET"),
        ("/api/v1/catalog", (), "HEAD"),
        ("/api/v1/catalog", (), "OPTIONS"),
        ("/api/v1/catalog/1", (), "GET"),
    ],
)
def test_everything_else_is_django_s(apps, shelf_full, path, headers, method):
    django, lane = apps
    answered = get(lane, path, headers, method)
    assert django.calls == 1
    expected = get(django, path, headers, method)
    # The browsable page and a new CSRF cookie differ from one request to the next.
    assert (answered["status"], answered["headers"][0]) == (expected["status"], expected["headers"][0])


def test_a_host_not_allowed_is_django_s_400(apps, shelf_full):
    django, lane = apps
    answered = get(lane, "/api/v1/catalog", ((b"host", b"evil.example"),))
    assert (answered["status"], django.calls) == (400, 1)


def test_a_signed_in_reader_gets_favorites_from_django(apps, shelf_full):
    django, lane = apps
    user = UserFactory()
    answered = get(lane, "/api/v1/catalog", ((b"authorization", f"Token {token_for(user)}".encode()),))
    assert (answered["status"], django.calls) == (200, 1)


def test_a_failure_in_the_lane_is_answered_by_django(apps, shelf_full, monkeypatch):
    django, lane = apps

    def broken(*args, **kwargs):
        raise RuntimeError("the lane broke")

    monkeypatch.setattr("config.catalog_lane.cached_catalog_body", broken)
    answered = get(lane, "/api/v1/catalog")
    assert (answered["status"], django.calls) == (200, 1)


def test_an_outage_is_the_apis_503_and_the_query_is_not_run_again_through_django(apps, shelf_full, monkeypatch):
    django, lane = apps

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("config.catalog_lane.cached_catalog_body", down)
    answered = get(lane, "/api/v1/catalog")
    headers = {name.lower(): value for name, value in answered["headers"]}
    assert (answered["status"], django.calls) == (503, 0)
    assert json.loads(answered["body"])["code"] == "SERVICE_UNAVAILABLE"
    assert headers[b"retry-after"] and headers[b"x-content-type-options"] == b"nosniff"


def request_counts() -> dict:
    """django-prometheus's request and response counters (not the latencies)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in REGISTRY.collect()
        if family.name.startswith("django_http_")
        for sample in family.samples
        if sample.name.endswith(("_total", "_count"))
    }


def moved(before: dict, after: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def test_the_lane_counts_a_request_as_django_does(apps, shelf_full):
    django, lane = apps
    path = "/api/v1/catalog?sort=newest"
    start = request_counts()
    get(django, path)
    middle = request_counts()
    get(lane, path)
    end = request_counts()
    assert django.calls == 1
    assert moved(middle, end) == moved(start, middle) != {}


def test_request_threads_are_reused(web_connections):
    handler = SyncChainASGIHandler()
    for _ in range(3):
        assert get(handler, "/healthz/no-such-page")["status"] == 404
    assert len(handler._idle) == 1
