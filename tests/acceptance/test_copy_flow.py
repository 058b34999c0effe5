import pytest

from tests.acceptance.flow import run_copy_flow


def _now(predicate):
    # Eager Celery: propagation ran inside the request's on-commit hook.
    assert predicate()


@pytest.mark.django_db(transaction=True)
def test_market_order_copied_end_to_end_eager(instruments):
    run_copy_flow(followers=3, wait=_now)
