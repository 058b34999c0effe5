"""Pytest fixtures for the exchange double. Import them into a conftest:

from tests.exchange_double.fixtures import exchange_double, exchange_settings  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import ExchangeDouble
from .state import ExchangeState, default_markets
from .websocket import WebSocketDouble

API_KEY = "double-api-key-0001"
API_SECRET = "double-api-secret-0001"


@pytest.fixture
def exchange_double() -> Iterator[ExchangeDouble]:
    """A running double with ``default_markets()`` and one account
    (``API_KEY``/``API_SECRET``, 10,000 USDT); stopped after the test."""
    state = ExchangeState()
    for market in default_markets():
        state.add_market(market)
    state.add_account(API_KEY, API_SECRET)
    double = ExchangeDouble(state).start()
    try:
        yield double
    finally:
        double.stop()


@pytest.fixture
def exchange_settings(settings, exchange_double: ExchangeDouble):
    """Django settings pointing every ccxt client built by
    ``copytrading.exchanges.client.exchange_client`` at the double, with short timeouts."""
    settings.EXCHANGE_URL_OVERRIDE = exchange_double.url
    settings.EXCHANGE_TIMEOUT_SECONDS = 2.0
    return settings


@pytest.fixture
def exchange_stream(exchange_double: ExchangeDouble) -> Iterator[WebSocketDouble]:
    """The WebSocket market streams over the same state (ccxt.pro's
    ``watch_mark_prices``); stopped after the test."""
    stream = WebSocketDouble(exchange_double.state).start()
    try:
        yield stream
    finally:
        stream.stop()


@pytest.fixture
def exchange_stream_settings(exchange_settings, exchange_stream: WebSocketDouble):
    """``exchange_settings`` plus ccxt.pro's WebSocket URLs pointed at the stream double."""
    exchange_settings.EXCHANGE_WS_URL_OVERRIDE = exchange_stream.url
    return exchange_settings
