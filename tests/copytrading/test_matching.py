"""Price-driven matching: liquidation (isolated margin, loss capped), trigger
priority, idempotency, the mirror-limit rule, and set-based query counts."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st

from copytrading import decisions, ledger, trade_math
from copytrading.decisions import LeaderStep
from copytrading.ledger import ledger_check
from copytrading.models import AccountKind, Instrument, Order, Position, PositionStatus, Transfer
from copytrading.services import price_set
from copytrading.sizing import Constraints
from portfolios.services import portfolio_order_place, portfolio_position_tpsl_set
from tests.copytrading.world import ETH_PERP, World, footprint, mirrors_of, outcomes, wallet

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)


def test_liquidation_caps_the_loss_at_the_margin_and_the_ledger_stays_balanced(world):
    portfolio = world.leader()
    copier = world.follower(portfolio)  # 0.5 at 10x: margin 160
    careful = world.follower(portfolio, leverage_override=5)  # 0.5 at 5x: margin 320
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "1")  # margin 320
    leader_position_id = opened.payload["leader_position_id"]
    venue_before = Transfer.objects.filter(kind="REALIZED_PNL").count()

    assert world.price(ETH_PERP, "2880.01") == []  # the leader's loss is 319.99 < 320
    (liquidated,) = world.price(ETH_PERP, "2800")  # a gap: the loss would be 400
    assert (liquidated.kind, liquidated.payload["trigger"], liquidated.payload["price"]) == (
        "position_close",
        "liquidation",
        "2800.00000000",
    )
    leader_position = Position.objects.get(pk=leader_position_id)
    assert (leader_position.status, leader_position.realized_pnl) == (PositionStatus.CLOSED, D("-320"))
    assert Order.objects.get(pk=liquidated.payload["order_id"]).order_type == "liquidation"
    assert (wallet(portfolio).balance, wallet(portfolio).locked) == (D("19680"), D("0"))

    # The 10x mirror hit its own liquidation (loss 200 > margin 160); the 5x
    # mirror did not (200 < 320) and follows the leader's close at market.
    assert outcomes(liquidated) == {copier.pk: ("SKIPPED", "NO_MIRROR_POSITION"), careful.pk: ("COPIED", "")}
    (copier_mirror,) = mirrors_of(copier)
    assert (copier_mirror.status, copier_mirror.realized_pnl) == (PositionStatus.CLOSED, D("-160"))
    assert Order.objects.get(position=copier_mirror, order_type="liquidation").price == D("2800")
    assert (wallet(copier).balance, wallet(copier).locked) == (D("4840"), D("0"))
    (careful_mirror,) = mirrors_of(careful)
    assert (careful_mirror.status, careful_mirror.realized_pnl) == (PositionStatus.CLOSED, D("-200"))
    assert (wallet(careful).balance, wallet(careful).locked) == (D("4800"), D("0"))
    assert Transfer.objects.filter(kind="REALIZED_PNL").count() == venue_before + 3

    before = footprint()
    assert world.price(ETH_PERP, "2800") == []
    assert world.price(ETH_PERP, "2000") == []
    assert footprint() == before
    report = ledger_check()
    assert report.ok, report


def test_a_short_is_liquidated_exactly_when_its_loss_reaches_the_margin(world):
    portfolio = world.leader()
    sub = world.follower(portfolio, multiplier="1")
    world.trade(portfolio, ETH_PERP, "sell", "1")
    assert world.price(ETH_PERP, "3519.99") == []
    (liquidated,) = world.price(ETH_PERP, "3520")  # loss 320 = margin 320
    assert liquidated.payload["trigger"] == "liquidation"
    assert outcomes(liquidated) == {sub.pk: ("SKIPPED", "NO_MIRROR_POSITION")}
    assert wallet(portfolio).balance == D("19680")
    assert (wallet(sub).balance, mirrors_of(sub).get().realized_pnl) == (D("4680"), D("-320"))
    assert ledger_check().ok


def test_liquidation_comes_before_a_stop_loss_crossed_in_the_same_gap(world):
    portfolio = world.leader()
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    with world.capture(execute=True):
        portfolio_position_tpsl_set(
            portfolio=portfolio, position_id=opened.payload["leader_position_id"], stop_loss=D("3000")
        )
    (closed,) = world.price(ETH_PERP, "2850")
    assert closed.payload["trigger"] == "liquidation"
    assert wallet(portfolio).balance == D("19680")


@pytest.mark.parametrize(
    ("side", "mark", "take_profit", "stop_loss", "expected"),
    [
        ("long", "3199.99", "3400", "3000", None),
        ("long", "3400", "3400", "3000", "take_profit"),
        ("long", "3000", "3400", "3000", "stop_loss"),
        ("long", "2880", None, None, "liquidation"),  # loss 320 = margin
        ("long", "2880.01", None, None, None),
        ("long", "2700", None, "3000", "liquidation"),
        ("short", "3000", "3000", "3400", "take_profit"),
        ("short", "3400", "3000", "3400", "stop_loss"),
        ("short", "3520", None, None, "liquidation"),
        ("short", "3519.99", None, "3600", None),
    ],
)
def test_trigger_for(side, mark, take_profit, stop_loss, expected):
    assert (
        trade_math.trigger_for(
            side=side,
            quantity=D("1"),
            entry=D("3200"),
            margin=D("320"),
            take_profit=D(take_profit) if take_profit else None,
            stop_loss=D(stop_loss) if stop_loss else None,
            mark=D(mark),
        )
        == expected
    )


ETH = Constraints(qty_step=D("0.01"), min_qty=D("0.01"), max_qty=D("1000"), min_notional=D("5"))
quantities = st.integers(min_value=1, max_value=2000).map(lambda n: D(n) / 100)


def _leader_steps(plan: list[trade_math.Step], before: Decimal) -> list[LeaderStep]:
    steps = []
    for step in plan:
        if step.action in (trade_math.OPEN, trade_math.INCREASE):
            steps.append(LeaderStep(decisions.POSITION_OPEN, quantity=step.quantity))
        elif step.action == trade_math.REDUCE:
            steps.append(LeaderStep(decisions.POSITION_REDUCE, step.quantity, quantity_before=before))
        else:
            steps.append(LeaderStep(decisions.POSITION_CLOSE))
    return steps


@given(
    leader_side=st.sampled_from(["long", "short", None]),
    leader_qty=quantities,
    order_side=st.sampled_from(["buy", "sell"]),
    order_qty=quantities,
    mirror_qty=st.one_of(st.none(), quantities),
    mirror_order_qty=quantities,
)
def test_a_mirror_limit_never_ends_on_another_side_than_its_leader(
    leader_side, leader_qty, order_side, order_qty, mirror_qty, mirror_order_qty
):
    plan = trade_math.plan_order(leader_side, leader_qty if leader_side else D(0), order_side, order_qty)
    leader_after = leader_side
    for step in plan:
        if step.action == trade_math.CLOSE:
            leader_after = None
        elif step.action in (trade_math.OPEN, trade_math.INCREASE):
            leader_after = step.side
    held = mirror_qty if leader_side else None
    steps, _ = decisions.mirror_limit_steps(
        _leader_steps(plan, leader_qty),
        order_quantity=order_qty,
        mirror_order_quantity=mirror_order_qty,
        mirror_quantity=held,
        price=D("3000"),
        constraints=ETH,
    )
    mirror_side, mirror_held = (leader_side, held) if held else (None, D(0))
    opens = 0
    for step in steps:
        assert step.quantity > 0
        if step.action in (trade_math.REDUCE, trade_math.CLOSE):
            assert step.quantity <= mirror_held
            mirror_held -= step.quantity
            assert (step.action == trade_math.CLOSE) == (mirror_held == 0)
            if mirror_held == 0:
                mirror_side = None
        else:
            opens += 1
            assert (step.action == trade_math.INCREASE) == (mirror_held > 0)
            mirror_side = trade_math.side_of(order_side)
            mirror_held += step.quantity
    assert opens <= 1
    if leader_after is None:
        assert mirror_held == 0  # the leader is flat: so is the mirror
    if mirror_held > 0:
        assert mirror_side == leader_after


def _price_update_queries(world, followers: int, *, kind: str) -> int:
    """Queries of one price update that fills (or triggers) ``followers`` mirrors."""
    Instrument.objects.filter(symbol=ETH_PERP).update(mark_price=D("3200"))
    ledger.system_account(AccountKind.VENUE)  # created on first use: not part of the count
    portfolio = world.leader()
    for _ in range(followers):
        world.follower(portfolio)
    if kind == "limit":
        world.limit(portfolio, ETH_PERP, "buy", "1", "3100")
        target = "3100"
    else:
        (opened,) = world.trade(portfolio, ETH_PERP, "buy", "1")
        world.tpsl(portfolio, opened.payload["leader_position_id"], take_profit="3300")
        target = "3300"
    instrument = Instrument.objects.get(symbol=ETH_PERP)
    orders_before = Order.objects.count()
    filled_before = Order.objects.filter(status="filled", order_type="limit").count()
    # Without the on-commit dispatch: only the matching is counted.
    with CaptureQueriesContext(connection) as queries:
        price_set(instrument=instrument, price=D(target))
    if kind == "limit":
        assert Order.objects.filter(status="filled", order_type="limit").count() - filled_before == followers + 1
    else:
        assert Order.objects.count() - orders_before == followers + 1
        assert not Position.objects.filter(status=PositionStatus.OPEN).exists()
    Position.objects.filter(status=PositionStatus.OPEN).update(status=PositionStatus.CLOSED)
    return len(queries)


@pytest.mark.parametrize("kind", ["limit", "tpsl"])
def test_price_update_query_count_does_not_grow_with_mirrors(world, settings, kind):
    settings.FANOUT_CHUNK_SIZE = 100
    assert _price_update_queries(world, 5, kind=kind) == _price_update_queries(world, 40, kind=kind)


def test_a_price_update_with_nothing_to_match_costs_two_queries_beyond_the_update(world):
    portfolio = world.leader()
    world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    portfolio_order_place(
        portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10, order_type="limit",
        price=D("3000"),
    )  # fmt: skip
    instrument = Instrument.objects.get(symbol=ETH_PERP)
    with CaptureQueriesContext(connection) as queries:
        price_set(instrument=instrument, price=D("3100"))
    # The price update itself, then one candidate query for orders and one for positions.
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 3, statements
