"""The pure comparison of the exchange reconciliation (no Django, no ccxt):
each finding kind, the one-step tolerance, and symbols left alone while an
order of ours is in flight."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from copytrading.exchanges import reconcile as rc

D = Decimal
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ETH, BTC, SOL = "ETH/USDT:USDT", "BTC/USDT:USDT", "SOL/USDT:USDT"
STEPS = {ETH: D("0.01"), BTC: D("0.001"), SOL: D("0.1")}


def held(symbol=ETH, side="long", quantity="1", pk=1, sub=7):
    return rc.HeldPosition(pk, symbol, side, D(quantity), sub)


def there(symbol=ETH, side="long", quantity="1"):
    return rc.ExchangePosition(symbol, side, D(quantity), D(quantity))


def order(client_id, symbol=ETH, status="filled", age=timedelta(hours=1), pk=1, recent=False):
    return rc.KnownOrder(pk, client_id, symbol, status, NOW - age, 7, recent)


def compare(held_=(), known=(), positions=(), open_orders=()):
    return rc.compare(
        held=held_, known=known, positions=positions, open_orders=open_orders, steps=STEPS, now=NOW,
        grace=timedelta(minutes=2),
    )  # fmt: skip


def codes(findings):
    return [(f.code, f.subject) for f in findings]


def test_the_same_positions_on_both_sides_are_in_line():
    assert compare([held(), held(BTC, "short", "0.5", pk=2)], positions=[there(), there(BTC, "short", "0.5")]) == []


def test_each_position_finding():
    findings = compare(
        [held(ETH, quantity="1"), held(BTC, quantity="0.2", pk=2)],
        known=[order("ct-5-7", SOL)],
        positions=[there(ETH, quantity="1.5"), there(SOL, "short", "3")],
    )
    assert codes(findings) == [
        ("CLOSED_ON_EXCHANGE", BTC),
        ("QUANTITY_MISMATCH", ETH),
        ("UNKNOWN_POSITION", SOL),
    ]
    closed, mismatch, unknown = findings
    assert (closed.service_quantity, closed.exchange_quantity, closed.position_ids) == (D("0.2"), 0, (2,))
    assert (mismatch.service_quantity, mismatch.exchange_quantity) == (D("1"), D("1.5"))
    # Signed, and ours: the service traded SOL on this account.
    assert (unknown.exchange_quantity, unknown.exchange_contracts, unknown.ours) == (D("-3"), D("-3"), True)


def test_a_position_the_service_never_traded_there_is_not_ours():
    (finding,) = compare(positions=[there(SOL, quantity="2")])
    assert (finding.code, finding.ours) == ("UNKNOWN_POSITION", False)


def test_one_step_is_rounding_and_opposite_sides_always_differ():
    assert compare([held(quantity="1")], positions=[there(quantity="1.01")]) == []
    assert codes(compare([held(quantity="1")], positions=[there(quantity="1.02")])) == [("QUANTITY_MISMATCH", ETH)]
    assert codes(compare([held(quantity="1")], positions=[there(side="short", quantity="1")])) == [
        ("QUANTITY_MISMATCH", ETH)
    ]


def test_a_symbol_with_an_order_in_flight_or_just_changed_is_not_compared():
    # The fill may be on the exchange and not yet in the service (or the reverse).
    assert compare(known=[order("ct-9-7", status="sent", age=timedelta(0))], positions=[there()]) == []
    assert compare([held()], known=[order("ct-9-7", recent=True)]) == []
    assert rc.unsettled_symbols([order("a", status="acknowledged"), order("b", BTC), order("c", SOL, recent=True)]) == {
        ETH,
        SOL,
    }


def test_order_findings():
    known = [
        order("ct-1-7", status="filled", pk=1),
        order("ct-2-7", status="sent", age=timedelta(minutes=5), pk=2),
        order("ct-3-7", status="pending", age=timedelta(seconds=30), pk=3),  # within the grace period
        order("ct-4-7", status="sent", age=timedelta(minutes=5), pk=4),  # open on the exchange: fine
    ]
    open_orders = [
        rc.ExchangeOpenOrder("ct-1-7", ETH, "buy", D("1")),  # final to us, open there
        rc.ExchangeOpenOrder("ct-77-1", ETH, "sell", D("2")),  # unknown to us
        rc.ExchangeOpenOrder("ct-4-7", ETH, "buy", D("1")),
        rc.ExchangeOpenOrder("web_abc", ETH, "buy", D("1")),  # the user's own order
    ]
    findings = compare(known=known, open_orders=open_orders, positions=[])
    assert codes(findings) == [("UNKNOWN_ORDER", "ct-1-7"), ("UNKNOWN_ORDER", "ct-77-1"), ("MISSING_ORDER", "ct-2-7")]
    assert findings[0].order_ids == (1,) and findings[1].order_ids == () and findings[2].order_ids == (2,)
    assert findings[1].exchange_quantity == D("-2")


quantities = st.decimals(min_value=D("-5"), max_value=D("5"), places=2).filter(lambda q: q != 0)


@given(mine=st.none() | quantities, theirs=st.none() | quantities)
def test_at_most_one_position_finding_per_symbol_and_none_when_equal(mine, theirs):
    held_ = [held(side="long" if mine > 0 else "short", quantity=str(abs(mine)))] if mine else []
    positions = [there(side="long" if theirs > 0 else "short", quantity=str(abs(theirs)))] if theirs else []
    findings = compare(held_, positions=positions)
    assert len(findings) <= 1
    if mine == theirs:
        assert findings == []
    elif mine is None:
        assert codes(findings) == [("UNKNOWN_POSITION", ETH)]
    elif theirs is None:
        assert codes(findings) == [("CLOSED_ON_EXCHANGE", ETH)]
    else:
        expected = abs(mine - theirs) > STEPS[ETH] or (mine > 0) != (theirs > 0)
        assert codes(findings) == ([("QUANTITY_MISMATCH", ETH)] if expected else [])
