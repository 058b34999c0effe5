"""The notifications room's rows. They belong to the ``copytrading`` app
(imported by copytrading/models.py, like the auth room's), the lowest app,
so every app above can notify without a cycle."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from copytrading.notifications.kinds import Severity


class SeverityChoice(models.TextChoices):
    LOW = Severity.LOW.value, "Low"
    MEDIUM = Severity.MEDIUM.value, "Medium"
    HIGH = Severity.HIGH.value, "High"
    CRITICAL = Severity.CRITICAL.value, "Critical"


class EmailStatus(models.TextChoices):
    NONE = "none", "Not e-mailed"  # its severity or the user's preference says no
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Claimed by a sender"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (address refused, or too many attempts)"


class Notification(models.Model):
    """One notification to one user. ``dedup_key`` names its source (a
    subscription, an accrual, an execution...) so a replayed trigger inserts
    nothing. ``hidden``: the user turned the kind off in-app; the row is kept
    (hidden from every list) so its e-mail and its dedup still work."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=50)
    severity = models.CharField(max_length=8, choices=SeverityChoice.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    dedup_key = models.CharField(max_length=200, unique=True)
    hidden = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    email_status = models.CharField(max_length=8, choices=EmailStatus.choices, default=EmailStatus.NONE)
    # When a sender last claimed it (renewed before each send), or when the
    # sweeper or a failed send last handed it back to a task: the sweeper
    # leaves a row alone for STUCK_SENDING after that.
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    email_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)  # raw INSERTs omit it
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-id"], name="notification_user_newest"),
            models.Index(
                fields=["user"], condition=Q(read_at__isnull=True, hidden=False), name="notification_user_unread"
            ),
            models.Index(
                fields=["email_status", "id"],
                condition=Q(email_status__in=["pending", "sending"]),
                name="notification_email_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → user {self.user_id}"


class NotificationPreference(models.Model):
    """A user's choice for one kind, where it differs from the kind's
    defaults (a user with no rows gets the defaults everywhere)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=50)
    in_app = models.BooleanField()
    email = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="notification_preference_once")]

    def __str__(self) -> str:
        return f"{self.kind} preference of user {self.user_id}"
