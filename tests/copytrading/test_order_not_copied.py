"""A leader order that is never copied (advanced or standalone stop, placed
outside the paper venue): recorded as an ``order_not_copied`` leader event and
propagated, chunk by chunk, as one SKIPPED execution row per follower."""

from decimal import Decimal

import pytest

from copytrading.errors import DomainError
from copytrading.events import leader_event_replay
from copytrading.ledger import ledger_check
from copytrading.models import ChunkStatus, Instrument, LeaderEventStatus, PropagationChunk
from followers.lifecycle import subscription_pause
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.services import portfolio_order_not_copied_record
from tests.copytrading.world import BTC_PERP, ETH_PERP, World, footprint, mirrors_of, outcomes

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 2
    return World(instruments, django_capture_on_commit_callbacks)


def record(world, portfolio, order_type="iceberg", **overrides):
    kwargs = {"symbol": ETH_PERP, "side": "buy", "quantity": D("1.5"), "order_type": order_type} | overrides
    with world.capture(execute=True):
        return portfolio_order_not_copied_record(portfolio=portfolio, **kwargs)


@pytest.mark.django_db
def test_every_follower_of_every_chunk_gets_one_skipped_row_and_nothing_else(world):
    world.price(ETH_PERP, "3000")
    leader = world.leader()
    subs = [world.follower(leader) for _ in range(3)]  # two chunks of two
    subscription_pause(subscription=subs[1])
    world.trade(leader, ETH_PERP, "buy", "2")  # the followers hold mirrors: left alone
    mirrors_before = [list(mirrors_of(s).values_list("quantity", "status")) for s in subs]
    before = footprint()

    event = record(world, leader, "oco", side="sell", price=D("3100"))

    event.refresh_from_db()
    assert (event.kind, event.seq, event.status) == ("order_not_copied", 2, LeaderEventStatus.DONE)
    assert event.payload["reason_code"] == "ADVANCED_ORDER_NOT_SUPPORTED"
    assert (event.payload["order_type"], event.payload["price"]) == ("oco", "3100.00000000")
    chunks = PropagationChunk.objects.filter(event=event)
    assert sorted(chunks.values_list("status", flat=True)) == [ChunkStatus.DONE, ChunkStatus.DONE]
    assert outcomes(event) == {s.pk: ("SKIPPED", "ADVANCED_ORDER_NOT_SUPPORTED") for s in subs}
    orders, transfers, executions, events, accounts, positions, open_orders = footprint()
    assert (orders, transfers, executions, events) == (before[0], before[1], before[2] + 3, before[3] + 1)
    assert (accounts, positions, open_orders) == before[4:]
    assert [list(mirrors_of(s).values_list("quantity", "status")) for s in subs] == mirrors_before
    # A staff replay serves nobody twice.
    with world.capture(execute=True):
        assert leader_event_replay(event_id=event.pk) == 2
    assert footprint()[:4] == (before[0], before[1], before[2] + 3, before[3] + 1)
    assert ledger_check().ok


@pytest.mark.django_db
def test_an_instrument_without_a_price_needs_none(world):
    leader = world.leader()
    sub = world.follower(leader)
    Instrument.objects.filter(symbol=BTC_PERP).update(mark_price=None)

    event = record(world, leader, "stop_limit", symbol=BTC_PERP, quantity=D("0.01"))

    assert outcomes(event) == {sub.pk: ("SKIPPED", "STOP_ORDER_NOT_SUPPORTED_FOR_COPY")}
    assert "price" not in event.payload


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"order_type": "market"}, "INVALID_ORDER_TYPE"),
        ({"order_type": "limit"}, "INVALID_ORDER_TYPE"),
        ({"side": "long"}, "INVALID_SIDE"),
        ({"symbol": "NOPE/USDT:USDT"}, "UNKNOWN_INSTRUMENT"),
        ({"symbol": "ETH/USDT"}, "PRODUCT_NOT_IN_MODE"),
        ({"quantity": D("0")}, "INVALID_QUANTITY"),
        ({"quantity": D("-1")}, "INVALID_QUANTITY"),
        ({"price": D("-5")}, "INVALID_PRICE"),
    ],
)
def test_bad_input_is_refused_and_records_nothing(world, overrides, code):
    leader = world.leader()
    world.follower(leader)
    before = footprint()

    with pytest.raises(DomainError) as exc:
        record(world, leader, **overrides)

    assert exc.value.code == code
    assert footprint() == before


@pytest.mark.django_db
def test_a_closing_portfolio_records_nothing(world):
    leader = world.leader()
    Portfolio.objects.filter(pk=leader.pk).update(status=PortfolioStatus.CLOSING)

    with pytest.raises(DomainError) as exc:
        record(world, leader)

    assert exc.value.code == "PORTFOLIO_NOT_ACTIVE"
