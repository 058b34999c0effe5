"""Every knob of the live settings is read from the record: changing the
record (through its service) changes the behaviour, with no deploy."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from copytrading.errors import DomainError
from copytrading.live import services
from copytrading.notifications.models import Notification
from copytrading.services import wallet_deposit
from fees.models import FeeGroup, LimitsGroup
from fees.selectors import leader_caps
from followers.services import subscription_create
from portfolios.services import portfolio_create, portfolio_update
from risk.selectors import margin_call_default
from tests.copytrading.world import ETH_PERP
from tests.factories import UserFactory, token_for

pytestmark = pytest.mark.django_db
D = Decimal


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def test_margin_call_default_is_the_record_s(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    client = client_for(sub.follower)

    def effective():
        return client.get(f"/api/v1/subscriptions/{sub.pk}").json()["risk"]["margin_call_level_pct_effective"]

    assert margin_call_default() == D("110") and D(effective()) == D("110")
    services.update_settings(margin_call_level_pct="135.5")
    assert margin_call_default() == D("135.5") and D(effective()) == D("135.5")


def test_the_platform_minimum_investment_applies_to_every_portfolio(world):
    portfolio = world.leader()
    user = UserFactory()
    wallet_deposit(user=user, amount=D("1000"))
    services.update_settings(min_investment="500")
    with pytest.raises(DomainError) as raised:
        subscription_create(follower=user, portfolio=portfolio, amount=D("400"), multiplier=D("1"))
    assert (raised.value.code, raised.value.field) == ("BELOW_MIN_INVESTMENT", "amount")
    assert "500" in raised.value.detail
    # A portfolio asking for more still wins.
    portfolio_update(portfolio=portfolio, min_investment=D("600"))
    portfolio.refresh_from_db()
    with pytest.raises(DomainError, match="600"):
        subscription_create(follower=user, portfolio=portfolio, amount=D("550"), multiplier=D("1"))
    services.update_settings(min_investment="0")
    portfolio_update(portfolio=portfolio, min_investment=D("0"))
    portfolio.refresh_from_db()
    assert subscription_create(follower=user, portfolio=portfolio, amount=D("400"), multiplier=D("1")).pk


def test_trade_copied_notifications_follow_the_record(world):
    portfolio = world.leader()
    sub = world.follower(portfolio)
    client = client_for(sub.follower)

    def enabled() -> bool:
        prefs = client.get("/api/v1/notifications/preferences").json()["preferences"]
        return next(p for p in prefs if p["kind"] == "trade_copied")["enabled"]

    world.trade(portfolio, ETH_PERP, "buy", "1")
    assert not Notification.objects.filter(kind="trade_copied").exists() and not enabled()
    services.update_settings(notify_trade_copied=True)
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")
    (note,) = Notification.objects.filter(kind="trade_copied")
    assert note.dedup_key == f"exec:{event.pk}:{sub.pk}" and enabled()


def test_default_group_caps_follow_the_record():
    services.update_settings(default_max_profit_share_pct="30", default_platform_cut_pct="15")
    leader = UserFactory()
    caps = leader_caps(leader.pk)  # the default groups are created now, from the record
    assert (caps.max_profit_share_pct, caps.platform_cut_pct, caps.max_followers) == (D("30"), D("15"), 1000)

    services.update_settings(default_max_profit_share_pct="25", default_max_followers=7, actor=None)
    caps = leader_caps(leader.pk)
    assert (caps.max_profit_share_pct, caps.platform_cut_pct, caps.max_followers) == (D("25"), D("15"), 7)
    assert FeeGroup.objects.get(is_default=True).max_profit_share_pct == D("25")
    assert LimitsGroup.objects.get(is_default=True).max_followers == 7


def test_the_leader_s_share_is_capped_by_the_record_s_default(world):
    services.update_settings(default_max_profit_share_pct="10")
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("100"))
    with pytest.raises(DomainError) as raised:
        portfolio_create(leader=leader, name="Greedy", mode="margin", profit_share_pct=D("20"))
    assert raised.value.field == "profit_share_pct"


def test_the_catalog_cache_time_is_the_record_s():
    cache.clear()
    api = APIClient()

    def names() -> set[str]:
        return {item["name"] for item in api.get("/api/v1/catalog").json()["results"]}

    services.update_settings(catalog_cache_seconds=60)
    portfolio_create(leader=UserFactory(), name="First", mode="margin")
    assert names() == {"First"}
    portfolio_create(leader=UserFactory(), name="Second", mode="margin")
    assert names() == {"First"}  # the cached page
    services.update_settings(catalog_cache_seconds=0)
    assert names() == {"First", "Second"}  # not cached any more
    cache.clear()
