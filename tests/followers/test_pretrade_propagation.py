"""The risk app's pre-trade limits inside a real propagation: a refused copy
is an execution row with its reason code, the other followers of the chunk
are served, and the gate keeps the chunk's query count constant."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from copytrading import propagation
from copytrading.ledger import ledger_check
from copytrading.models import Order
from portfolios.services import portfolio_order_place
from risk import rules
from risk.services import risk_limits_set
from tests.copytrading.world import BTC_PERP, ETH_PERP, mirror_orders_of, mirrors_of, outcomes, wallet

D = Decimal
SOL_PERP = "SOL/USDT:USDT"


def test_max_open_positions_refuses_a_new_position_but_not_an_increase(world):
    portfolio = world.leader()
    limited = world.subscribe(portfolio, max_open_positions=1)
    free = world.subscribe(portfolio)
    (first,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    assert outcomes(first) == {limited.pk: ("COPIED", ""), free.pk: ("COPIED", "")}

    (second,) = world.trade(portfolio, BTC_PERP, "buy", "0.1")
    assert outcomes(second) == {
        limited.pk: ("REJECTED", rules.MAX_OPEN_POSITIONS_REACHED),
        free.pk: ("COPIED", ""),
    }
    assert [m.instrument.symbol for m in mirrors_of(limited)] == [ETH_PERP]

    (increase,) = world.trade(portfolio, ETH_PERP, "buy", "2")  # the same position grows
    assert outcomes(increase)[limited.pk] == ("COPIED", "")
    (mirror,) = mirrors_of(limited)
    assert mirror.quantity == D("2")
    assert ledger_check().ok


# The follower's equity is 5000; the ETH mirror (1 @ 3200) and the BTC one
# (0.05 @ 64000) are 3200 each, 6400 together = 128 % of equity.
@pytest.mark.parametrize(
    ("limit_pct", "outcome"),
    [
        ("127.99", ("REJECTED", rules.MAX_EXPOSURE_EXCEEDED)),
        ("128", ("COPIED", "")),
        ("128.01", ("COPIED", "")),
    ],
)
def test_max_exposure_refuses_a_copy_that_takes_it_above_the_limit(world, limit_pct, outcome):
    portfolio = world.leader()
    sub = world.subscribe(portfolio, max_exposure_pct=D(limit_pct))
    (eth,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    assert outcomes(eth) == {sub.pk: ("COPIED", "")}
    (btc,) = world.trade(portfolio, BTC_PERP, "buy", "0.1")
    assert outcomes(btc) == {sub.pk: outcome}
    assert len(mirrors_of(sub)) == (2 if outcome[0] == "COPIED" else 1)
    assert wallet(sub).locked == (D("640") if outcome[0] == "COPIED" else D("320"))


def test_a_mirror_limit_counts_as_a_new_position(world):
    portfolio = world.leader()
    sub = world.subscribe(portfolio, max_open_positions=1)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    placed = world.limit(portfolio, SOL_PERP, "buy", "10", "140", leverage=5)
    assert outcomes(placed) == {sub.pk: ("REJECTED", rules.MAX_OPEN_POSITIONS_REACHED)}
    assert not mirror_orders_of(sub).exists()
    assert wallet(sub).locked == D("320")  # nothing reserved


def test_limits_changed_on_the_fly_apply_to_the_next_copy(world):
    portfolio = world.leader()
    sub = world.subscribe(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    risk_limits_set(subscription_id=sub.pk, max_open_positions=1)
    (refused,) = world.trade(portfolio, BTC_PERP, "buy", "0.1")
    assert outcomes(refused) == {sub.pk: ("REJECTED", rules.MAX_OPEN_POSITIONS_REACHED)}
    risk_limits_set(subscription_id=sub.pk, max_open_positions=None)
    (copied,) = world.trade(portfolio, SOL_PERP, "buy", "10")
    assert outcomes(copied) == {sub.pk: ("COPIED", "")}


def _gated_chunk_queries(world, followers: int, event_kind: str) -> int:
    """Queries of one chunk of ``followers``, half of them with pre-trade limits."""
    portfolio = world.leader()
    subs = [world.subscribe(portfolio) for _ in range(followers)]
    for sub in subs[::2]:
        risk_limits_set(subscription_id=sub.pk, max_open_positions=5, max_exposure_pct=D("1000"))
    kwargs = {"order_type": "limit", "price": D("3100")} if event_kind == "limit" else {}
    # Placed without the on-commit dispatch: the engine is driven by hand.
    (event,) = portfolio_order_place(
        portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10, **kwargs
    )
    (chunk_id,) = propagation.event_start(event.pk)
    with CaptureQueriesContext(connection) as queries:
        result = propagation.chunk_propagate(chunk_id)
    assert result.copied == followers
    if event_kind == "limit":
        assert Order.objects.filter(subscription_id__in=[s.pk for s in subs], status="open").count() == followers
    return len(queries)


@pytest.mark.parametrize("event_kind", ["market", "limit"])
def test_the_gate_keeps_the_chunk_query_count_constant(world, settings, event_kind):
    settings.FANOUT_CHUNK_SIZE = 100
    assert _gated_chunk_queries(world, 4, event_kind) == _gated_chunk_queries(world, 40, event_kind)
