"""Settings for the test suite: config.settings with throwaway keys.

config.settings refuses to start in services mode without DJANGO_SECRET_KEY;
the suite runs in services mode (CI) with no secret to protect. The key goes
into the environment so processes the tests start (workers, servers) get it too.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-suite-only-key-not-a-secret-" + "x" * 32)
# Linked exchange accounts' secrets (services mode has no generated key); a fixed
# Fernet key, as throwaway as the secret key above.
os.environ.setdefault("EXCHANGE_SECRET_KEYS", "dGVzdC1zdWl0ZS1vbmx5LWZlcm5ldC1rZXktMzJieXQ=")

from config.settings import *  # noqa: F403

# transaction=True tests end with a flush: on PostgreSQL rows are deleted rather
# than every table truncated (tests/db_backend/base.py says why it is the same).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.db_backend"  # noqa: F405
