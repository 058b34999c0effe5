import os
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from config.celery import app as celery_app
from copytrading.services import instruments_seed

ON_POSTGRES = bool(os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql")))

# The embedded pass of CI (HYPOTHESIS_PROFILE=embedded, .ci/run) runs the
# property tests with a fifth of hypothesis's default 100 examples: the services
# pass runs them in full, and a property over plain Python values holds or fails
# the same on either database. A test that sets its own max_examples keeps it.
# (An environment variable, not --hypothesis-profile: hypothesis reads that
# option before pytest has imported this file when the paths are given.)
hypothesis_settings.register_profile("embedded", max_examples=20)
if os.environ.get("HYPOTHESIS_PROFILE"):
    hypothesis_settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (CI does)")
    skip_worker = pytest.mark.skip(reason="needs PostgreSQL and Redis: set DATABASE_URL and REDIS_URL (CI does)")
    for item in items:
        if "postgres" in item.keywords and not ON_POSTGRES:
            item.add_marker(skip_pg)
        if "worker" in item.keywords and not (ON_POSTGRES and os.environ.get("REDIS_URL")):
            item.add_marker(skip_worker)


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run inline unless a test starts a real worker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def no_catalog_cache(settings):
    """The in-process cache outlives a test: a catalog page cached by one test
    must not answer another (tests/portfolios/test_catalog.py tests the cache)."""
    settings.CATALOG_CACHE_SECONDS = 0


@pytest.fixture(autouse=True)
def live_settings_fresh(monkeypatch):
    """The live settings' per-process view (copytrading/live) outlives a
    test: each one starts and ends reading its own database's record. Within
    a test it does not expire by time (every write in a test goes through
    this process, which drops it at once), so query counts do not depend on
    how slow the machine is; tests/live/test_accessor.py tests the expiry."""
    from copytrading import live

    monkeypatch.setattr(live, "CACHE_SECONDS", 3600.0)
    live.invalidate()
    yield
    live.invalidate()


@pytest.fixture(autouse=True)
def no_outage_backoff(monkeypatch):
    """A test that fails the broker or the cache starts a per-process back-off
    (copytrading/outages.py); the next test starts with both services trusted."""
    from copytrading import outages

    monkeypatch.setattr(outages, "_dispatch_skip_until", 0.0)
    monkeypatch.setattr(outages, "_cache_skip_until", 0.0)


@pytest.fixture(autouse=True)
def no_exchange_network(settings):
    """No test reaches a real exchange: every ccxt client built by the factory
    is sent to a closed local port (connection refused at once) unless the test
    points it at the exchange double (tests/exchange_double/fixtures.py)."""
    settings.EXCHANGE_URL_OVERRIDE = "http://127.0.0.1:9"


@pytest.fixture
def instruments(db):
    instruments_seed()
    from copytrading.models import Instrument

    return {i.symbol: i for i in Instrument.objects.all()}


@pytest.fixture
def api():
    return APIClient()


def D(value) -> Decimal:
    return Decimal(str(value))


@pytest.fixture
def vendor():
    return connection.vendor
