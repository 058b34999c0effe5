"""Fee settlement's series: the amounts moved out of escrow, by transfer kind, after commit."""

import pytest

from copytrading.observability import metrics
from fees.services import KIND_TO_LEADER, KIND_TO_PLATFORM, fees_settle
from tests.fees.conftest import D, accrue

pytestmark = pytest.mark.django_db


def settled(kind: str) -> float:
    return (
        metrics.registry(scrape_gauges=False).get_sample_value(
            "copytrading_fee_settled_amount_total", {"kind": str(kind)}
        )
        or 0.0
    )


def test_settled_amounts_are_counted_by_kind(fee_world, django_capture_on_commit_callbacks):
    portfolio = fee_world.leader(share="15.00", platform_cut="40.00")
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")  # a 15 fee: 9 to the leader, 6 to the platform
    accrue(sub)
    leader, platform = settled(KIND_TO_LEADER), settled(KIND_TO_PLATFORM)

    with django_capture_on_commit_callbacks(execute=True):
        assert fees_settle().settled == 1
    # Run twice: nothing moves, nothing is counted.
    with django_capture_on_commit_callbacks(execute=True):
        assert fees_settle().settled == 0

    assert D(str(settled(KIND_TO_LEADER) - leader)) == D("9")
    assert D(str(settled(KIND_TO_PLATFORM) - platform)) == D("6")
