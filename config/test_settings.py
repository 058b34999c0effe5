"""Settings for the test suite: config.settings with throwaway keys.

config.settings refuses to start in services mode without DJANGO_SECRET_KEY;
the suite runs in services mode (CI) with no secret to protect. The key goes
into the environment so processes the tests start (workers, servers) get it too.
"""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "test-suite-only-key-not-a-secret-" + "x" * 32)
# Linked exchange accounts' secrets (services mode has no generated key); a fixed
# Fernet key, as throwaway as the secret key above.
os.environ.setdefault("EXCHANGE_SECRET_KEYS", "dGVzdC1zdWl0ZS1vbmx5LWZlcm5ldC1rZXktMzJieXQ=")

# Services mode keeps metrics in files (prometheus_client's multiprocess mode,
# as in production): a directory of this run's own, shared with the processes
# the tests start (docs/decisions.md, "Metrics across processes").
if os.environ.get("DATABASE_URL"):
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="copytrading-metrics-"))

from config.settings import *  # noqa: F403

# transaction=True tests end with a flush: on PostgreSQL rows are deleted rather
# than every table truncated (tests/db_backend/base.py says why it is the same).
# The test process's commits do not wait for the WAL to reach the disk
# (synchronous_commit=off: ~0.2 instead of ~1 ms a commit here); what other
# sessions see, and when, is unchanged: only a crash of the server could lose
# the last commits, of a throwaway database.
if DATABASES["default"]["ENGINE"] == "django_prometheus.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.db_backend"  # noqa: F405
    _options = DATABASES["default"].setdefault("OPTIONS", {})  # noqa: F405
    _options["options"] = f"{_options.get('options', '')} -c synchronous_commit=off".strip()

# A read replica for the replica tests (tests/copytrading/test_replicas.py): another
# connection to the test database itself (TEST MIRROR), so it reads what was committed.
# Unused unless a test names it in DATABASE_REPLICAS (settings leave that empty).
for _alias in [*DATABASE_REPLICAS, "replica"]:  # noqa: F405
    _primary = {key: value for key, value in DATABASES["default"].items() if key != "TEST"}  # noqa: F405
    DATABASES[_alias] = {**_primary, "OPTIONS": dict(_primary.get("OPTIONS", {})), "TEST": {"MIRROR": "default"}}  # noqa: F405
# Pages render without collectstatic first and the servers the tests start serve the
# apps' static files as they are (services mode otherwise serves collected, hashed files).
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
