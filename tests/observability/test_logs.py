"""Structured logs: the request id (taken or made, echoed), the user, a task's
ids; JSON in services mode and a console line embedded."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.handlers.asgi import ASGIHandler

from copytrading import tasks
from copytrading.observability import tasks as task_context
from copytrading.observability.logging import logging_config
from copytrading.observability.middleware import RequestContext
from tests.copytrading.test_propagation import ETH_PERP
from tests.factories import UserFactory, token_for

ROOT = Path(__file__).resolve().parents[2]


def _formatter(log_format: str) -> logging.Formatter:
    spec = dict(logging_config(log_format=log_format, level="INFO")["formatters"]["structured"])
    return spec.pop("()")(**spec)


@pytest.fixture
def json_lines():
    """Every record of the test, rendered as the services mode renders it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    structlog.contextvars.clear_contextvars()
    lines: list[dict] = []

    def read() -> list[dict]:
        lines[:] = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
        return lines

    yield read
    root.removeHandler(handler)
    root.setLevel(previous)
    structlog.contextvars.clear_contextvars()


@pytest.mark.django_db
def test_a_sane_request_id_is_kept_echoed_and_on_the_json_line(client, json_lines):
    response = client.get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="edge-7f3a.42")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "edge-7f3a.42"
    (line,) = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == "edge-7f3a.42"
    assert line["level"] == "warning" and line["event"].startswith("Not Found")
    assert "timestamp" in line


@pytest.mark.django_db
@pytest.mark.parametrize("sent", ["has spaces in it", "x" * 200, '"quoted"', ""])
def test_an_insane_request_id_is_replaced(client, json_lines, sent):
    response = client.get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID=sent)
    made = response["X-Request-ID"]
    assert made != sent and len(made) == 32 and int(made, 16) >= 0
    (line,) = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == made


@pytest.mark.django_db
def test_each_request_gets_its_own_id(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert first != second


@pytest.mark.django_db
def test_the_token_user_is_bound(api, json_lines):
    user = UserFactory()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    response = api.get("/api/v1/subscriptions/987654321")
    assert response.status_code == 404
    (line,) = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["user_id"] == user.pk
    assert line["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_the_session_user_is_bound(client, json_lines):
    user = UserFactory()
    client.force_login(user)
    client.get("/api/v1/subscriptions/987654321")
    (line,) = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["user_id"] == user.pk


@pytest.mark.django_db(transaction=True)
def test_the_asgi_path_carries_the_id_into_django_and_echoes_it(json_lines):
    """Through daphne's interface: the ASGI layer binds, Django's handler (its
    sync middleware in a thread) logs with it, the response carries it."""
    app = RequestContext(ASGIHandler())

    async def call():
        communicator = HttpCommunicator(
            app, "GET", "/api/v1/no-such-thing", headers=[(b"host", b"testserver"), (b"x-request-id", b"lb-99")]
        )
        return await communicator.get_response(timeout=10)

    response = async_to_sync(call)()
    assert response["status"] == 404
    assert dict(response["headers"])[b"x-request-id"] == b"lb-99"
    assert [h for h, _ in response["headers"]].count(b"x-request-id") == 1
    (line,) = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == "lb-99"


def test_task_lines_carry_the_event_and_chunk(world, json_lines):
    portfolio = world.leader()
    world.follower(portfolio)
    world.follower(portfolio)
    world.follower(portfolio)
    structlog.contextvars.bind_contextvars(request_id="req-1")  # as in the request that placed the order
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")

    lines = json_lines()
    chunk_lines = [line for line in lines if line.get("task") == "copytrading.tasks.propagate_chunk"]
    assert len(chunk_lines) == 2
    assert {line["event_id"] for line in chunk_lines} == {event.pk}
    assert {line["chunk_id"] for line in chunk_lines} == set(event.chunks.values_list("pk", flat=True))
    assert all(line["task_id"] and line["request_id"] == "req-1" for line in chunk_lines)
    assert not any("data" in line for line in chunk_lines)  # Celery's repeat of its message
    (recorded,) = [line for line in lines if line["event"] == "leader event recorded"]
    (complete,) = [line for line in lines if line["event"] == "leader event complete"]
    assert recorded["event_id"] == complete["event_id"] == event.pk
    assert recorded["request_id"] == "req-1"
    assert complete["fanout_seconds"] >= 0
    # An eager task ran in its caller's context: put back as it was.
    assert structlog.contextvars.get_contextvars() == {"request_id": "req-1"}


def test_a_worker_task_starts_from_a_clean_context_with_its_request_id():
    """In a worker (not eager): the previous task's ids are gone; the id of the
    request that published it comes with the message."""
    task = tasks.propagate_chunk
    structlog.contextvars.bind_contextvars(request_id="stale", event_id=1, user_id=5)
    task.push_request(id="t-1", is_eager=False, request_id="req-9")
    try:
        task_context.on_prerun(task_id="t-1", task=task, args=(42,), kwargs={})
        assert structlog.contextvars.get_contextvars() == {
            "request_id": "req-9",
            "task_id": "t-1",
            "task": "copytrading.tasks.propagate_chunk",
            "chunk_id": 42,
        }
        task_context.on_postrun(task_id="t-1")
        assert structlog.contextvars.get_contextvars() == {}
    finally:
        task.pop_request()


def test_the_request_id_goes_with_a_published_message():
    structlog.contextvars.clear_contextvars()
    headers: dict = {}
    task_context.on_before_publish(headers=headers)
    assert headers == {}
    structlog.contextvars.bind_contextvars(request_id="req-3")
    task_context.on_before_publish(headers=headers)
    assert headers == {"request_id": "req-3"}
    structlog.contextvars.clear_contextvars()


def test_console_lines_are_readable_with_the_context():
    record = logging.LogRecord("copytrading.x", logging.WARNING, __file__, 1, "chunk %s slow", (7,), None)
    record.event_id = 12
    structlog.contextvars.bind_contextvars(request_id="req-5")
    try:
        line = _formatter("console").format(record)
    finally:
        structlog.contextvars.clear_contextvars()
    assert not line.startswith("{")
    assert "chunk 7 slow" in line and "request_id=req-5" in line and "event_id=12" in line and "warning" in line


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(log_format="xml", level="INFO")


@pytest.mark.slow  # subprocesses with their own environment
@pytest.mark.parametrize(
    ("mode", "env", "is_json"),
    [
        ("embedded", {}, False),
        ("services", {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "DJANGO_DEBUG": "true"}, True),
        ("embedded, asked for json", {"LOG_FORMAT": "json"}, True),
    ],
)
def test_the_default_format_by_mode(tmp_path, mode, env, is_json):
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('copytrading.probe').warning('probe line', extra={'event_id': 3})"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "LOG_FORMAT")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (line,) = [line for line in done.stderr.splitlines() if "probe line" in line]
    if is_json:
        assert json.loads(line) | {"timestamp": None} == {
            "event": "probe line",
            "level": "warning",
            "logger": "copytrading.probe",
            "event_id": 3,
            "timestamp": None,
        }
    else:
        assert not line.startswith("{") and "probe line" in line and "event_id=3" in line
