"""Every execution row records what the decision saw (issue #16 §3): the size
before step rounding, the copy's free balance, the instrument's minimums and
step, the price the size was computed at. On a real fan-out (the portfolio
services, dispatched on commit), for each kind of outcome."""

from decimal import Decimal

import pytest

from copytrading import decisions, reasons
from copytrading.decisions import Decision
from copytrading.models import Account, Execution, Outcome, Position, PositionStatus
from followers.services import subscription_pause
from tests.copytrading.world import BTC_PERP, World

D = Decimal
BTC_SPOT = "BTC/USDT"
BTC_PERP_MINIMUMS = (D("0.001"), D("5"), D("0.001"))  # min quantity, min notional, step (services.DEFAULT_INSTRUMENTS)
SEEN = ("attempted_quantity", "free_balance", "min_quantity", "min_notional", "quantity_step", "price_used")


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 3
    return World(instruments, django_capture_on_commit_callbacks)


def _row(event, sub) -> Execution:
    return Execution.objects.select_related("event").get(event=event, subscription_id=sub.pk)


def _seen(row: Execution) -> tuple:
    return tuple(getattr(row, name) for name in SEEN)


def _free(sub) -> Decimal:
    return Account.objects.get(pk=sub.copy_account_id).free


def test_a_margin_open_records_what_each_follower_decision_saw(world):
    portfolio = world.leader()
    copied = world.follower(portfolio, multiplier="0.5")
    tiny = world.follower(portfolio, multiplier="0.004")  # 0.1 x 0.004 = 0.0004 BTC < 0.001
    poor = world.follower(portfolio, amount="100", multiplier="1")  # 0.1 BTC at 10x needs 640 USDT of margin
    paused = world.follower(portfolio)
    subscription_pause(subscription=paused)
    free_before = {s.pk: _free(s) for s in (copied, tiny, poor)}

    (event,) = world.trade(portfolio, BTC_PERP, "buy", "0.1", leverage=10)

    row = _row(event, copied)
    assert (row.outcome, row.reason_code) == (Outcome.COPIED, "")
    assert _seen(row) == (D("0.05"), free_before[copied.pk], *BTC_PERP_MINIMUMS, D("64000"))
    assert (row.follower_quantity, row.follower_price) == (D("0.05"), row.price_used)

    row = _row(event, tiny)
    assert (row.outcome, row.reason_code) == (Outcome.SKIPPED, "BELOW_MIN_QUANTITY")
    assert _seen(row) == (D("0.0004"), free_before[tiny.pk], *BTC_PERP_MINIMUMS, D("64000"))
    assert row.follower_quantity is None
    text = reasons.reason_text(row.reason_code, reasons.execution_values(row))
    assert text == "Your size (0.0004 BTC at your copy ratio) is below the instrument's minimum quantity 0.001."

    row = _row(event, poor)
    assert (row.outcome, row.reason_code) == (Outcome.REJECTED, "INSUFFICIENT_MARGIN")
    assert _seen(row) == (D("0.1"), D("100"), *BTC_PERP_MINIMUMS, D("64000"))
    assert reasons.reason_text(row.reason_code, reasons.execution_values(row)) == (
        "Your copy wallet's free balance 100 USDT is not enough for the margin of 0.1 BTC at 64000."
    )

    # A paused copy's decision never sized anything: nothing to record.
    row = _row(event, paused)
    assert (row.outcome, row.reason_code) == (Outcome.SKIPPED, "SUBSCRIPTION_PAUSED")
    assert _seen(row) == (None,) * len(SEEN)
    assert row.reason_detail == ""


def test_a_spot_buy_below_the_minimum_value_records_its_size_and_price(world):
    portfolio = world.leader(mode="all")
    tiny = world.follower(portfolio, multiplier="0.001")  # 0.00001 BTC x 64000 = 0.64 USDT < 5
    free = _free(tiny)

    (event,) = world.trade(portfolio, BTC_SPOT, "buy", "0.01")

    row = _row(event, tiny)
    assert (row.outcome, row.reason_code) == (Outcome.SKIPPED, "BELOW_MIN_NOTIONAL")
    assert _seen(row) == (D("0.00001"), free, D("0.00001"), D("5"), D("0.00001"), D("64000"))
    assert reasons.reason_text(row.reason_code, reasons.execution_values(row)) == (
        "Your order's value (0.00001 BTC at 64000 = 0.64 USDT) is below the instrument's minimum order value 5 USDT."
    )


def test_a_reduce_records_the_unrounded_share_and_a_close_its_price(world):
    portfolio = world.leader()
    sub = world.follower(portfolio, multiplier="0.55")  # a 0.055 BTC mirror
    world.trade(portfolio, BTC_PERP, "buy", "0.1")
    leader_position = Position.objects.get(account_id=portfolio.trading_account_id, status=PositionStatus.OPEN)

    # The leader closes 30 %: the mirror's share is 0.0165, rounded down to 0.016.
    reduce = world.close(portfolio, leader_position.pk, quantity="0.03")
    row = _row(reduce, sub)
    assert (row.outcome, row.follower_quantity) == (Outcome.COPIED, D("0.016"))
    assert row.attempted_quantity == D("0.0165")
    assert (row.min_quantity, row.min_notional, row.quantity_step) == BTC_PERP_MINIMUMS
    assert row.price_used == row.follower_price == D("64000")
    assert row.free_balance is None  # a reduce never weighs the wallet

    close = world.close(portfolio, leader_position.pk)
    row = _row(close, sub)
    assert (row.outcome, row.follower_quantity) == (Outcome.COPIED, D("0.039"))
    # A close takes the whole mirror: no size was computed, only its price.
    assert _seen(row) == (None, None, None, None, None, D("64000"))


def test_a_mirror_limit_records_the_limit_price_it_was_sized_at(world):
    portfolio = world.leader()
    sub = world.follower(portfolio, multiplier="0.5")
    free = _free(sub)

    event = world.limit(portfolio, BTC_PERP, "buy", "0.1", "60000")

    row = _row(event, sub)
    assert (row.outcome, row.follower_quantity) == (Outcome.COPIED, D("0.05"))
    assert _seen(row) == (D("0.05"), free, *BTC_PERP_MINIMUMS, D("60000"))


def test_what_the_decision_saw_is_not_part_of_the_decision():
    # Two decisions that do the same thing are equal whatever they saw: the
    # context rides along for the execution row only.
    one = Decision(decisions.COPIED, "", "open", "buy", D("1"), D("10"), seen=(D("1.2"), D("50"), D("10")))
    other = Decision(decisions.COPIED, "", "open", "buy", D("1"), D("10"))
    assert one == other
    assert (one.attempted, one.free, one.price_used, one.detail) == (D("1.2"), D("50"), D("10"), "")
    assert (other.attempted, other.free, other.price_used, other.detail) == (None, None, None, "")
    halted = decisions.skip("COPYING_HALTED", "Exchange maintenance")
    assert halted == decisions.skip("COPYING_HALTED")
    assert (halted.detail, halted.attempted) == ("Exchange maintenance", None)
