"""The admin's finish: money as money, the site's titles, autocomplete
instead of raw ids, plural names that read right."""

from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from copytrading.admin_base import money_text
from copytrading.models import Account, AccountKind
from tests.backoffice.test_admin import world  # noqa: F401 (a fixture)
from tests.backoffice.test_registry import PROJECT_APPS


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("1234567.50000000", None, "1,234,567.50 USDT"),
        ("1000", "BTC", "1,000.00 BTC"),
        ("0.00000001", None, "0.00000001 USDT"),
        ("-98765.4321", None, "-98,765.4321 USDT"),
        ("0E-8", None, "0.00 USDT"),
        ("999.9", None, "999.90 USDT"),
    ],
)
def test_money_text(amount, currency, text):
    assert money_text(Decimal(amount), currency) == text


def test_no_amount_is_a_dash():
    assert money_text(None) == "—"


def test_money_columns_read_as_money_with_the_stored_value_on_hover(admin_client, world):  # noqa: F811
    leader_wallet = Account.objects.get(kind=AccountKind.MAIN, user=world.portfolio.leader)
    page = admin_client.get(reverse("admin:copytrading_account_changelist")).content.decode()
    assert f'title="{leader_wallet.balance}">30,000.00 USDT</span>' in page
    trading = Account.objects.get(pk=world.portfolio.trading_account_id)
    page = admin_client.get(reverse("admin:portfolios_portfolio_changelist")).content.decode()
    assert f'title="{trading.balance}">{money_text(trading.balance)}</span>' in page  # a computed column


def test_the_site_says_what_it_is(admin_client, db):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "Copy trading — back office" in page
    assert "The business at a glance" in page


def _autocomplete(client, app_label: str, model_name: str, field_name: str, term: str):
    return client.get(
        reverse("admin:autocomplete"),
        {"app_label": app_label, "model_name": model_name, "field_name": field_name, "term": term},
    )


def test_autocomplete_endpoints_answer(admin_client, world):  # noqa: F811
    users = _autocomplete(admin_client, "followers", "subscription", "follower", "follower-cop")
    assert users.status_code == 200
    assert [r["text"] for r in users.json()["results"]] == ["follower-copied"]

    portfolios = _autocomplete(admin_client, "followers", "subscription", "portfolio", "Momentum")
    assert [r["id"] for r in portfolios.json()["results"]] == [str(world.portfolio.pk)]

    accounts = _autocomplete(admin_client, "copytrading", "transfer", "debit", str(world.copied.copy_account_id))
    assert str(world.copied.copy_account_id) in [r["id"] for r in accounts.json()["results"]]


def test_autocomplete_is_for_staff_only(client, world):  # noqa: F811
    response = _autocomplete(client, "followers", "subscription", "follower", "follower")
    assert response.status_code in (302, 403)
    assert "follower-copied" not in response.content.decode()


def test_the_admin_uses_autocomplete_wherever_the_target_can_be_searched():
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in PROJECT_APPS:
            continue
        for name in model_admin.raw_id_fields:
            target = model._meta.get_field(name).related_model
            assert not admin.site._registry[target].search_fields, f"{model.__name__}.{name}: use autocomplete_fields"


def test_plural_names_read_right():
    # Django adds an "s": a name that already ends in one needs its own plural.
    for label in PROJECT_APPS:
        for model in apps.get_app_config(label).get_models():
            opts = model._meta
            if str(opts.verbose_name).endswith("s"):
                assert opts.verbose_name_plural != f"{opts.verbose_name}s", model.__name__
