"""Back-office writes."""

from datetime import datetime

from django.utils import timezone

from backoffice.models import Heartbeat


def heartbeat_record(*, name: str, at: datetime | None = None) -> None:
    """Upsert one heartbeat row (a single statement, no transaction needed)."""
    Heartbeat.objects.update_or_create(name=name, defaults={"at": at or timezone.now()})
