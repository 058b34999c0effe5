"""The beat scheduler: django-celery-beat's, writing a heartbeat as it ticks
(at least every ``max_interval``, 5 s), so /healthz can tell the age of beat's
last tick without depending on a worker."""

import logging
import time

from django.db import DatabaseError, close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

from backoffice.models import Heartbeat
from backoffice.services import heartbeat_record

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_SECONDS = 5.0


class HeartbeatScheduler(DatabaseScheduler):
    _last_heartbeat = float("-inf")

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
            self._last_heartbeat = now
            try:
                close_old_connections()
                heartbeat_record(name=Heartbeat.BEAT)
            except DatabaseError:
                # Beat keeps scheduling while the database is down; /healthz
                # reports the database (and this heartbeat's age) anyway.
                log.warning("beat heartbeat not recorded: database unavailable", exc_info=True)
        return super().tick(*args, **kwargs)
