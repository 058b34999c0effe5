"""Signed spot routes (/api/v3): the account's balances, market and limit
orders (new / query), and its trades — what ccxt's ``binance`` calls for
``fetch_balance``, ``create_order``, ``fetch_order`` and ``fetch_my_trades``.

A spot book is kept apart from the futures one (``account.extra["spot"]``):
the same exchange symbol (BTCUSDT) is a different market on each. A MARKET
order fills at once at the spot market's mark, a crossing LIMIT at its price,
others rest; the fee (``Account.taker_fee``) is taken from what is received."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .binance_private import _on_step
from .server import ApiError, Call, route
from .state import Account, Market, Order, Trade

ZERO = Decimal("0")


@dataclass
class SpotBook:
    balances: dict[str, Decimal] = field(default_factory=lambda: {"USDT": Decimal("10000")})
    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)


def spot_book(account: Account) -> SpotBook:
    return account.extra.setdefault("spot", SpotBook())


def _market(call: Call) -> Market:
    market = call.state.spot_markets.get(call.require("symbol"))
    if market is None:
        raise ApiError(400, -1121, "Invalid symbol.")
    return market


def _answer(order: Order, fills: list[Trade]) -> dict:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": order.update_time_ms,
        "time": order.time_ms,
        "updateTime": order.update_time_ms,
        "price": order.price,
        "origQty": order.quantity,
        "executedQty": order.executed_qty,
        "cummulativeQuoteQty": order.executed_qty * order.avg_price,
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "fills": [
            {"price": t.price, "qty": t.qty, "commission": t.commission, "commissionAsset": t.commission_asset}
            for t in fills
        ],
    }


def _fill(call: Call, book: SpotBook, order: Order, market: Market, price: Decimal) -> Trade:
    assert call.account is not None
    cost = order.quantity * price
    fee_rate = call.account.taker_fee
    if order.side == "BUY":
        book.balances[market.quote] = book.balances.get(market.quote, ZERO) - cost
        fee = (order.quantity * fee_rate).quantize(Decimal("0.00000001"))
        book.balances[market.base] = book.balances.get(market.base, ZERO) + order.quantity - fee
        fee_asset = market.base
    else:
        book.balances[market.base] = book.balances.get(market.base, ZERO) - order.quantity
        fee = (cost * fee_rate).quantize(Decimal("0.00000001"))
        book.balances[market.quote] = book.balances.get(market.quote, ZERO) + cost - fee
        fee_asset = market.quote
    order.status, order.executed_qty, order.avg_price = "FILLED", order.quantity, price
    order.update_time_ms = call.state.now_ms()
    trade = Trade(
        call.state.next_id(), order.order_id, order.symbol, order.side, price, order.quantity, fee, fee_asset, ZERO,
        order.update_time_ms,
    )  # fmt: skip
    book.trades.append(trade)
    return trade


@route("GET", "/api/v3/account", signed=True)
def account_info(call: Call) -> dict:
    assert call.account is not None
    book = spot_book(call.account)
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": True,
        "updateTime": call.state.now_ms(),
        "accountType": "SPOT",
        "balances": [{"asset": a, "free": v, "locked": "0"} for a, v in book.balances.items()],
        "permissions": ["SPOT"],
    }


@route("POST", "/api/v3/order", signed=True)
def new_order(call: Call) -> dict:
    assert call.account is not None
    state, book = call.state, spot_book(call.account)
    market = _market(call)
    side, kind = call.require("side").upper(), call.require("type").upper()
    if side not in ("BUY", "SELL"):
        raise ApiError(400, -1117, "Invalid side.")
    if kind not in ("MARKET", "LIMIT"):
        raise ApiError(400, -1116, "Invalid orderType.")
    quantity = call.decimal("quantity")
    if quantity < market.min_qty or quantity > market.max_qty or not _on_step(quantity, market.step_size):
        raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
    price = call.decimal("price") if kind == "LIMIT" else market.mark
    if quantity * price < market.min_notional:
        raise ApiError(400, -1013, "Filter failure: NOTIONAL")
    client_id = call.params.get("newClientOrderId") or f"double-{state.next_id()}"
    if any(o.client_order_id == client_id for o in book.orders.values()):
        raise ApiError(400, -2010, "Duplicate order sent.")
    have = book.balances.get(market.quote if side == "BUY" else market.base, ZERO)
    if (quantity * price if side == "BUY" else quantity) > have:
        raise ApiError(400, -2010, "Account has insufficient balance for requested action.")
    now = state.now_ms()
    order = Order(
        order_id=state.next_id(), client_order_id=client_id, symbol=market.symbol, side=side, type=kind,
        quantity=quantity, price=price if kind == "LIMIT" else ZERO, status="NEW", time_ms=now, update_time_ms=now,
    )  # fmt: skip
    fills = []
    crosses = price >= market.mark if side == "BUY" else price <= market.mark
    if kind == "MARKET" or crosses:
        fills.append(_fill(call, book, order, market, price))
    book.orders[order.order_id] = order
    return _answer(order, fills)


@route("GET", "/api/v3/order", signed=True)
def query_order(call: Call) -> dict:
    assert call.account is not None
    symbol = call.require("symbol")
    order_id, client_id = call.params.get("orderId"), call.params.get("origClientOrderId")
    for order in spot_book(call.account).orders.values():
        same = str(order.order_id) == order_id or (client_id and order.client_order_id == client_id)
        if order.symbol == symbol and same:
            return _answer(order, [])
    raise ApiError(400, -2013, "Order does not exist.")


@route("GET", "/api/v3/myTrades", signed=True)
def my_trades(call: Call) -> list:
    assert call.account is not None
    symbol = call.require("symbol")
    return [
        {
            "symbol": t.symbol,
            "id": t.trade_id,
            "orderId": t.order_id,
            "orderListId": -1,
            "price": t.price,
            "qty": t.qty,
            "quoteQty": t.price * t.qty,
            "commission": t.commission,
            "commissionAsset": t.commission_asset,
            "time": t.time_ms,
            "isBuyer": t.side == "BUY",
            "isMaker": t.maker,
            "isBestMatch": True,
        }
        for t in spot_book(call.account).trades
        if t.symbol == symbol
    ]
