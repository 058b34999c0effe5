"""The per-portfolio overview: key figures, equity curve, a page of
followers with equity, PnL and status, in a bounded number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backoffice import overview
from copytrading.models import Account
from followers.lifecycle import subscription_pause
from portfolios.stats import stats_refresh
from tests.backoffice.test_admin import _follow, world  # noqa: F401 (a fixture)
from tests.factories import StaffFactory, UserFactory


def _url(portfolio, **query) -> str:
    url = reverse("backoffice-portfolio-overview", args=[portfolio.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_the_overview_shows_the_portfolio_and_its_followers(admin_client, world):  # noqa: F811
    subscription_pause(subscription=world.skipped)
    stats_refresh(portfolio_ids=[world.portfolio.pk])

    response = admin_client.get(_url(world.portfolio))

    assert response.status_code == 200
    page = response.content.decode()
    rows = {row.subscription.pk: row for row in response.context["followers"]}
    assert set(rows) == {world.copied.pk, world.skipped.pk}
    copied = rows[world.copied.pk]
    # The copy holds the mirror of the leader's open: equity is cash + margin
    # + unrealized, the same figures as the follower's own stats API.
    from portfolios.stats import follower_stats

    expected = follower_stats([(world.copied.pk, world.portfolio.pk, world.copied.copy_account_id)])["subscriptions"][0]
    assert (copied.equity, copied.realized_pnl, copied.unrealized_pnl) == (
        expected["equity"],
        expected["pnl"],
        expected["unrealized_pnl"],
    )
    assert rows[world.skipped.pk].status_text == "Paused by you."
    for text in ("follower-copied", "follower-tiny", "Paused by you.", "Momentum Alpha", "Recent leader trades"):
        assert text in page, text
    assert reverse("admin:followers_subscription_change", args=[world.copied.pk]) in page
    # The equity curve from the stored statistics, drawn inline.
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page
    assert response.context["figures"].followers == {"active": 1, "paused": 1, "ended": 0}
    wallets = Account.objects.filter(pk__in=[world.copied.copy_account_id, world.skipped.copy_account_id])
    assert response.context["figures"].followers_money == sum(w.balance for w in wallets)
    assert "USDT" in page


def test_the_list_and_the_page_of_a_portfolio_link_to_it(admin_client, world):  # noqa: F811
    url = _url(world.portfolio)
    assert url in admin_client.get(reverse("admin:portfolios_portfolio_changelist")).content.decode()
    change = reverse("admin:portfolios_portfolio_change", args=[world.portfolio.pk])
    assert url in admin_client.get(change).content.decode()


def test_followers_are_paged_and_filtered(admin_client, world, monkeypatch):  # noqa: F811
    monkeypatch.setattr(overview, "FOLLOWERS_PER_PAGE", 1)
    from backoffice import admin_views

    monkeypatch.setattr(admin_views, "FOLLOWERS_PER_PAGE", 1)
    first = admin_client.get(_url(world.portfolio)).context
    second = admin_client.get(_url(world.portfolio, p=2)).context
    assert [r.subscription.pk for r in first["followers"]] == [world.copied.pk]
    assert [r.subscription.pk for r in second["followers"]] == [world.skipped.pk]

    subscription_pause(subscription=world.skipped)
    paused = admin_client.get(_url(world.portfolio, status="paused")).context
    assert [r.subscription.pk for r in paused["followers"]] == [world.skipped.pk]
    # An unknown filter is the default list, not an error.
    assert admin_client.get(_url(world.portfolio, status="<x>")).status_code == 200


def test_the_page_costs_a_fixed_number_of_queries(admin_client, world):  # noqa: F811
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(_url(world.portfolio)).status_code == 200
        return len(captured)

    few = queries()
    for i in range(5):
        _follow(world.portfolio, f"another-{i}")
    assert queries() == few
    assert few <= 30


@pytest.mark.parametrize("who", ["anonymous", "user", "staff without permission", "staff who may see portfolios only"])
def test_the_overview_is_for_staff_who_may_view_portfolios(client, world, who):  # noqa: F811
    if who == "user":
        client.force_login(UserFactory())
    elif who == "staff without permission":
        client.force_login(StaffFactory())
    elif who == "staff who may see portfolios only":
        from django.contrib.auth.models import Permission

        staff = StaffFactory()
        staff.user_permissions.add(Permission.objects.get(codename="view_portfolio"))
        client.force_login(staff)
    response = client.get(_url(world.portfolio))
    assert response.status_code in (302, 403)
    assert "follower-copied" not in response.content.decode()


def test_an_unknown_portfolio_is_a_404(admin_client, db):
    assert admin_client.get(reverse("backoffice-portfolio-overview", args=[987654])).status_code == 404
