"""The stream over a real socket: a daphne process on the test PostgreSQL
database and Redis, a real WebSocket client (aiohttp), prices moved through
the staff price API over HTTP. Services pass only (slow)."""

import asyncio
import json
import time
from decimal import Decimal

import aiohttp
import pytest
from django.db import connection

from copytrading.services import instruments_seed
from tests.daphne import running_daphne
from tests.factories import StaffFactory, token_for
from tests.followers.conftest import FollowerWorld
from tests.stream.test_stream import ETH_PERP, _NoCapture

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

D = Decimal


@pytest.fixture
def daphne(tmp_path):
    db = connection.settings_dict
    env = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "VAR_DIR": str(tmp_path),
        "DJANGO_SERVE_STATIC": "false",
        "STREAM_FLUSH_SECONDS": "0.1",
    }
    with running_daphne(env) as running:
        yield running


async def _wait_up(session: aiohttp.ClientSession, port: int, proc) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                await response.read()
                return
        except aiohttp.ClientError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(proc.stderr.read().decode()[-2000:]) from None
            await asyncio.sleep(0.2)


async def _next(ws, match, timeout: float) -> tuple[dict, float]:
    """The first message matching, and when it arrived (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        assert message.type == aiohttp.WSMsgType.TEXT, message
        for item in json.loads(message.data):
            if item.get("type") == "ping":
                await ws.send_json({"op": "pong", "t": item["t"]})
            if match(item):
                return item, time.monotonic()


def test_a_price_move_reaches_a_copy_within_a_second_and_a_resume_misses_nothing(daphne, settings):
    settings.PAPER_SPREAD_BPS = D("0")
    instruments_seed()
    from copytrading.models import Instrument

    world = FollowerWorld({i.symbol: i for i in Instrument.objects.all()}, _NoCapture())
    portfolio = world.leader(mode="margin")
    sub = world.subscribe(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")  # the copy holds 0.5 ETH long at 3200
    follower_token, staff_token = token_for(sub.follower), token_for(StaffFactory())
    proc, port = daphne

    async def scenario():
        async with aiohttp.ClientSession() as session:
            await _wait_up(session, port, proc)

            async def move(price: str) -> None:
                async with session.post(
                    f"http://127.0.0.1:{port}/api/v1/market/prices",
                    json={"symbol": ETH_PERP, "price": price},
                    headers={"Authorization": f"Token {staff_token}"},
                ) as response:
                    assert response.status == 200, await response.text()

            url = f"ws://127.0.0.1:{port}/ws/stream/"
            headers = {"Authorization": f"Token {follower_token}"}
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.send_json({"op": "subscribe", "topic": "copies"})
                snapshot, _ = await _next(ws, lambda m: m.get("type") == "snapshot", 10)
                assert snapshot["data"]["rows"][0]["subscription_id"] == sub.pk
                started = time.monotonic()
                await move("3100")
                delta, arrived = await _next(ws, lambda m: m.get("type") == "delta", 5)
                # (3100 - 3200) x 0.5
                assert delta["data"]["changed"][0]["unrealized_pnl"] == "-50.00000000"
                assert arrived - started < 1.0, arrived - started
                last_seq = delta["seq"]
            # Closed: two moves happen while away.
            await move("3000")
            await move("2900")
            await asyncio.sleep(0.5)
            async with session.ws_connect(url, headers=headers) as ws:
                resume = {"stream": snapshot["stream"], "seq": last_seq}
                await ws.send_json({"op": "subscribe", "topic": "copies", "resume": resume})
                first, _ = await _next(ws, lambda m: m.get("topic") == "copies", 5)
                assert (first["stream"], first["seq"], first["type"]) == (snapshot["stream"], last_seq + 1, "delta")
                seen = [first]
                while seen[-1]["data"]["changed"][0]["unrealized_pnl"] != "-150.00000000":
                    more, _ = await _next(ws, lambda m: m.get("topic") == "copies", 5)
                    assert more["seq"] == seen[-1]["seq"] + 1  # no gap
                    seen.append(more)
            # Another path is closed with 4404.
            async with session.ws_connect(f"ws://127.0.0.1:{port}/ws/nope/") as ws:
                message = await ws.receive(timeout=5)
                assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4404

    asyncio.run(scenario())
