"""The score (SPEC.md §7): each component, a hand-computed example of three
portfolios, the 30-day rule, and the ranking run with its history."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from portfolios import ranking
from portfolios.models import PortfolioScore, PortfolioStats
from portfolios.ranking import RankingInput, score_portfolios
from portfolios.scoring import ranking_run
from portfolios.stats import stats_refresh
from tests.copytrading.world import ETH_PERP, World

D = Decimal


def item(pid, *, trades=1, closed=0, wins=0, pnl="0", capital="10000", daily=("0",), followers=0, in_profit=0):
    return RankingInput(
        portfolio_id=pid,
        trades=trades,
        closed=closed,
        wins=wins,
        pnl=D(pnl),
        capital=D(capital),
        daily_pnl=[D(x) for x in daily],
        followers=followers,
        followers_in_profit=in_profit,
    )


# --- the components ------------------------------------------------------------------


def test_win_rate_and_follower_health_are_shares():
    assert ranking.ratio(3, 4) == 0.75
    assert ranking.ratio(0, 0) == 0.0  # nothing closed / nobody following: no credit


def test_profitability_is_roi_min_max_normalized():
    assert ranking.roi(D("1000"), D("10000")) == 0.1
    assert ranking.roi(D("5"), D("0")) == 0.0
    assert ranking.min_max(0.04, -0.02, 0.1) == pytest.approx(0.5)
    assert ranking.min_max(-0.5, -0.02, 0.1) == 0.0
    # Every ranked portfolio equal: full marks if positive, none otherwise.
    assert ranking.min_max(0.1, 0.1, 0.1) == 1.0
    assert ranking.min_max(-0.1, -0.1, -0.1) == 0.0


def test_consistency_is_the_sharpe_of_daily_returns():
    assert ranking.sharpe([D("600"), D("400")], D("10000")) == pytest.approx(5.0)
    assert ranking.sharpe([D("-200"), D("0")], D("10000")) == pytest.approx(-1.0)
    assert ranking.sharpe([D("100"), D("100")], D("10000")) == 0.0  # flat: no deviation, no Sharpe
    assert ranking.sharpe([D("100")], D("10000")) == 0.0
    assert ranking.sharpe([D("100"), D("0")], D("0")) == 0.0


def test_activity_and_popularity_are_log_shares_of_the_most():
    assert ranking.log_share(10, 10) == 1.0
    assert ranking.log_share(0, 10) == 0.0
    assert ranking.log_share(1, 10) == pytest.approx(0.289065, abs=1e-6)
    assert ranking.log_share(3, 0) == 0.0


def test_the_weights_are_the_specs():
    assert {
        "win_rate": D("0.25"),
        "follower_health": D("0.25"),
        "profitability": D("0.20"),
        "consistency": D("0.20"),
        "activity": D("0.05"),
        "popularity": D("0.05"),
    } == ranking.WEIGHTS
    assert sum(ranking.WEIGHTS.values()) == 1


# --- a hand-computed example ----------------------------------------------------------


THREE = [
    # A: 10 trades, 3 of 4 closed won, +1000 on 10000 (days +600, +400), 3 of 4 followers in profit.
    item(1, trades=10, closed=4, wins=3, pnl="1000", daily=("600", "400"), followers=4, in_profit=3),
    # B: 1 trade, lost: -200 on 10000 (days -200, 0), no followers.
    item(2, trades=1, closed=1, wins=0, pnl="-200", daily=("-200", "0")),
    # C: 4 trades, 2 of 2 won, +500 on 5000 (days +500, 0), its one follower in profit.
    item(3, trades=4, closed=2, wins=2, pnl="500", capital="5000", daily=("500", "0"), followers=1, in_profit=1),
]


def test_three_portfolios_by_hand():
    # ROI: A 0.10, B -0.02, C 0.10 -> profitability 1, 0, 1.
    # Sharpe: A 0.05/0.01 = 5, B -0.01/0.01 = -1, C 0.05/0.05 = 1 -> consistency 1, 0, 2/6.
    # Activity (most 10): 1, ln2/ln11 = 0.289065, ln5/ln11 = 0.671188.
    # Popularity (most 4): 1, 0, ln2/ln5 = 0.430677.
    a, b, c = score_portfolios(THREE)
    assert (a.win_rate, a.follower_health, a.profitability, a.consistency, a.activity, a.popularity) == (
        D("0.75"), D("0.75"), D("1"), D("1"), D("1"), D("1"),
    )  # fmt: skip
    # 0.25 x 0.75 + 0.25 x 0.75 + 0.20 + 0.20 + 0.05 + 0.05
    assert a.score == D("0.875000")
    assert (b.win_rate, b.follower_health, b.profitability, b.consistency, b.activity, b.popularity) == (
        D("0"), D("0"), D("0"), D("0"), D("0.289065"), D("0"),
    )  # fmt: skip
    # 0.05 x 0.289065 = 0.01445325
    assert b.score == D("0.014453")
    assert (c.win_rate, c.follower_health, c.profitability, c.consistency, c.activity, c.popularity) == (
        D("1"), D("1"), D("1"), D("0.333333"), D("0.671188"), D("0.430677"),
    )  # fmt: skip
    # 0.25 + 0.25 + 0.20 + 0.20 x 0.333333 + 0.05 x 0.671188 + 0.05 x 0.430677 = 0.82175985
    assert c.score == D("0.821760")


def test_a_portfolio_without_a_trade_in_the_window_is_not_ranked_nor_counted():
    idle = item(4, trades=0, closed=3, wins=3, pnl="99999", daily=("99999", "0"), followers=1000, in_profit=1000)
    scores = score_portfolios([*THREE, idle])
    assert [s.portfolio_id for s in scores] == [1, 2, 3]
    assert scores == score_portfolios(THREE)  # it does not move anybody's normalization
    assert score_portfolios([idle]) == []


decimals = st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def inputs(draw, pid):
    closed = draw(st.integers(0, 50))
    followers = draw(st.integers(0, 5000))
    return RankingInput(
        portfolio_id=pid,
        trades=draw(st.integers(0, 500)),
        closed=closed,
        wins=draw(st.integers(0, closed)),
        pnl=draw(decimals),
        capital=draw(st.decimals(min_value=0, max_value=10**7, places=2)),
        daily_pnl=draw(st.lists(decimals, min_size=0, max_size=30)),
        followers=followers,
        followers_in_profit=draw(st.integers(0, followers)),
    )


@given(
    st.lists(st.integers(), min_size=1, max_size=12).flatmap(
        lambda ids: st.tuples(*[inputs(i) for i in range(len(ids))])
    )
)
def test_every_score_and_component_is_in_0_1(items):
    for s in score_portfolios(items):
        for value in (s.score, s.win_rate, s.follower_health, s.profitability, s.consistency, s.activity, s.popularity):
            assert D(0) <= value <= D(1)
    assert {s.portfolio_id for s in score_portfolios(items)} == {i.portfolio_id for i in items if i.trades >= 1}


# --- the ranking run ---------------------------------------------------------------------


NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def round_trip(world, portfolio, entry: str, exit_: str):
    world.price(ETH_PERP, entry)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    world.price(ETH_PERP, exit_)
    world.trade(portfolio, ETH_PERP, "sell", "1")


def test_ranking_run_ranks_only_recent_traders_and_keeps_history(world):
    with time_machine.travel(NOW - timedelta(days=40), tick=False):
        idle = world.leader()
        busy = world.leader()
        round_trip(world, idle, "3200", "3300")
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        round_trip(world, busy, "3200", "3250")
        follower = world.follower(busy, amount="1000", multiplier="0.1")
    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        round_trip(world, busy, "3250", "3240")
    with time_machine.travel(NOW, tick=False):
        stats_refresh()
        scores = ranking_run(now=NOW)
    assert [s.portfolio_id for s in scores] == [busy.pk]
    (s,) = scores
    # Alone in the cohort: 1 of 2 closed trades won; the follower copied only
    # the losing day (-1): not in profit; ROI +40 on 20000 positive -> 1;
    # Sharpe of (0, ..., +50, -10) positive -> 1; most trades and followers -> 1.
    assert (s.win_rate, s.follower_health, s.profitability, s.consistency, s.activity, s.popularity) == (
        D("0.5"), D("0"), D("1"), D("1"), D("1"), D("1"),
    )  # fmt: skip
    assert s.score == D("0.625000")
    assert follower.pk
    stats = dict(PortfolioStats.objects.filter(line="all").values_list("portfolio_id", "score"))
    assert stats == {idle.pk: D("0"), busy.pk: D("0.625000")}
    assert list(PortfolioScore.objects.values_list("portfolio_id", "computed_at", "score")) == [
        (busy.pk, NOW, D("0.625000"))
    ]
    # Twice at the same time: nothing new; later: history grows, idle still unranked.
    ranking_run(now=NOW)
    assert PortfolioScore.objects.count() == 1
    ranking_run(now=NOW + timedelta(hours=2))
    assert list(PortfolioScore.objects.order_by("computed_at").values_list("portfolio_id", flat=True)) == [
        busy.pk,
        busy.pk,
    ]
    assert not PortfolioScore.objects.filter(portfolio=idle).exists()


def test_the_tasks_refresh_then_rank_and_beat_runs_them(world):
    from celery.schedules import crontab

    from config.celery import app
    from portfolios import stats_tasks

    busy = world.leader()
    round_trip(world, busy, "3200", "3210")
    idle = world.leader()
    assert stats_tasks.rank_portfolios.delay().get() == 1  # the idle one has no trade: not ranked
    assert PortfolioStats.objects.filter(portfolio__in=[busy, idle]).count() == 6  # refreshed first
    assert PortfolioScore.objects.get().portfolio_id == busy.pk
    assert stats_tasks.refresh_portfolio_stats.delay([idle.pk]).get() == 1
    schedule = app.conf.beat_schedule
    assert schedule["portfolio-ranking"]["task"] == "portfolios.stats_tasks.rank_portfolios"
    assert schedule["portfolio-ranking"]["schedule"] == crontab(minute=0, hour="*/2")
    assert schedule["portfolio-stats"]["task"] == "portfolios.stats_tasks.refresh_portfolio_stats"
    assert schedule["portfolio-stats"]["schedule"] == 300.0
