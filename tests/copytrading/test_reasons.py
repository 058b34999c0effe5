"""The one table of reason texts (copytrading/reasons.py): every code a writer
of execution rows can emit has a sentence, and the sentences quote what the
row recorded."""

import ast
import re
from decimal import Decimal
from pathlib import Path

import pytest

from copytrading import reasons, sizing
from copytrading.decisions import model as decision_model
from copytrading.exchanges import errors as exchange_errors
from copytrading.reasons import reason_text

D = Decimal
ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")
OUTCOMES = {decision_model.COPIED, decision_model.SKIPPED, decision_model.REJECTED, decision_model.FAILED}


def _string_constants(path: Path) -> set[str]:
    """Every module-level ``NAME = "CODE_LIKE"`` of a source file (and
    tuples of them), read from the source: a new constant is found without
    anyone listing it here."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str) and CODE.match(value.value):
                    found.add(value.value)
    return found


def emitted_codes() -> set[str]:
    """The reason codes any writer of execution rows can put on one."""
    codes = set()
    # The decisions' codes (outcomes are not reasons) and the sizing constraints'.
    codes |= _string_constants(ROOT / "copytrading/decisions/model.py") - OUTCOMES
    codes |= _string_constants(ROOT / "copytrading/sizing.py")
    # The risk app's pre-trade refusals.
    codes |= {c for c in _string_constants(ROOT / "risk/rules.py") if c.startswith("RISK_")}
    # The exchange venue's codes: its ccxt table and the ends without an error.
    codes |= set(exchange_errors.CODES) | {code for _, code, _, _, _ in exchange_errors.TABLE}
    codes |= _string_constants(ROOT / "copytrading/exchanges/errors.py")
    # The kill switch (declared beside the decisions' codes by the live settings work).
    codes.add("COPYING_HALTED")
    return codes


def test_the_scan_finds_the_codes_of_every_writer():
    codes = emitted_codes()
    assert {
        decision_model.SUBSCRIPTION_PAUSED,
        decision_model.INTERNAL_ERROR,
        decision_model.STOP_ORDER_NOT_SUPPORTED_FOR_COPY,
        sizing.BELOW_MIN_QUANTITY,
        sizing.BELOW_MIN_NOTIONAL,
        "RISK_MAX_OPEN_POSITIONS",
        "RISK_MAX_EXPOSURE",
        exchange_errors.APPLY_FAILED,
        "EXCHANGE_INSUFFICIENT_FUNDS",
    } <= codes
    assert not codes & OUTCOMES


@pytest.mark.parametrize("code", sorted(emitted_codes()))
def test_every_code_has_a_sentence(code):
    assert code in reasons.TEXTS
    for values in ({}, {"symbol": "BTC/USDT:USDT"}):
        text = reason_text(code, values)
        assert text and text[0].isupper() and text.endswith((".", "…")), text
        assert "None" not in text and code not in text


def test_the_table_holds_no_code_that_nothing_emits():
    assert set(reasons.TEXTS) <= emitted_codes()


def test_a_copied_row_has_no_reason_and_an_unknown_code_still_reads():
    assert reason_text("", {"outcome": "COPIED"}) == ""
    assert reason_text("SOMETHING_NEW", {}) == "Not copied (SOMETHING_NEW)."


def test_the_exchange_sentences_are_its_own_table():
    for _, code, _, detail, _ in exchange_errors.TABLE:
        assert reason_text(code, {}) == detail


BTC = {"symbol": "BTC/USDT:USDT", "min_quantity": D("0.00100000"), "min_notional": D("5"), "quantity_step": D("0.001")}


def test_below_the_minimum_quantity_quotes_the_size_and_the_minimum():
    assert reason_text("BELOW_MIN_QUANTITY", {**BTC, "attempted_quantity": D("0.00040000")}) == (
        "Your size (0.0004 BTC at your copy ratio) is below the instrument's minimum quantity 0.001."
    )


def test_a_size_above_the_minimum_that_rounds_below_it_says_so():
    # A minimum that is not a multiple of the step (some venues list those).
    values = {**BTC, "attempted_quantity": D("0.0019"), "min_quantity": D("0.0015")}
    assert reason_text("BELOW_MIN_QUANTITY", values) == (
        "Your size (0.0019 BTC at your copy ratio) rounds down to 0.001 at the instrument's step 0.001, "
        "below its minimum quantity 0.0015."
    )


def test_a_reduce_that_rounds_to_nothing_says_it_is_a_share():
    values = {**BTC, "attempted_quantity": D("0.0004"), "event_kind": "position_reduce"}
    assert reason_text("BELOW_MIN_QUANTITY", values) == (
        "Your share of the leader's reduction or sale (0.0004 BTC) rounds down to nothing at the instrument's "
        "step 0.001."
    )


def test_a_sell_whose_share_is_held_by_resting_sells_says_so():
    values = {"symbol": "BTC/USDT", "quantity_step": D("0.00001"), "attempted_quantity": D("0.004")}
    for kind, side in (("spot_sell", "sell"), ("limit_placed", "sell")):
        assert reason_text("BELOW_MIN_QUANTITY", {**values, "event_kind": kind, "order_side": side}) == (
            "Your share of the leader's reduction or sale (0.004 BTC) is held by your resting sell orders: "
            "nothing was left to sell."
        )
    # A margin limit sell opens a short: sized like a buy.
    short = {**BTC, "attempted_quantity": D("0.0004"), "event_kind": "limit_placed", "order_side": "sell"}
    assert reason_text("BELOW_MIN_QUANTITY", short).startswith("Your size (0.0004 BTC at your copy ratio)")


def test_money_sentences_quote_the_free_balance_and_what_was_needed():
    values = {**BTC, "free_balance": D("12.5"), "follower_quantity": D("0.05"), "price_used": D("64000")}
    assert reason_text("INSUFFICIENT_MARGIN", values) == (
        "Your copy wallet's free balance 12.5 USDT is not enough for the margin of 0.05 BTC at 64000."
    )
    spot = {**values, "symbol": "ETH/USDT", "follower_quantity": D("0.01"), "price_used": D("3200")}
    assert reason_text("INSUFFICIENT_FUNDS", spot) == (
        "Your copy wallet's free balance 12.5 USDT is not enough for the cost of 0.01 ETH at 3200 (32 USDT)."
    )


def test_slippage_quotes_both_prices():
    values = {"price_used": D("101.5"), "leader_price": D("100")}
    assert reason_text("SLIPPAGE_EXCEEDED", values) == (
        "Your fill price 101.5 would be 1.5% away from the leader's 100, more than your slippage tolerance allows."
    )


def test_the_kill_switch_shows_the_staff_reason():
    assert reason_text("COPYING_HALTED", {"reason_detail": "Exchange maintenance until 14:00 UTC"}) == (
        "Copying is paused by the platform: Exchange maintenance until 14:00 UTC"
    )


def test_docs_point_to_the_table_instead_of_copying_it():
    operations = (ROOT / "docs/operations.md").read_text()
    assert "copytrading/reasons.py" in operations
    # No second table of codes and meanings.
    assert "| `SUBSCRIPTION_PAUSED` |" not in operations
