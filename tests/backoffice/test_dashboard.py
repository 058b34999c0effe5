"""The admin index's dashboard: figures for a state built by hand, a bounded
number of queries, the page for staff only."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse

from backoffice.dashboard import dashboard_figures, percentile
from backoffice.joberrors import job_error_record, job_errors_acknowledge
from backoffice.models import JobError
from copytrading.ledger import system_account, transfer
from copytrading.models import AccountKind, Execution, LeaderEvent, LeaderEventKind, Outcome, Transfer, TransferKind
from copytrading.services import instruments_seed
from followers.lifecycle import subscription_pause
from tests.backoffice.test_admin import _follow, _portfolio

NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def _event(portfolio_id: int, seq: int, created: datetime, latency_ms: int | None) -> LeaderEvent:
    event = LeaderEvent.objects.create(
        portfolio_id=portfolio_id, seq=seq, kind=LeaderEventKind.POSITION_OPEN, payload={}, status="done"
    )
    completed = None if latency_ms is None else created + latency_ms * MS
    LeaderEvent.objects.filter(pk=event.pk).update(created_at=created, completed_at=completed)
    event.refresh_from_db()
    return event


def _executions(event: LeaderEvent, rows: list[tuple[str, str]]) -> None:
    Execution.objects.bulk_create(
        Execution(
            event=event,
            subscription_id=1000 + i,
            portfolio_id=event.portfolio_id,
            outcome=o,
            reason_code=r,
            created_at=event.created_at,
        )
        for i, (o, r) in enumerate(rows)
    )


@pytest.fixture
def state(db):
    """Three copies (one paused) of 1,000 each; 20 leader events in the last
    hour with latencies 100 ms, 200 ms, ..., 2,000 ms, one not completed and
    one older than the hour; executions of known outcomes; fees today and
    yesterday; three job errors, one acknowledged."""
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        instruments_seed()
        portfolio = _portfolio()
        copies = [_follow(portfolio, f"follower-{i}") for i in range(3)]
        subscription_pause(subscription=copies[2])
        old = _follow(portfolio, "follower-old")
    from followers.lifecycle import subscription_unfollow

    subscription_unfollow(subscription=old)  # ended: its wallet is returned and closed

    pid = portfolio.pk
    for i in range(20):
        _event(pid, 100 + i, NOW - timedelta(minutes=50) + i * timedelta(minutes=1), latency_ms=100 * (i + 1))
    _event(pid, 200, NOW - timedelta(minutes=2), latency_ms=None)
    _event(pid, 201, NOW - timedelta(hours=1, minutes=5), latency_ms=60_000)  # outside the hour

    recent = _event(pid, 300, NOW - timedelta(hours=3, minutes=10), latency_ms=500)
    _executions(
        recent,
        [(Outcome.COPIED, "")] * 4
        + [(Outcome.SKIPPED, "BELOW_MIN_QTY")] * 3
        + [(Outcome.REJECTED, "INSUFFICIENT_BALANCE")] * 2
        + [(Outcome.FAILED, "VENUE_ERROR")],
    )
    earlier = _event(pid, 301, NOW - timedelta(hours=20, minutes=1), latency_ms=500)
    _executions(earlier, [(Outcome.SKIPPED, "BELOW_MIN_QTY")] * 2)
    stale = _event(pid, 302, NOW - timedelta(hours=25), latency_ms=500)
    _executions(stale, [(Outcome.SKIPPED, "KILL_SWITCH")] * 5)

    # Fees through the ledger: 12.5 + 0.25 charged today, 10 settled today, 7 charged yesterday.
    wallet = copies[0].copy_account_id
    escrow = system_account(AccountKind.FEE_ESCROW).pk
    fees = system_account(AccountKind.PLATFORM_FEES).pk
    moves = [
        (wallet, escrow, "12.5", TransferKind.PROFIT_SHARE, NOW - timedelta(hours=2)),
        (wallet, escrow, "0.25", TransferKind.PROFIT_SHARE, NOW - timedelta(hours=1)),
        (escrow, fees, "10", TransferKind.FEE_SETTLE_PLATFORM, NOW - timedelta(minutes=30)),
        (wallet, escrow, "7", TransferKind.PROFIT_SHARE, NOW - timedelta(days=1)),
    ]
    for n, (debit, credit, amount, kind, at) in enumerate(moves):
        row, _ = transfer(debit_id=debit, credit_id=credit, amount=Decimal(amount), kind=kind, key=f"fee-{n}")
        Transfer.objects.filter(pk=row.pk).update(created_at=at)

    for exc, severity in ((ValueError("a"), "high"), (KeyError("b"), "critical"), (TypeError("c"), "low")):
        job_error_record(task="tasks.demo", exc=exc, severity=severity)
    job_errors_acknowledge(error_ids=JobError.objects.filter(severity="low").values_list("pk", flat=True), by=None)
    return copies


def test_figures_of_a_built_state(state):
    d = dashboard_figures(now=NOW)

    assert (d.active_copies, d.paused_copies) == (2, 1)
    # 3 open wallets of 1,000 each, less the 19.75 charged to the first one.
    assert d.copy_wallets == 3
    assert d.copy_wallet_balance == Decimal("2980.25")
    assert d.copy_wallet_equity == Decimal("2980.25")  # nothing open: the cash

    # Nearest rank over 20 latencies: p95 is the 19th (1.9 s), p50 the 10th.
    assert d.latency.completed == 20  # the 500 ms events are hours old
    assert (d.latency.p95, d.latency.p50) == (1900 * MS, 1000 * MS)
    assert d.latency.worst == 2000 * MS
    assert d.latency.pending == 1

    assert [(r.outcome, r.reason_code, r.count) for r in d.not_copied] == [
        (Outcome.SKIPPED, "BELOW_MIN_QTY", 5),
        (Outcome.REJECTED, "INSUFFICIENT_BALANCE", 2),
        (Outcome.FAILED, "VENUE_ERROR", 1),
    ]
    hours = dict(d.executions_by_hour)
    assert len(d.executions_by_hour) == 24
    assert hours[datetime(2026, 3, 10, 11, tzinfo=UTC)] == {"COPIED": 4, "SKIPPED": 3, "REJECTED": 2, "FAILED": 1}
    assert hours[datetime(2026, 3, 9, 18, tzinfo=UTC)] == {"SKIPPED": 2}

    assert (d.fees_today.day, d.fees_today.accrued, d.fees_today.settled) == (
        NOW.date(),
        Decimal("12.75"),
        Decimal("10"),
    )
    assert len(d.fees_by_day) == 30
    assert d.fees_by_day[-2].accrued == Decimal("7")
    assert sum(day.accrued for day in d.fees_by_day) == Decimal("19.75")

    assert d.open_job_errors == 2
    assert d.open_job_errors_by_severity == {"low": 0, "medium": 0, "high": 1, "critical": 1}


def test_percentile_is_nearest_rank():
    values = [i * MS for i in range(1, 101)]
    assert percentile(values, 95) == 95 * MS
    assert percentile(values[:1], 95) == 1 * MS
    assert percentile([], 95) is None


def test_an_empty_business(db):
    d = dashboard_figures(now=NOW)
    assert (d.active_copies, d.copy_wallets, d.copy_wallet_balance, d.open_job_errors) == (0, 0, Decimal(0), 0)
    assert d.latency.p95 is None and d.not_copied == []
    assert d.fees_today.accrued == d.fees_today.settled == Decimal(0)


def test_the_figures_cost_a_fixed_number_of_queries(state, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        small = dashboard_figures(now=NOW)
    portfolio = state[0].portfolio
    for i in range(6):
        _follow(portfolio, f"more-{i}")
        _event(portfolio.pk, 400 + i, NOW - timedelta(minutes=i), latency_ms=10)
    with django_assert_max_num_queries(12):
        big = dashboard_figures(now=NOW)
    assert big.active_copies == small.active_copies + 6


@pytest.fixture
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_the_index_shows_the_dashboard_to_staff(admin_client, state, fresh_cache):
    with time_machine.travel(NOW, tick=False):
        page = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="bo-dashboard"' in page
    assert "2,980.25 USDT" in page  # money in copy wallets
    assert "1.900 s" in page  # p95
    assert "BELOW_MIN_QTY" in page
    assert "?acknowledged=no" in page  # open job errors link to the filtered list
    assert page.count("<svg") >= 3
    # The app list is still there, below.
    assert reverse("admin:followers_subscription_changelist") in page


def test_staff_without_the_permissions_see_the_index_without_the_figures(client, state, fresh_cache):
    from django.contrib.auth.models import Permission

    from tests.factories import StaffFactory

    staff = StaffFactory()
    staff.user_permissions.add(Permission.objects.get(codename="view_subscription"))
    client.force_login(staff)
    page = client.get(reverse("admin:index")).content.decode()
    assert "Copy trading — back office" in page
    assert "bo-dashboard" not in page
    assert "2,980.25" not in page


def test_the_index_is_not_for_others(client, state, fresh_cache):
    from tests.factories import UserFactory

    client.force_login(UserFactory(is_staff=False))
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "bo-dashboard" not in response.content.decode()
    client.logout()
    assert client.get(reverse("admin:index")).status_code == 302
