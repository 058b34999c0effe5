"""The outage tests' servers: one stack per session (its own Redis, its own
PostgreSQL cluster, daphne against them), restored after every test, stopped
and removed at the end whatever happened."""

import glob
import json
import shutil

import pytest

from tests.outages.stack import PostgresCluster, RedisServer, Stack, Web, django_env, run_django, wait_until

# (server, state, endpoint) -> (status, seconds), printed at the end of the run.
TIMINGS: dict[tuple[str, str, str], tuple[int, float]] = {}


def pytest_collection_modifyitems(config, items):
    missing = [name for name in ("redis-server", "runuser", "pgrep") if shutil.which(name) is None]
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        missing.append("initdb")
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"outage tests need {', '.join(missing)}")
    for item in items:
        if "outages" in str(item.fspath):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.write_sep("-", "outage answers (status, seconds)")
    for (server, state, endpoint), (status, seconds) in sorted(TIMINGS.items()):
        terminalreporter.write_line(f"{server:8} {state:8} {endpoint:14} {status} {seconds:6.2f} s")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("outage")
    redis = RedisServer(root)
    postgres = PostgresCluster(root)
    web = None
    try:
        redis.start()
        postgres.init()
        postgres.start()
        postgres.create_database()
        env = django_env(root, redis, postgres)
        run_django(env, "manage.py", "migrate", "--noinput")
        seed = json.loads(run_django(env, "-m", "tests.outages.seed").strip().splitlines()[-1])
        web = Web(root, env)
        web.start()
        yield Stack(redis=redis, postgres=postgres, web=web, seed=seed)
    finally:
        if web is not None:
            web.stop()
        redis.stop()
        postgres.stop()
        postgres.remove()


@pytest.fixture
def live(stack):
    """The stack, healthy before the test and made healthy again after it
    (servers thawed and started, the web answering from the database)."""
    _recover(stack)
    yield stack
    _recover(stack)


def _recover(stack: Stack) -> None:
    stack.redis.thaw()
    stack.postgres.thaw()
    if stack.redis.proc is None:
        stack.redis.start()
    if not (stack.postgres.data / "postmaster.pid").exists():
        stack.postgres.start()
    wait_until(
        lambda: stack.web.request("GET", "/api/v1/me", token=stack.seed["token"], timeout=10).status == 200,
        timeout=60,
        what="the web process after recovery",
        interval=0.5,
    )
