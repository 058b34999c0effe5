"""The replay gives what the real fan-out gave (hypothesis): a leader trades
(market orders, reduces and closes, limits placed, re-priced, cancelled and
filled by the mark, TP/SL, spot buys and sells, price moves) through the
portfolio services, with followers of different settings copying through the
real engine (eager Celery, chunks of 2); then each follower's subscription is
replayed (followers/replay) from its start. Every event's outcome, reason and
quantity equal the execution row's, and the replayed wallet ends with the real
wallet's balance and locked margin, to the last 1e-8 (fees included)."""

from contextlib import suppress
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copytrading.errors import DomainError
from copytrading.models import Account, Execution, Instrument, Order, Position, PositionStatus
from copytrading.services import wallet_deposit
from followers.replay.simulator import replay_since, subscription_follower
from followers.services import subscription_create
from portfolios.services import portfolio_create, portfolio_fund
from tests.copytrading.world import BTC_PERP, ETH_PERP, World
from tests.factories import UserFactory

D = Decimal
ETH_SPOT = "ETH/USDT"
SYMBOLS = [ETH_PERP, BTC_PERP, ETH_SPOT]
ENGINE = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["buy", "sell"]), st.sampled_from(SYMBOLS), st.integers(1, 400)),
        st.tuples(st.just("reduce"), st.sampled_from([ETH_PERP, BTC_PERP]), st.integers(0, 10**6)),
        st.tuples(st.just("close"), st.sampled_from([ETH_PERP, BTC_PERP]), st.just(0)),
        st.tuples(st.sampled_from(["limit buy", "limit sell"]), st.sampled_from(SYMBOLS), st.integers(1, 100)),
        st.tuples(st.just("reprice"), st.sampled_from(SYMBOLS), st.integers(1, 100)),
        st.tuples(st.just("cancel"), st.sampled_from(SYMBOLS), st.just(0)),
        st.tuples(st.just("tpsl"), st.sampled_from([ETH_PERP, BTC_PERP]), st.integers(50, 400)),
        st.tuples(st.just("price"), st.sampled_from(SYMBOLS), st.integers(-300, 300)),
    ),
    min_size=4,
    max_size=14,
)


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("5")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)


def _on_tick(symbol: str, price: Decimal) -> Decimal:
    tick = Instrument.objects.get(symbol=symbol).price_tick
    return (price // tick) * tick


def _moved(symbol: str, basis_points: int) -> str:
    mark = Instrument.objects.get(symbol=symbol).mark_price
    return str(_on_tick(symbol, mark * (1 + D(basis_points) / 10_000)))


def _follower(portfolio, amount: str, **settings):
    user = UserFactory()
    wallet_deposit(user=user, amount=D(amount))
    return subscription_create(follower=user, portfolio=portfolio, amount=D(amount), **settings)


def _leader(fee_model: str):
    user = UserFactory()
    wallet_deposit(user=user, amount=D("401000"))
    portfolio = portfolio_create(
        leader=user, name=f"{user.username}'s book", mode="all", profit_share_pct=D("20"), fee_model=fee_model
    )
    portfolio_fund(portfolio=portfolio, amount=D("400000"))
    return portfolio


def _step(world: World, portfolio, action: str, symbol: str, n: int) -> None:
    instrument = Instrument.objects.get(symbol=symbol)
    account = portfolio.trading_account_id
    position = Position.objects.filter(account_id=account, instrument=instrument, status=PositionStatus.OPEN).first()
    resting = Order.objects.filter(account_id=account, instrument=instrument, status="open").order_by("-pk").first()
    mark, step = instrument.mark_price, instrument.qty_step
    if action in ("buy", "sell"):
        world.trade(portfolio, symbol, action, str(n * step * (100 if instrument.product == "spot" else 1)), 5)
    elif action == "reduce" and position is not None and position.quantity > step:
        units = int(position.quantity / step)
        world.close(portfolio, position.pk, str((1 + n % (units - 1)) * step))
    elif action == "close" and position is not None:
        world.close(portfolio, position.pk)
    elif action.startswith("limit"):
        side = action.split()[1]
        away = D(1) - D(n) / 10_000 if side == "buy" else D(1) + D(n) / 10_000
        world.limit(portfolio, symbol, side, str(n * step), str(_on_tick(symbol, mark * away)), leverage=5)
    elif action == "reprice" and resting is not None:
        away = D(1) - D(n) / 10_000 if resting.side == "buy" else D(1) + D(n) / 10_000
        world.reprice(portfolio, resting.pk, str(_on_tick(symbol, mark * away)))
    elif action == "cancel" and resting is not None:
        world.cancel(portfolio, resting.pk)
    elif action == "tpsl" and position is not None:
        up, down = _on_tick(symbol, mark * (1 + D(n) / 10_000)), _on_tick(symbol, mark * (1 - D(n) / 10_000))
        tp, sl = (up, down) if position.side == "long" else (down, up)
        world.tpsl(portfolio, position.pk, take_profit=str(tp), stop_loss=str(sl))
    elif action == "price":
        world.price(symbol, _moved(symbol, n))


def assert_replay_equals_fanout(sub) -> None:
    result = replay_since(subscription_follower(sub, watchdog=False), sub.portfolio_id, sub.created_at)
    real = {
        e.event.seq: (e.outcome, e.reason_code, e.follower_quantity or None)
        for e in Execution.objects.filter(subscription_id=sub.pk).select_related("event")
    }
    replayed = {c.seq: (c.outcome, c.reason, c.quantity or None) for c in result.copies}
    assert replayed == real
    wallet = Account.objects.get(pk=sub.copy_account_id)
    assert (result.balance, result.locked) == (wallet.balance, wallet.locked)


def test_a_hand_built_history_replays_as_it_was_copied(world):
    portfolio = _leader("per_trade")
    subs = [
        world.follower(portfolio, amount="900000", multiplier="1"),
        world.follower(portfolio, amount="2000", multiplier="0.5"),
    ]
    world.trade(portfolio, ETH_PERP, "buy", "3", 5)
    world.price(ETH_PERP, "3300")
    (limit,) = [world.limit(portfolio, ETH_PERP, "sell", "1", "3400", leverage=5)]
    world.trade(portfolio, ETH_SPOT, "buy", "0.5")
    world.price(ETH_PERP, "3400")  # fills the leader's limit and the mirrors with it
    leader = portfolio.trading_account_id
    position = Position.objects.get(account_id=leader, status="open", instrument__product="margin")
    world.close(portfolio, position.pk)
    world.trade(portfolio, ETH_SPOT, "sell", "0.25")
    assert limit.pk
    for sub in subs:
        assert_replay_equals_fanout(sub)


@ENGINE
@given(actions=steps, fee_model=st.sampled_from(["per_trade", "high_water_mark"]))
def test_the_replay_equals_the_fanout_after_any_history(world, actions, fee_model):
    portfolio = _leader(fee_model)
    subs = [
        _follower(portfolio, "900000", multiplier=D("1")),
        _follower(portfolio, "1500", multiplier=D("0.5")),
        _follower(
            portfolio,
            "3000",
            sizing_model="fixed",
            fixed_notional=D("400"),
            leverage_override=3,
            max_open_positions=1,
            max_exposure_pct=D("150"),
        ),
        _follower(portfolio, "5000", sizing_model="adaptive", risk_factor=D("1.5"), copy_spot=False),
    ]
    for action, symbol, n in actions:
        with suppress(DomainError):  # the leader's own order refused (funds, a marketable limit, ...): no event
            _step(world, portfolio, action, symbol, n)
    for sub in subs:
        assert_replay_equals_fanout(sub)
