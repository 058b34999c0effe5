"""The client journeys: the pages against the whole stack, as in production.

``server`` here is daphne in services mode (the test PostgreSQL and Redis:
the channel layer carries the live stream) with a real Celery worker taking
its tasks (nothing eager): a price tick through the staff price API is
matched, fanned out and pushed to the browser by the processes that do it in
production. The ``page`` fixture (tests/browser/conftest.py) opens pages on it.
"""

import os
import subprocess
from collections.abc import Iterator

import pytest

from config.celery import app as celery_app
from tests.browser.conftest import Server
from tests.daphne import start_daphne, stop, wait_listening
from tests.worker import _test_database_url, celery_worker

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="client journeys need Redis: set REDIS_URL (CI does)"
)


@pytest.fixture(scope="package")
def server(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("client journeys need Redis: set REDIS_URL (CI does)")
    folder = tmp_path_factory.mktemp("stack")
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "VAR_DIR": str(folder / "var"),
        "DJANGO_SERVE_STATIC": "true",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # See tests/browser/conftest.py: a busy CI machine, not an outage.
        "REQUEST_DEADLINE_SECONDS": "60",
        "DB_STATEMENT_TIMEOUT_MS": "60000",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    log = folder / "daphne.log"
    with celery_worker(extra_env={"VAR_DIR": str(folder / "var")}):
        with log.open("wb") as out:
            proc, port = start_daphne(env, stdout=out, stderr=subprocess.STDOUT)
        running = Server(proc, port, log)
        try:
            wait_listening(proc, port, lambda: running.log_since(0))
            yield running
        finally:
            stop(proc)


@pytest.fixture(autouse=True)
def tasks_go_to_the_worker(server):
    """tests/conftest.py's ``eager_celery`` runs tasks inline in every test;
    here what the test process enqueues goes to the real worker, as the
    server's tasks do."""
    celery_app.conf.task_always_eager = False
    yield
