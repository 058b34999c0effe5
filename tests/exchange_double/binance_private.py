"""Signed USDⓈ-M futures routes: account and balances, positions, orders
(new / query / cancel / open), fills, leverage.

The book is the mark: a MARKET order fills at once at the market's mark; a
LIMIT order fills at once at its price when it crosses the mark, else rests
(``fill_resting`` fills crossed ones after a test moves a mark). One-way
position mode; cross margin; taker fee on every fill."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from .server import ApiError, Call, route
from .state import Account, ExchangeState, Market, Order, Position, Trade

DEFAULT_LEVERAGE = 20
ZERO = Decimal("0")


def _market(call: Call) -> Market:
    market = call.state.markets.get(call.require("symbol"))
    if market is None:
        raise ApiError(400, -1121, "Invalid symbol.")
    return market


def _leverage(account: Account, symbol: str) -> int:
    return account.leverage.get(symbol, DEFAULT_LEVERAGE)


def _unrealized(position: Position, mark: Decimal) -> Decimal:
    return (mark - position.entry_price) * position.amount


def _initial_margin(account: Account, position: Position, mark: Decimal) -> Decimal:
    return abs(position.amount) * mark / _leverage(account, position.symbol)


def _open_positions(state: ExchangeState, account: Account) -> list[tuple[Position, Market]]:
    return [(p, state.markets[p.symbol]) for p in account.positions.values() if p.amount and p.symbol in state.markets]


def _asset_rows(state: ExchangeState, account: Account) -> list[dict]:
    now = state.now_ms()
    rows = []
    for asset, wallet in account.balances.items():
        upnl = margin = ZERO
        if asset == "USDT":
            for position, market in _open_positions(state, account):
                upnl += _unrealized(position, market.mark)
                margin += _initial_margin(account, position, market.mark)
        available = wallet + upnl - margin
        rows.append(
            {
                "asset": asset,
                "walletBalance": wallet,
                "unrealizedProfit": upnl,
                "marginBalance": wallet + upnl,
                "maintMargin": margin / 10,
                "initialMargin": margin,
                "positionInitialMargin": margin,
                "openOrderInitialMargin": ZERO,
                "crossWalletBalance": wallet,
                "crossUnPnl": upnl,
                "availableBalance": available,
                "maxWithdrawAmount": available,
                "marginAvailable": True,
                "updateTime": now,
            }
        )
    return rows


def position_risk(state: ExchangeState, account: Account, position: Position, market: Market) -> dict:
    mark = market.mark
    notional = position.amount * mark
    margin = _initial_margin(account, position, mark)
    return {
        "symbol": position.symbol,
        "positionSide": "BOTH",
        "positionAmt": position.amount,
        "entryPrice": position.entry_price,
        "breakEvenPrice": position.entry_price,
        "markPrice": mark,
        "unRealizedProfit": _unrealized(position, mark),
        "liquidationPrice": "0",
        "leverage": str(_leverage(account, position.symbol)),
        "maxNotionalValue": "1000000",
        "marginType": "cross",
        "isolatedMargin": "0",
        "isAutoAddMargin": "false",
        "notional": notional,
        "marginAsset": market.quote,
        "isolatedWallet": "0",
        "initialMargin": margin,
        "maintMargin": margin / 10,
        "positionInitialMargin": margin,
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": state.now_ms(),
    }


def _account_answer(call: Call) -> dict:
    state, account = call.state, call.account
    assert account is not None
    assets = _asset_rows(state, account)
    usdt = next((a for a in assets if a["asset"] == "USDT"), None)
    total = {
        k: (usdt[k] if usdt else ZERO)
        for k in ("walletBalance", "unrealizedProfit", "marginBalance", "initialMargin", "availableBalance")
    }
    positions = [
        {
            "symbol": p.symbol,
            "positionSide": "BOTH",
            "positionAmt": p.amount,
            "unrealizedProfit": _unrealized(p, m.mark),
            "isolatedMargin": "0",
            "notional": p.amount * m.mark,
            "isolatedWallet": "0",
            "initialMargin": _initial_margin(account, p, m.mark),
            "maintMargin": _initial_margin(account, p, m.mark) / 10,
            "entryPrice": p.entry_price,
            "leverage": str(_leverage(account, p.symbol)),
            "isolated": False,
            "updateTime": state.now_ms(),
        }
        for p, m in _open_positions(state, account)
    ]
    return {
        "feeTier": 0,
        "canTrade": account.permissions.get("enableFutures", True),
        "canDeposit": True,
        "canWithdraw": account.permissions.get("enableWithdrawals", False),
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
        "updateTime": 0,
        "totalInitialMargin": total["initialMargin"],
        "totalMaintMargin": total["initialMargin"] / 10,
        "totalWalletBalance": total["walletBalance"],
        "totalUnrealizedProfit": total["unrealizedProfit"],
        "totalMarginBalance": total["marginBalance"],
        "totalPositionInitialMargin": total["initialMargin"],
        "totalOpenOrderInitialMargin": "0",
        "totalCrossWalletBalance": total["walletBalance"],
        "totalCrossUnPnl": total["unrealizedProfit"],
        "availableBalance": total["availableBalance"],
        "maxWithdrawAmount": total["availableBalance"],
        "assets": assets,
        "positions": positions,
    }


@route("GET", "/fapi/v2/account", signed=True)
@route("GET", "/fapi/v3/account", signed=True)
def account_info(call: Call) -> dict:
    return _account_answer(call)


@route("GET", "/fapi/v2/balance", signed=True)
@route("GET", "/fapi/v3/balance", signed=True)
def balance(call: Call) -> list:
    assert call.account is not None
    return [
        {
            "accountAlias": "SgsR",
            "balance": row["walletBalance"],
            **{
                k: row[k]
                for k in (
                    "asset",
                    "crossWalletBalance",
                    "crossUnPnl",
                    "availableBalance",
                    "maxWithdrawAmount",
                    "marginAvailable",
                    "updateTime",
                )
            },
        }
        for row in _asset_rows(call.state, call.account)
    ]


@route("GET", "/fapi/v2/positionRisk", signed=True)
@route("GET", "/fapi/v3/positionRisk", signed=True)
def positions(call: Call) -> list:
    state, account = call.state, call.account
    assert account is not None
    symbol = call.params.get("symbol")
    return [
        position_risk(state, account, p, m) for p, m in _open_positions(state, account) if symbol in (None, p.symbol)
    ]


@route("POST", "/fapi/v1/leverage", signed=True)
def set_leverage(call: Call) -> dict:
    assert call.account is not None
    market = _market(call)
    try:
        leverage = int(call.require("leverage"))
    except ValueError as exc:
        raise ApiError(400, -1100, "Illegal characters found in parameter 'leverage'.") from exc
    if not 1 <= leverage <= market.max_leverage:
        raise ApiError(400, -4028, f"Leverage {leverage} is not valid")
    call.account.leverage[market.symbol] = leverage
    return {"leverage": leverage, "maxNotionalValue": "1000000", "symbol": market.symbol}


@route("POST", "/fapi/v1/marginType", signed=True)
def set_margin_type(call: Call) -> dict:
    _market(call)
    if call.require("marginType").upper() == "CROSSED":
        raise ApiError(400, -4046, "No need to change margin type.")
    return {"code": 200, "msg": "success"}


@route("GET", "/fapi/v1/positionSide/dual", signed=True)
def position_mode(call: Call) -> dict:
    return {"dualSidePosition": False}


def order_answer(order: Order) -> dict:
    return {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "status": order.status,
        "clientOrderId": order.client_order_id,
        "price": order.price,
        "avgPrice": order.avg_price,
        "origQty": order.quantity,
        "executedQty": order.executed_qty,
        "cumQty": order.executed_qty,
        "cumQuote": order.executed_qty * order.avg_price,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": order.side,
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "time": order.time_ms,
        "updateTime": order.update_time_ms,
    }


def _on_step(value: Decimal, step: Decimal) -> bool:
    return (value / step) == (value / step).to_integral_value(rounding=ROUND_DOWN)


def _fill(state: ExchangeState, account: Account, order: Order, market: Market, price: Decimal) -> None:
    """Fill ``order`` entirely at ``price``: the position, the fee, the realized PnL."""
    signed = order.quantity if order.side == "BUY" else -order.quantity
    position = account.positions.setdefault(order.symbol, Position(order.symbol))
    realized = ZERO
    if position.amount and (position.amount > 0) != (signed > 0):  # reduces first
        closing = min(abs(signed), abs(position.amount))
        direction = 1 if position.amount > 0 else -1
        realized = (price - position.entry_price) * closing * direction
        remaining = position.amount + signed
        if remaining == 0 or (remaining > 0) != (position.amount > 0):
            position.entry_price = price if remaining else ZERO
        position.amount = remaining
    else:
        total = position.amount + signed
        position.entry_price = (position.entry_price * abs(position.amount) + price * abs(signed)) / abs(total)
        position.amount = total
    fee = (price * order.quantity * account.taker_fee).quantize(Decimal("0.00000001"))
    account.balances[market.quote] = account.balances.get(market.quote, ZERO) + realized - fee
    order.status, order.executed_qty, order.avg_price = "FILLED", order.quantity, price
    order.update_time_ms = state.now_ms()
    account.trades.append(
        Trade(
            state.next_id(),
            order.order_id,
            order.symbol,
            order.side,
            price,
            order.quantity,
            fee,
            market.quote,
            realized,
            order.update_time_ms,
        )
    )


def _crosses(order: Order, mark: Decimal) -> bool:
    return order.price >= mark if order.side == "BUY" else order.price <= mark


def fill_resting(state: ExchangeState) -> int:
    """Fill every resting LIMIT order its market's mark now crosses (call it
    after ``set_mark``); returns how many filled."""
    filled = 0
    with state.lock:
        for account in state.accounts.values():
            for order in account.orders.values():
                market = state.markets.get(order.symbol)
                if order.status == "NEW" and market is not None and _crosses(order, market.mark):
                    _fill(state, account, order, market, order.price)
                    filled += 1
    return filled


@route("POST", "/fapi/v1/order", signed=True)
def new_order(call: Call) -> dict:
    state, account = call.state, call.account
    assert account is not None
    market = _market(call)
    if market.status != "TRADING":
        raise ApiError(400, -4140, "Invalid symbol status for opening position type.")
    side = call.require("side").upper()
    kind = call.require("type").upper()
    if side not in ("BUY", "SELL"):
        raise ApiError(400, -1117, "Invalid side.")
    if kind not in ("MARKET", "LIMIT"):
        raise ApiError(400, -1116, "Invalid orderType.")
    quantity = call.decimal("quantity")
    if quantity < market.min_qty or quantity > market.max_qty or not _on_step(quantity, market.step_size):
        raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
    price = call.decimal("price") if kind == "LIMIT" else market.mark
    if kind == "LIMIT" and (price <= 0 or not _on_step(price, market.tick_size)):
        raise ApiError(400, -1013, "Filter failure: PRICE_FILTER")
    if quantity * price < market.min_notional and call.params.get("reduceOnly") != "true":
        raise ApiError(
            400,
            -4164,
            f"Order's notional must be no smaller than {market.min_notional} (unless you choose reduce only).",
        )
    client_id = call.params.get("newClientOrderId") or f"double-{state.next_id()}"
    if state.unique_client_order_ids and any(o.client_order_id == client_id for o in account.orders.values()):
        raise ApiError(400, -4116, "ClientOrderId is duplicated.")
    now = state.now_ms()
    order = Order(
        order_id=state.next_id(),
        client_order_id=client_id,
        symbol=market.symbol,
        side=side,
        type=kind,
        quantity=quantity,
        price=price if kind == "LIMIT" else ZERO,
        status="NEW",
        time_in_force=call.params.get("timeInForce", "GTC") if kind == "LIMIT" else "GTC",
        reduce_only=call.params.get("reduceOnly") == "true",
        time_ms=now,
        update_time_ms=now,
    )
    if kind == "MARKET":
        margin_needed = quantity * market.mark / _leverage(account, market.symbol)
        available = next(
            (r["availableBalance"] for r in _asset_rows(state, account) if r["asset"] == market.quote), ZERO
        )
        if not order.reduce_only and margin_needed > available:
            raise ApiError(400, -2019, "Margin is insufficient.")
        _fill(state, account, order, market, market.mark)
    elif _crosses(order, market.mark):
        _fill(state, account, order, market, price)
    account.orders[order.order_id] = order
    return order_answer(order)


def _find_order(call: Call) -> Order:
    assert call.account is not None
    symbol = call.require("symbol")
    order_id, client_id = call.params.get("orderId"), call.params.get("origClientOrderId")
    if not order_id and not client_id:
        raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    for order in call.account.orders.values():
        if order.symbol == symbol and (
            str(order.order_id) == order_id or (client_id and order.client_order_id == client_id)
        ):
            return order
    raise ApiError(400, -2013, "Order does not exist.")


@route("GET", "/fapi/v1/order", signed=True)
def query_order(call: Call) -> dict:
    return order_answer(_find_order(call))


@route("DELETE", "/fapi/v1/order", signed=True)
def cancel_order(call: Call) -> dict:
    order = _find_order(call)
    if order.status != "NEW":
        raise ApiError(400, -2011, "Unknown order sent.")
    order.status = "CANCELED"
    order.update_time_ms = call.state.now_ms()
    return order_answer(order)


@route("GET", "/fapi/v1/openOrders", signed=True)
def open_orders(call: Call) -> list:
    assert call.account is not None
    symbol = call.params.get("symbol")
    return [order_answer(o) for o in call.account.orders.values() if o.status == "NEW" and symbol in (None, o.symbol)]


@route("GET", "/fapi/v1/userTrades", signed=True)
def user_trades(call: Call) -> list:
    assert call.account is not None
    symbol = call.require("symbol")
    return [
        {
            "buyer": t.side == "BUY",
            "commission": t.commission,
            "commissionAsset": t.commission_asset,
            "id": t.trade_id,
            "maker": t.maker,
            "orderId": t.order_id,
            "price": t.price,
            "qty": t.qty,
            "quoteQty": t.price * t.qty,
            "realizedPnl": t.realized_pnl,
            "side": t.side,
            "positionSide": "BOTH",
            "symbol": t.symbol,
            "time": t.time_ms,
        }
        for t in call.account.trades
        if t.symbol == symbol
    ]


@route("GET", "/sapi/v1/capital/config/getall", signed=True)
def all_coins(call: Call) -> list:
    """Wallet coins (ccxt's ``fetch_currencies``, which ``load_markets`` calls
    when the client has keys): every asset of the markets, balances included."""
    assert call.account is not None
    state = call.state
    assets = sorted(
        {m.base for m in [*state.markets.values(), *state.spot_markets.values()]}
        | {m.quote for m in [*state.markets.values(), *state.spot_markets.values()]}
        | set(call.account.balances)
    )
    return [
        {
            "coin": asset,
            "name": asset,
            "depositAllEnable": True,
            "withdrawAllEnable": True,
            "free": call.account.balances.get(asset, ZERO),
            "locked": "0",
            "freeze": "0",
            "withdrawing": "0",
            "ipoing": "0",
            "ipoable": "0",
            "storage": "0",
            "isLegalMoney": False,
            "trading": True,
            "networkList": [
                {
                    "network": asset,
                    "coin": asset,
                    "withdrawIntegerMultiple": "0.00000001",
                    "isDefault": True,
                    "depositEnable": True,
                    "withdrawEnable": True,
                    "name": asset,
                    "withdrawFee": "0.0005",
                    "withdrawMin": "0.001",
                    "withdrawMax": "9999999",
                    "minConfirm": 1,
                    "unLockConfirm": 2,
                }
            ],
        }
        for asset in assets
    ]


@route("GET", "/sapi/v1/margin/allPairs", signed=True)
@route("GET", "/sapi/v1/margin/isolated/allPairs", signed=True)
def margin_pairs(call: Call) -> list:
    """No margin pairs (ccxt reads them beside the currencies)."""
    return []


@route("GET", "/fapi/v1/leverageBracket", signed=True)
def leverage_brackets(call: Call) -> list:
    """One bracket per market up to its ``max_leverage`` (ccxt's leverage tiers;
    ``fetch_positions`` loads them first)."""
    symbol = call.params.get("symbol")
    return [
        {
            "symbol": m.symbol,
            "notionalCoef": 1.0,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": m.max_leverage,
                    "notionalCap": 1000000,
                    "notionalFloor": 0,
                    "maintMarginRatio": 0.004,
                    "cum": 0.0,
                }
            ],
        }
        for m in call.state.markets.values()
        if symbol in (None, m.symbol)
    ]
