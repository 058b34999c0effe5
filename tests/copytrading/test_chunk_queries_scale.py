"""A chunk's query count does not depend on its size: one chunk of 100
followers (FANOUT_CHUNK_SIZE=100) and one of 500 (FANOUT_CHUNK_SIZE=500) run
the same number of queries, for an open and for a close with PnL. Followers
are seeded set-based (backoffice.loadgen), with the three sizing models mixed."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backoffice.loadgen import followers_seed_bulk
from copytrading import propagation
from copytrading.ledger import ledger_check
from copytrading.models import Execution, Instrument, Position, PositionStatus, Transfer
from copytrading.services import price_set, wallet_deposit
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from tests.factories import UserFactory

D = Decimal
ETH_PERP = "ETH/USDT:USDT"


def propagate_by_hand(event_id: int) -> None:
    for chunk_id in propagation.event_start(event_id):
        propagation.chunk_propagate(chunk_id)
    propagation.event_complete(event_id)


def _one_chunk_queries(settings, followers: int, *, close: bool) -> tuple[int, int, int]:
    settings.FANOUT_CHUNK_SIZE = followers
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("21000"))
    portfolio = portfolio_create(leader=leader, name=f"scale {followers} {close}", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    subs = followers_seed_bulk(portfolio=portfolio, count=followers)
    eth = Instrument.objects.get(symbol=ETH_PERP)
    price_set(instrument=eth, price=D("3200"))
    # Placed without the on-commit dispatch: the engine is driven by hand.
    (event,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("1"), leverage=10)
    if close:
        propagate_by_hand(event.pk)
        price_set(instrument=eth, price=D("3250"))
        event = portfolio_position_close(portfolio=portfolio, position_id=event.payload["leader_position_id"])
    (chunk_id,) = propagation.event_start(event.pk)  # one chunk holds every follower
    transfers_before = Transfer.objects.count()
    with CaptureQueriesContext(connection) as queries:
        result = propagation.chunk_propagate(chunk_id)
    propagation.event_complete(event.pk)

    assert result.copied == followers
    assert Execution.objects.filter(event=event, outcome="COPIED").count() == followers
    mirrors = Position.objects.filter(subscription_id__in=subs)
    if close:
        assert not mirrors.filter(status=PositionStatus.OPEN).exists()
        assert Transfer.objects.count() - transfers_before == followers  # one PnL transfer each, set-based
    else:
        # progressive 0.5 → 0.5; fixed 500 / 3200 → 0.15; adaptive 1 x 5000 / 20000 → 0.25
        assert sorted(set(mirrors.values_list("quantity", flat=True))) == [D("0.15"), D("0.25"), D("0.5")]
        assert mirrors.filter(status=PositionStatus.OPEN).count() == followers
    assert ledger_check().ok
    return statements(queries.captured_queries)


def statements(captured: list[dict]) -> tuple[int, int, int]:
    """(queries, statements, longest run): the raw count; the count with
    consecutive batches of one bulk INSERT merged (Django splits a bulk_create
    into batches under the backend's parameter limit, 999 on SQLite and none
    on PostgreSQL: one statement of the engine's, however many rows); and the
    most INSERTs merged into one, which stays far below one per follower."""
    merged, run, longest = 0, 0, 0
    previous = None
    for query in captured:
        sql = query["sql"]
        head = sql.split("(", 1)[0] if sql.startswith("INSERT INTO") else None
        run = run + 1 if head is not None and head == previous else 1
        longest = max(longest, run)
        if run == 1:
            merged += 1
        previous = head
    return len(captured), merged, longest


@pytest.mark.parametrize("close", [False, True], ids=["open", "close-with-pnl"])
def test_one_chunk_costs_the_same_queries_at_chunk_size_100_and_500(settings, instruments, vendor, close):
    (small_queries, small, small_run), (large_queries, large, large_run) = (
        _one_chunk_queries(settings, 100, close=close),
        _one_chunk_queries(settings, 500, close=close),
    )
    assert small == large, (small, large)
    assert small_run <= 100 // 25 and large_run <= 500 // 25, (small_run, large_run)
    assert small < 40  # a handful of set-based statements, not one per follower
    if vendor != "sqlite":
        # Without a parameter limit every bulk write is one query: the raw counts match too.
        assert small_queries == large_queries, (small_queries, large_queries)
