"""Back-office records."""

from django.conf import settings
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


class JobErrorSeverity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class JobError(models.Model):
    """One bug of the job-error feed (SPEC.md §9): every occurrence with the
    same fingerprint (task, exception class, the traceback's frames) is this
    row with ``count`` one higher; the message, arguments and traceback are
    the latest occurrence's. Written by ``backoffice.joberrors`` only."""

    fingerprint = models.CharField(max_length=64, unique=True)
    task = models.CharField(max_length=200, db_index=True)
    exception_class = models.CharField(max_length=200)
    message = models.TextField(blank=True)
    arguments = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    severity = models.CharField(max_length=8, choices=JobErrorSeverity.choices, default=JobErrorSeverity.MEDIUM)
    count = models.PositiveBigIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    # Cleared by a new occurrence: an acknowledged bug that fires again is open again.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-last_seen"]
        constraints = [models.CheckConstraint(name="job_error_count_positive", condition=models.Q(count__gte=1))]
        # The admin's default list and /healthz's count: open errors, newest first.
        indexes = [models.Index(fields=["acknowledged_at", "-last_seen"], name="job_error_open_by_last_seen")]

    def __str__(self) -> str:
        return f"{self.task}: {self.exception_class} x{self.count}"
