import pytest

from tests.acceptance.flow import run_copy_flow
from tests.worker import celery_worker, wait_until


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_market_order_copied_end_to_end_real_worker(instruments):
    """The same flow, but the leader's order reaches the followers through
    Redis and a separate Celery worker process, as in production."""
    with celery_worker():
        run_copy_flow(followers=4, wait=lambda predicate: wait_until(predicate, timeout=60))
