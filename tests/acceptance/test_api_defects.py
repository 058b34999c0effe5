"""Smaller API defects a black-box client found (issue #11, point 14), and
the schema telling the truth about the shapes involved (point 12)."""

import json
import re
from decimal import Decimal

import pytest
from django.test import Client

from portfolios.models import Portfolio
from tests.acceptance.test_bad_input import Scene, client_for, ok, refused
from tests.factories import UserFactory

EXPONENT = re.compile(r"^-?\d+(\.\d+)?[eE][-+]?\d+$")


@pytest.fixture
def scene(instruments, django_capture_on_commit_callbacks):
    return Scene(django_capture_on_commit_callbacks)


@pytest.fixture(scope="module")
def openapi(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return json.loads(response.content)


def _component(openapi, path: str, method: str, status: str) -> dict:
    schema = openapi["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    return openapi["components"]["schemas"][name]


# --- CSV content negotiation ------------------------------------------------------------


def test_withdrawals_csv_answers_accept_text_csv(scene):
    url = f"/api/v1/portfolios/{scene.portfolio}/withdrawals.csv"
    response = scene.leader.get(url, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert b"".join(response.streaming_content).decode().splitlines()[0].startswith("id,created_at,portfolio_id")


def test_withdrawals_csv_errors_stay_json_when_csv_is_asked_for(scene):
    response = scene.other.get(f"/api/v1/portfolios/{scene.portfolio}/withdrawals.csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "NOT_FOUND"


# --- one money format ---------------------------------------------------------------------


def _strings(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _strings(item, f"{path}.{n}")
    elif isinstance(value, str):
        yield path, value


def test_no_response_shows_money_in_exponent_notation(scene):
    """Walks every JSON response of a follower's and a leader's reads: zero
    amounts (a copy wallet with nothing locked) read "0.00000000", like any
    other amount, never "0E-8"."""
    sub = scene.subscription
    urls = [
        (scene.copier, "/api/v1/subscriptions"),
        (scene.copier, f"/api/v1/subscriptions/{sub}"),
        (scene.copier, f"/api/v1/subscriptions/{sub}/positions"),
        (scene.copier, "/api/v1/subscriptions/summary"),
        (scene.copier, "/api/v1/subscriptions/stats"),
        (scene.copier, f"/api/v1/subscriptions/{sub}/fees"),
        (scene.copier, "/api/v1/wallets/main"),
        (scene.copier, "/api/v1/me"),
        (scene.leader, f"/api/v1/portfolios/{scene.portfolio}"),
        (scene.leader, f"/api/v1/portfolios/{scene.portfolio}/positions"),
        (scene.leader, f"/api/v1/portfolios/{scene.portfolio}/orders"),
        (scene.leader, f"/api/v1/portfolios/{scene.portfolio}/earnings"),
        (scene.leader, "/api/v1/market/prices"),
    ]
    unfollowed = ok(scene.copier.post(f"/api/v1/subscriptions/{sub}/unfollow"), 200)
    bodies = [("unfollow", unfollowed)] + [(url, ok(client.get(url), 200)) for client, url in urls]
    checked = 0
    for url, body in bodies:
        for path, text in _strings(body):
            assert not EXPONENT.match(text), f"{url} {path} = {text!r}"
            checked += 1
    # The ended copy's wallet is empty: every amount of it in the one format.
    wallet = ok(scene.copier.get(f"/api/v1/subscriptions/{sub}"), 200)["wallet"]
    assert (wallet["balance"], wallet["locked"], wallet["free"]) == ("0.00000000",) * 3
    assert checked > 100


# --- schema: portfolio detail, leader events ----------------------------------------------


def test_portfolio_detail_documents_its_trading_account(scene, openapi):
    component = _component(openapi, "/api/v1/portfolios/{id}", "get", "200")
    assert "trading_account" in component["properties"]
    body = ok(scene.leader.get(f"/api/v1/portfolios/{scene.portfolio}"), 200)
    assert set(body) == set(component["properties"])
    assert body["trading_account"]["balance"] == "20000.00000000"


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/api/v1/portfolios/{id}/orders", "post", "201"),
        ("/api/v1/portfolios/{id}/positions/{position_pk}/close", "post", "200"),
        ("/api/v1/portfolios/{id}/positions/{position_pk}/tpsl", "post", "200"),
        ("/api/v1/portfolios/{id}/positions/tpsl", "post", "200"),
        ("/api/v1/portfolios/{id}/orders/{order_pk}", "patch", "200"),
        ("/api/v1/portfolios/{id}/orders/{order_pk}/cancel", "post", "200"),
    ],
)
def test_leader_trading_answers_are_typed(openapi, path, method, status):
    component = _component(openapi, path, method, status)
    events = component["properties"]["events"]
    item = openapi["components"]["schemas"][events["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(item["required"]) == {"id", "seq", "kind", "payload"}


def test_every_operation_documents_the_shared_error_answers(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "401", "403", "404", "409", "413", "415", "429", "503"):
                content = operation["responses"][status]["content"]["application/json"]["schema"]
                assert content["$ref"].endswith("/Error"), (method, path, status)
    error = openapi["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "detail", "field"}
    assert {"errors", "retry_after"} <= set(error["properties"])


# --- one status rule for closes ---------------------------------------------------------


def test_leader_and_follower_closes_both_answer_200(scene):
    from copytrading.models import Position

    leader_position = Position.objects.get(account__portfolio__pk=scene.portfolio).pk
    mirror = ok(scene.copier.post(f"/api/v1/subscriptions/{scene.subscription}/positions/{scene.mirror}/close"), 200)
    assert mirror["status"] == "closed"
    leader = ok(scene.leader.post(f"/api/v1/portfolios/{scene.portfolio}/positions/{leader_position}/close"), 200)
    assert [e["kind"] for e in leader["events"]] == ["position_close"]


# --- foreign ids are 404 ------------------------------------------------------------------


def test_fees_earnings_of_another_leaders_portfolio_is_404(scene):
    own = ok(scene.leader.get(f"/api/v1/fees/earnings?portfolio={scene.portfolio}"), 200)
    assert own["total_earned"] == "0.00000000"
    refused(scene.other.get(f"/api/v1/fees/earnings?portfolio={scene.portfolio}"), 404, "NOT_FOUND", "portfolio")
    refused(scene.other.get("/api/v1/fees/earnings?portfolio=999999"), 404, "NOT_FOUND", "portfolio")
    # and the per-portfolio endpoint agrees
    assert scene.other.get(f"/api/v1/portfolios/{scene.portfolio}/earnings").status_code == 404


# --- the default sizing -------------------------------------------------------------------


def test_subscribing_with_only_portfolio_and_amount_uses_balanced(scene):
    body = ok(scene.other.post("/api/v1/subscriptions", {"portfolio": scene.portfolio, "amount": "500"}))
    assert (body["template_ref"], body["sizing_model"], Decimal(body["multiplier"])) == (
        "balanced",
        "progressive",
        Decimal("0.5"),
    )
    assert body["leverage_override"] == 5
    assert body["risk"]["max_open_positions"] == 5


def test_explicit_sizing_without_a_template_keeps_its_own_settings(scene):
    body = ok(
        scene.other.post("/api/v1/subscriptions", {"portfolio": scene.portfolio, "amount": "500", "multiplier": "0.2"})
    )
    assert (body["template_ref"], Decimal(body["multiplier"]), body["leverage_override"]) == ("", Decimal("0.2"), None)


# --- invalid bodies are refused and change nothing ----------------------------------------


def test_a_form_body_is_refused_before_anything_acts(scene):
    """The fuzz found that ``POST portfolios/{id}/close`` with a multipart body
    ``[]`` (nothing a form can carry) archived the portfolio: the API takes
    JSON only, so it is a 415 and the portfolio stays active."""
    url = f"/api/v1/portfolios/{scene.portfolio}/close"
    refused(scene.leader.post(url, {}, format="multipart"), 415, "UNSUPPORTED_MEDIA_TYPE", None)
    form = scene.leader.generic("POST", url, "reason=x", content_type="application/x-www-form-urlencoded")
    refused(form, 415, "UNSUPPORTED_MEDIA_TYPE", None)
    refused(scene.leader.post(url, [], format="json"), 400, "INVALID", None)
    assert Portfolio.objects.get(pk=scene.portfolio).status == "active"


@pytest.mark.parametrize("value", [0, 1.5, True, ["Momentum"], {"a": 1}])
def test_a_string_field_refuses_other_json_types(scene, value):
    refused(scene.other.post("/api/v1/portfolios", {"name": value}), 400, "INVALID", "name")
    refused(
        scene.leader.post(f"/api/v1/portfolios/{scene.portfolio}/close", {"reason": value}), 400, "INVALID", "reason"
    )
    assert Portfolio.objects.get(pk=scene.portfolio).status == "active"
    assert not Portfolio.objects.filter(leader__username="other").exists()


def test_catalog_detail_body_matches_its_schema(scene, openapi):
    Portfolio.objects.filter(pk=scene.portfolio).update(is_public=True)
    component = _component(openapi, "/api/v1/catalog/{id}", "get", "200")
    body = ok(client_for(UserFactory()).get(f"/api/v1/catalog/{scene.portfolio}"), 200)
    assert set(component["required"]) <= set(body)
    assert {"average_follower", "lines"} <= set(body["stats"])
    assert body["id"] == scene.portfolio


def test_an_empty_catalog_parameter_is_refused_not_read_as_left_out(scene):
    anonymous = Client()
    for query, code, field in (
        ("list=&cursor=", "INVALID_LIST", "list"),
        ("limit=", "INVALID_LIMIT", "limit"),
        ("limit=+5", "INVALID_LIMIT", "limit"),
    ):
        refused(anonymous.get(f"/api/v1/catalog?{query}"), 400, code, field)
    assert anonymous.get("/api/v1/catalog?list=all&limit=5").status_code == 200


def test_a_blank_quantity_is_no_quantity_and_closes_nothing(scene):
    """``{"quantity": ""}`` was read as null: the whole position closed."""
    from copytrading.models import Position

    position = Position.objects.get(account__portfolio__pk=scene.portfolio)
    url = f"/api/v1/portfolios/{scene.portfolio}/positions/{position.pk}/close"
    refused(scene.leader.post(url, {"quantity": ""}), 400, "INVALID", "quantity")
    mirror = f"/api/v1/subscriptions/{scene.subscription}/positions/{scene.mirror}/close"
    refused(scene.copier.post(mirror, {"quantity": " "}), 400, "INVALID", "quantity")
    assert set(Position.objects.values_list("status", flat=True)) == {"open"}


@pytest.mark.parametrize(("field", "value"), [("amount", 10), ("amount", 10.5), ("amount", True)])
def test_decimals_are_json_strings(scene, field, value):
    refused(scene.other.post("/api/v1/wallets/main/deposit", {field: value}), 400, "INVALID", field)


@pytest.mark.parametrize("leverage", ["5", 5.0, True])
def test_integers_are_json_integers(scene, leverage):
    body = {"symbol": "BTC/USDT:USDT", "side": "buy", "quantity": "0.01", "leverage": leverage}
    refused(scene.leader.post(f"/api/v1/portfolios/{scene.portfolio}/orders", body), 400, "INVALID", "leverage")


def test_an_unknown_status_filter_is_refused_not_ignored(scene):
    """``?status=AAA`` answered every position (the all-checks fuzz: a
    schema-invalid request accepted)."""
    for client, url in (
        (scene.leader, f"/api/v1/portfolios/{scene.portfolio}/positions"),
        (scene.copier, f"/api/v1/subscriptions/{scene.subscription}/positions"),
        (scene.copier, f"/api/v1/subscriptions/{scene.subscription}/orders"),
    ):
        refused(client.get(url + "?status=AAA"), 400, "INVALID_CHOICE", "status")
        assert isinstance(ok(client.get(url + "?status=open"), 200)["results"], list)
    open_ids = {
        p["id"]
        for p in ok(scene.copier.get(f"/api/v1/subscriptions/{scene.subscription}/positions?status=open"), 200)[
            "results"
        ]
    }
    assert open_ids == {scene.mirror}
