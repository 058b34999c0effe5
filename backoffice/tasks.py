"""Thin Celery tasks of the back office."""

from celery import shared_task

from backoffice.models import Heartbeat
from backoffice.services import heartbeat_record


@shared_task(ignore_result=True)
def worker_heartbeat() -> None:
    """Beat-scheduled (config/celery.py): a worker that runs it is consuming."""
    heartbeat_record(name=Heartbeat.WORKER)
