"""Binance USDⓈ-M futures' market streams over WebSocket (aiohttp), for
ccxt.pro's ``watch_mark_prices`` / ``watch_mark_price``.

ccxt.pro connects to ``<ws>/market/ws/<n>`` and sends
``{"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s", …], "id": N}``;
the double answers ``{"result": null, "id": N}`` and then pushes a
``markPriceUpdate`` per subscribed market every ``interval`` seconds, from
the same ``ExchangeState`` the REST double serves (``!markPrice@arr@1s``: all
markets in one array). Faults: ``drop_connections()`` closes every socket
(ccxt raises a NetworkError to the watcher); ``paused`` stops pushing
without closing (a silent, stale stream).
"""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import WSMsgType, web

from .server import _json_default as encode
from .state import ExchangeState, Market


def mark_update(state: ExchangeState, market: Market) -> dict:
    now = market.mark_time_ms if market.mark_time_ms is not None else state.now_ms()
    return {
        "e": "markPriceUpdate",
        "E": now,
        "s": market.symbol,
        "p": market.mark,
        "ap": market.mark,
        "i": market.index if market.index is not None else market.mark,
        "P": market.mark,
        "r": market.funding_rate,
        "T": (state.now_ms() // 28_800_000 + 1) * 28_800_000,
    }


class WebSocketDouble:
    """Start with ``start()``; ``url`` is ``ws://127.0.0.1:PORT``."""

    def __init__(self, state: ExchangeState, *, interval: float = 0.05) -> None:
        self.state = state
        self.interval = interval
        self.paused = False
        self.subscriptions_seen: list[list[str]] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, name="exchange-double-ws", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}"

    def start(self) -> WebSocketDouble:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/market/ws/{stream}", self._serve)
        app.router.add_get("/ws/{stream}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def shutdown() -> None:
            for ws in list(self._sockets):
                await ws.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def drop_connections(self) -> None:
        async def drop() -> None:
            for ws in list(self._sockets):
                await ws.close(code=1011, message=b"dropped by the double")

        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(timeout=10)

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        streams: set[str] = set()
        pusher = asyncio.ensure_future(self._push(ws, streams))
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                request_body = json.loads(message.data)
                method, params = request_body.get("method"), request_body.get("params") or []
                if method == "SUBSCRIBE":
                    streams.update(params)
                    self.subscriptions_seen.append(list(params))
                elif method == "UNSUBSCRIBE":
                    streams.difference_update(params)
                await ws.send_str(json.dumps({"result": None, "id": request_body.get("id")}))
        finally:
            pusher.cancel()
            self._sockets.discard(ws)
        return ws

    async def _push(self, ws: web.WebSocketResponse, streams: set[str]) -> None:
        while not ws.closed:
            await asyncio.sleep(self.interval)
            if self.paused or not streams:
                continue
            with self.state.lock:
                markets = list(self.state.markets.values())
                every = any(s.startswith("!markPrice@arr") for s in streams)
                updates = [
                    mark_update(self.state, m)
                    for m in markets
                    if every or any(s.startswith(f"{m.symbol.lower()}@markPrice") for s in streams)
                ]
            if not updates:
                continue
            body = updates if every else None
            try:
                if body is not None:
                    await ws.send_str(json.dumps(body, default=encode))
                else:
                    for update in updates:
                        await ws.send_str(json.dumps(update, default=encode))
            except ConnectionResetError:
                return
