"""The client journeys: the pages against the whole stack, as in production.

``server`` here is daphne in services mode (the test PostgreSQL and Redis:
the channel layer carries the live stream) with a real Celery worker taking
its tasks (nothing eager): a price tick through the staff price API is
matched, fanned out and pushed to the browser by the processes that do it in
production. The ``page`` fixture (tests/browser/conftest.py) opens pages on it.
"""

import os
from collections.abc import Iterator

import pytest

from config.celery import app as celery_app
from tests.browser.conftest import Server, running_server
from tests.worker import celery_worker


@pytest.fixture(scope="package")
def server(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("client journeys need Redis: set REDIS_URL (CI does)")
    folder = tmp_path_factory.mktemp("stack")
    with celery_worker(extra_env={"VAR_DIR": str(folder / "var")}), running_server(folder, eager=False) as running:
        yield running


@pytest.fixture(autouse=True)
def tasks_go_to_the_worker(server):
    """tests/conftest.py's ``eager_celery`` runs tasks inline in every test;
    here what the test process enqueues goes to the real worker, as the
    server's tasks do."""
    celery_app.conf.task_always_eager = False
    yield
