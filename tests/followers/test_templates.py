"""Copy templates: the three platform defaults, a leader's custom templates
(CRUD, at most 5 per portfolio, the ranges of subscribe), and subscribing by
template — the values are copied, later edits change no running copy."""

from decimal import Decimal

import pytest

from followers.models import Subscription
from portfolios.copy_settings import DEFAULT_TEMPLATES, TEMPLATE_FIELDS, validate_settings, validate_template_risk
from portfolios.models import CopyTemplate
from risk.models import RiskLimits
from tests.copytrading.world import ETH_PERP, mirrors_of
from tests.followers.conftest import client_for

D = Decimal

CUSTOM = {
    "name": "Scalper",
    "description": "Fixed 320 per trade",
    "sizing_model": "fixed",
    "fixed_notional": "320",
    "leverage_override": 4,
    "slippage_tolerance_pct": "0.30",
    "daily_loss_realized_pct": "2.5",
    "daily_loss_unrealized_pct": "4",
    "margin_call_level_pct": "120",
    "max_drawdown_pct": "15",
    "max_open_positions": 2,
    "max_exposure_pct": "200",
}


@pytest.mark.parametrize("key", ["conservative", "balanced", "aggressive"])
def test_every_platform_default_is_complete_and_within_every_range(key):
    values = DEFAULT_TEMPLATES[key].values
    assert set(values) == set(TEMPLATE_FIELDS)
    assert validate_settings(values)["sizing_model"] == "progressive"
    validate_template_risk(values)
    unused = {"leverage_override", "fixed_notional", "risk_factor"}  # None: the leader's leverage; not progressive
    assert all(values[name] is not None for name in TEMPLATE_FIELDS if name not in unused)


def test_the_defaults_go_from_careful_to_bold():
    c, b, a = (DEFAULT_TEMPLATES[k].values for k in ("conservative", "balanced", "aggressive"))
    assert c["multiplier"] < b["multiplier"] < a["multiplier"]
    assert c["margin_call_level_pct"] > b["margin_call_level_pct"] > a["margin_call_level_pct"]
    assert c["max_drawdown_pct"] < b["max_drawdown_pct"] < a["max_drawdown_pct"]
    assert c["max_open_positions"] < b["max_open_positions"] < a["max_open_positions"]
    assert (c["margin_call_level_pct"], a["margin_call_level_pct"]) == (D("115"), D("103"))  # SPEC's examples


def test_the_api_lists_the_platform_defaults(world, api):
    api.force_authenticate(world.person())
    r = api.get("/api/v1/templates")
    assert r.status_code == 200
    assert [(t["id"], t["name"], t["platform"]) for t in r.json()["results"]] == [
        ("conservative", "Conservative", True),
        ("balanced", "Balanced", True),
        ("aggressive", "Aggressive", True),
    ]
    balanced = r.json()["results"][1]
    assert (balanced["multiplier"], balanced["leverage_override"], balanced["margin_call_level_pct"]) == (
        "0.50000000",
        5,
        "110.00",
    )


def test_a_leader_creates_edits_and_deletes_templates_at_most_five(world):
    portfolio = world.leader()
    leader = client_for(portfolio.leader)
    base = f"/api/v1/portfolios/{portfolio.pk}/templates"

    r = leader.post(base, CUSTOM, format="json")
    assert r.status_code == 201, r.content
    created = r.json()
    assert (created["platform"], created["sizing_model"], created["fixed_notional"]) == (False, "fixed", "320.00000000")
    assert created["multiplier"] is None
    template_id = int(created["id"])

    r = leader.post(base, CUSTOM, format="json")
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (409, "NAME_TAKEN", "name")
    r = leader.post(base, {**CUSTOM, "name": "Balanced"}, format="json")
    assert (r.status_code, r.json()["code"]) == (409, "NAME_TAKEN")
    for n in range(2, 6):
        assert leader.post(base, {**CUSTOM, "name": f"T{n}"}, format="json").status_code == 201
    r = leader.post(base, {**CUSTOM, "name": "T6"}, format="json")
    assert (r.status_code, r.json()["code"]) == (409, "TEMPLATE_LIMIT")
    assert CopyTemplate.objects.filter(portfolio=portfolio).count() == 5

    listed = leader.get(base).json()["results"]
    assert [t["id"] for t in listed][:3] == ["conservative", "balanced", "aggressive"]
    assert len(listed) == 8

    r = leader.patch(f"{base}/{template_id}", {"fixed_notional": "640", "max_open_positions": 3}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["fixed_notional"], r.json()["max_open_positions"], r.json()["name"]) == (
        "640.00000000",
        3,
        "Scalper",
    )
    r = leader.patch(f"{base}/{template_id}", {"max_drawdown_pct": "100.01"}, format="json")
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "OUT_OF_RANGE", "max_drawdown_pct")
    r = leader.patch(f"{base}/{template_id}", {"daily_loss_realized_pct": "0"}, format="json")
    assert (r.status_code, r.json()["field"]) == (400, "daily_loss_realized_pct")
    r = leader.patch(f"{base}/{template_id}", {"sizing_model": "progressive"}, format="json")
    assert (r.status_code, r.json()["field"]) == (400, "multiplier")

    assert leader.delete(f"{base}/{template_id}").status_code == 204
    assert leader.post(base, {**CUSTOM, "name": "T6"}, format="json").status_code == 201  # room again


def test_only_the_owner_writes_templates(world):
    portfolio = world.leader()
    template = CopyTemplate.objects.create(portfolio=portfolio, name="Mine", multiplier=D("0.3"))
    other = client_for(world.person())
    base = f"/api/v1/portfolios/{portfolio.pk}/templates"
    assert other.get(base).status_code == 200  # public: followers see them to subscribe
    assert other.post(base, CUSTOM, format="json").status_code == 404
    assert other.patch(f"{base}/{template.pk}", {"multiplier": "0.9"}, format="json").status_code == 404
    assert other.delete(f"{base}/{template.pk}").status_code == 404
    template.refresh_from_db()
    assert template.multiplier == D("0.3")


def test_subscribing_by_a_platform_template_copies_its_values(world):
    portfolio = world.leader()
    user = world.person(deposit="8000")
    r = client_for(user).post(
        "/api/v1/subscriptions",
        {"portfolio": portfolio.pk, "amount": "8000", "template": "conservative"},
        format="json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["template_ref"], body["sizing_model"], body["multiplier"], body["leverage_override"]) == (
        "conservative",
        "progressive",
        "0.25000000",
        3,
    )
    assert body["slippage_tolerance_pct"] == "0.50"
    limits = RiskLimits.objects.get(pk=body["id"])
    assert (limits.daily_loss_limit_realized, limits.daily_loss_limit_unrealized) == (D("240"), D("400"))  # 3 %, 5 %
    assert (limits.margin_call_level_pct, limits.max_drawdown_pct) == (D("115"), D("10"))
    assert (limits.max_open_positions, limits.max_exposure_pct) == (3, D("150"))


def test_explicit_settings_override_the_template(world):
    portfolio = world.leader()
    user = world.person(deposit="1000")
    r = client_for(user).post(
        "/api/v1/subscriptions",
        {
            "portfolio": portfolio.pk,
            "amount": "1000",
            "template": "aggressive",
            "multiplier": "0.1",
            "max_open_positions": 1,
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    assert (r.json()["multiplier"], r.json()["leverage_override"]) == ("0.10000000", None)
    limits = RiskLimits.objects.get(pk=r.json()["id"])
    assert (limits.max_open_positions, limits.daily_loss_limit_realized) == (1, D("100"))  # 10 % of 1000


def test_a_custom_template_is_copied_and_later_edits_change_no_running_copy(world):
    portfolio = world.leader()
    leader = client_for(portfolio.leader)
    template_id = leader.post(f"/api/v1/portfolios/{portfolio.pk}/templates", CUSTOM, format="json").json()["id"]
    user = world.person(deposit="5000")
    r = client_for(user).post(
        "/api/v1/subscriptions", {"portfolio": portfolio.pk, "amount": "4000", "template": template_id}, format="json"
    )
    assert r.status_code == 201, r.content
    sub = Subscription.objects.get(pk=r.json()["id"])
    assert (sub.sizing_model, sub.fixed_notional, sub.leverage_override, sub.template_ref) == (
        "fixed",
        D("320"),
        4,
        template_id,
    )
    limits = RiskLimits.objects.get(pk=sub.pk)
    assert (limits.daily_loss_limit_realized, limits.daily_loss_limit_unrealized) == (D("100"), D("160"))

    leader.patch(
        f"/api/v1/portfolios/{portfolio.pk}/templates/{template_id}",
        {"fixed_notional": "3200", "leverage_override": 20, "max_open_positions": 9},
        format="json",
    )
    sub.refresh_from_db()
    limits.refresh_from_db()
    assert (sub.fixed_notional, sub.leverage_override, limits.max_open_positions) == (D("320"), 4, 2)
    world.trade(portfolio, ETH_PERP, "buy", "2", leverage=10)
    (mirror,) = mirrors_of(sub)
    assert (mirror.quantity, mirror.leverage) == (D("0.1"), 4)  # 320 / 3200 at 4x, as copied

    leader.delete(f"/api/v1/portfolios/{portfolio.pk}/templates/{template_id}")
    sub.refresh_from_db()
    assert (sub.status, sub.fixed_notional) == ("active", D("320"))


def test_an_unknown_template_is_a_400_and_a_foreign_one_a_404(world):
    portfolio = world.leader()
    other = world.leader()
    foreign = CopyTemplate.objects.create(portfolio=other, name="Theirs", multiplier=D("0.3"))
    client = client_for(world.person(deposit="1000"))
    # A name that is no template is bad input; an id that is not this
    # portfolio's (missing, or another portfolio's) is not found.
    for template, status in (("reckless", 400), ("-1", 400), ("999999", 404), (str(foreign.pk), 404)):
        r = client.post(
            "/api/v1/subscriptions", {"portfolio": portfolio.pk, "amount": "100", "template": template}, format="json"
        )
        body = r.json()
        assert (r.status_code, body["code"], body["field"]) == (status, "UNKNOWN_TEMPLATE", "template"), template
    assert not Subscription.objects.exists()
