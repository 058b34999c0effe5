"""Thin Celery tasks of the fees app."""

from celery import shared_task

from fees import services

# One run settles at most this many batches; what is left waits a minute.
MAX_BATCHES_PER_RUN = 20


@shared_task
def settle_fees(limit: int = 1000) -> dict:
    """The minute job: credit accrued profit share to leaders and platform.
    Safe to run twice, or on several workers at once (rows are claimed with
    SKIP LOCKED and every ledger step has its idempotency key)."""
    settled = failed = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        result = services.fees_settle(limit=limit)
        settled += result.settled
        failed += result.failed
        if result.claimed < limit:
            break
    return {"settled": settled, "failed": failed}
