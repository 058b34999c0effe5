"""The fees back office (groups, assignments, the stuck-accrual action) and
the minute settlement job."""

import pytest
from django.db import DatabaseError
from django.urls import reverse

from config.celery import app as celery_app
from fees import services, tasks
from fees.models import (
    AccrualStatus,
    AuditAction,
    FeeAccrual,
    FeeAuditEntry,
    FeeGroup,
    HighWaterMark,
    LeaderGroupAssignment,
    LeaderProfitAccount,
    LeaderWithdrawal,
    LimitsGroup,
)
from tests.factories import StaffFactory, UserFactory
from tests.fees.conftest import D, accrue, escrow, platform

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    staff = StaffFactory(is_superuser=True)
    client.force_login(staff)
    client.staff = staff
    return client


def changelist(model) -> str:
    return reverse(f"admin:fees_{model._meta.model_name}_changelist")


@pytest.fixture
def stuck(fee_world, monkeypatch):
    """One accrual whose settlement failed (the database refused it)."""
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    (accrual,) = accrue(sub)
    with monkeypatch.context() as m:
        m.setattr(services.ledger, "apply_transfers", _refuse)
        assert services.fees_settle().failed == 1
    accrual.refresh_from_db()
    assert accrual.status == AccrualStatus.FAILED
    return accrual


def _refuse(specs, **kwargs):
    raise DatabaseError("canceling statement due to lock timeout")


def test_every_fees_page_renders(staff_client, stuck):
    for model in (
        FeeGroup, LimitsGroup, LeaderGroupAssignment, FeeAccrual, FeeAuditEntry, LeaderProfitAccount, HighWaterMark,
    ):  # fmt: skip
        assert staff_client.get(changelist(model)).status_code == 200, model
    assert staff_client.get(changelist(LeaderWithdrawal)).status_code == 200
    page = staff_client.get(changelist(FeeAccrual), {"stuck": "yes"})
    assert list(page.context["cl"].result_list) == [stuck]
    detail = staff_client.get(reverse("admin:fees_feeaccrual_change", args=[stuck.pk]))
    assert detail.status_code == 200
    assert b"lock timeout" in detail.content


def test_accruals_are_read_only_in_the_admin(staff_client, stuck):
    url = reverse("admin:fees_feeaccrual_change", args=[stuck.pk])
    assert staff_client.post(url, {"fee": "0"}).status_code == 403
    assert (
        staff_client.post(reverse("admin:fees_feeaccrual_delete", args=[stuck.pk]), {"post": "yes"}).status_code == 403
    )
    stuck.refresh_from_db()
    assert stuck.fee == D("15")


def test_the_resolve_action_settles_a_stuck_accrual_once(staff_client, stuck):
    response = staff_client.post(
        changelist(FeeAccrual), {"action": "resolve_stuck", "_selected_action": [stuck.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "1 fee accrual(s) settled." in [str(m) for m in response.context["messages"]]
    stuck.refresh_from_db()
    assert stuck.status == AccrualStatus.SETTLED
    assert (escrow(), platform()) == (0, D("6"))
    resolved = FeeAuditEntry.objects.get(accrual=stuck, action=AuditAction.RESOLVED)
    assert resolved.actor == staff_client.staff

    # Clicking again is harmless.
    again = staff_client.post(
        changelist(FeeAccrual), {"action": "resolve_stuck", "_selected_action": [stuck.pk]}, follow=True
    )
    assert "Nothing to resolve" in " ".join(str(m) for m in again.context["messages"])
    assert platform() == D("6")


def test_staff_create_groups_and_assign_a_leader(staff_client):
    response = staff_client.post(
        reverse("admin:fees_feegroup_add"),
        {"name": "Partners", "max_profit_share_pct": "30.00", "platform_cut_pct": "10.00"},
    )
    assert response.status_code == 302
    group = FeeGroup.objects.get(name="Partners")
    limits = LimitsGroup.objects.create(name="Big", max_followers=5000, max_profit_share_pct=D("40.00"))
    leader = UserFactory()

    response = staff_client.post(
        reverse("admin:fees_leadergroupassignment_add"),
        {"leader": leader.pk, "fee_group": group.pk, "limits_group": limits.pk},
    )
    assert response.status_code == 302
    assignment = LeaderGroupAssignment.objects.get(leader=leader)
    assert (assignment.fee_group, assignment.limits_group, assignment.assigned_by) == (
        group,
        limits,
        staff_client.staff,
    )


def test_a_group_with_an_impossible_cut_is_refused(staff_client):
    response = staff_client.post(
        reverse("admin:fees_feegroup_add"),
        {"name": "Greedy", "max_profit_share_pct": "30.00", "platform_cut_pct": "100.01"},
    )
    assert response.status_code == 200  # the form again, with its error
    assert not FeeGroup.objects.filter(name="Greedy").exists()


def test_the_settlement_task_settles_every_batch(fee_world):
    portfolio = fee_world.leader()
    subs = [fee_world.follower(portfolio) for _ in range(3)]
    fee_world.round_trip(portfolio, "3200", "3400")
    accrue(*subs)

    assert tasks.settle_fees.delay(limit=2).get() == {"settled": 3, "failed": 0}
    assert not FeeAccrual.objects.exclude(status=AccrualStatus.SETTLED).exists()
    assert tasks.settle_fees.delay().get() == {"settled": 0, "failed": 0}
    assert platform() == D("18")


def test_settlement_is_scheduled_every_minute():
    entries = [e for e in celery_app.conf.beat_schedule.values() if e["task"] == "fees.tasks.settle_fees"]
    assert [e["schedule"] for e in entries] == [60.0]
    assert "fees.tasks.settle_fees" in celery_app.tasks


def test_check_fees_proves_the_books_and_fails_when_escrow_is_off(fee_world):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from copytrading import ledger
    from copytrading.models import AccountKind

    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    services.fees_settle()
    services.leader_withdrawal_create(leader=portfolio.leader, portfolio_id=portfolio.pk, amount=D("5"))
    fee_world.round_trip(portfolio, "3200", "3300")  # 7.50 more, left in escrow
    out = StringIO()
    call_command("check_fees", stdout=out)
    assert "escrow: ledger 7.50000000, accruals 7.50000000" in out.getvalue()
    assert "fee books OK" in out.getvalue()

    # Money in escrow that no accrual explains.
    ledger.transfer(
        debit_id=sub.copy_account_id,
        credit_id=ledger.system_account(AccountKind.FEE_ESCROW).pk,
        amount=D("1"),
        kind="PROFIT_SHARE",
        key="stray",
    )
    with pytest.raises(CommandError):
        call_command("check_fees", stdout=StringIO())
