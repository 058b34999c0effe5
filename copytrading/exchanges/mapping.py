"""From a ccxt market to our instrument constraints. Pure: no Django.

ccxt unifies markets but not how precision is written: an exchange's
``precisionMode`` says whether ``precision['amount']``/``['price']`` is the
step itself (``TICK_SIZE``), a number of decimal places (``DECIMAL_PLACES``)
or of significant digits (``SIGNIFICANT_DIGITS``, where the step depends on
the magnitude, so a reference price is needed). Contract markets count
amounts in contracts; our quantities are in the base asset, so amount steps
and limits are multiplied by the contract size (OKX's BTC-USDT-SWAP: 0.01 BTC
a contract, a lot of 0.01 contracts is a 0.0001 BTC step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

# ccxt's precision modes (ccxt.base.decimal_to_precision), named here so this
# module reads without ccxt.
DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE = 2, 3, 4

PLACES = 8  # the instrument columns keep 8 decimal places
MAX_QTY_UNBOUNDED = Decimal("1000000000000")  # an exchange that states no maximum
MARGIN, SPOT = "margin", "spot"  # copytrading.models.Product values
SYMBOL_MAX, ASSET_MAX = 40, 10  # the instrument columns' lengths


@dataclass(frozen=True)
class InstrumentSpec:
    """What an instrument row should say about one exchange market.
    ``max_leverage`` None: the exchange does not say (keep what we have)."""

    symbol: str
    exchange_symbol: str
    product: str
    base: str
    quote: str
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    price_tick: Decimal
    min_notional: Decimal
    max_leverage: int | None
    contract_size: Decimal
    active: bool


@dataclass(frozen=True)
class Skipped:
    symbol: str
    reason: str


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def step_of(precision: Any, mode: int, *, reference: Decimal | None = None) -> Decimal | None:
    """The step a ccxt precision value means in ``mode``; None if it cannot be
    known (missing, or significant digits without a positive ``reference``)."""
    value = _decimal(precision)
    if value is None:
        return None
    if mode == TICK_SIZE:
        return value.normalize() if value > 0 else None
    if value != value.to_integral_value():
        return None  # places and digits are whole numbers
    if mode == DECIMAL_PLACES:  # 0 places: whole units
        return Decimal(1).scaleb(-int(value))
    if mode == SIGNIFICANT_DIGITS:
        if value <= 0 or reference is None or reference <= 0:
            return None
        magnitude = reference.adjusted()  # floor(log10(reference))
        return Decimal(1).scaleb(magnitude - int(value) + 1)
    return None


def _fits(value: Decimal) -> bool:
    """Representable in the 8-place columns without rounding."""
    return value == value.quantize(Decimal(1).scaleb(-PLACES), rounding=ROUND_FLOOR)


def instrument_spec(
    market: Mapping[str, Any],
    *,
    precision_mode: int,
    reference_price: Decimal | None = None,
) -> InstrumentSpec | Skipped:
    """Map one ccxt market (``exchange.markets[symbol]``) to an instrument
    spec, or say why it is skipped: only spot pairs and linear perpetual swaps
    are traded here (no inverse swaps, dated futures or options)."""
    symbol = str(market.get("symbol") or "")
    if market.get("spot"):
        product = SPOT
    elif market.get("swap") and market.get("linear"):
        product = MARGIN
    elif market.get("swap"):
        return Skipped(symbol, "inverse swap (settled in the base asset)")
    elif market.get("future"):
        return Skipped(symbol, "dated future")
    elif market.get("option"):
        return Skipped(symbol, "option")
    else:
        return Skipped(symbol, f"market type {market.get('type')!r}")
    base, quote = str(market.get("base") or ""), str(market.get("quote") or "")
    if not base or not quote:
        return Skipped(symbol, "no base or quote asset")
    if len(symbol) > SYMBOL_MAX or len(base) > ASSET_MAX or len(quote) > ASSET_MAX:
        return Skipped(symbol, "symbol or asset name too long")

    contract_size = Decimal(1)
    if product == MARGIN:
        contract_size = _decimal(market.get("contractSize")) or Decimal(1)
        if contract_size <= 0:
            return Skipped(symbol, "contract size not positive")
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    amount_limits = limits.get("amount") or {}
    min_amount = _decimal(amount_limits.get("min"))

    amount_step = step_of(precision.get("amount"), precision_mode)
    if amount_step is None and precision_mode == SIGNIFICANT_DIGITS and min_amount:
        amount_step = min_amount  # digits of a quantity have no fixed step: trade in minimum lots
    if amount_step is None:
        return Skipped(symbol, "no amount precision")
    price_tick = step_of(precision.get("price"), precision_mode, reference=reference_price)
    if price_tick is None:
        return Skipped(
            symbol,
            "no price precision"
            + (" (significant digits need a price)" if precision_mode == SIGNIFICANT_DIGITS else ""),
        )

    qty_step = (amount_step * contract_size).normalize()
    min_qty = (min_amount * contract_size).normalize() if min_amount else qty_step
    min_qty = max(min_qty, qty_step)
    max_amount = _decimal(amount_limits.get("max"))
    max_qty = (max_amount * contract_size).normalize() if max_amount else MAX_QTY_UNBOUNDED
    min_notional = _decimal((limits.get("cost") or {}).get("min")) or Decimal(0)
    for name, value in (("quantity step", qty_step), ("minimum quantity", min_qty), ("price tick", price_tick)):
        if value <= 0 or not _fits(value):
            return Skipped(symbol, f"{name} {value} finer than {PLACES} decimal places")
    if max_qty < min_qty:
        return Skipped(symbol, "maximum quantity below the minimum")
    max_leverage: int | None = 1
    if product == MARGIN:
        leverage = _decimal((limits.get("leverage") or {}).get("max"))
        max_leverage = max(1, min(int(leverage), 32767)) if leverage else None
    return InstrumentSpec(
        symbol=symbol,
        exchange_symbol=str(market.get("id") or ""),
        product=product,
        base=base,
        quote=quote,
        qty_step=qty_step,
        min_qty=min_qty,
        max_qty=min(max_qty, MAX_QTY_UNBOUNDED),
        price_tick=price_tick,
        min_notional=min_notional.quantize(Decimal(1).scaleb(-PLACES), rounding=ROUND_FLOOR),
        max_leverage=max_leverage,
        contract_size=contract_size.normalize(),
        active=market.get("active") is not False,
    )
