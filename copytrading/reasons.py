"""The one table of reason texts: every reason code an execution row can
carry, as the sentence a follower or staff reads (the admin's "Reason", the
API's ``reason_text``). Pure: no Django.

A sentence may quote what the row recorded of the decision (attempted size,
free balance, minimums, price used; ``Execution`` columns) and the leader
event's symbol; a value the row does not have is left out of the sentence,
never shown as "None". ``reason_text(code, values)`` takes those values as a
mapping (``execution_values`` builds it from a row).

Codes come from several writers: the decisions (copytrading.decisions.model,
copytrading.sizing), the risk app's pre-trade checks (RISK_*; the core knows
them by their stable strings, it does not import risk), the exchange venue
(copytrading.exchanges.errors, whose sentences live in its own table and are
reused here) and the propagation's isolation (INTERNAL_ERROR). A test scans
all of them for a text here.
"""

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from copytrading.exchanges import errors as exchange_errors
from copytrading.money import floor_to_step

# The fields of an execution row a sentence may use, plus the leader
# event's ``symbol`` and ``event_kind``.
VALUE_FIELDS = (
    "outcome",
    "reason_detail",
    "attempted_quantity",
    "free_balance",
    "min_quantity",
    "min_notional",
    "quantity_step",
    "price_used",
    "leader_quantity",
    "leader_price",
    "follower_quantity",
    "follower_price",
)


def execution_values(execution: Any) -> dict[str, Any]:
    """What ``reason_text`` reads of an execution row (a model instance; its
    event is read for the symbol only if already loaded, e.g. by
    ``select_related("event")``, so a list costs no query per row)."""
    values = {name: getattr(execution, name, None) for name in VALUE_FIELDS}
    event = _loaded_event(execution)
    if event is not None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        values["symbol"] = payload.get("symbol")
        values["order_side"] = payload.get("order_side")
        values["event_kind"] = event.kind
    return values


def _loaded_event(execution: Any) -> Any:
    """The row's event if already loaded (a model's foreign-key descriptor
    knows), else None: a sentence never costs a query."""
    descriptor = getattr(type(execution), "event", None)
    if hasattr(descriptor, "is_cached"):
        return execution.event if descriptor.is_cached(execution) else None
    return getattr(execution, "event", None)


def reason_text(code: str, execution_values: Mapping[str, Any] | None = None) -> str:
    """The sentence for ``code`` ("" for none: a copied row has no reason)."""
    if not code:
        return ""
    v = _Values(execution_values or {})
    text = TEXTS.get(code)
    if text is None:
        return f"Not copied ({code})."
    return text(v) if callable(text) else text


class _Values:
    """The row's values, formatted for a sentence."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = values

    def dec(self, name: str) -> Decimal | None:
        value = self._values.get(name)
        if value is None or value == "":
            return None
        try:
            return value if isinstance(value, Decimal) else Decimal(str(value))
        except (InvalidOperation, ValueError):
            return None

    def text(self, name: str) -> str:
        value = self._values.get(name)
        return "" if value is None else str(value)

    @property
    def base(self) -> str:
        """The traded asset of the event's symbol ("BTC" of "BTC/USDT:USDT")."""
        symbol = self.text("symbol")
        return symbol.split("/", 1)[0] if "/" in symbol else ""

    @property
    def quote(self) -> str:
        """The currency prices and balances are in ("USDT" of "BTC/USDT:USDT")."""
        symbol = self.text("symbol")
        return symbol.split("/", 1)[1].split(":", 1)[0] if "/" in symbol else ""

    @property
    def reduces(self) -> bool:
        """The event takes a share of what the copy holds: a reduce, a sell,
        or a spot limit sell placed (a spot symbol has no ":settle" part; a
        margin limit sell opens a short, it is sized like a buy)."""
        kind = self.text("event_kind")
        if kind == "limit_placed":
            return self.text("order_side") == "sell" and ":" not in self.text("symbol")
        return kind in ("position_reduce", "position_close", "spot_sell")


def num(value: Decimal | None) -> str:
    """A quantity or amount as people write it: no exponent, no trailing zeros."""
    if value is None:
        return ""
    return format(value.normalize(), "f") if value else "0"


def _amount(value: Decimal | None, unit: str) -> str:
    return f"{num(value)} {unit}".strip()


# --- the sentences ---------------------------------------------------------------


def _below_min_quantity(v: _Values) -> str:
    attempted, minimum, step = v.dec("attempted_quantity"), v.dec("min_quantity"), v.dec("quantity_step")
    if v.reduces:
        what = "Your share of the leader's reduction or sale"
        if attempted is None or step is None:
            return f"{what} rounds down to nothing at the instrument's quantity step."
        if attempted >= step:
            # The share was there, but resting sell orders of the copy hold it all.
            return (
                f"{what} ({_amount(attempted, v.base)}) is held by your resting sell orders: nothing was left to sell."
            )
        return f"{what} ({_amount(attempted, v.base)}) rounds down to nothing at the instrument's step {num(step)}."
    if attempted is None or minimum is None:
        return "Your size at your copy ratio is below the instrument's minimum quantity."
    size = f"Your size ({_amount(attempted, v.base)} at your copy ratio)"
    if attempted >= minimum and step:
        return (
            f"{size} rounds down to {num(floor_to_step(attempted, step))} at the instrument's step {num(step)}, "
            f"below its minimum quantity {num(minimum)}."
        )
    return f"{size} is below the instrument's minimum quantity {num(minimum)}."


def _below_min_notional(v: _Values) -> str:
    attempted, step = v.dec("attempted_quantity"), v.dec("quantity_step")
    price, minimum = v.dec("price_used"), v.dec("min_notional")
    if attempted is None or price is None or minimum is None:
        return "Your order's value at your copy ratio is below the instrument's minimum order value."
    quantity = floor_to_step(attempted, step) if step else attempted
    return (
        f"Your order's value ({_amount(quantity, v.base)} at {num(price)} = {_amount(quantity * price, v.quote)}) "
        f"is below the instrument's minimum order value {_amount(minimum, v.quote)}."
    )


def _insufficient(kind: str) -> Callable[[_Values], str]:
    def sentence(v: _Values) -> str:
        free, quantity, price = v.dec("free_balance"), v.dec("follower_quantity"), v.dec("price_used")
        if free is None:
            return f"Your copy wallet's free balance is not enough for the {kind} of this copy."
        need = ""
        if quantity is not None and price is not None:
            need = f" of {_amount(quantity, v.base)} at {num(price)}"
            if kind == "cost":
                need += f" ({_amount(quantity * price, v.quote)})"
        return f"Your copy wallet's free balance {_amount(free, v.quote)} is not enough for the {kind}{need}."

    return sentence


def _slippage(v: _Values) -> str:
    price, leader = v.dec("price_used"), v.dec("leader_price")
    if price is None or not leader:
        return "Your fill price would be further from the leader's than your slippage tolerance allows."
    away = (abs(price - leader) * 100 / leader).quantize(Decimal("0.01"))
    return (
        f"Your fill price {num(price)} would be {num(away)}% away from the leader's {num(leader)}, "
        "more than your slippage tolerance allows."
    )


def _max_exposure(v: _Values) -> str:
    quantity, price = v.dec("follower_quantity"), v.dec("price_used")
    if quantity is None or price is None:
        return "This copy would take your exposure over your risk limit (maximum exposure), so it was not made."
    return (
        f"This copy ({_amount(quantity * price, v.quote)}) would take your exposure over your risk limit "
        "(maximum exposure), so it was not made."
    )


def _halted(v: _Values) -> str:
    detail = v.text("reason_detail").strip()
    return f"Copying is paused by the platform: {detail}" if detail else "Copying is paused by the platform."


def _no_holding(v: _Values) -> str:
    asset = v.base or "the asset"
    return f"The leader sold {asset}, which your copy wallet does not hold (or holds only in resting sell orders)."


TEXTS: dict[str, str | Callable[[_Values], str]] = {
    # The decisions (copytrading.decisions.model, copytrading.sizing).
    "SUBSCRIPTION_PAUSED": (
        "Your copy is paused, so new trades are not copied (reductions and closes of what it holds still are)."
    ),
    "PRODUCT_NOT_COPIED": "Your copy settings leave out this kind of trade (margin or spot).",
    "BELOW_MIN_QUANTITY": _below_min_quantity,
    "BELOW_MIN_NOTIONAL": _below_min_notional,
    "INSUFFICIENT_MARGIN": _insufficient("margin"),
    "INSUFFICIENT_FUNDS": _insufficient("cost"),
    "NO_MIRROR_POSITION": "The leader reduced or closed a position your copy does not hold.",
    "NO_HOLDING_TO_SELL": _no_holding,
    "SPOT_PAIR_QUOTE_MISMATCH": "This spot pair is not quoted in the platform's currency, so it is not copied.",
    "NO_MIRROR_ORDER": "The leader changed or cancelled a limit order your copy has no resting copy of.",
    "MIRROR_LIMIT_FILLED": "Your copy of the leader's limit order had already filled.",
    "MIRROR_LIMIT_NOT_ON_EXCHANGE": (
        "Your copy trades on your exchange account, where the leader's limit orders are copied "
        "when they fill, as market orders."
    ),
    "POSITION_EDIT_NOT_PROPAGATED": (
        "The leader changed the leverage or margin of their own position; your copy keeps its own settings."
    ),
    "SLIPPAGE_EXCEEDED": _slippage,
    "ADVANCED_ORDER_NOT_SUPPORTED": (
        "The leader's order is an advanced order type (TWAP, iceberg, scaled, OCO…), which is never copied."
    ),
    "STOP_ORDER_NOT_SUPPORTED_FOR_COPY": "The leader's order is a stop order, which is never copied.",
    "COPYING_HALTED": _halted,
    # The propagation's isolation of a failing follower (outcome FAILED).
    "INTERNAL_ERROR": (
        "Copying this trade to you failed on an internal error: nothing was ordered or moved, "
        "and our staff has been alerted."
    ),
    # The risk app's pre-trade limits (risk.rules).
    "RISK_MAX_OPEN_POSITIONS": ("Your risk limit on open positions is reached, so this copy did not open another one."),
    "RISK_MAX_EXPOSURE": _max_exposure,
    # The exchange venue: its table's sentences (copytrading.exchanges.errors;
    # EXCHANGE_REJECTED and EXCHANGE_UNAVAILABLE are rows of it), and the
    # ends of an order that carry no ccxt error.
    **{code: detail for _, code, _, detail, _ in exchange_errors.TABLE},
    "EXCHANGE_ERROR": exchange_errors.exchange_failure(Exception()).detail,
    exchange_errors.CANCELLED: "The exchange cancelled or expired the order before it filled.",
    exchange_errors.FAILED: "The order could not be placed on the exchange; the service gave up after retrying.",
    exchange_errors.REDUCE_ONLY_REJECTED: "The exchange had nothing left to reduce for this order.",
    exchange_errors.APPLY_FAILED: (
        "The exchange's answer for this order could not be applied; our staff reconcile it with the exchange."
    ),
}
