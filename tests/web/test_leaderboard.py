"""The leaderboard at ``/``: the catalog's lists, filters, sorts and cursor
pages as the API serves them, the API's refusals above the list, the
favourite star through the favorites service, and a bounded query count."""

import re
from decimal import Decimal
from html import unescape

import pytest
from django.test import Client

from portfolios import stats
from portfolios.models import Favorite
from portfolios.services import portfolio_create
from tests.factories import UserFactory
from tests.portfolios.conftest import Shelf

pytestmark = pytest.mark.django_db

HTMX_BOARD = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "board"}
HTMX_ROWS = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "rows"}
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def shelf():
    return Shelf()


@pytest.fixture
def five(shelf):
    """Five public portfolios with distinct figures (tests/portfolios/test_catalog.py's)."""
    return {
        "Alpha": shelf.make("Alpha", mode="margin", score="0.9", roi="5", pnl="500", win_rate="60", followers=10,
                            min_investment="100", profit_share="10"),
        "Bravo": shelf.make("Bravo", mode="spot", score="0.5", roi="25", pnl="2500", win_rate="40", followers=3,
                            min_investment="1000", profit_share="20", max_followers=3),
        "Charlie": shelf.make("Charlie", mode="all", score="0.7", roi="-5", pnl="-500", win_rate="80", followers=50,
                              min_investment="0", profit_share="0"),
        "Delta": shelf.make("Delta", mode="margin", score="0.1", roi="15", pnl="100", win_rate="20", followers=0,
                            min_investment="50", profit_share="30"),
        "Echo": shelf.make("Echo", mode="spot", score="0.3", roi="0", pnl="0", win_rate="50", followers=7,
                           min_investment="500", profit_share="5", max_followers=7),
    }  # fmt: skip


def names(html: str) -> list[str]:
    return re.findall(r'<a class="name" href="/portfolios/\d+/">([^<]+)</a>', html)


def ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-portfolio-id="(\d+)"', html)]


def load_more(html: str) -> str | None:
    found = re.search(r'<a id="load-more"[^>]* href="([^"]+)"', html)
    return unescape(found.group(1)) if found else None


def row(html: str, pk: int) -> str:
    found = re.search(rf'<tr data-portfolio-id="{pk}">(.*?)</tr>', html, re.S)
    assert found, f"no row for {pk}"
    return found.group(1)


def get(client, **params):
    answer = client.get("/", params)
    return answer, answer.content.decode()


# --- the page -----------------------------------------------------------------------------


def test_anonymous_readers_see_the_catalog_with_its_figures_formatted(client, five):
    answer, html = get(client)
    assert answer.status_code == 200
    assert names(html) == ["Alpha", "Charlie", "Bravo", "Echo", "Delta"]  # -score, the API's default
    bravo = row(html, five["Bravo"].pk)
    assert f'href="/portfolios/{five["Bravo"].pk}/"' in bravo
    assert '<td data-label="ROI" class="num roi up">+25.00 %</td>' in bravo
    assert "40.00 %" in bravo and "3 / 3" in bravo and "full" in bravo
    assert f"by {five['Bravo'].leader.username}" in bravo
    charlie = row(html, five["Charlie"].pk)
    assert "num roi down" in charlie and "\u22125.00 %" in charlie  # a real minus sign
    assert "50 / 1,000" in charlie and "Margin and spot" in charlie
    assert 'class="spark' in charlie and "Equity of Charlie" in charlie
    # Anonymous: the star is a link to log in, not a button.
    assert 'class="favourite"' not in html and 'class="favourite-login"' in html
    assert "/login/?next=" in html
    # Every cell of the stacked table is labelled for a phone.
    assert all("data-label=" in td for td in re.findall(r"<td[^>]*>", html))
    assert '<select id="sort" name="sort"' in html and '<label for="sort">Sort by</label>' in html


def test_the_readers_zone_never_reaches_the_apis_cached_page(client, five):
    """The page reads the catalog's cached body with the reader's zone active:
    the body stays in UTC, so an anonymous API reader after a reader in Tokyo
    gets what the API always says (and learns nothing of that reader)."""
    from copytrading.live.models import LiveSettings

    record = LiveSettings.get_solo()
    record.catalog_cache_seconds = 60
    record.save()
    tokyo = Client()
    tokyo.cookies["tz"] = "Asia/Tokyo"
    assert tokyo.get("/", {"limit": 20}).status_code == 200  # fills the cache
    created = [item["created_at"] for item in Client().get("/api/v1/catalog", {"limit": 20}).json()["results"]]
    assert created and all(text.endswith("Z") for text in created), created


def test_a_portfolio_made_and_refreshed_through_the_services_is_listed(client):
    portfolio = portfolio_create(
        leader=UserFactory(),
        name="Real One",
        mode="margin",
        min_investment=Decimal("250"),
        profit_share_pct=Decimal("12"),
    )
    stats.stats_refresh(portfolio_ids=[portfolio.pk])
    _, html = get(client)
    assert names(html) == ["Real One"]
    assert "0 / " in row(html, portfolio.pk)


def test_the_sparkline_draws_the_lists_equity_curve(client, shelf):
    curve = [["2026-01-01", "1000"], ["2026-01-02", "1100"], ["2026-01-03", "1250.5"]]
    down = [["2026-01-01", "1000"], ["2026-01-02", "900"]]
    up = shelf.make("Up", mode="all", lines={"all": {"equity_curve": curve}, "spot": {"equity_curve": down}})
    html = row(get(client)[1], up.pk)
    assert 'class="spark up"' in html and "<polyline" in html
    assert 'class="spark down"' in row(get(client, list="spot")[1], up.pk)


# --- lists, filters, sorts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "tab", "expected"),
    [
        (None, "All", ["Alpha", "Charlie", "Bravo", "Echo", "Delta"]),
        ("margin", "Margin", ["Alpha", "Charlie", "Delta"]),
        ("spot", "Spot", ["Charlie", "Bravo", "Echo"]),
    ],
)
def test_tabs_are_the_catalogs_lists(client, five, listed, tab, expected):
    _, html = get(client, **({"list": listed} if listed else {}))
    assert names(html) == expected
    assert re.search(rf'<a href="[^"]*" aria-current="true">{tab}</a>', html)
    assert len(re.findall(r'aria-current="true"', html)) == 1


def test_tabs_keep_the_filters_and_the_sort(client, five):
    _, html = get(client, list="margin", roi_min="1", sort="-roi")
    tabs = {label: unescape(href) for href, label in re.findall(r'<li><a href="([^"]+)"[^>]*>(\w+)</a>', html)}
    assert tabs["All"] == "/?roi_min=1&sort=-roi"
    assert tabs["Spot"] == "/?roi_min=1&sort=-roi&list=spot"
    assert tabs["Favourites"] == "/?roi_min=1&sort=-roi&list=favorites"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"roi_min": "5"}, ["Alpha", "Bravo", "Delta"]),
        ({"roi_min": "-100", "win_rate_min": "50"}, ["Alpha", "Charlie", "Echo"]),
        ({"has_open_slots": "true"}, ["Alpha", "Charlie", "Delta"]),
        ({"min_investment_max": "100"}, ["Alpha", "Charlie", "Delta"]),
        ({"profit_share_max": "10"}, ["Alpha", "Charlie", "Echo"]),
        ({"roi_min": "", "win_rate_min": "", "has_open_slots": "true", "sort": "-roi"}, ["Delta", "Alpha", "Charlie"]),
        ({"list": "spot", "roi_min": "0", "sort": "newest"}, ["Echo", "Bravo"]),
        ({"mode": "margin"}, ["Alpha", "Delta"]),  # any of the API's filters works from the address
    ],
)
def test_filters_are_the_apis(client, five, params, expected):
    answer, html = get(client, **params)
    assert answer.status_code == 200
    assert names(html) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-roi", ["Bravo", "Delta", "Alpha", "Echo", "Charlie"]),
        ("roi", ["Charlie", "Echo", "Alpha", "Delta", "Bravo"]),
        ("-pnl", ["Bravo", "Alpha", "Delta", "Echo", "Charlie"]),
        ("-followers", ["Charlie", "Alpha", "Echo", "Bravo", "Delta"]),
        ("-win_rate", ["Charlie", "Alpha", "Echo", "Bravo", "Delta"]),
        ("newest", ["Echo", "Delta", "Charlie", "Bravo", "Alpha"]),
        ("-roi,-pnl", ["Bravo", "Delta", "Alpha", "Echo", "Charlie"]),  # several keys, as the API takes them
    ],
)
def test_sorts_are_the_apis(client, five, sort, expected):
    _, html = get(client, sort=sort)
    assert names(html) == expected
    assert re.search(rf'<option value="{re.escape(sort)}" selected>', html)


def test_the_form_shows_what_the_address_asked(client, five):
    _, html = get(client, list="spot", roi_min="2.5", has_open_slots="true")
    assert 'name="roi_min" inputmode="decimal" value="2.5"' in html
    assert 'name="has_open_slots" value="true" checked' in html
    assert '<input type="hidden" name="list" value="spot">' in html


# --- paging ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["-score", "roi", "newest"])
def test_load_more_walks_every_page_without_duplicates_or_gaps(client, shelf, sort):
    made = [shelf.make(f"P{i:02d}", score=f"0.{i % 7}", roi=str(i % 5)).pk for i in range(47)]
    api = client.get("/api/v1/catalog", {"sort": sort, "limit": 100}).json()
    expected = [item["id"] for item in api["results"]]
    assert sorted(expected) == sorted(made)
    _, html = get(client, sort=sort)
    seen = ids(html)
    assert len(seen) == 20
    pages = 1
    url = load_more(html)
    while url:
        answer = client.get(url, **HTMX_ROWS)
        assert answer.status_code == 200
        fragment = answer.content.decode()
        assert "<html" not in fragment and "<tr data-portfolio-id" in fragment
        seen += ids(fragment)
        pages += 1
        url = load_more(fragment)
        if url:
            assert 'id="more" hx-swap-oob="true"' in fragment
    assert seen == expected  # the API's order, every row once
    assert pages == 3


def test_load_more_without_javascript_is_the_next_page(client, shelf):
    for i in range(25):
        shelf.make(f"Q{i:02d}", score=f"0.{i:02d}")
    _, first = get(client)
    url = load_more(first)
    assert url and "cursor=" in url
    answer = client.get(url)
    assert answer.status_code == 200 and "<html" in answer.content.decode()
    assert len(ids(answer.content.decode())) == 5
    assert set(ids(answer.content.decode())).isdisjoint(ids(first))
    assert load_more(answer.content.decode()) is None


def test_a_filter_change_answers_the_board_for_htmx(client, five):
    answer = client.get("/", {"roi_min": "5"}, **HTMX_BOARD)
    html = answer.content.decode()
    assert answer.status_code == 200
    assert "<html" not in html and '<section id="board"' in html
    assert '<nav id="tabs" aria-label="Lists" hx-swap-oob="true">' in html  # the tabs follow the filters
    assert names(html) == ["Alpha", "Bravo", "Delta"]
    assert "HX-Request" in answer["Vary"]


# --- bad filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"roi_min": "abc"}, "roi_min", "roi_min must be a number."),
        ({"win_rate_min": "1,5"}, "win_rate_min", "win_rate_min must be a number."),
        ({"sort": "cheapest"}, "sort", "sort keys are"),
        ({"list": "secret"}, "list", "list is one of"),
        ({"has_open_slots": "maybe"}, "has_open_slots", "has_open_slots is true or false."),
        ({"limit": "5000"}, "limit", "limit is a whole number"),
        ({"cursor": "not-a-cursor"}, "cursor", ""),
    ],
)
def test_bad_filters_are_refused_with_the_apis_message_above_the_list(client, five, params, field, message):
    api = client.get("/api/v1/catalog", params)
    answer, html = get(client, **params)
    assert answer.status_code == api.status_code == 400
    errors = re.search(rf'<ul class="field-errors" id="errors-{field}"[^>]*>(.*?)</ul>', html, re.S)
    assert errors and message in unescape(errors.group(1))
    assert api.json()["detail"] in unescape(errors.group(1))  # the API's own sentence
    assert html.index('id="filter-errors"') < html.index('id="more"')
    assert names(html) == []
    htmx = client.get("/", params, **HTMX_BOARD)
    assert htmx.status_code == 400 and f'id="errors-{field}"' in htmx.content.decode()


def test_the_field_of_a_bad_filter_is_marked_invalid(client, five):
    _, html = get(client, roi_min="x")
    assert '<p class="filter-name">ROI at least</p>' in html
    assert re.search(r'id="id_roi_min"[^>]*aria-describedby="errors-roi_min" aria-invalid="true"', html)
    assert not re.search(r'id="id_win_rate_min"[^>]*aria-invalid', html)


def test_huge_bounds_are_numbers_not_errors(client, five):
    assert get(client, roi_min="1e999999")[0].status_code == 200
    assert names(get(client, roi_min="-1e999999")[1]) == ["Alpha", "Charlie", "Bravo", "Echo", "Delta"]


# --- favourites --------------------------------------------------------------------------------


def test_the_favourites_tab_asks_an_anonymous_reader_to_log_in(client, five):
    answer, html = get(client, list="favorites")
    assert answer.status_code == 200
    assert 'id="favourites-login"' in html and "/login/?next=/%3Flist%3Dfavorites" in html
    assert names(html) == []


def test_the_favourites_tab_lists_the_readers_marks(client, five):
    reader = UserFactory()
    Favorite.objects.create(user=UserFactory(), portfolio=five["Alpha"])  # someone else's
    client.force_login(reader)
    _, html = get(client, list="favorites")
    assert names(html) == [] and 'id="empty"' in html
    for name in ("Echo", "Charlie"):
        assert client.post(f"/favourites/{five[name].pk}/", {"is_favorite": "true"}).status_code == 302
    _, html = get(client, list="favorites")
    assert names(html) == ["Charlie", "Echo"]
    assert html.count('aria-pressed="true"') == 2
    _, html = get(client)
    assert f'id="favourite-{five["Echo"].pk}" aria-pressed="true"' in html
    assert f'id="favourite-{five["Alpha"].pk}" aria-pressed="false"' in html


def test_the_star_toggles_through_the_favorites_service(client, five):
    reader = UserFactory()
    client.force_login(reader)
    pk = five["Bravo"].pk
    answer = client.post(f"/favourites/{pk}/", {"is_favorite": "true"}, **HTMX)
    assert answer.status_code == 200
    assert f'id="favourite-{pk}" aria-pressed="true"' in answer.content.decode()
    assert 'name="is_favorite" value="false"' in answer.content.decode()  # the next press unmarks
    # A double submit leaves one mark (the service is idempotent, like PUT favorites/{id}).
    assert client.post(f"/favourites/{pk}/", {"is_favorite": "true"}, **HTMX).status_code == 200
    assert Favorite.objects.filter(user=reader, portfolio_id=pk).count() == 1
    assert client.get("/api/v1/favorites").json()["results"][0]["id"] == pk
    answer = client.post(f"/favourites/{pk}/", {"is_favorite": "false"}, **HTMX)
    assert answer.status_code == 200 and 'aria-pressed="false"' in answer.content.decode()
    assert not Favorite.objects.filter(user=reader).exists()
    assert client.post(f"/favourites/{pk}/", {"is_favorite": "false"}, **HTMX).status_code == 200


def test_the_star_without_javascript_goes_back_to_the_list(client, five):
    client.force_login(UserFactory())
    pk = five["Alpha"].pk
    answer = client.post(f"/favourites/{pk}/", {"is_favorite": "true", "next": "/?list=margin"})
    assert answer.status_code == 302 and answer["Location"] == "/?list=margin"
    answer = client.post(f"/favourites/{pk}/", {"is_favorite": "false", "next": "https://evil.example/"})
    assert answer["Location"] == "/"


def test_a_private_or_unknown_portfolio_cannot_be_marked(client, shelf):
    hidden = shelf.make("Hidden", is_public=False)  # another leader's private portfolio
    reader = UserFactory()
    client.force_login(reader)
    for pk in (hidden.pk, hidden.pk + 1000):
        assert client.post(f"/favourites/{pk}/", {"is_favorite": "true"}).status_code == 404
        assert client.post(f"/favourites/{pk}/", {"is_favorite": "true"}, **HTMX).status_code == 404
        assert client.post(f"/favourites/{pk}/", {"is_favorite": "false"}).status_code == 404
    assert not Favorite.objects.exists()


def test_a_bad_star_value_is_refused(client, five):
    client.force_login(UserFactory())
    answer = client.post(f"/favourites/{five['Alpha'].pk}/", {"is_favorite": "sometimes"}, **HTMX)
    assert answer.status_code == 400 and 'id="errors-is_favorite"' in answer.content.decode()
    assert 'aria-pressed="false"' in answer.content.decode()
    assert not Favorite.objects.exists()


def test_the_star_needs_a_login_a_post_and_the_csrf_token(client, five):
    pk = five["Alpha"].pk
    answer = client.post(f"/favourites/{pk}/", {"is_favorite": "true"})
    assert answer.status_code == 302 and answer["Location"].startswith(f"/login/?next=/favourites/{pk}/")
    reader = UserFactory()
    client.force_login(reader)
    assert client.get(f"/favourites/{pk}/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(reader)
    assert strict.post(f"/favourites/{pk}/", {"is_favorite": "true"}).status_code == 403
    assert not Favorite.objects.exists()


def test_the_leaderboard_is_read_only(client, five):
    assert client.post("/", {"roi_min": "1"}).status_code == 405


# --- cost ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 20])
def test_the_query_count_does_not_grow_with_the_rows(client, shelf, django_assert_max_num_queries, count):
    reader = UserFactory()
    made = [shelf.make(f"R{i:02d}", score=f"0.{i:02d}") for i in range(count + 5)]
    for portfolio in made[::2]:
        Favorite.objects.create(user=reader, portfolio=portfolio)
    client.force_login(reader)
    get(client)  # the live settings and the session warm up once
    # session, user, the page, its favourites, the curves, the unread badge (+ SQLite's savepoints)
    with django_assert_max_num_queries(8):
        _, html = get(client)
    assert len(ids(html)) == min(20, count + 5)
    with django_assert_max_num_queries(8):
        _, html = get(client, list="favorites")
    assert len(ids(html)) == min(20, len(made[::2]))


def test_the_sparklines_are_the_last_days_of_each_curve_read_at_once(shelf, django_assert_num_queries):
    curve = [[f"2026-01-{d:02d}", str(1000 + d)] for d in range(1, 31)]
    made = [shelf.make(f"S{i}", lines={"margin": {"equity_curve": curve}}) for i in range(3)]
    with django_assert_num_queries(1):
        curves = stats.equity_curves(portfolio_ids=[p.pk for p in made], line="margin", points=5)
    assert curves == {p.pk: [Decimal(v) for v in ("1026", "1027", "1028", "1029", "1030")] for p in made}
    with django_assert_num_queries(0):
        assert stats.equity_curves(portfolio_ids=[], line="margin") == {}
