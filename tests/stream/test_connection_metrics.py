"""The open WebSocket connections gauge (copytrading/observability): up on accept,
down on close. Among the stream tests: they leave the hub as each found it."""

import asyncio

import pytest
from asgiref.sync import async_to_sync

from copytrading.observability import metrics
from tests.factories import UserFactory, token_for
from tests.stream.conftest import connect, reset

pytestmark = pytest.mark.django_db(transaction=True)


def open_connections() -> float:
    # Not the database's gauges: this is read inside the event loop.
    return metrics.registry(scrape_gauges=False).get_sample_value("copytrading_websocket_connections") or 0.0


def test_open_connections_follow_accepts_and_closes(settings):
    settings.STREAM_FLUSH_SECONDS = 0.05
    settings.STREAM_POLL_SECONDS = 0.05
    token = token_for(UserFactory())
    start = open_connections()

    async def scenario():
        await reset()  # a hub an earlier test left on another (closed) event loop
        try:
            first = await connect(token=token)
            second = await connect()  # accepted, not authenticated yet: open all the same
            assert open_connections() == start + 2
            await first.close()
            assert open_connections() == start + 1
            await second.close()
            assert open_connections() == start
        finally:
            await reset()

    async def bounded():
        await asyncio.wait_for(scenario(), timeout=30)  # a hang fails, never holds the suite

    async_to_sync(bounded)()
