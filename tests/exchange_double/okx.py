"""A small OKX v5 double for linked accounts whose keys carry a passphrase.

What ccxt's ``okx`` calls to link an account: ``load_markets`` (public
instruments per type; with keys, ``asset/currencies``), ``fetch_balance``
(``account/balance``) and the key's permissions (``account/config``'s
``perm``). Private routes check what OKX checks: ``OK-ACCESS-KEY`` names a
key, ``OK-ACCESS-PASSPHRASE`` is its passphrase, ``OK-ACCESS-SIGN`` is the
base64 HMAC-SHA256 of timestamp + method + path (with query) + body, and the
timestamp is within 30 s. ``fail_next`` answers the next requests with a
status (5xx: an HTML page, as OKX's edge does; 429: OKX's rate-limit body)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PRIVATE_PREFIXES = ("/api/v5/account/", "/api/v5/asset/")


@dataclass
class OkxKey:
    secret: str
    passphrase: str
    perm: str = "read_only,trade"  # OKX's comma-separated permissions: read_only, trade, withdraw
    balances: dict[str, str] = field(default_factory=lambda: {"USDT": "2500"})


@dataclass
class OkxState:
    keys: dict[str, OkxKey] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    requests: list[tuple[str, str, str | None, int]] = field(default_factory=list)  # method, path, key, status
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Refused(Exception):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _check(state: OkxState, method: str, target: str, body: str, headers) -> OkxKey:
    key = state.keys.get(headers.get("OK-ACCESS-KEY") or "")
    if key is None:
        raise _Refused(401, "50111", "Invalid OK-ACCESS-KEY.")
    if headers.get("OK-ACCESS-PASSPHRASE") != key.passphrase:
        raise _Refused(401, "50105", "Invalid OK-ACCESS-PASSPHRASE.")
    stamp = headers.get("OK-ACCESS-TIMESTAMP") or ""
    expected = base64.b64encode(
        hmac.new(key.secret.encode(), f"{stamp}{method}{target}{body}".encode(), hashlib.sha256).digest()
    ).decode()
    if not hmac.compare_digest(expected, headers.get("OK-ACCESS-SIGN") or ""):
        raise _Refused(401, "50113", "Invalid Sign.")
    try:
        sent = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise _Refused(400, "50112", "Invalid OK-ACCESS-TIMESTAMP.") from None
    if abs((datetime.now(UTC) - sent).total_seconds()) > 30:
        raise _Refused(400, "50102", "Timestamp request expired.")
    return key


def _answer(path: str, key: OkxKey | None) -> list:
    now = str(int(datetime.now(UTC).timestamp() * 1000))
    if path == "/api/v5/public/instruments":
        return []
    if path == "/api/v5/asset/currencies":
        return []
    if path == "/api/v5/account/balance":
        assert key is not None
        details = [
            {"ccy": ccy, "eq": amount, "cashBal": amount, "availBal": amount, "frozenBal": "0", "uTime": now}
            for ccy, amount in key.balances.items()
        ]
        return [{"totalEq": "0", "details": details, "uTime": now}]
    if path == "/api/v5/account/config":
        assert key is not None
        return [{"uid": "44000001", "mainUid": "44000001", "acctLv": "2", "posMode": "net_mode", "perm": key.perm}]
    raise _Refused(404, "50000", f"Unknown path {path}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = urlsplit(self.path).path
        with state.lock:
            failing = state.fail_next.pop(0) if state.fail_next else None
        try:
            if failing is not None and failing >= 500:
                return self._send(failing, b"<html><body>Service Unavailable</body></html>", "text/html")
            if failing is not None:
                raise _Refused(failing, "50011", "Too Many Requests")
            key = _check(state, method, self.path, body, self.headers) if path.startswith(PRIVATE_PREFIXES) else None
            data = _answer(path, key)
            self._send(200, json.dumps({"code": "0", "msg": "", "data": data}).encode())
        except _Refused as refused:
            self._send(refused.status, json.dumps({"code": refused.code, "msg": refused.msg, "data": []}).encode())

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        with self.server.state.lock:
            self.server.state.requests.append(
                (self.command, urlsplit(self.path).path, self.headers.get("OK-ACCESS-KEY"), status)
            )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: OkxState


class OkxDouble:
    def __init__(self, state: OkxState | None = None) -> None:
        self.state = state or OkxState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OkxDouble:
        self._thread = threading.Thread(target=self._server.serve_forever, name="okx-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
