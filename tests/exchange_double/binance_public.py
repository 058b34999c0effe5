"""Public market data: exchange info, server time, mark prices, tickers.

USDⓈ-M futures under /fapi (``binanceusdm``), spot under /api/v3 and an empty
COIN-M /dapi (what ``binance``'s ``load_markets`` reads besides spot)."""

from __future__ import annotations

import json

from .server import ApiError, Call, route
from .state import ExchangeState, Market, decimals_of

PERPETUAL_DELIVERY_MS = 4133404800000
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
]


def _price_filters(market: Market) -> list[dict]:
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": market.tick_size,
            "maxPrice": "4529764",
            "tickSize": market.tick_size,
        },
        {"filterType": "LOT_SIZE", "stepSize": market.step_size, "minQty": market.min_qty, "maxQty": market.max_qty},
        {
            "filterType": "MARKET_LOT_SIZE",
            "stepSize": market.step_size,
            "minQty": market.min_qty,
            "maxQty": market.max_qty,
        },
    ]


def perpetual_info(market: Market) -> dict:
    return {
        "symbol": market.symbol,
        "pair": market.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": 1569398400000,
        "status": market.status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": market.base,
        "quoteAsset": market.quote,
        "marginAsset": market.quote,
        "pricePrecision": decimals_of(market.tick_size),
        "quantityPrecision": decimals_of(market.step_size),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            *_price_filters(market),
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": market.min_notional},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def spot_info(market: Market) -> dict:
    return {
        "symbol": market.symbol,
        "status": market.status,
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            *_price_filters(market),
            {
                "filterType": "NOTIONAL",
                "minNotional": market.min_notional,
                "applyMinToMarket": True,
                "maxNotional": "9000000",
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


@route("GET", "/fapi/v1/ping")
@route("GET", "/api/v3/ping")
def ping(call: Call) -> dict:
    return {}


@route("GET", "/fapi/v1/time")
@route("GET", "/api/v3/time")
def server_time(call: Call) -> dict:
    return {"serverTime": call.state.now_ms()}


@route("GET", "/fapi/v1/exchangeInfo")
def futures_exchange_info(call: Call) -> dict:
    state = call.state
    return {
        "timezone": "UTC",
        "serverTime": state.now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "assets": [],
        "symbols": [perpetual_info(m) for m in state.markets.values()],
    }


@route("GET", "/api/v3/exchangeInfo")
def spot_exchange_info(call: Call) -> dict:
    state = call.state
    return {
        "timezone": "UTC",
        "serverTime": state.now_ms(),
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [spot_info(m) for m in state.spot_markets.values()],
    }


@route("GET", "/dapi/v1/exchangeInfo")
def coin_futures_exchange_info(call: Call) -> dict:
    return {
        "timezone": "UTC",
        "serverTime": call.state.now_ms(),
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [],
    }


def _one_or_all(call: Call, book: dict[str, Market], render) -> object:
    symbol = call.params.get("symbol")
    if symbol:
        market = book.get(symbol)
        if market is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        return render(call.state, market)
    return [render(call.state, m) for m in book.values()]


def premium_index(state: ExchangeState, market: Market) -> dict:
    return {
        "symbol": market.symbol,
        "markPrice": market.mark,
        "indexPrice": market.index if market.index is not None else market.mark,
        "estimatedSettlePrice": market.mark,
        "lastFundingRate": market.funding_rate,
        "interestRate": "0.00010000",
        "nextFundingTime": (state.now_ms() // 28_800_000 + 1) * 28_800_000,
        "time": market.mark_time_ms if market.mark_time_ms is not None else state.now_ms(),
    }


def ticker_24hr(state: ExchangeState, market: Market) -> dict:
    last = market.last if market.last is not None else market.mark
    now = market.mark_time_ms if market.mark_time_ms is not None else state.now_ms()
    return {
        "symbol": market.symbol,
        "priceChange": "0",
        "priceChangePercent": "0",
        "weightedAvgPrice": last,
        "lastPrice": last,
        "lastQty": "1",
        "openPrice": last,
        "highPrice": last,
        "lowPrice": last,
        "volume": "1000",
        "quoteVolume": last * 1000,
        "openTime": now - 86_400_000,
        "closeTime": now,
        "firstId": 1,
        "lastId": 1000,
        "count": 1000,
    }


def ticker_price(state: ExchangeState, market: Market) -> dict:
    last = market.last if market.last is not None else market.mark
    return {"symbol": market.symbol, "price": last, "time": state.now_ms()}


@route("GET", "/fapi/v1/premiumIndex")
def futures_premium_index(call: Call) -> object:
    return _one_or_all(call, call.state.markets, premium_index)


@route("GET", "/fapi/v1/ticker/24hr")
def futures_ticker_24hr(call: Call) -> object:
    return _one_or_all(call, call.state.markets, ticker_24hr)


@route("GET", "/fapi/v1/ticker/price")
@route("GET", "/fapi/v2/ticker/price")
def futures_ticker_price(call: Call) -> object:
    return _one_or_all(call, call.state.markets, ticker_price)


def spot_ticker_24hr_row(state: ExchangeState, market: Market) -> dict:
    """Spot's 24 h ticker: book fields, no ``time`` (ccxt tells spot from contracts by them)."""
    row = ticker_24hr(state, market)
    last = row["lastPrice"]
    row.update(
        {"prevClosePrice": last, "bidPrice": last, "bidQty": "1", "askPrice": last, "askQty": "1", "openPrice": last}
    )
    return row


def _only_asked(call: Call, rows: object) -> object:
    """``symbols=["BTCUSDT","ETHBTC"]`` (spot's list filter)."""
    raw = call.params.get("symbols")
    if not raw or not isinstance(rows, list):
        return rows
    wanted = set(json.loads(raw))
    return [row for row in rows if row["symbol"] in wanted]


@route("GET", "/api/v3/ticker/24hr")
def spot_ticker_24hr(call: Call) -> object:
    return _only_asked(call, _one_or_all(call, call.state.spot_markets, spot_ticker_24hr_row))


@route("GET", "/api/v3/ticker/price")
def spot_ticker_price(call: Call) -> object:
    return _one_or_all(call, call.state.spot_markets, ticker_price)
