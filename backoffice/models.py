"""Back-office records."""

from django.db import models


class Heartbeat(models.Model):
    """The last sign of life of a background process kind, read by /healthz:
    ``beat`` (written by the scheduler on its ticks, backoffice/beat.py) and
    ``worker`` (written by a worker running the beat-scheduled heartbeat task)."""

    BEAT = "beat"
    WORKER = "worker"

    name = models.CharField(max_length=20, primary_key=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
