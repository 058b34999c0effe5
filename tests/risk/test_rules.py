"""The pure risk rules: each at, just below and just above its threshold, and
properties over random wallets (hypothesis)."""

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copytrading.valuation import position_unrealized
from risk import rules

D = Decimal
TICK = D("0.00000001")


def snap(*, equity="1000", used_margin="0", unrealized="0", realized="0", peak=None) -> rules.Snapshot:
    return rules.Snapshot(
        equity=D(equity),
        used_margin=D(used_margin),
        unrealized_pnl=D(unrealized),
        realized_today=D(realized),
        peak_equity=D(peak) if peak is not None else None,
    )


def fired(limits: rules.Limits, s: rules.Snapshot) -> list[str]:
    return [b.rule for b in rules.evaluate(limits, s)]


OFF = rules.Limits(margin_call_level_pct=None)


# --- each rule at its threshold, a unit below and a unit above --------------------


@pytest.mark.parametrize(("loss", "breached"), [("99.99999999", False), ("100", True), ("100.00000001", True)])
def test_daily_loss_realized_breaches_from_the_limit_on(loss, breached):
    limits = rules.Limits(daily_loss_realized=D("100"), margin_call_level_pct=None)
    found = rules.evaluate(limits, snap(realized=f"-{loss}"))
    assert [b.rule for b in found] == ([rules.DAILY_LOSS_REALIZED] if breached else [])
    if breached:
        assert (found[0].measured, found[0].threshold, found[0].action) == (D(loss), D("100"), rules.PAUSE)


@pytest.mark.parametrize(("loss", "breached"), [("49.99999999", False), ("50", True), ("50.00000001", True)])
def test_daily_loss_unrealized_breaches_from_the_limit_on_and_closes(loss, breached):
    limits = rules.Limits(daily_loss_unrealized=D("50"), margin_call_level_pct=None)
    found = rules.evaluate(limits, snap(unrealized=f"-{loss}"))
    assert [b.rule for b in found] == ([rules.DAILY_LOSS_UNREALIZED] if breached else [])
    if breached:
        assert (found[0].measured, found[0].action) == (D(loss), rules.PAUSE_AND_CLOSE)


@pytest.mark.parametrize(
    ("equity", "breached"),
    [
        ("880.00000001", False),  # 110.00000000125 %
        ("880", True),  # exactly 110 %
        ("879.99999999", True),
    ],
)
def test_margin_call_breaches_at_or_below_the_default_110_percent(equity, breached):
    found = rules.evaluate(rules.Limits(), snap(equity=equity, used_margin="800"))
    assert [b.rule for b in found] == ([rules.MARGIN_CALL] if breached else [])
    if breached:
        assert found[0].threshold == D("110")
        assert found[0].action == rules.PAUSE


def test_margin_call_uses_the_override_and_never_fires_without_positions():
    s = snap(equity="900", used_margin="800")  # 112.5 %
    assert fired(rules.Limits(), s) == []
    assert fired(rules.Limits(margin_call_level_pct=D("115")), s) == [rules.MARGIN_CALL]
    assert fired(rules.Limits(margin_call_level_pct=D("112.5")), s) == [rules.MARGIN_CALL]
    assert fired(rules.Limits(margin_call_level_pct=D("112.49")), s) == []
    assert fired(rules.Limits(margin_call_level_pct=D("1000")), snap(equity="0", used_margin="0")) == []


@pytest.mark.parametrize(("equity", "breached"), [("900.00000001", False), ("900", True), ("899.99999999", True)])
def test_max_drawdown_breaches_from_the_limit_on(equity, breached):
    limits = rules.Limits(max_drawdown_pct=D("10"), margin_call_level_pct=None)
    found = rules.evaluate(limits, snap(equity=equity, peak="1000"))
    assert [b.rule for b in found] == ([rules.MAX_DRAWDOWN] if breached else [])
    if breached:
        expected = ((D("1000") - D(equity)) * 100 / D("1000")).quantize(TICK)
        assert found[0].measured == expected


def test_several_breaches_come_in_precedence_order():
    limits = rules.Limits(
        daily_loss_realized=D("10"),
        daily_loss_unrealized=D("10"),
        margin_call_level_pct=D("1000"),
        max_drawdown_pct=D("1"),
    )
    s = snap(equity="500", used_margin="400", unrealized="-20", realized="-20", peak="1000")
    assert fired(limits, s) == [
        rules.DAILY_LOSS_UNREALIZED,
        rules.MAX_DRAWDOWN,
        rules.MARGIN_CALL,
        rules.DAILY_LOSS_REALIZED,
    ]


def test_a_profit_never_breaches_a_loss_limit():
    limits = rules.Limits(daily_loss_realized=D("1"), daily_loss_unrealized=D("1"), margin_call_level_pct=None)
    assert fired(limits, snap(unrealized="500", realized="500")) == []


def test_the_unrealized_loss_of_an_isolated_position_is_capped_at_its_margin():
    assert position_unrealized("long", D("2"), D("100"), D("90"), D("50")) == D("-20")
    assert position_unrealized("short", D("2"), D("100"), D("90"), D("50")) == D("20")
    assert position_unrealized("long", D("2"), D("100"), D("60"), D("50")) == D("-50")


def test_the_peak_follows_deposits_and_withdrawals_but_not_losses():
    assert rules.next_peak(None, D("0"), D("1000"), D("1000")) == D("1000")
    assert rules.next_peak(D("1000"), D("1000"), D("1000"), D("1100")) == D("1100")  # a gain
    assert rules.next_peak(D("1100"), D("1000"), D("1000"), D("900")) == D("1100")  # a loss
    assert rules.next_peak(D("1100"), D("1000"), D("600"), D("500")) == D("700")  # 400 withdrawn
    assert rules.next_peak(D("1100"), D("1000"), D("1500"), D("1400")) == D("1600")  # 500 topped up


# --- properties ---------------------------------------------------------------------

amounts = st.decimals(min_value=D("-1000000"), max_value=D("1000000"), places=8, allow_nan=False)
positive = st.decimals(min_value=D("0.00000001"), max_value=D("1000000"), places=8, allow_nan=False)
percents = st.decimals(min_value=D("0.01"), max_value=D("1000"), places=2, allow_nan=False)


@given(equity=amounts, margin=positive, level=percents)
def test_margin_call_fires_exactly_when_the_exact_level_is_at_or_below_the_threshold(equity, margin, level):
    with localcontext(prec=80):
        exact_level = equity * 100 / margin
    found = fired(rules.Limits(margin_call_level_pct=level), snap(equity=str(equity), used_margin=str(margin)))
    assert (found == [rules.MARGIN_CALL]) == (exact_level <= level)


@given(peak=positive, equity=amounts, limit=st.decimals(min_value=D("0.01"), max_value=D("100"), places=2))
def test_drawdown_fires_exactly_when_the_exact_drawdown_reaches_the_limit(peak, equity, limit):
    with localcontext(prec=80):
        exact = (peak - equity) * 100 / peak
    limits = rules.Limits(max_drawdown_pct=limit, margin_call_level_pct=None)
    found = fired(limits, snap(equity=str(equity), peak=str(peak)))
    assert (found == [rules.MAX_DRAWDOWN]) == (exact >= limit)


@given(pnl=amounts, extra_loss=positive, limit=positive)
def test_a_larger_loss_never_lifts_a_breach(pnl, extra_loss, limit):
    limits = rules.Limits(daily_loss_realized=limit, daily_loss_unrealized=limit, margin_call_level_pct=None)
    before = set(fired(limits, snap(unrealized=str(pnl), realized=str(pnl))))
    worse = str(pnl - extra_loss)
    after = set(fired(limits, snap(unrealized=worse, realized=worse)))
    assert before <= after


@given(peak=positive, flows=amounts, equity=amounts, moved=amounts)
def test_money_paid_in_or_out_moves_peak_and_equity_alike(peak, flows, equity, moved):
    """A deposit or withdrawal of ``moved`` changes equity by the same amount:
    the peak follows it, so the drawdown in money is unchanged."""
    before = rules.next_peak(peak, flows, flows, equity)
    after = rules.next_peak(peak, flows, flows + moved, equity + moved)
    assert after - (equity + moved) == before - equity
    assert after >= equity + moved


@given(
    open_positions=st.integers(min_value=0, max_value=50),
    limit=st.integers(min_value=1, max_value=50),
    opens=st.booleans(),
)
def test_max_open_positions_leaves_room_for_exactly_the_limit(open_positions, limit, opens):
    reason = rules.check_open_positions(limit, open_positions, opens_position=opens)
    assert (reason == rules.MAX_OPEN_POSITIONS_REACHED) == (opens and open_positions + 1 > limit)


@given(exposure=positive, notional=positive, equity=amounts, limit=percents)
def test_max_exposure_allows_exactly_up_to_the_limit(exposure, notional, equity, limit):
    with localcontext(prec=80):
        allowed = (exposure + notional) * 100 <= limit * equity
    reason = rules.check_exposure(limit, exposure, equity, notional)
    assert (reason is None) == allowed


@pytest.mark.parametrize(
    ("notional", "reason"),
    [("299.99999999", None), ("300", None), ("300.00000001", rules.MAX_EXPOSURE_EXCEEDED)],
)
def test_pretrade_exposure_at_below_and_above_its_limit(notional, reason):
    # 200 % of 1000 equity = 2000 of notional; 1700 already open.
    limits = rules.PreTradeLimits(max_exposure_pct=D("200"))
    book = rules.Book(open_positions=3, exposure=D("1700"), equity=D("1000"))
    assert rules.pretrade_check(limits, book, opens_position=False, notional=D(notional)) == reason


@pytest.mark.parametrize(("open_positions", "reason"), [(2, None), (3, rules.MAX_OPEN_POSITIONS_REACHED)])
def test_pretrade_open_positions_at_and_below_its_limit(open_positions, reason):
    limits = rules.PreTradeLimits(max_open_positions=3)
    book = rules.Book(open_positions=open_positions, exposure=D("0"), equity=D("1000"))
    assert rules.pretrade_check(limits, book, opens_position=True, notional=D("10")) == reason
    # Adding to a position already open never needs a new slot.
    assert rules.pretrade_check(limits, book, opens_position=False, notional=D("10")) is None


def test_pretrade_without_limits_allows_everything():
    book = rules.Book(open_positions=100, exposure=D("1e9"), equity=D("0"))
    assert rules.pretrade_check(rules.PreTradeLimits(), book, opens_position=True, notional=D("1e9")) is None
