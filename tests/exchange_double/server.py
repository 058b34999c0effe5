"""A local HTTP double of Binance's REST API, for ccxt's ``binanceusdm`` (and
``binance`` spot market data), started by tests on 127.0.0.1.

Routes are registered per module with ``@route``; ``ROUTE_MODULES`` lists the
modules the server imports (add yours there: e.g. ``accounts``). A route gets
a ``Call`` (the state, the parameters, the signed account) and returns the JSON
body, or raises ``ApiError`` with Binance's status, code and message.

Signed routes check what Binance checks: the ``X-MBX-APIKEY`` header names a
known account, ``signature`` is the HMAC-SHA256 of the query (GET/DELETE) or
body (POST/PUT) before it, ``timestamp`` lies within ``recvWindow`` (default
5,000 ms, at most 60,000) of the server's clock and not over 1 s ahead of it.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .state import Account, ExchangeState, RequestRecord

ROUTE_MODULES = [
    "tests.exchange_double.binance_public",
    "tests.exchange_double.binance_private",
    "tests.exchange_double.accounts",
    "tests.exchange_double.inspect",
    "tests.exchange_double.binance_spot",
]


class ApiError(Exception):
    """A Binance error answer: ``{"code": code, "msg": msg}`` with ``status``."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg
        self.headers = headers or {}


@dataclass
class Call:
    state: ExchangeState
    method: str
    path: str
    params: dict[str, str]
    account: Account | None  # set on signed routes

    def require(self, name: str) -> str:
        value = self.params.get(name)
        if value in (None, ""):
            raise ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return value

    def decimal(self, name: str, default: str | None = None) -> Decimal:
        raw = self.params.get(name, default)
        if raw is None:
            self.require(name)
        try:
            return Decimal(raw)
        except Exception as exc:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from exc


Handler = Callable[[Call], object]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    signed: bool


ROUTES: dict[tuple[str, str], Route] = {}


def route(method: str, path: str, *, signed: bool = False) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``method path`` (exact path, e.g. ``/fapi/v1/order``)."""

    def register(handler: Handler) -> Handler:
        ROUTES[(method.upper(), path)] = Route(method.upper(), path, handler, signed)
        return handler

    return register


def _load_routes() -> None:
    for name in ROUTE_MODULES:
        importlib.import_module(name)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    raise TypeError(type(value).__name__)


def _check_signature(call: Call, raw: str, headers) -> Account:
    state = call.state
    api_key = headers.get("X-MBX-APIKEY")
    account = state.accounts.get(api_key or "")
    if account is None:
        raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    payload, sep, signature = raw.rpartition("&signature=")
    if not sep:
        if raw.startswith("signature="):
            payload, signature = "", raw[len("signature=") :]
        else:
            raise ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ApiError(400, -1022, "Signature for this request is not valid.")
    try:
        timestamp = int(call.require("timestamp"))
        recv_window = int(call.params.get("recvWindow", state.default_recv_window_ms))
    except ValueError as exc:
        raise ApiError(400, -1100, "Illegal characters found in a parameter.") from exc
    if recv_window <= 0 or recv_window > state.max_recv_window_ms:
        raise ApiError(400, -1131, "recvWindow must be less than 60000")
    now = state.now_ms()
    if timestamp > now + 1000 or now - timestamp > recv_window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    return account


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm on, the body
    # waits for the client's delayed ACK of the headers (~40 ms per answer).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        api_key = self.headers.get("X-MBX-APIKEY")
        self.server.double.state.request_started(api_key)
        try:
            self._serve_counted(method)
        finally:
            self.server.double.state.request_ended(api_key)

    def _serve_counted(self, method: str) -> None:
        double = self.server.double
        state = double.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        raw = parts.query if method in ("GET", "DELETE") or not body else body
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        record = RequestRecord(method, parts.path, params, self.headers.get("X-MBX-APIKEY"), at=time.time())
        with state.lock:
            state.requests.append(record)
        self._record = record

        fault = state.take_fault(parts.path)
        if fault is not None and fault.kind == "timeout":
            double.released.wait(fault.seconds or 30.0)
            self.close_connection = True
            record.answered = 0
            return
        if fault is not None and fault.kind == "timeout_after_accept":
            self._accept_then_time_out(method, parts.path, params, raw, fault)
            return
        if fault is not None and fault.kind == "latency":
            double.released.wait(fault.seconds)
        if double.latency:
            double.released.wait(double.latency)

        try:
            if fault is not None and fault.kind == "status" and fault.status >= 500:
                # As Binance's edge does: an HTML page, not an API error body.
                self._send_text(fault.status, f"<html><body><h1>{fault.status} Service Unavailable</h1></body></html>")
                return
            if fault is not None and fault.kind == "status":
                raise _fault_error(fault)
            found = ROUTES.get((method, parts.path))
            if found is None:
                recorded = _recorded(state, method, parts.path, params)
                if recorded is not None:
                    self._send(200, recorded)
                    return
                raise ApiError(404, -5000, f"Path {parts.path}, Method {method} is invalid")
            call = Call(state, method, parts.path, params, None)
            with state.lock:
                if found.signed:
                    call.account = _check_signature(call, raw, self.headers)
                answer = found.handler(call)
            self._send(200, answer)
        except ApiError as error:
            self._send(error.status, {"code": error.code, "msg": error.msg}, error.headers)

    def _accept_then_time_out(self, method: str, path: str, params: dict[str, str], raw: str, fault) -> None:
        """The request is carried out (an order is placed) but its answer
        never comes: held for ``fault.seconds`` (or until ``stop()``), then the
        connection drops. The caller cannot tell it from a lost request."""
        double = self.server.double
        found = ROUTES.get((method, path))
        if found is not None:
            call = Call(double.state, method, path, params, None)
            with double.state.lock:
                try:
                    if found.signed:
                        call.account = _check_signature(call, raw, self.headers)
                    found.handler(call)
                except ApiError:
                    pass  # refused: nothing was done, and still no answer
        double.released.wait(fault.seconds or 30.0)
        self.close_connection = True
        self._record.answered = 0

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self._record.answered = status  # before the client can read the answer
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send(self, status: int, answer: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(answer, default=_json_default).encode()
        self._record.answered = status  # before the client can read the answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


_MISSING = object()


def _recorded(state: ExchangeState, method: str, path: str, params: dict[str, str]) -> object | None:
    with state.lock:
        for wanted, body in state.recorded.get((method, path), []):
            if all(params.get(name, _MISSING) == value for name, value in wanted.items()):
                return body
    return None


def _fault_error(fault) -> ApiError:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    if fault.status == 429:
        return ApiError(429, -1003, "Too many requests; current limit is 2400 requests per minute.", headers)
    if fault.status == 418:
        return ApiError(418, -1003, "Way too many requests; IP banned until further notice.", headers)
    return ApiError(fault.status, -1000, "An unknown error occurred while processing the request.", headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a client opening dozens of
    # connections at once would see SYNs dropped and retried a second later.
    request_queue_size = 512
    double: ExchangeDouble


class ExchangeDouble:
    """The server: ``start()`` binds 127.0.0.1 on a free port; ``url`` is what
    ccxt's URLs are overridden with; ``stop()`` releases held requests and
    closes. ``latency`` (seconds) delays every answer."""

    def __init__(self, state: ExchangeState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        _load_routes()
        self.state = state or ExchangeState()
        self.latency = 0.0
        self.released = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.double = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ExchangeDouble:
        self._thread = threading.Thread(target=self._server.serve_forever, name="exchange-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ExchangeDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # shortcuts for tests
    def inject(self, kind: str, **fields: object):
        return self.state.inject(kind, **fields)

    def inject_random(self, rates: dict[object, float], **fields: object):
        return self.state.inject_random(rates, **fields)  # type: ignore[arg-type]
