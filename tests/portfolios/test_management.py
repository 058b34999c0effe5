"""Portfolio create and edit: profanity, unique names, the per-leader cap,
profit share within the leader's caps, social links, private passcodes."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from copytrading.errors import DomainError
from fees.models import FeeGroup
from fees.services import leader_group_assign
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.services import portfolio_create, portfolio_update
from portfolios.validation import is_profane
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
D = Decimal


def refused(code: str, field: str | None, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as info:
        portfolio_create(**kwargs)
    assert (info.value.code, info.value.field) == (code, field)
    return info.value


@pytest.mark.parametrize(
    "name", ["Shit Coin Alpha", "sh1t coin", "$h!t Fund", "F4CK the market", "a55hole gains", "ShitCoinMaxi", "f.u.c.k"]
)
def test_a_profane_name_is_refused_leetspeak_included(name):
    refused("NAME_PROFANE", "name", leader=UserFactory(), name=name)
    assert not Portfolio.objects.exists()


@pytest.mark.parametrize(
    "name", ["Scunthorpe Capital", "Classic Assets", "Analytics Edge", "Grass Roots", "Essex Value"]
)
def test_clean_names_that_contain_a_bad_substring_pass(name):
    assert not is_profane(name)
    assert portfolio_create(leader=UserFactory(), name=name).name == name


def test_the_api_refuses_a_profane_name_with_its_code(api):
    api.force_authenticate(UserFactory())
    r = api.post("/api/v1/portfolios", {"name": "b1tch fund"}, format="json")
    assert r.status_code == 400
    assert r.json()["code"] == "NAME_PROFANE" and r.json()["field"] == "name"


def test_names_are_unique_per_leader_ignoring_case_and_spaces():
    leader, other = UserFactory(), UserFactory()
    portfolio_create(leader=leader, name="Momentum")
    refused("NAME_TAKEN", "name", leader=leader, name="  momentum ")
    assert portfolio_create(leader=other, name="Momentum").leader == other  # another leader may


def test_the_database_backs_the_unique_name(instruments):
    leader = UserFactory()
    first = portfolio_create(leader=leader, name="Momentum")
    with pytest.raises(IntegrityError), transaction.atomic():
        Portfolio.objects.create(leader=leader, name="MOMENTUM", trading_account=first.trading_account)


def test_a_leader_has_at_most_five_live_portfolios(settings):
    assert settings.MAX_PORTFOLIOS_PER_LEADER == 5
    leader = UserFactory()
    books = [portfolio_create(leader=leader, name=f"Book {n}") for n in range(5)]
    refused("PORTFOLIO_LIMIT", None, leader=leader, name="Book 6")
    # An archived one no longer counts.
    Portfolio.objects.filter(pk=books[0].pk).update(status=PortfolioStatus.ARCHIVED)
    assert portfolio_create(leader=leader, name="Book 6").status == PortfolioStatus.ACTIVE


def test_the_cap_is_a_setting(settings):
    settings.MAX_PORTFOLIOS_PER_LEADER = 2
    leader = UserFactory()
    portfolio_create(leader=leader, name="A")
    portfolio_create(leader=leader, name="B")
    refused("PORTFOLIO_LIMIT", None, leader=leader, name="C")


def test_profit_share_above_the_leaders_caps_is_refused_on_create_and_edit():
    leader = UserFactory()
    group = FeeGroup.objects.create(name="strict", max_profit_share_pct=D("20.00"), platform_cut_pct=D("10.00"))
    leader_group_assign(leader=leader, fee_group=group)
    refused("PROFIT_SHARE_ABOVE_CAP", "profit_share_pct", leader=leader, name="Greedy", profit_share_pct=D("20.01"))
    portfolio = portfolio_create(leader=leader, name="Fair", profit_share_pct=D("20.00"))
    with pytest.raises(DomainError) as info:
        portfolio_update(portfolio=portfolio, profit_share_pct=D("25.00"))
    assert info.value.code == "PROFIT_SHARE_ABOVE_CAP"
    portfolio.refresh_from_db()
    assert portfolio.profit_share_pct == D("20.00")


def test_the_api_refuses_profit_share_above_the_default_cap(api):
    api.force_authenticate(UserFactory())
    r = api.post("/api/v1/portfolios", {"name": "Greedy", "profit_share_pct": "50.01"}, format="json")
    assert (r.status_code, r.json()["code"]) == (400, "PROFIT_SHARE_ABOVE_CAP")


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("x_url", "https://evil.example/alpha"),  # not X
        ("x_url", "https://x.com/"),  # no profile
        ("telegram_url", "ftp://t.me/alpha"),
        ("telegram_url", "https://t.me.evil.com/alpha"),
        ("website_url", "javascript:alert(1)"),
        ("website_url", "http://127.0.0.1:8000/"),
        ("website_url", "https://user:pw@example.com/"),
        ("website_url", "example.com"),
        ("website_url", "https://example.com/" + "a" * 200),
    ],
)
def test_bad_social_links_are_refused(field, url):
    refused("INVALID_URL", field, leader=UserFactory(), name="Links", **{field: url})


def test_good_social_links_are_stored():
    portfolio = portfolio_create(
        leader=UserFactory(),
        name="Links",
        x_url="https://twitter.com/alpha",
        telegram_url="https://t.me/alpha_signals",
        website_url="https://alpha.example.com/about",
    )
    portfolio.refresh_from_db()
    assert (portfolio.x_url, portfolio.telegram_url, portfolio.website_url) == (
        "https://twitter.com/alpha",
        "https://t.me/alpha_signals",
        "https://alpha.example.com/about",
    )


def test_a_private_portfolio_stores_its_passcode_hashed():
    refused("PASSCODE_REQUIRED", "passcode", leader=UserFactory(), name="Secret", is_public=False)
    refused(
        "INVALID_PASSCODE_FORMAT", "passcode", leader=UserFactory(), name="Secret", is_public=False, passcode="1234"
    )
    portfolio = portfolio_create(leader=UserFactory(), name="Secret", is_public=False, passcode="12345678")
    portfolio.refresh_from_db()
    assert portfolio.passcode_hash and "12345678" not in portfolio.passcode_hash
    assert portfolio.passcode_hash.split("$")[0] in ("pbkdf2_sha256", "md5", "argon2", "bcrypt_sha256", "scrypt")


def test_edit_keeps_changes_or_fails_whole(api):
    leader = UserFactory()
    portfolio = portfolio_create(leader=leader, name="Alpha", is_public=False, passcode="12345678")
    old_hash = portfolio.passcode_hash
    api.force_authenticate(leader)
    r = api.patch(
        f"/api/v1/portfolios/{portfolio.pk}",
        {"description": "Trend following", "min_investment": "250", "x_url": "https://x.com/alpha"},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert (r.json()["description"], r.json()["min_investment"]) == ("Trend following", "250.00000000")
    portfolio.refresh_from_db()
    assert portfolio.passcode_hash == old_hash  # still private with the same passcode

    # A bad link refuses the whole edit: the valid name beside it is not applied.
    r = api.patch(f"/api/v1/portfolios/{portfolio.pk}", {"name": "Beta", "x_url": "https://x.evil/a"}, format="json")
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "INVALID_URL", "x_url")
    portfolio.refresh_from_db()
    assert portfolio.name == "Alpha"

    r = api.patch(f"/api/v1/portfolios/{portfolio.pk}", {"mode": "spot"}, format="json")
    assert (r.status_code, r.json()["code"]) == (400, "MODE_NOT_EDITABLE")
    r = api.patch(f"/api/v1/portfolios/{portfolio.pk}", {"name": "fuck"}, format="json")
    assert (r.status_code, r.json()["code"]) == (400, "NAME_PROFANE")

    r = api.patch(f"/api/v1/portfolios/{portfolio.pk}", {"is_public": True}, format="json")
    assert r.status_code == 200 and r.json()["is_public"] is True
    portfolio.refresh_from_db()
    assert portfolio.passcode_hash == ""


def test_edit_renaming_onto_another_of_the_leaders_names_is_refused():
    leader = UserFactory()
    portfolio_create(leader=leader, name="Alpha")
    beta = portfolio_create(leader=leader, name="Beta")
    with pytest.raises(DomainError) as info:
        portfolio_update(portfolio=beta, name="ALPHA")
    assert info.value.code == "NAME_TAKEN"
    assert portfolio_update(portfolio=beta, name="Beta Two").name == "Beta Two"


def test_another_leader_cannot_edit(api):
    portfolio = portfolio_create(leader=UserFactory(), name="Alpha")
    api.force_authenticate(UserFactory())
    r = api.patch(f"/api/v1/portfolios/{portfolio.pk}", {"description": "mine now"}, format="json")
    assert r.status_code == 404
    portfolio.refresh_from_db()
    assert portfolio.description == ""
