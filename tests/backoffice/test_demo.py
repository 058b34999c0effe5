import random
import signal
import sys
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import strategies as st

from backoffice import demo
from backoffice.management.commands import run_stack
from copytrading import ledger
from copytrading.errors import InsufficientFunds
from copytrading.models import (
    Account,
    Execution,
    Instrument,
    LeaderEvent,
    LeaderEventKind,
    LeaderEventStatus,
    Order,
    Outcome,
    Product,
    Transfer,
)
from copytrading.money import floor_to_step
from followers.models import Subscription
from portfolios.models import Portfolio, PortfolioMode

User = get_user_model()


@pytest.fixture
def fast_passwords(settings):
    # 23 demo users: the production hasher would spend seconds on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _counts() -> dict[str, int]:
    models = (User, Instrument, Account, Transfer, Portfolio, Subscription)
    return {model.__name__: model.objects.count() for model in models}


# --- seed_demo ----------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_twice_creates_nothing_new_and_balances(fast_passwords):
    first_out, second_out = StringIO(), StringIO()
    call_command("seed_demo", stdout=first_out)
    first = _counts()
    call_command("seed_demo", stdout=second_out)

    assert _counts() == first
    assert "nothing created" in second_out.getvalue()
    assert first["User"] == 1 + len(demo.DEMO_LEADERS) + demo.FOLLOWER_COUNT
    assert first["Subscription"] == len(demo.demo_subscriptions())
    report = ledger.ledger_check()
    assert report.ok, report


@pytest.mark.django_db
def test_seed_demo_builds_the_described_world(fast_passwords):
    call_command("seed_demo", stdout=StringIO())

    admin = User.objects.get(username=demo.ADMIN_USERNAME)
    assert admin.is_staff and admin.is_superuser
    assert authenticate(username=demo.ADMIN_USERNAME, password=demo.ADMIN_PASSWORD) == admin
    assert authenticate(username="follower07", password=demo.DEMO_PASSWORD) is not None

    portfolios = {p.leader.username: p for p in demo.demo_portfolios()}
    assert {u: p.mode for u, p in portfolios.items()} == {"leader1": PortfolioMode.MARGIN, "leader2": PortfolioMode.ALL}
    for spec in demo.DEMO_LEADERS:
        assert portfolios[spec.username].trading_account.balance == spec.fund
        assert ledger.main_account_for(portfolios[spec.username].leader).balance == spec.deposit - spec.fund

    # Both portfolios have followers, some follow both, and multipliers grow.
    subs = Subscription.objects.select_related("follower", "portfolio__leader")
    by_leader = {u: [s for s in subs if s.portfolio.leader.username == u] for u in portfolios}
    assert all(by_leader.values())
    followers_of = {u: {s.follower_id for s in rows} for u, rows in by_leader.items()}
    assert followers_of["leader1"] & followers_of["leader2"]
    multipliers = sorted({s.multiplier for s in subs})
    assert len(multipliers) == demo.FOLLOWER_COUNT
    assert all(0 < m <= 1 for m in multipliers)
    assert all(s.sizing_model == "progressive" for s in subs)

    # Each follower's main wallet paid exactly for the copy wallets it funded.
    for follower in User.objects.filter(username__startswith="follower"):
        invested = sum((s.invested for s in subs if s.follower_id == follower.pk), Decimal(0))
        assert ledger.main_account_for(follower).balance == demo.FOLLOWER_DEPOSIT - invested
        assert all(s.copy_account.balance == s.invested for s in subs if s.follower_id == follower.pk)


@given(n=st.integers(min_value=1, max_value=10**7))
def test_every_follower_can_pay_for_their_copies_at_any_size(n):
    # Follower 41 used to copy both portfolios with 5,100 each out of 10,000.
    rows = demo.follower_subscriptions(n)
    assert 1 <= len(rows) <= 2
    assert sum(r.amount for r in rows) <= demo.FOLLOWER_DEPOSIT
    assert all(Decimal("100") <= r.amount and 0 < r.multiplier <= 1 for r in rows)
    assert all(r.follower == demo.follower_username(n) for r in rows)
    # The sizes repeat every PATTERN followers: the 20-follower demo's mix at any size.
    later = demo.follower_subscriptions(n + demo.PATTERN)
    assert (later[0].amount, later[0].multiplier) == (rows[0].amount, rows[0].multiplier)


@pytest.mark.django_db
def test_seed_demo_past_41_followers_then_more_adds_only_the_difference(fast_passwords, monkeypatch):
    monkeypatch.setattr(demo, "SEED_BATCH", 20)  # several batches at a small size
    err = StringIO()
    call_command("seed_demo", "--followers", "45", stdout=StringIO(), stderr=err)
    first = _counts()
    assert first["User"] == 1 + len(demo.DEMO_LEADERS) + 45
    assert first["Subscription"] == len(demo.demo_subscriptions(45))
    assert "seed_demo followers: 45/45 (100 %)" in err.getvalue() and ", done" in err.getvalue()

    again = StringIO()
    call_command("seed_demo", "--followers", "45", stdout=again, stderr=StringIO())
    assert _counts() == first and "nothing created" in again.getvalue()

    out = StringIO()
    call_command("seed_demo", "--followers", "61", "--quiet", stdout=out, stderr=(quiet := StringIO()))
    assert "16 users" in out.getvalue()
    assert quiet.getvalue() == ""
    assert User.objects.filter(username__startswith="follower").count() == 61
    assert Subscription.objects.count() == len(demo.demo_subscriptions(61))
    # The bulk path wrote what the API path writes: main wallets paid exactly
    # for their copies, through the ledger, and the new users can log in.
    subs = list(Subscription.objects.select_related("follower", "copy_account"))
    for follower in User.objects.filter(username__in=["follower41", "follower59", "follower61"]):
        mine = [s for s in subs if s.follower_id == follower.pk]
        invested = sum((s.invested for s in mine), Decimal(0))
        assert ledger.main_account_for(follower).balance == demo.FOLLOWER_DEPOSIT - invested
        assert all(s.copy_account.balance == s.invested and s.sizing_model == "progressive" for s in mine)
    assert authenticate(username="follower61", password=demo.DEMO_PASSWORD) is not None
    assert ledger.ledger_check().ok


@pytest.mark.django_db
def test_seed_demo_gives_the_demo_leaders_room_past_the_follower_cap(fast_passwords):
    from fees.models import LimitsGroup
    from fees.selectors import leader_caps

    LimitsGroup.objects.create(name="Default", is_default=True, max_followers=5, max_profit_share_pct=Decimal(50))
    call_command("seed_demo", "--followers", "12", stdout=StringIO(), stderr=StringIO())

    portfolios = demo.demo_portfolios()
    assert all(p.subscriptions.count() == 8 for p in portfolios)
    group = LimitsGroup.objects.get(name=demo.DEMO_LIMITS_GROUP)
    assert group.max_followers == 8 + 5  # the demo plus the default's room for real users
    assert all(leader_caps(p.leader_id).limits_group_id == group.pk for p in portfolios)

    call_command("seed_demo", "--followers", "12", stdout=StringIO(), stderr=StringIO())
    group.refresh_from_db()
    assert group.max_followers == 13  # nothing added, nothing raised


@pytest.mark.django_db
def test_the_bulk_subscribe_refuses_what_subscription_open_refuses_and_writes_nothing(fast_passwords):
    from backoffice import loadgen
    from copytrading.errors import Conflict, DomainError
    from portfolios.models import PortfolioStatus

    call_command("seed_demo", "--followers", "2", stdout=StringIO(), stderr=StringIO())
    portfolio = demo.demo_portfolios()[0]
    ids, created = loadgen.users_bulk(usernames=["bulk-a"], password=demo.DEMO_PASSWORD)
    assert created == 1
    assert loadgen.main_wallets_fund(user_ids=[ids["bulk-a"]], amount=Decimal("300"), idempotency_key="t") == 1
    assert loadgen.main_wallets_fund(user_ids=[ids["bulk-a"]], amount=Decimal("300"), idempotency_key="t") == 0
    settings_ = {"sizing_model": "progressive", "multiplier": Decimal("0.1")}
    before = _counts()

    with pytest.raises(InsufficientFunds):
        loadgen.subscriptions_bulk(
            portfolio=portfolio, rows=[loadgen.NewSubscription(ids["bulk-a"], Decimal("500"), settings_)]
        )
    with pytest.raises(DomainError) as own:
        loadgen.subscriptions_bulk(
            portfolio=portfolio, rows=[loadgen.NewSubscription(portfolio.leader_id, Decimal("100"), settings_)]
        )
    assert own.value.code == "OWN_PORTFOLIO"
    Portfolio.objects.filter(pk=portfolio.pk).update(status=PortfolioStatus.CLOSING)
    with pytest.raises(Conflict) as closing:
        loadgen.subscriptions_bulk(
            portfolio=portfolio, rows=[loadgen.NewSubscription(ids["bulk-a"], Decimal("100"), settings_)]
        )
    assert closing.value.code == "PORTFOLIO_NOT_ACTIVE"
    assert _counts() == before
    assert ledger.ledger_check().ok


def test_seed_demo_refuses_a_negative_size():
    with pytest.raises(CommandError) as raised:
        call_command("seed_demo", "--followers", "-1", stdout=StringIO(), stderr=StringIO())
    assert raised.value.returncode == 2


# --- simulate_market --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_simulate_market_moves_prices_and_followers_copy_the_leaders(fast_passwords):
    call_command("seed_demo", stdout=StringIO())
    before = dict(Instrument.objects.values_list("symbol", "mark_price"))

    out = StringIO()
    call_command(
        "simulate_market", "--ticks", "5", "--trade-probability", "1", "--seed", "1", "--interval", "0", stdout=out
    )

    after = dict(Instrument.objects.values_list("symbol", "mark_price"))
    assert after.keys() == before.keys()
    assert all(after[s] != before[s] for s in before)
    assert "stopped after 5 ticks: 5 leader trades" in out.getvalue()

    events = list(LeaderEvent.objects.order_by("pk"))
    assert len(events) >= 5  # a flip would add one
    # Eager Celery: every event has been propagated, in order, to every reachable follower.
    assert {e.status for e in events} == {LeaderEventStatus.DONE}
    reachable = {p.pk: p.subscriptions.count() for p in Portfolio.objects.all()}
    for event in events:
        assert Execution.objects.filter(event=event).count() == reachable[event.portfolio_id]

    copied = Execution.objects.filter(outcome=Outcome.COPIED)
    assert copied.exists()
    assert Order.objects.filter(leader_event__isnull=False).count() == copied.count()
    for execution in copied.filter(event__kind=LeaderEventKind.POSITION_OPEN).select_related("order__position"):
        assert execution.order.position.leader_position_id == execution.event.payload["leader_position_id"]
    assert ledger.ledger_check().ok


@pytest.mark.django_db
def test_a_refused_leader_order_is_reported_not_raised(fast_passwords, monkeypatch):
    call_command("seed_demo", stdout=StringIO())

    def refuse(**kwargs):
        raise InsufficientFunds("no money today")

    monkeypatch.setattr(demo, "portfolio_order_place", refuse)
    monkeypatch.setattr(demo, "portfolio_position_close", refuse)
    before = dict(Instrument.objects.values_list("symbol", "mark_price"))

    report = demo.demo_tick(rng=random.Random(3), volatility_bps=Decimal(20), trade_probability=1)

    assert report.error is not None and report.error.code == "INSUFFICIENT_FUNDS"
    assert report.trade is None
    assert report.prices != before
    assert not LeaderEvent.objects.exists()


def test_simulate_market_refuses_bad_options():
    with pytest.raises(CommandError):
        call_command("simulate_market", "--trade-probability", "1.5", "--ticks", "1")


# --- the strategy (pure) --------------------------------------------------------------

steps = st.sampled_from([Decimal("0.001"), Decimal("0.01"), Decimal("0.1"), Decimal("0.00001")])


@st.composite
def leader_states(draw):
    markets = []
    for n, product in enumerate(
        draw(st.lists(st.sampled_from([Product.MARGIN, Product.SPOT]), min_size=1, max_size=4))
    ):
        step = draw(steps)
        markets.append(
            demo.Market(
                symbol=f"M{n}",
                product=product,
                base=f"B{n}",
                price=draw(st.decimals(min_value=Decimal("0.5"), max_value=Decimal("80000"), places=2)),
                qty_step=step,
                min_qty=step * draw(st.integers(min_value=1, max_value=10)),
                max_qty=Decimal("100000"),
                min_notional=Decimal("5"),
                max_leverage=draw(st.sampled_from([1, 20, 100])) if product == Product.MARGIN else 1,
            )
        )
    positions, holdings = {}, {}
    for n, m in enumerate(markets):
        quantity = m.min_qty + m.qty_step * draw(st.integers(min_value=0, max_value=5000))
        if m.product == Product.MARGIN and draw(st.booleans()):
            side = draw(st.sampled_from(["long", "short"]))
            positions[m.symbol] = demo.OpenPosition(n, m.symbol, side, quantity, min(m.max_leverage, 5))
        if m.product == Product.SPOT and draw(st.booleans()):
            holdings[m.base] = quantity
    free = draw(st.decimals(min_value=Decimal("0"), max_value=Decimal("50000"), places=8))
    equity = free + draw(st.decimals(min_value=Decimal("0"), max_value=Decimal("50000"), places=8))
    return markets, positions, holdings, free, equity


@given(state=leader_states(), seed=st.integers(min_value=0, max_value=2**32))
def test_planned_orders_respect_the_instrument_and_the_balance(state, seed):
    markets, positions, holdings, free, equity = state
    plan = demo.plan_trade(
        rng=random.Random(seed), markets=markets, positions=positions, holdings=holdings, free=free, equity=equity
    )
    if plan is None:
        return
    market = next(m for m in markets if m.symbol == plan.symbol)
    least = demo.least_quantity(market, market.price)
    if plan.action in (demo.OPEN, demo.INCREASE, demo.SPOT_BUY):
        assert plan.quantity == floor_to_step(plan.quantity, market.qty_step)
        assert least <= plan.quantity <= market.max_qty
        assert plan.quantity * market.price / plan.leverage <= free
        assert plan.leverage <= market.max_leverage
        if plan.action == demo.OPEN:
            assert plan.symbol not in positions
        if plan.action == demo.INCREASE:
            position = positions[plan.symbol]
            assert (plan.side == "buy") == (position.side == "long")
    elif plan.action == demo.REDUCE:
        position = positions[plan.symbol]
        assert plan.position_id == position.id
        assert 0 < plan.quantity < position.quantity
        assert plan.quantity == floor_to_step(plan.quantity, market.qty_step)
        assert position.quantity - plan.quantity >= market.min_qty
    elif plan.action in (demo.CLOSE, demo.CLOSE_BY_ORDER):
        position = positions[plan.symbol]
        assert plan.position_id == position.id
        assert plan.quantity in (None, position.quantity)
        assert (plan.side == "sell") == (position.side == "long")
    else:
        assert plan.action == demo.SPOT_SELL
        holding = holdings[market.base]
        assert least <= plan.quantity <= holding
        assert plan.quantity == holding or holding - plan.quantity >= least


@given(state=leader_states(), seed=st.integers(min_value=0, max_value=2**32))
def test_a_leader_short_of_free_balance_only_takes_risk_off(state, seed):
    markets, positions, holdings, _, equity = state
    free = equity * demo.DE_RISK_BELOW / 2
    plan = demo.plan_trade(
        rng=random.Random(seed), markets=markets, positions=positions, holdings=holdings, free=free, equity=equity
    )
    assert plan is None or plan.action in (demo.REDUCE, demo.CLOSE, demo.CLOSE_BY_ORDER, demo.SPOT_SELL)


# --- run_stack ----------------------------------------------------------------------------


def test_stack_runs_the_designed_processes_with_this_interpreter(settings, monkeypatch):
    settings.EMBEDDED = True
    children = {c.name: c.argv for c in run_stack.stack_processes(port=8123)}
    assert set(children) == {"web", "worker", "beat", "market"}
    assert all(argv[0] == sys.executable for argv in children.values())
    assert children["web"][1:] == ["-m", "daphne", "-b", "127.0.0.1", "-p", "8123", "config.asgi:application"]
    assert children["worker"][children["worker"].index("-Q") + 1] == "fanout,default,watchdog,exchange"
    assert "threads" in children["worker"]
    assert children["beat"][1:5] == ["-m", "celery", "-A", "config"] and "beat" in children["beat"]
    assert children["market"][-1] == "simulate_market"
    assert "market" not in {c.name for c in run_stack.stack_processes(port=8123, market=False)}


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def fake_stack(settings, tmp_path, monkeypatch, fast_passwords):
    """run_stack with stand-in children (the real ones are exercised by `make run`)."""
    settings.STATIC_ROOT = tmp_path / "static"
    monkeypatch.setenv("PORT", "1")  # nothing listens there: no banner, no stray requests
    # run_stack empties the metrics directory it is given: its own, not this test
    # process's (whose open metric files the rest of the suite reads).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    children: list[run_stack.Child] = []

    def install(*specs):
        children.extend(run_stack.Child(name, _python(code)) for name, code in specs)
        monkeypatch.setattr(run_stack, "stack_processes", lambda **kwargs: children)
        return children

    return install


@pytest.mark.django_db(transaction=True)
def test_run_stack_stops_everything_when_one_child_dies(fake_stack):
    crash, sleeper = fake_stack(
        ("crash", "import time; print('about to fail', flush=True); time.sleep(0.5); raise SystemExit(3)"),
        ("sleeper", "import time; print('sleeping', flush=True); time.sleep(60)"),
    )
    out = StringIO()
    with pytest.raises(CommandError, match="crash exited with code 3"):
        call_command("run_stack", stdout=out)

    assert crash.process.returncode == 3
    assert sleeper.process.returncode == -signal.SIGTERM
    text = out.getvalue()
    assert "crash  | about to fail" in text
    assert "sleeper | sleeping" in text
    assert "stopping sleeper" in text
    assert User.objects.filter(username=demo.ADMIN_USERNAME).exists()  # seed_demo ran first


@pytest.mark.django_db(transaction=True)
def test_run_stack_stops_every_child_on_sigterm(fake_stack):
    # The signal comes from a child, so it can only arrive once run_stack's handler is in place.
    first, second = fake_stack(
        ("first", "import os, signal, time; time.sleep(0.5); os.kill(os.getppid(), signal.SIGTERM); time.sleep(60)"),
        ("second", "import time; time.sleep(60)"),
    )
    previous = signal.getsignal(signal.SIGTERM)
    out = StringIO()
    call_command("run_stack", stdout=out)

    assert first.process.returncode == -signal.SIGTERM
    assert second.process.returncode == -signal.SIGTERM
    assert "==> stopped" in out.getvalue()
    assert signal.getsignal(signal.SIGTERM) is previous
