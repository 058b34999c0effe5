"""The Celery app and the beat schedule, declared once here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("copytrading")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "outbox-relay": {
        "task": "copytrading.tasks.relay_outbox",
        "schedule": 5.0,
    },
    "reconcile-propagations": {
        "task": "copytrading.tasks.reconcile_propagations",
        "schedule": 600.0,
    },
}
