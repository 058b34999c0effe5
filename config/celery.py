"""The Celery app and the beat schedule, declared once here."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config import file_broker

file_broker.install()  # embedded mode's filesystem:// broker writes each message whole

app = Celery("copytrading")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Each task's log context: its id, its request's id, the ids it works on (copytrading/observability).
from copytrading.observability import tasks as observed_tasks  # noqa: E402  (after `app`: copytrading imports it)

observed_tasks.connect()
# Autodiscovery imports only each app's tasks.py; other task modules are listed here.
app.conf.include = [
    "copytrading.inbox_tasks",
    "copytrading.exchanges.tasks",
    "copytrading.exchanges.reconcile_tasks",
    "portfolios.stats_tasks",
    "portfolios.lifecycle_tasks",
    "portfolios.exchange_tasks",
]

# The schedule is read when beat starts; settings are loaded lazily, so the
# environment variable is read directly (the same default as config/settings.py).
WATCHDOG_INTERVAL = int(os.environ.get("RISK_WATCHDOG_INTERVAL_SECONDS", "30"))
LEADER_TRADES_POLL = float(os.environ.get("LEADER_TRADES_POLL_SECONDS", "3"))
EXCHANGE_RECONCILE_INTERVAL = int(os.environ.get("EXCHANGE_RECONCILE_INTERVAL_SECONDS", "300"))

app.conf.beat_schedule = {
    # Exchange-bound portfolios: the leader's trades → leader events (portfolios/exchange.py).
    "leader-trades-poll": {
        "task": "portfolios.exchange_tasks.sweep_leader_trades",
        "schedule": LEADER_TRADES_POLL,
        "options": {"expires": LEADER_TRADES_POLL},
    },
    "outbox-relay": {
        "task": "copytrading.tasks.relay_outbox",
        "schedule": 5.0,
    },
    # Worker liveness for /healthz: a worker that runs it writes its heartbeat.
    "worker-heartbeat": {
        "task": "backoffice.tasks.worker_heartbeat",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
    "reconcile-propagations": {
        "task": "copytrading.tasks.reconcile_propagations",
        "schedule": 600.0,
    },
    # Finishes closing portfolios: leader book, followers detached, archived.
    "reconcile-closing-portfolios": {
        "task": "portfolios.lifecycle_tasks.reconcile_closing_portfolios",
        "schedule": 600.0,
    },
    # Exchange-bound accounts compared with their exchange (copytrading/exchanges/reconciliation.py);
    # a run not started within its slot is dropped: the next one covers it.
    "reconcile-exchange-accounts": {
        "task": "exchange.reconcile",
        "schedule": float(EXCHANGE_RECONCILE_INTERVAL),
        "options": {"expires": EXCHANGE_RECONCILE_INTERVAL * 5 / 6},
    },
    "fee-settlement": {
        "task": "fees.tasks.settle_fees",
        "schedule": 60.0,
    },
    # E-mails of notifications nobody dispatched (broker down at the commit).
    "notification-email-sweep": {
        "task": "copytrading.notifications.tasks.sweep_notification_emails",
        "schedule": 60.0,
        "options": {"expires": 55.0},
    },
    # Exchange orders no task is sending: lost dispatches, retries due, a dead submitter's (lease over).
    "exchange-submit-sweep": {
        "task": "exchange.submit_sweep",
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
    "inbox-cleanup": {
        "task": "copytrading.inbox_tasks.cleanup_inbox",
        "schedule": 3600.0,
    },
    # Idempotency-Key records are kept 24 hours (copytrading/idempotency.py).
    "idempotency-cleanup": {
        "task": "copytrading.tasks.cleanup_idempotent_requests",
        "schedule": 3600.0,
    },
    # 1-minute price candles are kept CANDLE_RETENTION_DAYS (copytrading/candles.py).
    "candle-purge": {
        "task": "copytrading.tasks.purge_candles",
        "schedule": 3600.0,
    },
    # Months of the execution log and transfers created ahead (PostgreSQL;
    # copytrading/partitions.py); nothing missing is one catalog read.
    "partitions-maintain": {
        "task": "copytrading.tasks.maintain_partitions",
        "schedule": 3600.0,
    },
    # A tick not started within its slot is dropped: the next one covers it.
    "risk-watchdog": {
        "task": "risk.tasks.watchdog_tick",
        "schedule": float(WATCHDOG_INTERVAL),
        "options": {"expires": WATCHDOG_INTERVAL * 5 / 6},
    },
    "portfolio-stats": {
        "task": "portfolios.stats_tasks.refresh_portfolio_stats",
        "schedule": 300.0,
        "options": {"expires": 290.0},
    },
    "portfolio-ranking": {
        "task": "portfolios.stats_tasks.rank_portfolios",
        "schedule": crontab(minute=0, hour="*/2"),
    },
    "risk-daily-reset": {
        "task": "risk.tasks.daily_reset",
        "schedule": crontab(minute=0, hour=0),
    },
}
