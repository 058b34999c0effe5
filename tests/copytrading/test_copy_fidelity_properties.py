"""Copy fidelity through the real engine (hypothesis): a follower at
progressive 1.0 with ample capital holds exactly what the leader holds after
any sequence of the leader's trades.

Each example is a new leader and follower; the leader trades through the
portfolio services and every event propagates on commit (eager Celery), as in
production. After every step the follower's open mirrors equal the leader's
open positions (side and quantity, per instrument) and its spot holding equals
the leader's; every copy was COPIED (nothing skipped or rejected: the capital
is ample); the ledger balances."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copytrading.ledger import ledger_check
from copytrading.models import Execution, Holding, Instrument, Position, PositionStatus
from tests.copytrading.world import BTC_PERP, ETH_PERP, World

D = Decimal
ETH_SPOT = "ETH/USDT"
LEVERAGE = 5  # a 1 % move per step never liquidates in the few steps of an example
ENGINE = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Steps of the leader. Quantities are counted in the instrument's steps; a
# reduce's size is drawn as a number the test maps into the open position, so
# that any share (0.78 of 3.13, 0.070 of 0.137, ...) comes up.
margin_steps = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.sampled_from([ETH_PERP, BTC_PERP]), st.integers(1, 500)),
        st.tuples(st.just("sell"), st.sampled_from([ETH_PERP, BTC_PERP]), st.integers(1, 500)),
        st.tuples(st.just("reduce"), st.sampled_from([ETH_PERP, BTC_PERP]), st.integers(0, 10**6)),
        st.tuples(st.just("close"), st.sampled_from([ETH_PERP, BTC_PERP]), st.just(0)),
        st.tuples(st.just("price"), st.sampled_from([ETH_PERP, BTC_PERP]), st.integers(-100, 100)),
    ),
    min_size=1,
    max_size=8,
)
spot_steps = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(16, 50_000)),  # 0.0016 ETH (above the 5 USDT minimum) .. 5 ETH
        st.tuples(st.just("sell"), st.integers(0, 10**6)),
        st.tuples(st.just("sell all"), st.just(0)),
        st.tuples(st.just("price"), st.integers(-100, 100)),
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)


def _open_positions(account_id: int) -> dict[str, tuple[str, Decimal]]:
    rows = Position.objects.filter(account_id=account_id, status=PositionStatus.OPEN).select_related("instrument")
    return {p.instrument.symbol: (p.side, p.quantity) for p in rows}


def _moved(symbol: str, basis_points: int) -> str:
    """The mark moved by ``basis_points`` / 100 percent, on the tick."""
    instrument = Instrument.objects.get(symbol=symbol)
    price = instrument.mark_price * (1 + D(basis_points) / 10_000)
    return str((price // instrument.price_tick) * instrument.price_tick)


def _copied_everything(sub) -> None:
    """Nothing was skipped or rejected: the equality above is not luck."""
    refused = Execution.objects.filter(subscription_id=sub.pk).exclude(outcome="COPIED")
    assert not refused.exists(), list(refused.values_list("outcome", "reason_code"))


@ENGINE
@given(steps=margin_steps)
def test_at_1_0_every_mirror_is_the_leaders_position_after_any_sequence_of_trades(world, steps):
    portfolio = world.leader(fund="500000")
    sub = world.follower(portfolio, amount="900000", multiplier="1")
    leader_account, steps_of = portfolio.trading_account_id, {}
    for action, symbol, n in steps:
        step = steps_of.setdefault(symbol, Instrument.objects.get(symbol=symbol).qty_step)
        leader = Position.objects.filter(
            account_id=leader_account, instrument__symbol=symbol, status=PositionStatus.OPEN
        ).first()
        if action in ("buy", "sell"):
            world.trade(portfolio, symbol, action, str(n * step), leverage=LEVERAGE)
        elif action == "reduce" and leader is not None and leader.quantity > step:
            units = int(leader.quantity / step)
            world.close(portfolio, leader.pk, str((1 + n % (units - 1)) * step))  # 1 .. units - 1 steps
        elif action == "close" and leader is not None:
            world.close(portfolio, leader.pk)
        elif action == "price":
            world.price(symbol, _moved(symbol, n))
        assert _open_positions(sub.copy_account_id) == _open_positions(leader_account), (action, symbol, n)
    _copied_everything(sub)
    assert ledger_check().ok


def _tradable(quantity: Decimal) -> bool:
    """The leader's venue refuses an order below the minimum notional (the mark moves)."""
    instrument = Instrument.objects.get(symbol=ETH_SPOT)
    return quantity > 0 and quantity * instrument.mark_price >= instrument.min_notional


def _eth(account_id: int) -> Decimal:
    holding = Holding.objects.filter(account_id=account_id, asset="ETH").first()
    return holding.quantity if holding else D(0)


@ENGINE
@given(steps=spot_steps)
def test_at_1_0_every_spot_holding_is_the_leaders_after_any_sequence_of_buys_and_sells(world, steps):
    portfolio = world.leader(mode="spot", fund="500000")
    sub = world.follower(portfolio, amount="900000", multiplier="1")
    leader_account = portfolio.trading_account_id
    step = Instrument.objects.get(symbol=ETH_SPOT).qty_step
    for action, n in steps:
        held = _eth(leader_account)
        units = int(held / step)
        if action == "buy" and _tradable(n * step):
            world.trade(portfolio, ETH_SPOT, "buy", str(n * step))
        elif action == "sell" and units > 0 and _tradable((1 + n % units) * step):
            world.trade(portfolio, ETH_SPOT, "sell", str((1 + n % units) * step))  # 1 .. all of the steps held
        elif action == "sell all" and _tradable(held):
            world.trade(portfolio, ETH_SPOT, "sell", str(held))
        elif action == "price":
            world.price(ETH_SPOT, _moved(ETH_SPOT, n))
        assert _eth(sub.copy_account_id) == _eth(leader_account), (action, n)
    _copied_everything(sub)
    assert ledger_check().ok
