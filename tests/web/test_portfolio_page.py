"""A portfolio's page: the figures GET catalog/<id> gives, for a portfolio
with real trades (the scenario of tests/portfolios/test_stats.py), its charts,
closed trades and instruments; who may see a private one; a closed one; the
drawdown series the chart draws."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from copytrading.models import Position
from portfolios.lifecycle import portfolio_close
from portfolios.models import Portfolio, PortfolioStats
from portfolios.performance import drawdown_series, max_drawdown_pct
from portfolios.services import portfolio_create
from portfolios.stats import stats_refresh
from portfolios.web.portfolio_page import drawdown_points, within
from tests.copytrading.world import BTC_PERP, ETH_PERP, World
from tests.factories import UserFactory

D = Decimal
DAY1 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
DAY3 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def scenario(settings, instruments, django_capture_on_commit_callbacks):
    """A leader (mode "all", 20,000) and one follower (5,000): +100 on ETH,
    -100 on BTC, then +50 on a spot BTC sell (exact figures in test_stats)."""
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


def html_of(answer) -> str:
    assert answer.status_code == 200, answer.status_code
    return answer.content.decode()


# --- the page's figures are the API's ----------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_what_the_catalog_api_gives(client, scenario):
    portfolio, _, _ = scenario
    api = APIClient().get(f"/api/v1/catalog/{portfolio.pk}").json()
    everything = api["stats"]["lines"]["all"]
    assert (everything["roi_pct"], everything["pnl"], everything["win_rate_pct"]) == ("0.25", "50.00000000", "66.67")

    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    assert f"<h1>{api['name']}</h1>".replace("'", "&#x27;") in html
    assert 'id="stat-roi" class="roi up">+0.25 %<' in html
    assert 'id="stat-pnl" class="pnl up">+50.00 USDT<' in html
    assert 'id="stat-win-rate" class="win-rate">66.67 %<' in html
    assert 'id="stat-drawdown" class="drawdown">0.50 %<' in html
    assert 'id="stat-trades" class="trades">6<' in html
    assert 'id="followers-count" class="followers">1<' in html
    assert ">999 of 1000<" in html  # the leader's cap, less the one follower
    assert "0.00 % · Per trade" in html  # profit share and fee model
    # The average follower: +25 on 5,000 (test_stats has the arithmetic).
    assert api["stats"]["average_follower"]["pnl"] == "25.00000000"
    assert 'id="average-pnl" class="up">+25.00 USDT<' in html
    assert 'id="average-roi" class="up">+0.50 %<' in html
    # Three lines for an "all" portfolio, the "all" line first.
    assert 'href="?line=all" aria-current="true"' in html and 'href="?line=spot"' in html


@pytest.mark.django_db
def test_a_line_tab_shows_that_line(client, scenario):
    portfolio, _, _ = scenario
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/", {"line": "margin"}))
    assert 'href="?line=margin" aria-current="true"' in html
    assert 'id="stat-pnl" class="pnl flat">0.00 USDT<' in html
    assert 'id="stat-win-rate" class="win-rate">50.00 %<' in html
    # An unknown line is the portfolio's own, not an error.
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/", {"line": "bogus"}))
    assert 'href="?line=all" aria-current="true"' in html


@pytest.mark.django_db
def test_charts_instruments_and_closed_trades(client, scenario):
    portfolio, _, (eth, btc) = scenario
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    equity = html.split('id="equity-chart"')[1].split("</section>")[0]
    drawdown = html.split('id="drawdown-chart"')[1].split("</section>")[0]
    assert 'class="chart' in equity and "polyline" in equity and "2026-03-02" in equity
    assert 'class="chart' in drawdown and "(%)" in drawdown
    # Instruments of the closed trades (both lines).
    instruments = html.split('id="instruments"')[1].split("</section>")[0]
    assert "<li>BTC/USDT</li>" in instruments and "<li>ETH/USDT:USDT</li>" in instruments
    assert "<li>BTC/USDT:USDT</li>" in instruments
    # The closed trades, newest first, as the closed-trades API lists them.
    api = APIClient()
    margin = api.get(f"/api/v1/catalog/{portfolio.pk}/closed-trades", {"line": "margin"}).json()["results"]
    spot = api.get(f"/api/v1/catalog/{portfolio.pk}/closed-trades", {"line": "spot"}).json()["results"]
    assert [t["id"] for t in margin] == [btc.pk, eth.pk]
    ids = [int(part.split('"')[0]) for part in html.split('data-trade-id="')[1:]]
    assert ids == [spot[0]["id"], btc.pk, eth.pk]
    assert 'data-label="Result" class="num pnl down">\N{MINUS SIGN}100.00 USDT<' in html
    assert 'data-label="Result" class="num pnl up">+50.00 USDT<' in html
    # Every cell carries its label (the table stacks on a phone).
    table = html.split("<tbody>")[1].split("</tbody>")[0]
    assert table.count("<td ") == table.count("<td data-label=")


@pytest.mark.django_db
def test_a_period_shows_the_last_days_of_the_charts(client, scenario):
    portfolio, _, _ = scenario
    with time_machine.travel(datetime(2026, 3, 5, 12, 0, tzinfo=UTC), tick=False):
        html = html_of(client.get(f"/portfolios/{portfolio.pk}/", {"days": "7", "line": "margin"}))
        assert 'href="?line=margin&amp;days=7" aria-current="true">7 days<' in html
        # The margin line's two days are inside the week: both drawn.
        equity = html.split('id="equity-chart"')[1].split("</section>")[0]
        assert ">2026-03-02</text>" in equity and ">2026-03-03</text>" in equity
        html = html_of(client.get(f"/portfolios/{portfolio.pk}/", {"days": "nope"}))
        assert f'href="/portfolios/{portfolio.pk}/?line=all" aria-current="true">All time<' in html
    # Months later, a quiet week is a flat line at the last equity, not an empty chart.
    with time_machine.travel(datetime(2026, 6, 1, 12, 0, tzinfo=UTC), tick=False):
        html = html_of(client.get(f"/portfolios/{portfolio.pk}/", {"days": "7", "line": "margin"}))
    equity = html.split('id="equity-chart"')[1].split("</section>")[0]
    assert ">2026-05-26</text>" in equity and "no data yet" not in equity


def test_within_starts_a_period_at_the_equity_it_had():
    points = [("2026-03-01", D("100")), ("2026-03-05", D("90")), ("2026-03-09", D("120"))]
    assert within(points, date(2026, 3, 4)) == [("2026-03-04", D("100")), ("2026-03-05", D("90")), points[2]]
    assert within(points, date(2026, 3, 5)) == points[1:]
    assert within(points, date(2026, 3, 10)) == [("2026-03-10", D("120"))]
    assert within(points, date(2026, 2, 1)) == points
    assert within([], date(2026, 3, 1)) == []


@pytest.mark.django_db
def test_the_page_reads_a_bounded_number_of_queries(client, scenario, django_assert_max_num_queries):
    portfolio, _, _ = scenario
    client.force_login(UserFactory())
    # 26 on SQLite, whatever the number of trades: the reads are set-based.
    with django_assert_max_num_queries(27):
        html_of(client.get(f"/portfolios/{portfolio.pk}/"))


@pytest.mark.django_db
def test_a_portfolio_without_figures_yet(client):
    portfolio = portfolio_create(leader=UserFactory(), name="Fresh", mode="margin")
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    assert 'id="stat-trades" class="trades">0<' in html and ">1000 of 1000<" in html
    PortfolioStats.objects.filter(portfolio=portfolio).delete()  # before its first refresh
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    assert "<h1>Fresh</h1>" in html and "No figures yet" in html
    assert "Equity of Fresh: no data yet" in html and "No closed trade yet." in html
    assert 'id="followers-count"' in html
    assert "?line=" not in html  # a margin portfolio has one line


# --- the Copy button -------------------------------------------------------------


@pytest.mark.django_db
def test_copy_opens_the_dialog_loaded_from_the_copy_route(client):
    portfolio = portfolio_create(leader=UserFactory(), name="Open", mode="margin")
    client.force_login(UserFactory())
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    button = html.split('id="copy-button"')[1].split(">")[0]
    assert 'data-open="copy-dialog"' in button
    assert f'hx-get="/portfolios/{portfolio.pk}/copy/"' in button
    assert 'hx-target="#copy-dialog-body"' in button
    assert '<dialog id="copy-dialog"' in html and 'id="copy-dialog-body"' in html
    assert client.get(f"/portfolios/{portfolio.pk}/copy/").status_code == 200


@pytest.mark.django_db
def test_anonymous_readers_see_the_page_and_copy_sends_them_to_log_in(client):
    portfolio = portfolio_create(leader=UserFactory(), name="Open", mode="margin")
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    form = html.split('action="/login/"')[1].split("</form>")[0]
    assert f'name="next" value="/portfolios/{portfolio.pk}/"' in form
    assert 'type="submit" id="copy-button">Copy<' in form
    assert "<dialog" not in html


@pytest.mark.django_db
def test_a_closed_portfolio_says_so_and_has_no_copy_button(client, django_capture_on_commit_callbacks):
    leader = UserFactory()
    portfolio = portfolio_create(leader=leader, name="Done", mode="margin")
    with django_capture_on_commit_callbacks(execute=True):
        portfolio_close(portfolio=portfolio, actor=leader)
    assert Portfolio.objects.get(pk=portfolio.pk).status != "active"
    client.force_login(UserFactory())
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    assert "<h1>Done</h1>" in html and 'id="portfolio-closed"' in html
    assert "copy-button" not in html and "<dialog" not in html


@pytest.mark.django_db
def test_the_leader_gets_a_link_to_the_desk_not_a_copy_button(client):
    leader = UserFactory()
    portfolio = portfolio_create(leader=leader, name="Mine", mode="margin")
    client.force_login(leader)
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    assert f'href="/me/portfolios/{portfolio.pk}/"' in html and "copy-button" not in html


# --- who sees what ---------------------------------------------------------------


@pytest.fixture
def private(db):
    leader = UserFactory()
    portfolio = portfolio_create(
        leader=leader,
        name="Secret sauce",
        description="Hidden edge",
        mode="margin",
        is_public=False,
        passcode="12345678",
    )
    return leader, portfolio


@pytest.mark.django_db
def test_a_private_portfolio_hides_what_the_api_hides(client, private):
    _, portfolio = private
    assert APIClient().get(f"/api/v1/catalog/{portfolio.pk}").status_code == 404
    # Anonymous: the API says nothing, neither does the page.
    assert client.get(f"/portfolios/{portfolio.pk}/").status_code == 404
    # Signed in: only that it can be copied with a passcode.
    client.force_login(UserFactory())
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    assert "<h1>A private portfolio</h1>" in html and "passcode" in html
    assert "Secret sauce" not in html and "Hidden edge" not in html and 'id="stats"' not in html
    assert f'hx-get="/portfolios/{portfolio.pk}/copy/"' in html and '<dialog id="copy-dialog"' in html


@pytest.mark.django_db
def test_its_leader_sees_a_private_portfolio_in_full(client, private):
    leader, portfolio = private
    client.force_login(leader)
    html = html_of(client.get(f"/portfolios/{portfolio.pk}/"))
    assert "<h1>Secret sauce</h1>" in html and 'id="stats"' in html and "Private" in html


@pytest.mark.django_db
def test_an_unknown_portfolio_is_the_404_page(client):
    assert client.get("/portfolios/999999/").status_code == 404
    client.force_login(UserFactory())
    assert client.get("/portfolios/999999/").status_code == 404


@pytest.mark.django_db
def test_the_page_is_read_only(client):
    portfolio = portfolio_create(leader=UserFactory(), name="Open", mode="margin")
    client.force_login(UserFactory())
    assert client.post(f"/portfolios/{portfolio.pk}/").status_code == 405


# --- the drawdown series ----------------------------------------------------------


def test_drawdown_series_falls_from_the_running_peak():
    assert drawdown_series([D("100"), D("120"), D("90"), D("120"), D("130")]) == [
        D("0.00"),
        D("0.00"),
        D("-25.00"),
        D("0.00"),
        D("0.00"),
    ]
    assert drawdown_series([]) == []
    assert drawdown_series([D("0"), D("0")]) == [D("0.00"), D("0.00")]
    assert str(drawdown_series([D("5"), D("5")])[1]) == "0.00"  # never "-0.00"
    assert drawdown_points([("2026-03-02", D("20100")), ("2026-03-03", D("20000"))]) == [
        ("2026-03-02", D("0.00")),
        ("2026-03-03", D("-0.50")),
    ]


CENTS = st.integers(min_value=0, max_value=10**11).map(lambda n: D(n).scaleb(-2))


@given(st.lists(CENTS, max_size=40))
def test_the_deepest_point_is_the_max_drawdown(equities):
    series = drawdown_series(equities)
    assert len(series) == len(equities)
    assert all(point <= 0 for point in series)
    assert -min(series, default=D("0.00")) == max_drawdown_pct(equities)
