"""Under /api/ every error is the API's JSON shape, also where DRF is not
involved; bodies over the limit are 413 before they are read; a validation
error lists every invalid field (issue #11, point 10)."""

import asyncio
import json

import pytest
from asgiref.testing import ApplicationCommunicator
from django.http import HttpResponse, HttpResponseNotAllowed
from django.test import Client, override_settings

from config.body_limit import BodyLimit
from config.error_views import ApiJsonErrors
from copytrading.auth import api as auth_api
from tests.acceptance.test_bad_input import client_for
from tests.factories import UserFactory


def api_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["code"] == code and body["detail"] and "field" in body, body
    return body


@pytest.mark.django_db
def test_a_route_miss_under_api_is_json(api):
    api_error(api.get("/api/v1/subscriptions/-1"), 404, "NOT_FOUND")
    api_error(api.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    api_error(api.post("/api/nothing", {}), 404, "NOT_FOUND")


@pytest.mark.django_db
def test_a_route_miss_outside_api_stays_html(api):
    response = api.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_method_not_allowed_is_json():
    user = UserFactory()
    body = api_error(client_for(user).delete("/api/v1/me"), 405, "METHOD_NOT_ALLOWED")
    assert body["field"] is None


@pytest.mark.django_db
def test_a_500_under_api_is_json(monkeypatch):
    def boom(self, request):
        raise RuntimeError("a bug, with internals: /secret/path")

    monkeypatch.setattr(auth_api.MeView, "get", boom)
    user = UserFactory()
    client = Client(raise_request_exception=False)
    client.force_login(user)
    response = client.get("/api/v1/me")
    body = api_error(response, 500, "SERVER_ERROR")
    assert "secret" not in json.dumps(body)


@pytest.mark.django_db
def test_djangos_own_400_under_api_is_json():
    # A Host the settings do not allow: Django refuses it before any view.
    response = Client(raise_request_exception=False).get("/api/v1/market/prices", HTTP_HOST="evil.example")
    api_error(response, 400, "BAD_REQUEST")


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_django_refuses_to_read_is_a_413_json(api):
    # The webhook reads the raw body itself (Django's RequestDataTooBig).
    response = api.post("/api/v1/webhooks/signals/1", data=b"x" * 5000, content_type="application/json")
    api_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_the_net_rewrites_non_json_errors_under_api_only(rf):
    middleware = ApiJsonErrors(lambda request: HttpResponseNotAllowed(["GET"]))
    response = middleware(rf.put("/api/v1/anything"))
    assert response.status_code == 405 and response["Allow"] == "GET"
    assert json.loads(response.content)["code"] == "METHOD_NOT_ALLOWED"
    response = middleware(rf.put("/admin/anything"))
    assert response.status_code == 405 and b"METHOD_NOT_ALLOWED" not in response.content
    ok = ApiJsonErrors(lambda request: HttpResponse("fine"))(rf.get("/api/v1/me"))
    assert ok.content == b"fine"


# --- the ASGI layer -------------------------------------------------------------------


async def run_asgi(app, scope_extra: dict, chunks: list[bytes]) -> tuple[int, dict, bytes]:
    """Drive ``app`` with one HTTP request; return status, headers and body."""
    scope = {"type": "http", "method": "POST", "path": "/api/v1/webhooks/signals/1", "headers": [], **scope_extra}
    communicator = ApplicationCommunicator(app, scope)
    for i, chunk in enumerate(chunks):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1})
    start = await communicator.receive_output(2)
    body = await communicator.receive_output(2)
    await communicator.wait(2)
    return start["status"], dict(start["headers"]), body["body"]


class Recorder:
    """An inner application that reads the whole body, then answers 200."""

    def __init__(self):
        self.received: list[dict] = []
        self.called = False

    async def __call__(self, scope, receive, send):
        self.called = True
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "http.disconnect":
                return  # what Django's ASGI handler does: no answer
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    inner = Recorder()
    app = BodyLimit(inner, limit=1000)
    status, headers, body = asyncio.run(run_asgi(app, {"headers": [(b"content-length", b"1000001")]}, [b"x" * 10]))
    assert status == 413 and headers[b"content-type"] == b"application/json"
    assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    assert not inner.called  # nothing received, nothing built


def test_a_chunked_body_growing_past_the_limit_is_refused_while_reading():
    inner = Recorder()
    app = BodyLimit(inner, limit=1000)
    status, _, body = asyncio.run(run_asgi(app, {}, [b"x" * 600, b"x" * 600, b"x" * 600]))
    assert status == 413 and json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    # The application saw the first chunk, then a disconnect, never the rest.
    assert [m["type"] for m in inner.received] == ["http.request", "http.disconnect"]


def test_a_body_within_the_limit_passes():
    inner = Recorder()
    app = BodyLimit(inner, limit=1000)
    status, _, body = asyncio.run(run_asgi(app, {}, [b"x" * 500, b"x" * 500]))
    assert (status, body) == (200, b"read")


# --- every invalid field at once ---------------------------------------------------------


@pytest.mark.django_db
def test_a_validation_error_lists_every_invalid_field():
    client = client_for(UserFactory())
    response = client.post(
        "/api/v1/subscriptions",
        {"portfolio": "x", "amount": "lots", "max_open_positions": 2**40, "leverage_override": "high"},
        format="json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    # The first error stays on top, as before.
    assert (body["code"], body["field"]) == (body["errors"][0]["code"], body["errors"][0]["field"])
    assert {e["field"] for e in body["errors"]} == {"portfolio", "amount", "max_open_positions", "leverage_override"}
    assert all(e["code"].startswith("INVALID") and e["detail"] for e in body["errors"])


@pytest.mark.django_db
def test_the_settings_validator_lists_every_out_of_range_field(instruments):
    leader, follower = UserFactory(), UserFactory()
    lead, follow = client_for(leader), client_for(follower)
    lead.post("/api/v1/wallets/main/deposit", {"amount": "5000"}, format="json")
    portfolio = lead.post("/api/v1/portfolios", {"name": "Ranges"}, format="json").json()["id"]
    follow.post("/api/v1/wallets/main/deposit", {"amount": "5000"}, format="json")
    sub = follow.post(
        "/api/v1/subscriptions", {"portfolio": portfolio, "amount": "1000", "multiplier": "0.5"}, format="json"
    ).json()["id"]
    response = follow.patch(
        f"/api/v1/subscriptions/{sub}/settings",
        {"multiplier": "5", "leverage_override": 500, "slippage_tolerance_pct": "101", "max_drawdown_pct": "200"},
        format="json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "OUT_OF_RANGE" and body["field"] == body["errors"][0]["field"]
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"multiplier", "leverage_override", "slippage_tolerance_pct", "max_drawdown_pct"}
    # One domain error alone carries a one-item list.
    response = follow.patch(f"/api/v1/subscriptions/{sub}/settings", {"multiplier": "5"}, format="json")
    assert [e["field"] for e in response.json()["errors"]] == ["multiplier"]
