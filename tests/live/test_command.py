"""``manage.py copying pause|resume [--portfolio ID] [--reason TEXT] [--actor USERNAME] [--dry-run]``:
exit codes 0 done / 1 nothing to do / 2 bad input; a dry run writes nothing."""

from io import StringIO

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command

from copytrading import live
from copytrading.live.models import PortfolioHalt
from copytrading.notifications.models import Notification

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("copying", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue(), err.getvalue()


def test_pause_and_resume_all_copying():
    code, out, _ = run("pause", "--reason", "Exchange outage")
    assert code == 0 and "paused" in out
    assert live.load().halt_reason(123) == "Exchange outage"
    assert run("pause", "--reason", "again")[0] == 1  # already paused
    assert live.load().copying_halted_reason == "Exchange outage"
    assert run("resume")[0] == 0
    assert not live.load().copying_halted
    assert run("resume")[0] == 1
    actions = list(LogEntry.objects.order_by("pk").values_list("additional_data__action", flat=True))
    assert actions[-2:] == ["kill_switch.on", "kill_switch.off"]


def test_one_portfolio(world, django_capture_on_commit_callbacks):
    portfolio, other = world.leader(), world.leader()
    sub = world.follower(portfolio)
    with django_capture_on_commit_callbacks(execute=True):
        code, out, _ = run("pause", "--portfolio", str(portfolio.pk), "--reason", "Leader under review")
    assert code == 0, out
    assert live.load().halt_reason(portfolio.pk) == "Leader under review"
    assert live.load().halt_reason(other.pk) is None
    assert Notification.objects.filter(kind="copying_halted", user_id=sub.follower_id).count() == 1
    assert run("pause", "--portfolio", str(portfolio.pk), "--reason", "x")[0] == 1
    assert run("resume", "--portfolio", str(other.pk))[0] == 1
    assert run("resume", "--portfolio", str(portfolio.pk))[0] == 0
    assert not PortfolioHalt.objects.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("pause",),  # no reason
        ("pause", "--reason", "   "),
        ("pause", "--portfolio", "999999", "--reason", "x"),
        ("resume", "--portfolio", "999999"),
        ("pause", "--reason", "x" * 301),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(args):
    code, _, err = run(*args)
    assert code == 2 and err
    assert not live.load().copying_halted and not PortfolioHalt.objects.exists()
    assert not LogEntry.objects.exists()


def test_a_dry_run_writes_nothing(world):
    portfolio = world.leader()
    world.follower(portfolio)
    before = (LogEntry.objects.count(), Notification.objects.count())
    code, out, _ = run("pause", "--reason", "drill", "--dry-run")
    assert code == 0 and "would pause" in out
    code, out, _ = run("pause", "--portfolio", str(portfolio.pk), "--reason", "drill", "--dry-run")
    assert code == 0 and "would pause" in out
    assert run("resume", "--dry-run")[0] == 1  # nothing to do, dry or not
    assert not live.load().copying_halted and not PortfolioHalt.objects.exists()
    assert (LogEntry.objects.count(), Notification.objects.count()) == before


def test_the_actor_is_named_in_the_audit_trail_and_must_be_staff():
    from tests.factories import StaffFactory

    ops = StaffFactory(username="ops-shell")
    assert run("pause", "--reason", "Feed wrong", "--actor", "nobody")[0] == 2
    assert not live.load().copying_halted
    assert run("pause", "--reason", "Feed wrong", "--actor", "ops-shell")[0] == 0
    entry = LogEntry.objects.filter(additional_data__action="kill_switch.on").get()
    assert entry.actor == ops


def test_a_dry_run_refuses_what_the_real_run_would():
    code, out, err = run("pause", "--reason", "x" * 1000, "--dry-run")
    assert code == 2 and "at most" in err and not out
