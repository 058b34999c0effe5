"""Every Celery task lands on the queue it was meant for (config/settings.py,
CELERY_TASK_ROUTES; docs/scaling.md "Queues"): a route, or a place on this list of
tasks deliberately left on ``default``. A new task must be put in one of the two,
so it cannot land on a queue by accident when workers are split across hosts."""

import re
from pathlib import Path

from celery import current_app
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

# Short periodic and housekeeping jobs, and the few on-demand ones: each takes
# seconds at most, and none may wait behind a fan-out chunk or an exchange order.
ON_DEFAULT = {
    "backoffice.tasks.worker_heartbeat",  # /healthz: "a worker consumes default"
    "copytrading.tasks.relay_outbox",
    "copytrading.tasks.reconcile_propagations",
    "copytrading.tasks.cleanup_idempotent_requests",
    "copytrading.tasks.purge_candles",
    "copytrading.tasks.maintain_partitions",  # hourly: months ahead, DEFAULT rows reported
    "copytrading.inbox_tasks.cleanup_inbox",
    "copytrading.notifications.tasks.send_notification_emails",
    "copytrading.notifications.tasks.sweep_notification_emails",
    "fees.tasks.settle_fees",
    "portfolios.stats_tasks.refresh_portfolio_stats",
    "portfolios.stats_tasks.rank_portfolios",
    "portfolios.lifecycle_tasks.wind_down_portfolio",
    "portfolios.lifecycle_tasks.reconcile_closing_portfolios",
    # Leader trades of exchange-bound portfolios: one short call each, and the start
    # of a copy, so never behind an exchange submit (which may retry for minutes).
    "portfolios.exchange_tasks.poll_leader_trades",
    "portfolios.exchange_tasks.sweep_leader_trades",
    "exchange.reconcile",
    "risk.tasks.daily_reset",
}
EXPECTED = {
    "copytrading.tasks.propagate_event": "fanout",
    "copytrading.tasks.propagate_chunk": "fanout",
    "risk.tasks.watchdog_tick": "watchdog",
    "risk.tasks.watchdog_drain": "watchdog",
    "exchange.submit": "exchange",
    "exchange.submit_sweep": "exchange",
}


def registered_tasks() -> set[str]:
    current_app.loader.import_default_modules()  # what a worker loads at start
    return {name for name in current_app.tasks if not name.startswith("celery.")}


def queue_of(name: str) -> str:
    route = current_app.amqp.router.route({}, name)
    return route["queue"].name


def test_every_task_is_routed_or_deliberately_on_default():
    tasks = registered_tasks()
    routed = set(settings.CELERY_TASK_ROUTES)
    assert tasks - routed - ON_DEFAULT == set(), "a new task: give it a route or add it to ON_DEFAULT"
    assert routed - tasks == set(), "a route names no task (a typo?)"
    assert ON_DEFAULT - tasks == set(), "ON_DEFAULT names no task"
    assert routed & ON_DEFAULT == set()


def test_each_task_goes_to_its_queue():
    assert {name: queue_of(name) for name in EXPECTED} == EXPECTED
    assert {queue_of(name) for name in ON_DEFAULT} == {"default"}
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"


def test_beat_schedules_only_registered_tasks():
    tasks = registered_tasks()
    scheduled = {entry["task"] for entry in current_app.conf.beat_schedule.values()}
    assert scheduled - tasks == set()


def test_the_all_in_one_workers_consume_every_queue():
    """`make run`, the test workers and the benchmarks start one worker for every queue:
    a queue none of them reads would leave its tasks waiting forever."""
    queues = {"default", *(route["queue"] for route in settings.CELERY_TASK_ROUTES.values())}
    for path in ("backoffice/management/commands/run_stack.py", "tests/worker.py", "benchmarks/setup.py"):
        lists = re.findall(r'"((?:[a-z_]+,)+[a-z_]+)"', (ROOT / path).read_text())
        consumed = [set(found.split(",")) for found in lists if "fanout" in found.split(",")]
        assert consumed and all(queues <= found for found in consumed), path
