"""The inbox: messages from external sources, each applied at most once.

A message is claimed by inserting its (source, portfolio, external id); the
unique constraint, not a check-then-insert, decides who wins a race. Callers
claim and act in one transaction, so a committed row always carries its
final status and a concurrent duplicate waits on the unique index until the
winner commits, then sees the winner's row.

Rows are kept for the dedup window (``DEDUP_WINDOW``) and then deleted: a
message delivered again after that is accepted as new. Signed webhooks cannot
be replayed that late (their timestamp tolerance is minutes), so the window
only has to outlast a sender's own retries.
"""

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from copytrading.models import InboxMessage

DEDUP_WINDOW = timedelta(days=7)


@transaction.atomic
def inbox_accept(
    *, source: str, external_id: str, portfolio_id: int, payload: dict[str, Any]
) -> tuple[InboxMessage, bool]:
    """Claim a message id. Returns ``(message, True)`` for a new message and
    ``(existing, False)`` for a duplicate, which changes nothing."""
    try:
        # A savepoint: the duplicate's IntegrityError must not break the
        # caller's transaction.
        with transaction.atomic():
            message = InboxMessage.objects.create(
                source=source, external_id=external_id, portfolio_id=portfolio_id, payload=payload
            )
        return message, True
    except IntegrityError:
        existing = InboxMessage.objects.filter(
            source=source, portfolio_id=portfolio_id, external_id=external_id
        ).first()
        if existing is None:
            raise  # another constraint failed: not a duplicate
        return existing, False


@transaction.atomic
def inbox_result_record(*, message: InboxMessage, status: str, result: dict[str, Any]) -> InboxMessage:
    """Record what became of a claimed message (in the claimer's transaction)."""
    message.status = status
    message.result = result
    message.save(update_fields=["status", "result"])
    return message


def inbox_cleanup(*, older_than: timedelta = DEDUP_WINDOW) -> int:
    """Delete messages received before the dedup window; returns how many.

    Idempotent and safe to run concurrently: a plain age-bounded DELETE, and
    nothing references inbox rows."""
    cutoff = timezone.now() - older_than
    deleted, _ = InboxMessage.objects.filter(received_at__lt=cutoff).delete()
    return deleted
