"""The ops commands (README, "Management commands"): replay_event and
rebuild_stats, their dry runs (nothing written), real runs and exit codes;
the shared progress helper (copytrading/ops/progress.py)."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from config.celery import app as celery_app
from copytrading.errors import DomainError
from copytrading.events import leader_event_progress, leader_event_replay
from copytrading.ledger import ledger_check
from copytrading.models import Execution, LeaderEvent, LeaderEventStatus, PropagationChunk
from copytrading.ops.progress import Progress
from portfolios.models import PortfolioScore, PortfolioStats
from portfolios.services import portfolio_order_place
from tests.copytrading.world import ETH_PERP, World, footprint

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- the progress helper ----------------------------------------------------------------


def test_progress_off_a_terminal_prints_periodic_lines_and_a_final_one():
    stream = io.StringIO()
    with Progress("seed_demo followers", stream=stream, total=3000, every_seconds=0) as progress:
        progress.update(1000)
        progress.update(3000)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("seed_demo followers: 1,000/3,000 (33 %) in ")
    assert lines[-1].startswith("seed_demo followers: 3,000/3,000 (100 %) in ") and lines[-1].endswith(", done")
    assert "\r" not in stream.getvalue()  # a log file gets lines, not a bar


def test_progress_is_silent_when_quiet_and_says_stopped_on_an_error():
    quiet = io.StringIO()
    with Progress("x", stream=quiet, total=2, quiet=True, every_seconds=0) as progress:
        progress.update(2)
    assert quiet.getvalue() == ""

    stream = io.StringIO()
    with pytest.raises(RuntimeError), Progress("export_report executions", stream=stream, unit="rows") as progress:
        progress.update(5)
        raise RuntimeError("boom")
    assert stream.getvalue().startswith("export_report executions: 5 rows in ")
    assert stream.getvalue().rstrip().endswith(", stopped")


def test_progress_on_a_terminal_draws_a_bar():
    stream = io.StringIO()
    with Progress("rebuild_stats portfolios", stream=stream, total=4, tty=True) as progress:
        progress.update(4)
    assert "rebuild_stats portfolios" in stream.getvalue() and "4/4" in stream.getvalue()
    assert "\r" in stream.getvalue()


def test_an_outage_inside_a_command_is_exit_2_and_anything_else_is_not_hidden():
    from django.db.utils import OperationalError

    from copytrading.ops.exits import cannot_run_on_outage

    with pytest.raises(CommandError) as raised, cannot_run_on_outage("seed the demo"):
        raise OperationalError("connection to server at 127.0.0.1 refused")
    assert raised.value.returncode == 2 and str(raised.value).startswith("cannot seed the demo:")

    with pytest.raises(ZeroDivisionError), cannot_run_on_outage("seed the demo"):
        raise ZeroDivisionError  # a bug stays a traceback


# --- replay_event -----------------------------------------------------------------------


def _stalled_event(world):
    """A leader trade whose dispatch was lost (the broker was down at the
    commit): the event is pending and no follower has an execution row."""
    world.price(ETH_PERP, "3000")
    portfolio = world.leader()
    subs = [world.follower(portfolio) for _ in range(2)]
    with world.capture(execute=False):
        (event,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_PERP, side="buy", quantity=D("2"), leverage=10)
    return event, subs


@pytest.mark.django_db
def test_replay_event_dry_run_writes_nothing_and_a_replay_serves_each_follower_once(world):
    event, subs = _stalled_event(world)
    before = footprint()

    out, _ = _run("replay_event", str(event.pk), "--dry-run")
    assert f"event {event.pk} (position_open, portfolio {event.portfolio_id}) is pending: 0/0 chunks" in out
    assert "would dispatch it again; nothing written" in out
    assert footprint() == before

    with world.capture(execute=True):
        out, _ = _run("replay_event", str(event.pk))
    assert f"event {event.pk}: dispatched again" in out
    state = leader_event_progress(event_id=event.pk)
    assert state.status == LeaderEventStatus.DONE and state.executions == 2
    assert set(Execution.objects.filter(event=event).values_list("subscription_id", flat=True)) == {s.pk for s in subs}
    after_first = footprint()

    # Replaying an event that went through re-queues its chunks and serves nobody twice.
    out, _ = _run("replay_event", str(event.pk), "--dry-run")
    assert "is done: 1/1 chunks done, 2 execution rows" in out and "would re-queue 1 chunks" in out
    with world.capture(execute=True):
        out, _ = _run("replay_event", str(event.pk))
    assert f"event {event.pk}: 1 chunks re-queued" in out
    assert footprint() == after_first
    assert PropagationChunk.objects.get(event=event).status == "done"
    assert ledger_check().ok


@pytest.mark.django_db
def test_replay_event_wait_that_runs_out_is_exit_1(world):
    event, _ = _stalled_event(world)
    err = io.StringIO()
    # The dispatch is held until the block ends: the event cannot finish within the wait.
    with world.capture(execute=True), pytest.raises(SystemExit) as exit_:
        call_command("replay_event", str(event.pk), "--wait", "0.2", stdout=io.StringIO(), stderr=err)
    assert exit_.value.code == 1
    assert f"event {event.pk} chunks: 0 in " in err.getvalue() and ", stopped" in err.getvalue()
    assert leader_event_progress(event_id=event.pk).status == LeaderEventStatus.DONE  # once dispatched


@pytest.mark.django_db
def test_replay_event_cannot_run_without_the_event_or_the_broker(world):
    with pytest.raises(CommandError) as raised:
        _run("replay_event", "987654")
    assert raised.value.returncode == 2

    event, _ = _stalled_event(world)
    before = footprint()
    broker_url = celery_app.conf.broker_url
    celery_app.conf.task_always_eager = False  # the eager_celery fixture turns it back on for the next test
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there: refused at once
    try:
        with world.capture(execute=True), pytest.raises(CommandError) as raised:
            _run("replay_event", str(event.pk))
    finally:
        celery_app.conf.broker_url = broker_url
        celery_app.conf.task_always_eager = True
    assert raised.value.returncode == 2 and "the broker is unreachable" in str(raised.value)
    assert footprint() == before
    assert leader_event_progress(event_id=event.pk).status == LeaderEventStatus.PENDING


# --- rebuild_stats ----------------------------------------------------------------------


def _stats_rows():
    return list(
        PortfolioStats.objects.order_by("portfolio_id", "line").values_list("portfolio_id", "line", "follower_count")
    )


@pytest.mark.django_db
def test_rebuild_stats_dry_run_finds_stale_rows_writes_nothing_then_rebuilds(world):
    world.price(ETH_PERP, "3000")
    portfolio = world.leader()
    other = world.leader()
    world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")  # a trade in the window: the ranking scores it
    PortfolioStats.objects.all().delete()  # the rows beat would have written

    out, err = _run("rebuild_stats", "--dry-run")
    assert "2 of 2 portfolios' statistics would change" in out and "nothing written" in out
    assert "rebuild_stats portfolios: 2/2 (100 %)" in err
    assert _stats_rows() == []

    out, _ = _run("rebuild_stats", "--portfolio", str(portfolio.pk))
    assert "statistics of 1 portfolios recomputed" in out
    assert {(pk, n) for pk, _, n in _stats_rows()} == {(portfolio.pk, 1)}

    out, _ = _run("rebuild_stats", "--dry-run")
    assert f"1 of 2 portfolios' statistics would change: {other.pk}" in out

    out, err = _run("rebuild_stats", "--rank", "--quiet")
    assert "statistics of 2 portfolios recomputed" in out and "ranking: 1 portfolios scored" in out
    assert err == ""
    assert {pk for pk, _, _ in _stats_rows()} == {portfolio.pk, other.pk}
    out, _ = _run("rebuild_stats", "--dry-run")
    assert "0 of 2 portfolios' statistics would change" in out
    assert list(PortfolioScore.objects.values_list("portfolio_id", flat=True)) == [portfolio.pk]


@pytest.mark.django_db
def test_rebuild_stats_bad_arguments_are_exit_2(world):
    portfolio = world.leader()
    before = _stats_rows()
    for args in (["--portfolio", "987654"], ["--portfolio", str(portfolio.pk), "--rank"]):
        with pytest.raises(CommandError) as raised:
            _run("rebuild_stats", *args)
        assert raised.value.returncode == 2
    assert _stats_rows() == before


@pytest.mark.django_db
def test_an_event_older_than_the_retention_is_not_replayed(world, settings):
    """Its executions may be archived: no follower would have a row for it, so a
    replay would copy the trade again to every one (the command and the service
    both refuse, nothing written)."""
    event, _ = _stalled_event(world)
    with world.capture(execute=True):
        _run("replay_event", str(event.pk))
    after_first = footprint()
    LeaderEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(days=40))
    settings.EXECUTION_RETENTION_MONTHS = 1

    with pytest.raises(SystemExit) as exit_:
        _run("replay_event", str(event.pk))
    assert exit_.value.code == 1
    with pytest.raises(DomainError) as refused:
        leader_event_replay(event_id=event.pk)
    assert refused.value.code == "EVENT_ARCHIVED" and refused.value.status == 409
    assert footprint() == after_first
    assert PropagationChunk.objects.get(event=event).status == "done"
