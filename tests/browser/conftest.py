"""The staff journeys in a real browser: a daphne process serving the admin
(its static files too) on the test PostgreSQL database, and Debian's headless
Chromium driven by Playwright for Python through ``executable_path``
(Playwright's own browser download is not used). Services pass only (slow).

The data a journey needs is made through the services in the test process and
committed (``transaction=True``) so the server sees it; the server runs its
Celery tasks in-process (``CELERY_TASK_ALWAYS_EAGER``), so what a staff member
does in the browser (or a leader through the API) fans out before the answer.

Playwright's sync API keeps an asyncio loop marked as running in this thread
for as long as it is started, and Django refuses ORM calls while a loop runs
(SynchronousOnlyOperation). The browser therefore lives for this package only
(``scope="package"``: one Chromium for all the journeys, a fresh context per
test), with ``DJANGO_ALLOW_ASYNC_UNSAFE`` set in this process meanwhile: the
test thread is synchronous; the loop only carries Playwright's messages. The
server process never gets it.
"""

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from tests.conftest import ON_POSTGRES
from tests.daphne import start_daphne, stop, wait_listening
from tests.worker import _test_database_url

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)
STAFF_PASSWORD = "browser-journey-pass-4821"

# Every browser test carries these (the module's pytestmark): the reason is
# shown by -ra when a pass cannot run them.
# serialized_rollback: the server processes cache content type ids (the audit
# log's rows name them), and a plain flush recreates the content types under
# new ids (post_migrate, in another order than the migrations made them): the
# next journey's audited write in the server would fail on its foreign key.
# With it the flush leaves them out and each test starts from the migrated
# rows, ids included. Not reset_sequences: the content types re-created after
# a flush are numbered in another order than the migrations numbered them (the
# first journey's ids would differ from the next ones'), and restarted ids
# would let a cache keyed by ids (the catalog's, the preview's) answer one
# journey with another's rows. (After other transactional tests in the same
# run, _serialized_rollback_on_every_connection puts the migrated rows back
# first.)
browser_marks = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not ON_POSTGRES, reason="browser journeys need PostgreSQL: set DATABASE_URL (CI does)"),
    pytest.mark.skipif(
        not HAVE_CHROMIUM,
        reason=f"browser journeys need Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)",
    ),
]


@pytest.fixture(scope="package", autouse=True)
def _serialized_rollback_on_every_connection(django_db_setup, django_db_blocker) -> None:
    """The migrated rows ``serialized_rollback`` restores are kept on the
    connection object that made the test database; once Playwright runs, the
    test thread reaches the database through other connection objects (Django
    keeps them per asyncio context), which would not have them: the flush
    would then recreate the content types (new ids) and nothing would restore
    them. Every connection object of the backend gets them. And when other
    transactional tests ran first in this process (a whole-suite run), their
    flushes left re-created content types: the database goes back to the
    migrated rows once, before any server of these tests starts."""
    import json

    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connections

    for alias in connections:
        contents = getattr(connections[alias], "_test_serialized_contents", None)
        if contents is None:
            continue
        type(connections[alias])._test_serialized_contents = contents
        migrated = sorted(
            (row["pk"], row["fields"]["app_label"], row["fields"]["model"])
            for row in json.loads(contents)
            if row["model"] == "contenttypes.contenttype"
        )
        with django_db_blocker.unblock():
            now = sorted(ContentType.objects.using(alias).values_list("pk", "app_label", "model"))
            if now != migrated:
                call_command(
                    "flush",
                    database=alias,
                    interactive=False,
                    inhibit_post_migrate=True,
                    reset_sequences=False,
                    verbosity=0,
                )
                connections[alias].creation.deserialize_db_from_string(contents)
            connections[alias].close()  # opened here, in no test: closed here


# --- the server ------------------------------------------------------------------


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int, chars: int = 4000) -> str:
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")[-chars:]


@contextmanager
def running_server(folder: Path, *, eager: bool) -> Iterator[Server]:
    """daphne on the test database, its static files served, its output in a
    file (a pipe nobody reads would fill and stall it); its tasks inline
    (``eager``) or sent to the broker for a real worker."""
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "VAR_DIR": str(folder / "var"),
        "DJANGO_SERVE_STATIC": "true",
        "CELERY_TASK_ALWAYS_EAGER": "true" if eager else "false",
        # The web process's 5 s request deadline and 4 s statement limit (config/asgi.py)
        # are tested elsewhere; on a busy 2-core CI machine a login's password hash
        # alone can pass them, and a journey would fail on a 503 that says nothing of it.
        "REQUEST_DEADLINE_SECONDS": "60",
        "DB_STATEMENT_TIMEOUT_MS": "60000",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    log = folder / "daphne.log"
    with log.open("wb") as out:
        proc, port = start_daphne(env, stdout=out, stderr=subprocess.STDOUT)
    running = Server(proc, port, log)
    try:
        wait_listening(proc, port, lambda: running.log_since(0))
        yield running
    finally:
        stop(proc)


@pytest.fixture(scope="package")
def server(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    """The staff journeys' server, tasks eager. One for the package: starting
    one costs seconds, and what a journey leaves in it is only its sessions
    (flushed with the data) and the live settings' few-second cache (a
    journey that halts copying resumes it)."""
    with running_server(tmp_path_factory.mktemp("daphne"), eager=True) as running:
        yield running


# --- the browser -----------------------------------------------------------------


@pytest.fixture(scope="package")
def _sync_playwright_in_this_thread() -> Iterator[None]:
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if before is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="package")
def browser(_sync_playwright_in_this_thread):
    """One headless Chromium for the journeys (Debian's, not a download)."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def page(browser, server, transactional_db):
    """A fresh browser context (no cookies) on the running server; a failing
    journey shows what the server logged meanwhile."""
    log_start = server.log_size()
    context = browser.new_context(base_url=server.url, accept_downloads=True, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(30_000)  # generous: CI machines are busy
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    # Shown by pytest only when the test failed ("Captured stdout teardown").
    print(f"--- daphne log during the test ---\n{server.log_since(log_start)}")
    assert not errors, f"JavaScript errors on the pages: {errors}"


# --- helpers -----------------------------------------------------------------------


@cache
def _staff_password_hash() -> str:
    return make_password(STAFF_PASSWORD)  # the default hasher: the server checks it


def staff_user(username: str = "ops1", *, superuser: bool = True):
    """A staff member who can log in to the server."""
    return get_user_model().objects.create(
        username=username,
        password=_staff_password_hash(),
        email=f"{username}@example.com",
        is_staff=True,
        is_superuser=superuser,
    )


def staff_login(page, user, password: str = STAFF_PASSWORD) -> None:
    """Log in through the admin's login form; the admin index opens with its
    stylesheet applied (static files are served)."""
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", password)
    with page.expect_response(lambda r: r.request.method == "POST" and "/admin/login/" in r.url) as posted:
        page.click("input[type=submit]")
    assert posted.value.status == 302, f"the login form answered {posted.value.status}, not a redirect"
    page.wait_for_url(lambda url: urlsplit(url).path == "/admin/")
    styled = page.evaluate(
        """() => [...document.styleSheets].some(
            s => s.href && s.href.includes('/static/admin/css/base.css') && s.cssRules.length > 0)"""
    )
    assert styled, "the admin's base.css did not load"


@pytest.fixture
def shot(request) -> Callable[..., Path]:
    """``shot(page, "step")`` saves var/screenshots/<journey>/<nn>-<step>.png
    (numbered in the order taken) and returns the path."""
    journey = request.node.name.removeprefix("test_").split("[")[0]
    folder = Path(settings.VAR_DIR) / "screenshots" / journey
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    taken = []

    def take(page, name: str, *, full_page: bool = True) -> Path:
        taken.append(name)
        path = folder / f"{len(taken):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
