"""A leader's raise of the profit share applies only to followers who join
after it; a cut applies to everyone at once."""

import pytest
from rest_framework.test import APIClient

from copytrading.ledger import ledger_check
from fees.models import FeeAccrual
from portfolios.services import portfolio_update
from tests.fees.conftest import D

pytestmark = pytest.mark.django_db


def fee_of(sub) -> D:
    return FeeAccrual.objects.get(subscription_id=sub.pk).fee


def test_a_raise_spares_existing_followers_and_binds_new_ones(fee_world):
    portfolio = fee_world.leader(share="10.00")
    before = fee_world.follower(portfolio)
    portfolio = portfolio_update(portfolio=portfolio, profit_share_pct=D("30.00"))
    after = fee_world.follower(portfolio)

    fee_world.round_trip(portfolio, "3000", "3200")  # each mirror: 0.5 x 200 = 100 profit

    assert (fee_of(before), fee_of(after)) == (D("10"), D("30"))
    api = APIClient()
    api.force_authenticate(before.follower)
    assert api.get(f"/api/v1/subscriptions/{before.pk}").json()["profit_share_pct"] == "10.00"
    api.force_authenticate(after.follower)
    assert api.get(f"/api/v1/subscriptions/{after.pk}").json()["profit_share_pct"] == "30.00"
    assert ledger_check().ok


def test_a_cut_applies_to_every_follower_at_once(fee_world):
    portfolio = fee_world.leader(share="20.00")
    follower = fee_world.follower(portfolio)
    portfolio = portfolio_update(portfolio=portfolio, profit_share_pct=D("5.00"))

    fee_world.round_trip(portfolio, "3000", "3200")

    assert fee_of(follower) == D("5")
    assert ledger_check().ok
