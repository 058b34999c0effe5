"""Two wind-downs of the same closing portfolio at once on PostgreSQL (the
task and the reconciler, say): every follower is detached exactly once."""

from decimal import Decimal

import pytest
from django.db import connection

from fees.services import fees_settle
from portfolios import lifecycle
from portfolios.lifecycle_tasks import reconcile_closing_portfolios
from portfolios.models import Portfolio, PortfolioStatus
from tests.copytrading.world import World
from tests.portfolios.lifecycle_world import assert_detached_exactly_once, closing_scene, returned_total
from tests.portfolios.test_passcodes_concurrency import run_in_parallel

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_detaches_end_each_subscription_once(world):
    assert connection.vendor == "postgresql"
    portfolio, subs = closing_scene(world, followers=6)
    # The close commits; its background wind-down is held back so the two
    # parallel runs below do all the work.
    Portfolio.objects.filter(pk=portfolio.pk).update(status=PortfolioStatus.CLOSING, closed_by=portfolio.leader)
    ended: list[int] = []

    def detach():
        ended.append(lifecycle.followers_detach(portfolio_id=portfolio.pk))

    outcomes = run_in_parallel([detach, detach, lambda: lifecycle.leader_book_close(portfolio_id=portfolio.pk)])
    assert outcomes == ["OK"] * 3
    assert sum(ended) == 6
    assert_detached_exactly_once(portfolio, subs, lifecycle.CLOSED_BY_LEADER)
    assert returned_total(subs) == D("6") * (D("5000") + D("100") - D("10"))
    fees_settle()
    outcomes = run_in_parallel([reconcile_closing_portfolios, reconcile_closing_portfolios])
    assert outcomes == ["OK", "OK"]
    assert Portfolio.objects.get(pk=portfolio.pk).status == PortfolioStatus.ARCHIVED
    assert_detached_exactly_once(portfolio, subs, lifecycle.CLOSED_BY_LEADER)
