"""One factory for every ccxt exchange the service talks to.

Every client is built here so that each has a bounded timeout, ccxt's rate
limiter on, and, when ``EXCHANGE_URL_OVERRIDE`` (or ``url_override``) is set,
every request sent to that host instead: ccxt's own signing and parsing then
run against the local exchange double (tests/exchange_double/) or a recorder.

The REST client keeps its real URLs and the redirect happens in its HTTP
session (a transport adapter swaps scheme and host, keeping path and query):
ccxt decides some things from the URL it builds (Binance maps error codes per
host: ``-2019`` is ``InsufficientFunds`` only on fapi.binance.com), so
rewriting ``urls`` would change ccxt's behaviour under test. ccxt.pro's
WebSocket URLs are rewritten instead (``override_urls``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from copytrading.errors import DomainError


def exchange_ids() -> list[str]:
    return list(ccxt.exchanges)


def _override_url(url: str, base: str) -> str:
    """``url`` with its scheme and host replaced by ``base``'s (the path kept):
    ``https://fapi.binance.com/fapi/v1`` → ``http://127.0.0.1:PORT/fapi/v1``.
    WebSocket URLs keep a WebSocket scheme (``ws`` for ``http``)."""
    original, target = urlsplit(url), urlsplit(base)
    scheme = target.scheme
    if original.scheme in ("ws", "wss"):
        scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    path = target.path.rstrip("/") + original.path
    return urlunsplit((scheme, target.netloc, path, original.query, original.fragment))


def override_urls(urls: Any, base: str, ws_base: str | None = None) -> Any:
    """Every URL in ccxt's ``urls['api']`` tree (strings in nested dicts)
    rewritten; WebSocket URLs to ``ws_base`` when given."""
    if isinstance(urls, str):
        if "://" not in urls:
            return urls
        websocket = urls.startswith(("ws://", "wss://"))
        return _override_url(urls, ws_base if websocket and ws_base else base)
    if isinstance(urls, Mapping):
        return {key: override_urls(value, base, ws_base) for key, value in urls.items()}
    if isinstance(urls, list):
        return [override_urls(value, base, ws_base) for value in urls]
    return urls


class RedirectAdapter(HTTPAdapter):
    """Sends every request to ``base``'s scheme and host, path and query kept;
    the host ccxt meant travels in ``X-Original-Host``."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def send(self, request, *args: Any, **kwargs: Any):  # type: ignore[override]
        request.headers["X-Original-Host"] = urlsplit(request.url).netloc
        request.url = _override_url(request.url, self.base)
        return super().send(request, *args, **kwargs)


def exchange_client(
    exchange_id: str,
    *,
    api_key: str | None = None,
    secret: str | None = None,
    password: str | None = None,
    url_override: str | None = None,
    ws_url_override: str | None = None,
    timeout_seconds: float | None = None,
    options: Mapping[str, Any] | None = None,
    pro: bool = False,
) -> ccxt.Exchange:
    """A ccxt client for ``exchange_id`` (``binanceusdm``, ``bybit``, ``okx`` …).

    ``pro`` builds ccxt.pro's async WebSocket client instead (same options).
    Raises ``DomainError("UNKNOWN_EXCHANGE")`` for an id ccxt does not know."""
    module: Any = ccxt
    if pro:
        import ccxt.pro as module
    if exchange_id not in ccxt.exchanges or not hasattr(module, exchange_id):
        raise DomainError("UNKNOWN_EXCHANGE", f"ccxt has no exchange {exchange_id!r}.", field="exchange")
    timeout = timeout_seconds if timeout_seconds is not None else settings.EXCHANGE_TIMEOUT_SECONDS
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(timeout * 1000),
        "options": dict(options or {}),
    }
    if api_key is not None:
        config["apiKey"] = api_key
    if secret is not None:
        config["secret"] = secret
    if password is not None:
        config["password"] = password
    exchange = getattr(module, exchange_id)(config)
    base = url_override if url_override is not None else settings.EXCHANGE_URL_OVERRIDE
    if base:
        if pro:
            ws_base = ws_url_override if ws_url_override is not None else settings.EXCHANGE_WS_URL_OVERRIDE
            exchange.urls["api"] = override_urls(exchange.urls["api"], base, ws_base or None)
        else:
            exchange.session = requests.Session()
            exchange.session.trust_env = False
            adapter = RedirectAdapter(base)
            exchange.session.mount("https://", adapter)
            exchange.session.mount("http://", adapter)
    return exchange
