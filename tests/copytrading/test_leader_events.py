"""The leader-event contract (copytrading.leader_events): every kind round-trips
through its payload, payloads stored before a field existed still parse, a
malformed payload fails loudly with the kind and the field, and every event
the producers write in the database parses back to exactly what is stored."""

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copytrading import decisions, leader_events, propagation
from copytrading.leader_events import EVENT_TYPES, EventPayloadError, Kind, parse
from copytrading.models import ChunkStatus, Execution, LeaderEvent, LeaderEventKind, LeaderEventStatus, PropagationChunk
from portfolios.services import (
    portfolio_order_not_copied_record,
    portfolio_order_place,
    portfolio_position_leverage_set,
)
from tests.copytrading.world import BTC_PERP, ETH_PERP, World

D = Decimal
ETH_SPOT = "ETH/USDT"

_decimals = st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-(10**12), max_value=10**12)
_VALUES = {Decimal: _decimals, int: st.integers(0, 2**53), str: st.text(max_size=12), bool: st.booleans()}


def _strategy(cls):
    """Every field of ``cls`` drawn from its payload type (None too where allowed)."""
    kwargs = {}
    for name, (codec, _optional) in leader_events._spec(cls).items():
        values = _VALUES[codec.type]
        kwargs[name] = st.one_of(st.none(), values) if codec.nullable else values
    return st.builds(cls, **kwargs)


@pytest.mark.parametrize("kind", list(Kind))
@given(data=st.data())
def test_every_kind_round_trips_through_json(kind, data):
    event = data.draw(_strategy(EVENT_TYPES[kind]))
    stored = json.loads(json.dumps(event.to_payload()))  # what a JSONField keeps
    assert parse(kind.value, stored) == event
    assert event.kind == kind and parse(kind.value, stored).to_payload() == stored


def test_the_kinds_are_declared_once():
    assert [(k, label) for k, label in LeaderEventKind.choices] == [(k.value, leader_events.LABELS[k]) for k in Kind]
    assert LeaderEventKind.SPOT_SELL == "spot_sell" == decisions.SPOT_SELL
    assert set(EVENT_TYPES) == set(Kind)
    assert (*decisions.POSITION_KINDS, decisions.SPOT_BUY, decisions.SPOT_SELL) == decisions.FILL_KINDS


def test_optional_fields_are_left_out_and_nullable_ones_kept():
    tpsl = leader_events.TpslSet(instrument_id=1, symbol="X", leader_position_id=2, take_profit=None, stop_loss=D("9"))
    assert tpsl.to_payload() == {
        "instrument_id": 1, "symbol": "X", "leader_position_id": 2, "take_profit": None, "stop_loss": "9",
    }  # fmt: skip
    placed = leader_events.LimitPlaced(
        instrument_id=1, symbol="X", order_side="buy", price=D("3000.00"), quantity=D("1.50"), leverage=5,
        leader_equity=D("100"), leader_order_id=7,
    )  # fmt: skip
    assert "quantity_before" not in placed.to_payload() and "fraction" not in placed.to_payload()
    # Decimal text is kept as written: "3000.00" stays "3000.00".
    assert placed.to_payload()["price"] == "3000.00"


# --- payloads written before a field existed ----------------------------------------


BASE = {"instrument_id": 3, "symbol": ETH_PERP, "order_side": "sell", "price": "3100", "order_id": 11}


def test_an_old_fraction_only_reduce_parses_and_is_sized_from_its_fraction():
    old = {**BASE, "leader_position_id": 5, "fraction": "0.25"}
    event = parse("position_reduce", old)
    assert (event.quantity, event.quantity_before, event.fraction) == (None, None, D("0.25"))
    view = decisions.event_view(event)
    assert (view.quantity, view.quantity_before, view.fraction) == (0, 0, D("0.25"))
    assert view.share.of(D("2"), D("0.01")) == D("0.50")
    assert event.to_payload() == old  # nothing invented on the way back


def test_an_old_close_without_any_share_parses_and_closes_everything():
    old = {**BASE, "leader_position_id": 5}
    view = decisions.event_view(parse("position_close", old))
    assert view.kind == "position_close" and view.share.of(D("2"), D("0.01")) == 0  # the decision closes all
    assert parse("spot_sell", {**BASE, "fraction": "0.5"}).fraction == D("0.5")


def test_unknown_keys_are_ignored_on_read():
    payload = {**BASE, "leader_position_id": 5, "fraction": "1", "added_later": {"x": 1}}
    assert "added_later" not in parse("position_close", payload).to_payload()


# --- malformed payloads fail loudly ------------------------------------------------------


OPEN = {
    **BASE, "order_side": "buy", "leader_position_id": 5, "quantity": "1.5", "leverage": 10, "leader_equity": "900",
}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "payload", "field", "problem"),
    [
        ("position_open", {k: v for k, v in OPEN.items() if k != "quantity"}, "quantity", "is missing"),
        ("position_open", {**OPEN, "quantity": 1.5}, "quantity", "must be a decimal string, not float"),
        ("position_open", {**OPEN, "price": "NaN"}, "price", "must be a finite decimal"),
        ("position_open", {**OPEN, "price": "abc"}, "price", "decimal.ConversionSyntax"),
        ("position_open", {**OPEN, "leverage": "10"}, "leverage", "must be an integer, not str"),
        ("position_open", {**OPEN, "leverage": True}, "leverage", "must be an integer, not bool"),
        ("position_open", {**OPEN, "symbol": None}, "symbol", "must not be null"),
        ("position_open", {**OPEN, "limit_final": "yes"}, "limit_final", "must be a bool, not str"),
        ("tpsl_set", {"instrument_id": 1, "symbol": "X", "leader_position_id": 2}, "take_profit", "is missing"),
        ("position_open", [1, 2], None, "the payload must be an object, not list"),
        ("position_moved", {}, None, "is not a known kind"),
    ],
)
def test_a_malformed_payload_names_the_kind_and_the_field(kind, payload, field, problem):
    with pytest.raises(EventPayloadError) as caught:
        parse(kind, payload)
    assert (caught.value.kind, caught.value.field) == (kind, field)
    assert problem in str(caught.value) and kind in str(caught.value)


def test_a_producer_cannot_record_an_untyped_payload(db):
    from django.db import transaction

    from copytrading.events import leader_event_record

    with transaction.atomic(), pytest.raises(TypeError, match="typed data"):
        leader_event_record(portfolio_id=1, data={"instrument_id": 1})


# --- what the producers write ------------------------------------------------------------


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


@pytest.mark.django_db
def test_every_kind_the_producers_write_parses_back_to_the_stored_payload(world):
    world.price(ETH_PERP, "3000")
    world.price(BTC_PERP, "60000")
    world.price(ETH_SPOT, "3000")
    margin = world.leader()
    world.follower(margin)
    (opened,) = world.trade(margin, ETH_PERP, "buy", "2")
    position_id = opened.data.leader_position_id
    world.close(margin, position_id, "0.5")
    world.tpsl(margin, position_id, take_profit="3500", stop_loss=None)
    with world.capture(execute=True):
        portfolio_position_leverage_set(portfolio=margin, position_id=position_id, leverage=5)
    placed = world.limit(margin, BTC_PERP, "buy", "0.1", "59000")
    world.reprice(margin, placed.data.leader_order_id, "58000")
    world.cancel(margin, placed.data.leader_order_id)
    limit = world.limit(margin, BTC_PERP, "buy", "0.1", "59000")
    world.price(BTC_PERP, "58900")  # the limit fills: a position_open with its limit fields
    world.price(ETH_PERP, "3600")  # the take-profit closes the rest
    with world.capture(execute=True):
        portfolio_order_not_copied_record(
            portfolio=margin, symbol=ETH_PERP, side="buy", quantity=D("1"), order_type="oco"
        )
    spot = world.leader(mode="spot")
    world.follower(spot)
    world.trade(spot, ETH_SPOT, "buy", "2")
    world.trade(spot, ETH_SPOT, "sell", "0.5")
    world.limit(spot, ETH_SPOT, "sell", "0.5", "3200")

    events = list(LeaderEvent.objects.order_by("pk"))
    assert {e.kind for e in events} == {k.value for k in Kind}
    for event in events:
        assert event.data.to_payload() == event.payload, event.kind
    (fill,) = [e for e in events if e.kind == "position_open" and e.data.limit_order_id == limit.data.leader_order_id]
    assert (fill.data.trigger, fill.data.limit_final, fill.data.order_quantity) == ("limit", True, D("0.1"))
    triggered = next(e for e in events if e.kind == "position_close")
    assert triggered.data.trigger == "take_profit" and triggered.data.fraction == 1


@pytest.mark.django_db
def test_a_chunk_of_a_malformed_event_stays_pending_and_writes_nothing(world):
    world.price(ETH_PERP, "3000")
    leader = world.leader()
    subs = [world.follower(leader) for _ in range(3)]
    with world.capture(execute=False):  # recorded, not propagated
        (event,) = portfolio_order_place(portfolio=leader, symbol=ETH_PERP, side="buy", quantity=D("1"))
    LeaderEvent.objects.filter(pk=event.pk).update(payload={**event.payload, "quantity": 1})
    (chunk_id,) = propagation.event_start(event.pk)

    with pytest.raises(EventPayloadError, match="'quantity' must be a decimal string"):
        propagation.chunk_propagate(chunk_id)

    assert PropagationChunk.objects.get(pk=chunk_id).status == ChunkStatus.PENDING
    assert not Execution.objects.filter(event=event).exists()  # no follower is blamed: the event is broken
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.PROPAGATING
    assert len(subs) == 3
