"""A real daphne process refuses a 100 MB body with 413 without holding it in
memory (issue #11, point 10). Memory is read from /proc (peak RSS, VmHWM)."""

import http.client
import json
from pathlib import Path

import pytest

from tests.daphne import running_daphne

MB = 1024 * 1024
BODY = 100 * MB
pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read memory"),
    pytest.mark.slow,  # a real daphne: runs once, in the services pass
]


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


class Zeros:
    """A file-like body of ``size`` zero bytes, never held in memory."""

    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\0" * n


def zero_chunks(size: int, chunk: int = MB):
    for _ in range(size // chunk):
        yield b"\0" * chunk


@pytest.fixture
def daphne(tmp_path):
    with running_daphne({"VAR_DIR": str(tmp_path), "DJANGO_SERVE_STATIC": "false"}) as running:
        yield running


def post(port: int, body, headers: dict, path: str = "/api/v1/webhooks/signals/1", **kw) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", path, body=body, headers=headers, **kw)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def warm_up(port: int) -> None:
    # One ordinary request through Django (a route miss: no database in this
    # process), so lazy imports are not counted as growth.
    status, body = post(port, b"{}", {"Content-Type": "application/json"}, path="/api/v1/no-such-route")
    assert status == 404 and body["code"] == "NOT_FOUND", body


def test_a_100_mb_body_is_refused_without_growing_the_process(daphne, capsys):
    proc, port = daphne
    warm_up(port)
    before = memory_kb(proc.pid)
    status, body = post(port, Zeros(BODY), {"Content-Type": "application/json", "Content-Length": str(BODY)})
    assert status == 413 and body["code"] == "PAYLOAD_TOO_LARGE", body
    after = memory_kb(proc.pid)
    growth_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
    with capsys.disabled():
        print(
            f"\n100 MB body with Content-Length: RSS {before['VmRSS'] // 1024} -> {after['VmRSS'] // 1024} MB, "
            f"peak grew {growth_mb:.1f} MB"
        )
    assert growth_mb < 20  # it grew by ~100 MB before


def test_a_100_mb_chunked_body_is_refused_without_growing_the_process(daphne, capsys):
    proc, port = daphne
    warm_up(port)
    before = memory_kb(proc.pid)
    status, body = post(
        port,
        zero_chunks(BODY),
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    assert status == 413 and body["code"] == "PAYLOAD_TOO_LARGE", body
    after = memory_kb(proc.pid)
    growth_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
    with capsys.disabled():
        print(
            f"\n100 MB chunked body: RSS {before['VmRSS'] // 1024} -> {after['VmRSS'] // 1024} MB, "
            f"peak grew {growth_mb:.1f} MB"
        )
    assert growth_mb < 20


def test_a_body_within_the_limit_still_reaches_django(daphne):
    _, port = daphne
    status, body = post(port, b"{" + b" " * MB + b"}", {"Content-Type": "application/json"}, path="/api/v1/nope")
    assert status == 404 and body["code"] == "NOT_FOUND", body
