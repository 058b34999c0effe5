"""Thin tasks of the notifications room (imported by copytrading/tasks.py so
the worker registers them)."""

from celery import shared_task

from copytrading.notifications import services


@shared_task(
    name="copytrading.notifications.tasks.send_notification_emails",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def send_notification_emails(notification_ids: list[int]) -> dict:
    result = services.notification_emails_send(notification_ids=notification_ids)
    return {"claimed": result.claimed, "sent": result.sent}


@shared_task(name="copytrading.notifications.tasks.sweep_notification_emails")
def sweep_notification_emails() -> int:
    return services.notification_emails_sweep()
