"""The replay's watchdog gives what the real one gave (hypothesis): a leader
trades and the mark moves, one step an hour (so each hour's last candle is
every mark the real engine saw), with the real watchdog ticking after every
step and the midnight reset run at each new UTC day; followers copy with risk
limits (daily realized and unrealized loss, drawdown stop, margin call,
pre-trade limits). Each subscription replayed from its start has the same
outcome, reason and quantity per event, the same pauses (rule by rule, with
the close-outs), and the same wallet at the end."""

from contextlib import suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest
import time_machine
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from copytrading.errors import DomainError
from copytrading.models import Account, Execution, Instrument, Position, PositionStatus
from copytrading.services import wallet_deposit
from followers.replay.simulator import replay_since, subscription_follower
from followers.services import subscription_create
from portfolios.services import portfolio_create, portfolio_fund
from risk import services as risk_services
from risk import watchdog
from risk.models import Action, RiskEvent
from tests.copytrading.world import BTC_PERP, ETH_PERP, World
from tests.factories import UserFactory

D = Decimal
START = datetime(2026, 3, 9, 20, 30, tzinfo=UTC)  # a few steps before midnight
EXAMPLES = count()
WATCH = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["buy", "sell"]), st.sampled_from([ETH_PERP, BTC_PERP]), st.integers(1, 30)),
        st.tuples(st.just("close"), st.sampled_from([ETH_PERP, BTC_PERP]), st.just(0)),
        st.tuples(st.just("price"), st.sampled_from([ETH_PERP, BTC_PERP]), st.integers(-400, 400)),
    ),
    min_size=4,
    max_size=14,
)


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("5")
    return World(instruments, django_capture_on_commit_callbacks)


def _follower(portfolio, **limits):
    user = UserFactory()
    wallet_deposit(user=user, amount=D("5000"))
    return subscription_create(follower=user, portfolio=portfolio, amount=D("5000"), multiplier=D("1"), **limits)


def _step(world: World, portfolio, action: str, symbol: str, n: int) -> None:
    instrument = Instrument.objects.get(symbol=symbol)
    if action in ("buy", "sell"):
        world.trade(portfolio, symbol, action, str(n * instrument.qty_step * (10 if symbol == ETH_PERP else 1)), 10)
    elif action == "close":
        position = Position.objects.filter(
            account_id=portfolio.trading_account_id, instrument=instrument, status=PositionStatus.OPEN
        ).first()
        if position is not None:
            world.close(portfolio, position.pk)
    else:
        price = instrument.mark_price * (1 + D(n) / 10_000)
        world.price(symbol, str((price // instrument.price_tick) * instrument.price_tick))


def _pauses(sub) -> list[tuple[str, bool]]:
    """The watchdog's pauses of the subscription: (rule, closed everything)."""
    rows = RiskEvent.objects.filter(subscription_id=sub.pk).exclude(action=Action.RESUME).order_by("pk")
    return [(e.rule, e.action == Action.PAUSE_AND_CLOSE) for e in rows]


@WATCH
@given(actions=steps)
def test_the_replays_watchdog_pauses_as_the_real_one(world, actions):
    # Every example has a week of its own: a watchdog tick is planned once per
    # 30-second slot, and a candle is one per minute and instrument.
    start = START + timedelta(weeks=next(EXAMPLES))
    with time_machine.travel(start, tick=False) as clock:
        user = UserFactory()
        wallet_deposit(user=user, amount=D("6000"))
        portfolio = portfolio_create(leader=user, name=f"{user.username}'s book")
        portfolio_fund(portfolio=portfolio, amount=D("5000"))
        subs = [
            _follower(portfolio, daily_loss_limit_realized=D("40")),
            _follower(portfolio, daily_loss_limit_unrealized=D("60")),
            _follower(portfolio, max_drawdown_pct=D("2")),
            _follower(portfolio, margin_call_level_pct=D("400"), max_open_positions=1),
        ]
        day = start.date()
        for action, symbol, n in actions:
            clock.shift(timedelta(hours=1))
            now = datetime.now(UTC)
            if now.date() != day:
                day = now.date()
                risk_services.daily_reset_apply(now=now.replace(hour=0, minute=0))
            with suppress(DomainError):  # the leader's own order refused: no event
                _step(world, portfolio, action, symbol, n)
            watchdog.watchdog_tick(now=now)
        clock.shift(timedelta(minutes=30))
        for sub in subs:
            sub.refresh_from_db()
            result = replay_since(subscription_follower(sub), sub.portfolio_id, sub.created_at)
            real = {
                e.event.seq: (e.outcome, e.reason_code, e.follower_quantity or None)
                for e in Execution.objects.filter(subscription_id=sub.pk).select_related("event")
            }
            assert {c.seq: (c.outcome, c.reason, c.quantity or None) for c in result.copies} == real
            note(f"subscription {sub.pk}: {[(p.at, p.rule, p.measured) for p in result.pauses]}")
            assert [(p.rule, p.closed) for p in result.pauses] == _pauses(sub)
            wallet = Account.objects.get(pk=sub.copy_account_id)
            assert (result.balance, result.locked) == (wallet.balance, wallet.locked)
