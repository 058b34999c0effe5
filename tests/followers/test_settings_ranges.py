"""Every setting outside its range is refused on a settings update with a
400 naming the field and the range, changes nothing, and the same value is
refused at subscribe."""

from decimal import Decimal

import pytest

from copytrading.models import Account, AccountKind
from followers.models import Subscription
from risk.models import RiskLimits
from tests.followers.conftest import client_for

D = Decimal

# (extra settings that make the field apply, field, bad value, code, a piece of the sentence)
OUT_OF_RANGE = [
    ({}, "sizing_model", "martingale", "INVALID_CHOICE", "martingale"),
    ({}, "multiplier", "0", "OUT_OF_RANGE", "multiplier in (0, 1]"),
    ({}, "multiplier", "1.00000001", "OUT_OF_RANGE", "multiplier in (0, 1]"),
    ({}, "multiplier", "-0.5", "OUT_OF_RANGE", "multiplier in (0, 1]"),
    ({"sizing_model": "fixed"}, "fixed_notional", "0", "OUT_OF_RANGE", "fixed_notional > 0"),
    ({"sizing_model": "fixed"}, "fixed_notional", "-10", "OUT_OF_RANGE", "fixed_notional > 0"),
    ({"sizing_model": "adaptive"}, "risk_factor", "-0.00000001", "OUT_OF_RANGE", "risk_factor in [0, 3]"),
    ({"sizing_model": "adaptive"}, "risk_factor", "3.00000001", "OUT_OF_RANGE", "risk_factor in [0, 3]"),
    ({}, "leverage_override", 0, "OUT_OF_RANGE", "[1, 125]"),
    ({}, "leverage_override", 126, "OUT_OF_RANGE", "[1, 125]"),
    ({}, "slippage_tolerance_pct", "-0.01", "OUT_OF_RANGE", "[0, 100]"),
    ({}, "slippage_tolerance_pct", "100.01", "OUT_OF_RANGE", "[0, 100]"),
    ({}, "slippage_tolerance_pct", "0.001", "INVALID_PRECISION", "2 decimal places"),
    ({}, "daily_loss_limit_realized", "0", "OUT_OF_RANGE", "(0, ∞]"),
    ({}, "daily_loss_limit_realized", "-1", "OUT_OF_RANGE", "(0, ∞]"),
    ({}, "daily_loss_limit_unrealized", "0", "OUT_OF_RANGE", "(0, ∞]"),
    ({}, "margin_call_level_pct", "99.99", "OUT_OF_RANGE", "[100, 1000]"),
    ({}, "margin_call_level_pct", "1000.01", "OUT_OF_RANGE", "[100, 1000]"),
    ({}, "max_drawdown_pct", "0", "OUT_OF_RANGE", "(0, 100]"),
    ({}, "max_drawdown_pct", "100.01", "OUT_OF_RANGE", "(0, 100]"),
    ({}, "max_open_positions", 0, "OUT_OF_RANGE", "at least 1"),
    ({}, "max_exposure_pct", "0", "OUT_OF_RANGE", "(0, 10000]"),
    ({}, "max_exposure_pct", "10000.01", "OUT_OF_RANGE", "(0, 10000]"),
    ({"copy_spot": False}, "copy_margin", False, "NOTHING_TO_COPY", "At least one"),
]


def _ids(case) -> str:
    return f"{case[1]}={case[2]}"


@pytest.fixture
def copy(world):
    portfolio = world.leader()
    user = world.person(deposit="10000")
    sub = world.subscribe(portfolio, user=user, amount="5000", max_open_positions=4)
    return portfolio, user, sub


def _state(sub) -> tuple:
    row = Subscription.objects.filter(pk=sub.pk).values().get()
    limits = RiskLimits.objects.filter(pk=sub.pk).values().first()
    return row, {k: v for k, v in (limits or {}).items() if k != "updated_at"}


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=_ids)
def test_a_settings_update_out_of_range_is_refused_with_the_field_named(copy, case):
    _, user, sub = copy
    extra, field, value, code, sentence = case
    before = _state(sub)
    # The other settings are valid: only ``field`` is wrong.
    body = {**extra, field: value}
    if extra.get("sizing_model") == "fixed" and field != "fixed_notional":
        body["fixed_notional"] = "100"
    r = client_for(user).patch(f"/api/v1/subscriptions/{sub.pk}/settings", body, format="json")
    assert r.status_code == 400, r.content
    assert (r.json()["code"], r.json()["field"]) == (code, field)
    assert sentence in r.json()["detail"]
    assert _state(sub) == before


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=_ids)
def test_the_same_value_is_refused_at_subscribe(world, case):
    portfolio = world.leader()
    client = client_for(world.person(deposit="10000"))
    extra, field, value, code, sentence = case
    body = {"portfolio": portfolio.pk, "amount": "5000", "multiplier": "0.5", **extra, field: value}
    r = client.post("/api/v1/subscriptions", body, format="json")
    assert r.status_code == 400, r.content
    assert (r.json()["code"], r.json()["field"]) == (code, field)
    assert sentence in r.json()["detail"]
    assert not Subscription.objects.exists()
    assert not Account.objects.filter(kind=AccountKind.COPY).exists()


def test_settings_in_range_change_on_the_fly_and_apply_to_the_next_copy(world, copy):
    portfolio, user, sub = copy
    client = client_for(user)
    r = client.patch(
        f"/api/v1/subscriptions/{sub.pk}/settings",
        {
            "sizing_model": "fixed",
            "fixed_notional": "640",
            "leverage_override": 2,
            "slippage_tolerance_pct": "0.25",
            "max_open_positions": None,
            "daily_loss_limit_realized": "75.5",
        },
        format="json",
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["sizing_model"], body["fixed_notional"], body["multiplier"]) == ("fixed", "640.00000000", None)
    assert (body["leverage_override"], body["slippage_tolerance_pct"]) == (2, "0.25")
    assert (body["risk"]["max_open_positions"], body["risk"]["daily_loss_limit_realized"]) == (None, "75.50000000")

    from tests.copytrading.world import ETH_PERP, mirrors_of

    world.trade(portfolio, ETH_PERP, "buy", "2", leverage=10)
    (mirror,) = mirrors_of(sub)
    assert (mirror.quantity, mirror.leverage) == (D("0.2"), 2)  # 640 / 3200, at the follower's leverage

    # Switching back to progressive needs its multiplier: the field is named.
    r = client.patch(f"/api/v1/subscriptions/{sub.pk}/settings", {"sizing_model": "progressive"}, format="json")
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "OUT_OF_RANGE", "multiplier")
    assert "required" in r.json()["detail"]


def test_another_followers_subscription_is_not_found(world, copy):
    _, _, sub = copy
    stranger = client_for(world.person())
    for method, path in (
        ("patch", "settings"),
        ("post", "top-up"),
        ("post", "withdraw"),
        ("post", "pause"),
        ("post", "resume"),
        ("post", "unfollow"),
    ):
        r = getattr(stranger, method)(f"/api/v1/subscriptions/{sub.pk}/{path}", {"amount": "1"}, format="json")
        assert r.status_code == 404, path
    assert Subscription.objects.get(pk=sub.pk).status == "active"


@pytest.mark.parametrize("field", ["daily_loss_limit_realized", "daily_loss_limit_unrealized", "fixed_notional"])
def test_an_amount_near_the_columns_limit_is_refused_not_stored(copy, field):
    """20 whole digits fit the column, but every later read of such a limit
    (headroom, equity, at 28 significant digits) failed: a 500 on each page
    and API call of the copy, with no way to undo it. Amounts a client sends
    are at most 10^15."""
    _, user, sub = copy
    before = _state(sub)
    body = {field: "99999999999999999999", **({"sizing_model": "fixed"} if field == "fixed_notional" else {})}
    r = client_for(user).patch(f"/api/v1/subscriptions/{sub.pk}/settings", body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["field"] == field
    assert _state(sub) == before
    assert client_for(user).get(f"/api/v1/subscriptions/{sub.pk}").status_code == 200
