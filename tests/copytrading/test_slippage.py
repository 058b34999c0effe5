"""Slippage protection: an opening copy whose price is more than the follower's
tolerance away from the leader's fill is rejected; closes always follow."""

from decimal import Decimal

import pytest

from copytrading import decisions, tasks
from copytrading.decisions import EventView, MarketView, TargetView
from copytrading.ledger import ledger_check
from copytrading.models import Execution, Order
from copytrading.sizing import Constraints
from followers.models import Subscription
from portfolios.services import portfolio_order_place, portfolio_position_close
from tests.acceptance.test_bad_input import client_for, ok, refused
from tests.copytrading.world import ETH_PERP, World, footprint, mirrors_of, outcomes, wallet
from tests.factories import UserFactory

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


@pytest.mark.parametrize(
    ("follower_price", "exceeded"),
    [
        ("3232", False),  # exactly 1.00 % away: still accepted
        ("3231.99", False),  # just inside
        ("3232.01", True),  # just outside
        ("3168", False),  # 1.00 % below (a better price for a buyer is still slippage)
        ("3167.99", True),
        ("3200", False),
    ],
)
def test_slippage_exceeded_at_just_inside_and_just_outside_the_tolerance(follower_price, exceeded):
    assert decisions.slippage_exceeded(D("3200"), D(follower_price), D("1.00")) is exceeded


def _market(price: str) -> MarketView:
    return MarketView(
        product="margin",
        quote="USDT",
        primary_currency="USDT",
        fill_price_buy=D(price),
        fill_price_sell=D(price),
        max_leverage=100,
        constraints=Constraints(qty_step=D("0.01"), min_qty=D("0.01"), max_qty=D("1000"), min_notional=D("5")),
    )


@pytest.mark.parametrize(
    ("kind", "mark", "expected"),
    [
        ("position_open", "3232", ("COPIED", "")),
        ("position_open", "3231.99", ("COPIED", "")),
        ("position_open", "3232.01", ("REJECTED", "SLIPPAGE_EXCEEDED")),
        ("spot_buy", "3232.01", ("REJECTED", "SLIPPAGE_EXCEEDED")),
        ("spot_buy", "3232", ("COPIED", "")),
    ],
)
def test_decide_rejects_an_open_beyond_the_tolerance(kind, mark, expected):
    event = EventView(kind=kind, order_side="buy", price=D("3200"), quantity=D("1"), leverage=10)
    target = TargetView(1, 1, True, "progressive", multiplier=D("0.5"), slippage_tolerance_pct=D("1.00"))
    market = _market(mark)
    if kind == "spot_buy":
        market = MarketView(**{**market.__dict__, "product": "spot", "max_leverage": 1})
    decision = decisions.decide(
        event, target, free=D("5000"), equity=D("5000"), mirror=None, holding=D("0"), market=market
    )
    assert (decision.outcome, decision.reason) == expected
    assert (decision.quantity, decision.price) == (D("0.5"), D(mark))


def test_a_zero_tolerance_accepts_only_the_leaders_own_price():
    event = EventView(kind="position_open", order_side="buy", price=D("3200"), quantity=D("1"), leverage=10)
    target = TargetView(1, 1, True, "progressive", multiplier=D("1"), slippage_tolerance_pct=D("0"))
    for mark, outcome in (("3200", "COPIED"), ("3200.01", "REJECTED")):
        decision = decisions.decide(
            event, target, free=D("9999"), equity=D("9999"), mirror=None, holding=D("0"), market=_market(mark)
        )
        assert decision.outcome == outcome


def test_followers_tolerances_decide_the_same_price_move_differently_and_closes_always_follow(world):
    portfolio = world.leader()
    tight, exact, loose = (world.follower(portfolio, slippage_tolerance_pct=D(pct)) for pct in ("0.99", "1.00", "1.01"))
    # The leader fills at 3200; the market has moved 1.00 % when the copies are made.
    (opened,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)
    world.price(ETH_PERP, "3232")
    tasks.propagate_event(opened.pk)
    assert outcomes(opened) == {
        tight.pk: ("REJECTED", "SLIPPAGE_EXCEEDED"),
        exact.pk: ("COPIED", ""),
        loose.pk: ("COPIED", ""),
    }
    rejected = Execution.objects.get(event=opened, subscription_id=tight.pk)
    assert (rejected.leader_price, rejected.follower_price, rejected.follower_quantity, rejected.order_id) == (
        D("3200"),
        D("3232"),
        D("0.5"),
        None,
    )
    assert not mirrors_of(tight).exists() and not Order.objects.filter(subscription_id=tight.pk).exists()
    assert wallet(tight).locked == 0
    for sub in (exact, loose):
        assert [(m.quantity, m.entry_price) for m in mirrors_of(sub)] == [(D("0.5"), D("3232"))]

    # A close 5 % away is still copied: the tolerance protects entries only.
    closed = portfolio_position_close(portfolio=portfolio, position_id=opened.payload["leader_position_id"])
    world.price(ETH_PERP, "3400")
    tasks.propagate_event(closed.pk)
    assert outcomes(closed) == {
        tight.pk: ("SKIPPED", "NO_MIRROR_POSITION"),
        exact.pk: ("COPIED", ""),
        loose.pk: ("COPIED", ""),
    }
    for sub in (exact, loose):
        assert wallet(sub).balance == D("5000") + D("0.5") * (3400 - 3232)
    assert ledger_check().ok


def test_subscribe_takes_a_slippage_tolerance_and_defaults_to_one_percent(world):
    portfolio = world.leader()
    api = client_for(UserFactory())
    ok(api.post("/api/v1/wallets/main/deposit", {"amount": "9000"}, format="json"))
    body = ok(api.post("/api/v1/subscriptions", {"portfolio": portfolio.pk, "amount": "1000", "multiplier": "0.5"}))
    assert body["slippage_tolerance_pct"] == "1.00"
    assert Subscription.objects.get(pk=body["id"]).slippage_tolerance_pct == D("1.00")

    other = world.leader()
    body = ok(
        api.post(
            "/api/v1/subscriptions",
            {"portfolio": other.pk, "amount": "1000", "multiplier": "0.5", "slippage_tolerance_pct": "100"},
            format="json",
        )
    )
    assert body["slippage_tolerance_pct"] == "100.00"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("-0.01", "OUT_OF_RANGE"),
        ("100.01", "OUT_OF_RANGE"),
        ("1.005", "INVALID_PRECISION"),
        ("lots", "INVALID"),
        (None, "INVALID_NULL"),
    ],
)
def test_subscribe_refuses_a_tolerance_out_of_range(world, value, code):
    portfolio = world.leader()
    api = client_for(UserFactory())
    ok(api.post("/api/v1/wallets/main/deposit", {"amount": "9000"}, format="json"))
    before = footprint()
    body = {"portfolio": portfolio.pk, "amount": "1000", "multiplier": "0.5", "slippage_tolerance_pct": value}
    refused(api.post("/api/v1/subscriptions", body, format="json"), 400, code, "slippage_tolerance_pct")
    assert footprint() == before
    assert not Subscription.objects.exists()
