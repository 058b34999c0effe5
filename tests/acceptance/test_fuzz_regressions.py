"""One test per class of bad input that fuzzing the API turned into a 500
(tests/acceptance/test_schema_fuzz.py; docs/decisions.md), plus the classes it
probed that were already refused, pinned so they stay refused.

Each must answer 4xx with the error format ``{"code", "detail", "field"}`` and
write nothing; the catalog's range filters must answer 200 with the same rows.
"""

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from copytrading.models import InboxMessage
from portfolios.models import PortfolioStats
from tests.acceptance.test_bad_input import BTC_PERP, Scene, footprint, ok, refused
from tests.acceptance.test_signal_webhook import post_raw, signal, signed_headers

HUGE = "9" * 30  # beyond bigint and any money column
LONE_SURROGATE = '"x\\ud800"'  # valid JSON text, but no UTF-8 string holds it
NUL = '"x\\u0000"'  # valid JSON text; PostgreSQL text and jsonb refuse it


def post_json(client: APIClient, method: str, path: str, raw: str):
    return getattr(client, method)(path, data=raw.encode(), content_type="application/json")


@pytest.fixture
def scene(instruments, django_capture_on_commit_callbacks):
    return Scene(django_capture_on_commit_callbacks)


@pytest.fixture
def unchanged(scene):
    before = footprint()
    yield
    assert footprint() == before


# --- bug: an unpaired surrogate echoed in an error message (UnicodeEncodeError) ------------------


@pytest.mark.parametrize("bad", [LONE_SURROGATE, NUL], ids=["surrogate", "nul"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # choice fields echo the bad choice in their message: the 500s found
        ("post", "/api/v1/subscriptions", '{"portfolio": %(portfolio)s, "amount": "10", "sizing_model": %(bad)s}'),
        ("patch", "/api/v1/subscriptions/%(subscription)s/settings", '{"sizing_model": %(bad)s}'),
        ("put", "/api/v1/portfolios/%(portfolio)s/fee-model", '{"fee_model": %(bad)s}'),
        ("post", "/api/v1/portfolios/%(portfolio)s/templates", '{"name": "T", "sizing_model": %(bad)s}'),
        # free text
        ("patch", "/api/v1/portfolios/%(portfolio)s", '{"description": %(bad)s}'),
    ],
)
def test_text_no_utf8_string_holds_is_refused_with_its_field(scene, unchanged, bad, method, path, body):
    ids = {"portfolio": scene.portfolio, "subscription": scene.subscription, "bad": bad}
    client = scene.leader if "portfolios" in path else scene.copier
    field = json.loads((body % ids).replace("\\ud800", "").replace("\\u0000", "")).popitem()[0]
    refused(post_json(client, method, path % ids, body % ids), 400, "INVALID_CHARACTERS", field)


def test_bad_text_deep_in_a_body_or_in_a_key(scene, unchanged):
    path = f"/api/v1/portfolios/{scene.portfolio}/positions/tpsl"
    body = '{"items": [{"position": 1, "take_profit": ' + LONE_SURROGATE + "}]}"
    refused(post_json(scene.leader, "post", path, body), 400, "INVALID_CHARACTERS", "items.0.take_profit")
    body = '{"x\\ud800": 1}'
    refused(post_json(scene.leader, "post", path, body), 400, "INVALID_CHARACTERS", None)


def test_the_browsable_api_refuses_it_too(scene, unchanged):
    response = scene.copier.generic(
        "PATCH",
        f"/api/v1/subscriptions/{scene.subscription}/settings",
        ('{"sizing_model": ' + LONE_SURROGATE + "}").encode(),
        content_type="application/json",
        HTTP_ACCEPT="text/html",
    )
    assert response.status_code == 400


def test_a_signed_webhook_payload_with_a_nul_is_refused(scene):
    """The raw payload is stored (jsonb on PostgreSQL, which refuses \\u0000)."""
    secret = ok(scene.leader.post(f"/api/v1/portfolios/{scene.portfolio}/webhook-secret"))["secret"]
    before = footprint(), InboxMessage.objects.count()
    for extra in ('"note": "a\\u0000b"', '"a\\u0000": 1', '"note": "\\udfff"'):
        body = json.dumps(signal("sig-nul")).encode()[:-1] + b", " + extra.encode() + b"}"
        response = post_raw(scene.portfolio, body, signed_headers(secret, body), Client())
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "INVALID_CHARACTERS"
    assert (footprint(), InboxMessage.objects.count()) == before


# --- bug: a catalog range bound PostgreSQL's numeric cannot hold ("value overflows numeric format") --


@pytest.fixture
def ranked(scene):
    """The scene's portfolio in the catalog with pnl 12.5 on every line."""
    from django.utils import timezone

    for line in ("margin", "all"):
        PortfolioStats.objects.update_or_create(
            portfolio_id=scene.portfolio, line=line, defaults={"pnl": "12.5", "refreshed_at": timezone.now()}
        )
    return scene.portfolio


def catalog_ids(query: str) -> list[int]:
    response = APIClient().get(f"/api/v1/catalog?{query}")
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("pnl_min=1e999999", False),
        ("pnl_max=1e999999", True),
        ("pnl_min=-1e999999", True),
        ("pnl_max=-1e999999", False),
        ("pnl_min=1e-999999", True),  # 12.5 >= a hair above zero
        ("pnl_max=1e-999999", False),
        ("pnl_min=12.500000001", False),  # rounded up, not down, to the column's 8 places
        ("pnl_max=12.499999999", False),  # rounded down
        ("pnl_min=12.5&pnl_max=12.5", True),
        (f"roi_min=-{HUGE}&score_max={HUGE}&win_rate_min=-1e999999&min_investment_max=1e999999", True),
        ("profit_share_max=1e-999999&followers_max=1e999999", True),  # profit share is 0
        # exponents past Decimal's own limits (found by the all-checks fuzz: a 500)
        ("followers_max=6.0176002642250e654733813", True),
        ("pnl_min=-6e654733813&pnl_max=1e-654733813", False),
        ("pnl_min=1e-654733813", True),
        # exponents past what Decimal can hold at all (a 400 "must be a number" before)
        ("min_investment_min=-63.437e976427205956701353887", True),
        ("pnl_min=1e99999999999999999999", False),
        ("pnl_max=-1e99999999999999999999", False),
        ("pnl_min=1e-99999999999999999999", True),
        ("pnl_max=1e-99999999999999999999&pnl_min=0e99999999999999999999", False),
    ],
)
def test_huge_and_tiny_catalog_bounds_keep_the_same_rows(ranked, query, listed):
    assert (ranked in catalog_ids(query)) is listed


def test_huge_catalog_bounds_over_graphql(ranked):
    query = '{ catalog(pnlMin: "-1e999999", roiMax: "1e999999") { edges { node { id } } } }'
    response = APIClient().post("/graphql/", {"query": query}, format="json")
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    assert [e["node"]["id"] for e in body["data"]["catalog"]["edges"]]


def test_a_forged_cursor_with_an_out_of_range_number_is_refused(ranked):
    import base64

    for value in ("1e999999", "1e-999999", HUGE):
        raw = json.dumps({"s": "-pnl", "v": [value], "id": 1}).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        response = APIClient().get(f"/api/v1/catalog?sort=-pnl&cursor={cursor}")
        refused(response, 400, "INVALID_CURSOR", "cursor")


# --- classes probed and already refused: pinned ------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("Infinity", "INVALID"),
        ("-Infinity", "INVALID"),
        ("sNaN", "INVALID"),
        ("1e999999", "INVALID_MAX_DIGITS"),
        ("1e-999999", "INVALID_MAX_DIGITS"),
        (HUGE, "INVALID_MAX_DIGITS"),
        # Decimals are JSON strings: a number, of any size, is refused (copytrading/strict_fields.py).
        (int(HUGE), "INVALID"),
        (1e308, "INVALID"),
        ([], "INVALID"),
        ({}, "INVALID"),
        (True, "INVALID"),
    ],
)
def test_decimals_out_of_any_range_or_of_the_wrong_type(scene, unchanged, amount, code):
    response = scene.other.post("/api/v1/wallets/main/deposit", {"amount": amount}, format="json")
    refused(response, 400, code, "amount")


@pytest.mark.parametrize("leverage", [int(HUGE), 2**63, 2**31, -(2**63), "1e999999", "ten", 1.5, None])
def test_integers_out_of_any_range_or_of_the_wrong_type(scene, unchanged, leverage):
    body = {"symbol": BTC_PERP, "side": "buy", "quantity": "0.01", "leverage": leverage}
    response = scene.leader.post(f"/api/v1/portfolios/{scene.portfolio}/orders", body, format="json")
    assert 400 <= response.status_code < 500, response.content
    assert response.json()["field"] == "leverage"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"/api/v1/portfolios/{HUGE}"),
        ("get", f"/api/v1/portfolios/{2**63}/orders"),
        ("get", f"/api/v1/subscriptions/{HUGE}/positions"),
        ("post", f"/api/v1/subscriptions/{HUGE}/top-up"),
        ("get", f"/api/v1/catalog/{HUGE}"),
        ("get", f"/api/v1/catalog/{2**63}/closed-trades?limit=1"),
        ("put", f"/api/v1/favorites/{HUGE}"),
        ("post", f"/api/v1/portfolios/{{portfolio}}/positions/{HUGE}/close"),
        ("delete", f"/api/v1/portfolios/{{portfolio}}/orders/{2**63}"),
        ("patch", f"/api/v1/portfolios/{{portfolio}}/templates/{HUGE}"),
        ("post", f"/api/v1/webhooks/signals/{HUGE}"),
    ],
)
def test_ids_beyond_bigint_are_not_found(scene, unchanged, method, path):
    response = getattr(scene.leader, method)(path.format(portfolio=scene.portfolio), {}, format="json")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("portfolio", [HUGE, int(HUGE), -1, "one", None, [1], {"id": 1}])
def test_unknown_or_malformed_ids_in_a_body(scene, unchanged, portfolio):
    body = {"portfolio": portfolio, "amount": "10", "multiplier": "0.5"}
    response = scene.other.post("/api/v1/subscriptions", body, format="json")
    assert response.status_code in (400, 404), response.content
    assert response.json()["field"] == "portfolio"


@pytest.mark.parametrize("raw", ["", "not json", "[]", "[1, 2]", '"text"', "123", "null", '{"amount": NaN}'])
@pytest.mark.parametrize(
    "path", ["/api/v1/wallets/main/deposit", "/api/v1/subscriptions", "/api/v1/portfolios/{portfolio}/orders"]
)
def test_bodies_that_are_not_an_object(scene, unchanged, raw, path):
    response = post_json(scene.leader, "post", path.format(portfolio=scene.portfolio), raw)
    assert response.status_code == 400, response.content
    assert {"code", "detail", "field"} <= set(response.json())
