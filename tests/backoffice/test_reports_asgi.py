"""The admin's CSV export streamed through the web process's handler
(config/sync_handler.py): the view runs on the request's thread, taken from a
pool, and so does every block read from the database after the view returned."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connections

from benchmarks.export import seed_executions
from config.sync_handler import SyncChainASGIHandler
from copytrading.models import Execution
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_streamed_export_reads_its_blocks_on_the_request_thread(client, monkeypatch):
    # As in the web process (a pool): the request's connection is released when it finishes.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    monkeypatch.setattr("backoffice.reports.stream.CHUNK_SIZE", 100)
    monkeypatch.setattr("backoffice.reports.stream.LINES_PER_BLOCK", 100)
    seed_executions(450, portfolio_id=8101)
    client.force_login(StaffFactory(is_superuser=True))
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    handler = SyncChainASGIHandler()

    async def export() -> list[dict]:
        scope = {"type": "http", "method": "GET", "path": "/admin/reports/executions.csv", "query_string": b""}
        scope["headers"] = [(b"host", b"testserver"), (b"cookie", cookie)]
        requests = iter([{"type": "http.request", "body": b""}])
        sent = []

        async def receive():
            # The request, then nothing: the client stays until the answer is complete.
            return next(requests, None) or await asyncio.Future()

        async def send(message):
            sent.append(message)

        await handler(scope, receive, send)
        return sent

    for _ in range(2):  # the second on the thread the first one left
        start, *parts = async_to_sync(export)()
        assert start["status"] == 200
        assert len(parts) > 3  # block by block
        lines = b"".join(part.get("body", b"") for part in parts).decode().splitlines()
        assert len(lines) == Execution.objects.count() + 1 == 451
    assert len(handler._idle) == 1
