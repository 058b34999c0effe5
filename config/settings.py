"""The one settings module. Everything configurable comes from the environment.

Two modes share one code path:
- services mode: DATABASE_URL and REDIS_URL are set (PostgreSQL, Redis broker,
  Redis channel layer and cache);
- embedded mode: nothing is set (SQLite file under var/, a filesystem Celery
  broker under var/, in-memory channel layer and cache).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import redis_sentinel
from config.env import (
    env_bool,
    env_decimal,
    env_fernet_keys,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
    local_secret_key,
)
from copytrading.observability import multiproc
from copytrading.observability.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Metrics of the worker processes reach the web's /metrics through files
# here (prometheus_client's multiprocess mode; docs/decisions.md). Decided
# before any metric is created. Services mode defaults it under VAR_DIR;
# run_stack empties it at start (and sets it in embedded mode too). Set and
# empty: off, for one-off commands (cron jobs, shells) that should leave no
# files (docs/operations.md, "Metrics"). Files are named by pid and host
# (multiproc.install: before any metric is created).
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ and env_str("DATABASE_URL"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(VAR_DIR / "prometheus")
if env_str("PROMETHEUS_MULTIPROC_DIR"):
    Path(env_str("PROMETHEUS_MULTIPROC_DIR")).mkdir(parents=True, exist_ok=True)
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
multiproc.install()

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
# redis+sentinel://host1:26379,host2:26379/<master>[/<db>]: Redis behind Sentinel (config/redis_sentinel.py).
try:
    REDIS_SENTINEL = redis_sentinel.parse(REDIS_URL)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
EMBEDDED = not DATABASE_URL

# --- secret key and HTTPS (docs/decisions.md, "auth") ----------------------------
# No key is committed. Without DJANGO_SECRET_KEY, only embedded mode or DEBUG
# starts, with a random key generated once into var/ (never shared, never in
# git); services mode without DEBUG refuses to start.
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not (EMBEDDED or DEBUG):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set: refusing to start with DATABASE_URL set and DJANGO_DEBUG off. "
            "Set DJANGO_SECRET_KEY to a long random value "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or DJANGO_DEBUG=true on a development machine."
        )
    SECRET_KEY = local_secret_key(VAR_DIR / "secret_key")
# DJANGO_HTTPS=true (production) turns every HTTPS protection on; each one can be
# turned off or tuned on its own, e.g. behind a TLS-terminating proxy.
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # load balancers and Prometheus probe over plain HTTP
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", HTTPS)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", HTTPS)
# Opt-in, only behind a proxy that always sets (and never passes through) the
# header, e.g. "X-Forwarded-Proto: https".
if _proxy_ssl_header := env_str("DJANGO_SECURE_PROXY_SSL_HEADER"):
    _name, _, _value = _proxy_ssl_header.partition(":")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip())

INSTALLED_APPS = [
    "daphne",
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and Redoc from the package, not a CDN (SPECTACULAR_SETTINGS below).
    "drf_spectacular_sidecar",
    "django_filters",
    "graphene_django",
    # GraphiQL's React, GraphiQL and explorer bundles from the package, not a CDN (config/schema.py).
    "graphene_django_graphiql_static",
    "django_celery_beat",
    "channels",
    # htmx for the client pages, served from the package (copytrading/web).
    "django_htmx",
    "auditlog",
    "solo",
    "copytrading",
    "risk",
    "fees",
    "portfolios",
    "followers",
    "backoffice",
]

MIDDLEWARE = [
    # Request counts and latencies (django-prometheus): first and last.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # The request id and user on every log line, echoed in X-Request-ID.
    "copytrading.observability.middleware.RequestContextMiddleware",
    # Outermost: it sees every response, the error handlers' included.
    "config.error_views.ApiJsonErrors",
    "django.middleware.security.SecurityMiddleware",
    # Static files (WhiteNoise) right after it, so they skip the rest (taken out below
    # when DJANGO_SERVE_STATIC is off).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # An outage under /api/ or /graphql/ answers JSON 503, not a 500 page.
    "copytrading.outages.OutageMiddleware",
    # After the web process's request deadline (config/deadline.py) a request's queries stop.
    "config.deadline.DeadlineGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "copytrading.auth.middleware.LoginLockoutMiddleware",
    # The audit trail's actor: the session's or (once DRF authenticated it) the token's user.
    "copytrading.audit.middleware.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # The client pages: request.htmx, and times in the reader's zone (copytrading/web).
    "django_htmx.middleware.HtmxMiddleware",
    "copytrading.web.middleware.ReaderTimezone",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# The audit trail (copytrading/audit): changes compared as values, not text
# (a Decimal 10.00 re-saved as 10 is no change), stored as JSON.
AUDITLOG_STORE_JSON_CHANGES = True
# A related row by its name, not its id (read only when that field changed).
AUDITLOG_USE_FK_STRING_REPRESENTATION = True

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The client pages' navigation: the unread notification count.
                "copytrading.web.context.navigation",
            ],
        },
    },
]

# --- timeouts: every network call is bounded (README "Outages", docs/operations.md) ---
# Redis (broker publish, cache, channel layer): connect and socket timeouts.
REDIS_TIMEOUT_SECONDS = env_float("REDIS_TIMEOUT_SECONDS", 1.0)
# PostgreSQL: libpq's connect_timeout (whole seconds, at least 2), the wait for a
# pooled connection, and a server-side statement_timeout (0: none). The web
# process sets DB_STATEMENT_TIMEOUT_MS and REQUEST_DEADLINE_SECONDS (config/asgi.py);
# workers and commands keep no statement limit unless told.
DB_CONNECT_TIMEOUT_SECONDS = env_int("DB_CONNECT_TIMEOUT_SECONDS", 2)
DB_POOL_TIMEOUT_SECONDS = env_float("DB_POOL_TIMEOUT_SECONDS", 2.0)
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 0)
# A frozen server ACKs at the TCP level, so nothing in the driver ends a query
# in flight: the web process answers 503 after this many seconds (0: no deadline).
REQUEST_DEADLINE_SECONDS = env_float("REQUEST_DEADLINE_SECONDS", 0)


def _postgres_options() -> dict:
    options = {
        "connect_timeout": DB_CONNECT_TIMEOUT_SECONDS,
        # A vanished host (not a frozen one: its kernel still ACKs) is noticed
        # within seconds instead of the kernel's ~15 minutes.
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 10_000,
    }
    if DB_STATEMENT_TIMEOUT_MS > 0:
        options["options"] = f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"
    return options


# A psycopg connection pool of at most DB_POOL_MAX connections per process (0:
# none, persistent connections instead). The web process turns it on (config/asgi.py):
# Django's ASGI handler runs each request in a thread of its own, so a persistent
# per-thread connection is never reused and every request would leak one.
DB_POOL_MAX = env_int("DB_POOL_MAX", 0)


def _postgres_database(url: str) -> dict:
    """A PostgreSQL alias: the primary's, and each read replica's (the same pool and bounds)."""
    if DB_POOL_MAX > 0:
        database = dj_database_url.parse(url, conn_max_age=0)
        database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_MAX,
            "timeout": DB_POOL_TIMEOUT_SECONDS,
        }
    else:
        database = dj_database_url.parse(url, conn_max_age=60)
    database.setdefault("OPTIONS", {}).update(_postgres_options())
    return database


if DATABASE_URL:
    DATABASES = {"default": _postgres_database(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "copytrading.sqlite3")),
            "OPTIONS": {
                # Several local processes (web, worker, beat, market) share the
                # file: WAL lets readers run beside the writer, IMMEDIATE takes
                # the write lock up front so a transaction never fails upgrading.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }

# --- read replicas (copytrading/replicas.py; docs/scaling.md; docs/decisions.md §82) ---
# DATABASE_REPLICA_URLS: PostgreSQL streaming replicas of DATABASE_URL, comma separated,
# as aliases replica1, replica2, ... Only the reads that may lag (the public catalog,
# statistics, report exports) go there, named in code with `.using(replica_alias())`;
# unset, every read and write uses the primary as before.
DATABASE_REPLICAS: list[str] = []
for _position, _url in enumerate(env_list("DATABASE_REPLICA_URLS"), start=1):
    if not DATABASE_URL:
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs DATABASE_URL: replicas are of a PostgreSQL primary.")
    DATABASES[f"replica{_position}"] = {**_postgres_database(_url), "TEST": {"MIRROR": "default"}}
    DATABASE_REPLICAS.append(f"replica{_position}")
# The router sends every write to the primary and notes it (read-your-writes); it reads nothing by itself.
DATABASE_ROUTERS = ["copytrading.replicas.PrimaryWritesRouter"] if DATABASE_REPLICAS else []
# Query counts, durations and errors (django-prometheus): Django's backends, instrumented
# (the primary's and each replica's).
for _database in DATABASES.values():
    _database["ENGINE"] = {
        "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
        "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
    }.get(_database["ENGINE"], _database["ENGINE"])

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- authentication (copytrading/auth; README "Authentication") --------------------
# Every password check (API login, admin login, password change) is counted
# before it is compared: LOGIN_MAX_FAILURES_* failures within the window lock
# the username / the client address out for LOGIN_LOCKOUT_SECONDS.
AUTHENTICATION_BACKENDS = ["copytrading.auth.backends.ThrottledModelBackend"]
AUTH_TOKEN_LIFETIME_SECONDS = env_int("AUTH_TOKEN_LIFETIME_SECONDS", 7 * 24 * 3600)
LOGIN_MAX_FAILURES_PER_USERNAME = env_int("LOGIN_MAX_FAILURES_PER_USERNAME", 10)
LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("LOGIN_MAX_FAILURES_PER_ADDRESS", 30)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900)
REGISTER_MAX_PER_ADDRESS = env_int("REGISTER_MAX_PER_ADDRESS", 20)
REGISTER_WINDOW_SECONDS = env_int("REGISTER_WINDOW_SECONDS", 3600)
# Proxies (addresses or networks) whose X-Forwarded-For is believed; empty: the
# client address is REMOTE_ADDR (copytrading/auth/client.py).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"  # stored and computed in UTC; pages show the reader's zone (copytrading/web/middleware.py)
# The client pages' login (copytrading/web/auth_views.py); the admin keeps its own.
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
USE_I18N = True
USE_TZ = True

# Bodies over this are refused with 413 before they are read (config/body_limit.py).
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 2_621_440)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing one (embedded: empty)
# The app serves its own static files (the admin's, Swagger UI, Redoc, GraphiQL) through
# WhiteNoise, in every mode; DJANGO_SERVE_STATIC=false when a proxy or CDN serves STATIC_ROOT.
SERVE_STATIC = env_bool("DJANGO_SERVE_STATIC", True)
if not SERVE_STATIC:
    MIDDLEWARE.remove("whitenoise.middleware.WhiteNoiseMiddleware")
# Services mode serves what collectstatic gathered into STATIC_ROOT (run_stack and the
# image run it first), with gzip variants; embedded mode serves the apps' files as they are.
# No manifest (hashed names): a file a template names but nobody collected would be a 500
# in production only, and the bundled CSS names source maps the packages do not ship.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if EMBEDDED
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = EMBEDDED

# --- cache and channel layer -------------------------------------------------
if REDIS_URL:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # Bounded (see the timeouts above) and never retried: a cache is an
    # optimisation, its callers fall back to the database on an error.
    _redis_timeouts = {
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            # A list is taken as is: Django splits a string on "," (a Sentinel URL's node list).
            "LOCATION": [REDIS_URL] if REDIS_SENTINEL else REDIS_URL,
            "OPTIONS": {**_redis_timeouts, "retry": Retry(NoBackoff(), 0)},
        }
    }
    if REDIS_SENTINEL:
        CACHES["default"]["OPTIONS"]["pool_class"] = "config.redis_sentinel.SentinelPool"
    # The live stream's notices to the web processes (copytrading/stream/layers.py;
    # docs/decisions.md §54 says why the core layer over the pub/sub one).
    STREAM_CHANNEL_LAYER = env_str("STREAM_CHANNEL_LAYER", "core")
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": {
                "core": "copytrading.stream.layers.BoundedRedisChannelLayer",
                "pubsub": "copytrading.stream.layers.BoundedRedisPubSubChannelLayer",
            }[STREAM_CHANNEL_LAYER],
            # A hub busy with a long flush must not have notices dropped at the
            # default 100 per channel (channels-redis drops silently past it).
            "CONFIG": {
                "hosts": [
                    redis_sentinel.channel_layer_host(REDIS_SENTINEL, **_redis_timeouts)
                    if REDIS_SENTINEL
                    else {"address": REDIS_URL, **_redis_timeouts}
                ],
                "capacity": 10_000,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery --------------------------------------------------------------------
CELERY_BROKER_URL = env_str(
    "CELERY_BROKER_URL",
    redis_sentinel.broker_url(REDIS_SENTINEL) if REDIS_SENTINEL else REDIS_URL or "filesystem://localhost//",
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "broker"
    (_queue_dir / "out").mkdir(parents=True, exist_ok=True)
    (_queue_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "processed_folder": str(_queue_dir / "processed"),
        # The exchange tables too, or kombu writes them to ./control in the checkout.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
        # The folder is polled; kombu's default 1 s would add a second per
        # hop (event -> chunk) to the demo's copy latency.
        "polling_interval": 0.1,
    }
else:
    # Bounded publish: a frozen broker costs a request ~2 s, not forever
    # (the outbox relay re-dispatches what a failed publish left behind).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
    }
    if REDIS_SENTINEL and CELERY_BROKER_URL.startswith("sentinel://"):
        # kombu asks the Sentinel nodes for this master (and again after a failover).
        CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = REDIS_SENTINEL.master
        CELERY_BROKER_TRANSPORT_OPTIONS["sentinel_kwargs"] = {
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
        }
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT_SECONDS
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "copytrading.tasks.propagate_event": {"queue": "fanout"},
    "copytrading.tasks.propagate_chunk": {"queue": "fanout"},
    "risk.tasks.watchdog_tick": {"queue": "watchdog"},
    "risk.tasks.watchdog_drain": {"queue": "watchdog"},
    # Orders to exchanges wait on the network: never behind (or in front of) a fan-out chunk.
    "exchange.submit": {"queue": "exchange"},
    "exchange.submit_sweep": {"queue": "exchange"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# django-celery-beat's DatabaseScheduler, recording a heartbeat per tick (/healthz).
CELERY_BEAT_SCHEDULER = "backoffice.beat:HeartbeatScheduler"
CELERY_TIMEZONE = "UTC"

# --- REST framework ---------------------------------------------------------------
# How long a public catalog page is served from the cache (0: never cached).
CATALOG_CACHE_SECONDS = env_int("CATALOG_CACHE_SECONDS", 5)
# The copy simulator (POST /api/v1/portfolios/{id}/simulate; followers/replay): runs a
# user may start a minute (0: unlimited), the most events one run replays, and how long
# an answer is kept for the same input while the portfolio records no new event.
SIMULATE_PER_MINUTE = env_int("SIMULATE_PER_MINUTE", 20)
SIMULATE_MAX_EVENTS = env_int("SIMULATE_MAX_EVENTS", 5000)
# ... and steps in all (events and hourly marks of every instrument traded): 30 days of
# 200 events on 3 instruments are about 2,400.
SIMULATE_MAX_STEPS = env_int("SIMULATE_MAX_STEPS", 30000)
SIMULATE_CACHE_SECONDS = env_int("SIMULATE_CACHE_SECONDS", 300)

# GraphQL at /graphql/ (read side; config/schema.py).
GRAPHENE = {"SCHEMA": "config.schema.schema"}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "copytrading.auth.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Shared error answers, JSON-only bodies, honest decimal patterns, page
    # operation ids (copytrading/openapi.py).
    "DEFAULT_SCHEMA_CLASS": "copytrading.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "copytrading.api_errors.exception_handler",
    # JSON only: a form or multipart body answers 415 (docs/decisions.md). JSON
    # bodies with NUL or unpaired surrogates are refused (copytrading/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["copytrading.parsers.StrictJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Every list pages with cursors, the same way (copytrading/paging.py; docs/api.md "Paging").
    "DEFAULT_PAGINATION_CLASS": "copytrading.paging.CursorPagination",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Copy trading API",
    "DESCRIPTION": "Leaders trade; followers' isolated copy wallets mirror them.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files: the pages work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request components of their own: a required string there has minLength 1.
    "COMPONENT_SPLIT_REQUEST": True,
    # A PATCH body's required fields are required (a re-price needs its price).
    "COMPONENT_SPLIT_PATCH": False,
    # Several models have a "status" field; name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "PortfolioStatusEnum": "portfolios.models.PortfolioStatus",
        "SubscriptionStatusEnum": "followers.models.SubscriptionStatus",
        "OrderStatusEnum": "copytrading.models.OrderStatus",
        "PositionStatusEnum": "copytrading.models.PositionStatus",
        "LeaderEventStatusEnum": "copytrading.models.LeaderEventStatus",
    },
}

# --- the product ----------------------------------------------------------------
PRIMARY_CURRENCY = env_str("PRIMARY_CURRENCY", "USDT")
FANOUT_CHUNK_SIZE = env_int("FANOUT_CHUNK_SIZE", 500)
# Monthly partitions of the execution log and transfers (PostgreSQL;
# copytrading/partitions.py): months created ahead, and how many whole months of
# executions `partitions archive` keeps (transfers are never archived).
PARTITION_MONTHS_AHEAD = env_int("PARTITION_MONTHS_AHEAD", 3)
EXECUTION_RETENTION_MONTHS = env_int("EXECUTION_RETENTION_MONTHS", 12)
ARCHIVE_DIR = Path(env_str("ARCHIVE_DIR", str(VAR_DIR / "archive")))
FANOUT_ASYNC_COMMIT = env_bool("FANOUT_ASYNC_COMMIT", True)
PAPER_SPREAD_BPS = env_decimal("PAPER_SPREAD_BPS", "0")
PAPER_MAX_DEPOSIT = env_decimal("PAPER_MAX_DEPOSIT", "1000000")
MAX_PORTFOLIOS_PER_LEADER = env_int("MAX_PORTFOLIOS_PER_LEADER", 5)
# Private portfolios: wrong passcodes allowed per user (over all portfolios) and
# per portfolio (over all users) within the window, then a lockout.
PASSCODE_MAX_ATTEMPTS_PER_USER = env_int("PASSCODE_MAX_ATTEMPTS_PER_USER", 5)
PASSCODE_MAX_ATTEMPTS_PER_ADDRESS = env_int("PASSCODE_MAX_ATTEMPTS_PER_ADDRESS", 20)
# Wrong attempts on one portfolio per window before it is slowed (never locked).
PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO = env_int("PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO", 20)
PASSCODE_SLOWED_ATTEMPTS_PER_ACCOUNT = env_int("PASSCODE_SLOWED_ATTEMPTS_PER_ACCOUNT", 1)
PASSCODE_SLOWED_ATTEMPTS_PER_ADDRESS = env_int("PASSCODE_SLOWED_ATTEMPTS_PER_ADDRESS", 2)
PASSCODE_WINDOW_SECONDS = env_int("PASSCODE_WINDOW_SECONDS", 900)
PASSCODE_LOCKOUT_SECONDS = env_int("PASSCODE_LOCKOUT_SECONDS", 900)
RISK_WATCHDOG_INTERVAL_SECONDS = env_int("RISK_WATCHDOG_INTERVAL_SECONDS", 30)
# Exchange-bound portfolios: how often the leader's trades are polled (config/celery.py reads it too).
LEADER_TRADES_POLL_SECONDS = env_float("LEADER_TRADES_POLL_SECONDS", 3.0)
RISK_WATCHDOG_CHUNK_SIZE = env_int("RISK_WATCHDOG_CHUNK_SIZE", 5000)
RISK_WATCHDOG_WORKERS = env_int("RISK_WATCHDOG_WORKERS", 2)
RISK_MARGIN_CALL_LEVEL_PCT = env_decimal("RISK_MARGIN_CALL_LEVEL_PCT", "110")
# Leader withdrawals of earned profit share: the smallest amount (after rounding down to cents).
FEES_MIN_WITHDRAWAL = env_decimal("FEES_MIN_WITHDRAWAL", "1.00")

# Real exchanges through ccxt (copytrading/exchanges/, docs/operations.md "Market data").
EXCHANGE_URL_OVERRIDE = env_str("EXCHANGE_URL_OVERRIDE")  # tests and drills: every API URL's host
EXCHANGE_WS_URL_OVERRIDE = env_str("EXCHANGE_WS_URL_OVERRIDE")  # the same for ccxt.pro's WebSocket URLs
FEED_MODE = env_str("FEED_MODE", "auto")  # feed_prices: auto (stream where ccxt.pro can), stream, poll
EXCHANGE_TIMEOUT_SECONDS = env_float("EXCHANGE_TIMEOUT_SECONDS", 10.0)
MARKET_DATA_EXCHANGE = env_str("MARKET_DATA_EXCHANGE")  # set: run_stack runs feed_prices, not the simulator
FEED_POLL_SECONDS = env_float("FEED_POLL_SECONDS", 2.0)
FEED_MAX_BACKOFF_SECONDS = env_float("FEED_MAX_BACKOFF_SECONDS", 60.0)
MARK_SANITY_BAND_PCT = env_decimal("MARK_SANITY_BAND_PCT", "10")
MARK_STALE_SECONDS = env_int("MARK_STALE_SECONDS", 60)
CANDLE_RETENTION_DAYS = env_int("CANDLE_RETENTION_DAYS", 90)

# --- logs and metrics (copytrading/observability; docs/operations.md "Logs", "Metrics") ---
# One line per record through structlog: JSON in services mode, a readable line
# embedded. Stdlib loggers (Django's, Celery's, ours) come out the same way.
LOG_FORMAT = env_str("LOG_FORMAT", "console" if EMBEDDED else "json")
try:
    LOGGING = logging_config(log_format=LOG_FORMAT, level=env_str("LOG_LEVEL", "INFO"))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# Celery keeps Django's logging instead of installing its own handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# /metrics (copytrading/observability/views.py): staff, this bearer token, or these networks.
METRICS_TOKEN = env_str("METRICS_TOKEN")
try:
    METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS")
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None

# --- notifications (copytrading/notifications) ------------------------------------
# E-mail: SMTP when EMAIL_HOST is set (production), else files under VAR_DIR/mail
# (one file per e-mail, embedded mode and development).
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_SECONDS", 10)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "copytrading@localhost")
# "Trade copied" notifications (one per copied trade per follower): off by default.
NOTIFY_TRADE_COPIED = env_bool("NOTIFY_TRADE_COPIED", False)

# --- live stream (copytrading/stream; docs/api.md, "Live stream") -------------------
# Notices reach the web processes through the channel layer (Redis), or, embedded,
# through a table the web process polls (separate processes share no memory).
STREAM_TRANSPORT = "layer" if REDIS_URL else "database"
STREAM_FLUSH_SECONDS = env_float("STREAM_FLUSH_SECONDS", 0.25)  # at most one frame per socket per this
STREAM_PING_SECONDS = env_float("STREAM_PING_SECONDS", 15)
STREAM_MAX_LAG_SECONDS = env_float("STREAM_MAX_LAG_SECONDS", 60)  # a pong later than this closes 4008
STREAM_RESUME_SECONDS = env_float("STREAM_RESUME_SECONDS", 30)  # a closed socket's streams are kept this long
STREAM_BUFFER = env_int("STREAM_BUFFER", 200)  # messages kept per stream for a resume
STREAM_AUTH_SECONDS = env_float("STREAM_AUTH_SECONDS", 10)  # time to send the auth message
STREAM_MAX_SOCKETS_PER_USER = env_int("STREAM_MAX_SOCKETS_PER_USER", 20)  # per web process
STREAM_POLL_SECONDS = env_float("STREAM_POLL_SECONDS", 0.2)  # embedded: how often the hub reads notices

# --- linked exchange accounts (copytrading/exchanges) ------------------------------
# EXCHANGE_SECRET_KEYS: Fernet keys, comma separated; the first encrypts, all decrypt
# (rotation: docs/operations.md). Unset, embedded mode and DEBUG use a key generated
# once into var/exchange_secret_key (with a warning when used); services mode without
# DEBUG has none and refuses to link (503 EXCHANGE_SECRETS_NOT_CONFIGURED): a key made
# on one host would leave the secrets unreadable on every other.
try:
    EXCHANGE_SECRET_KEYS = env_fernet_keys(
        "EXCHANGE_SECRET_KEYS", generated=VAR_DIR / "exchange_secret_key" if (EMBEDDED or DEBUG) else None
    )
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
EXCHANGE_SECRET_KEYS_GENERATED = not env_list("EXCHANGE_SECRET_KEYS") and bool(EXCHANGE_SECRET_KEYS)
# Each call to an exchange (ccxt's timeout) while linking or validating an account.
EXCHANGE_ACCOUNT_TIMEOUT_SECONDS = env_float("EXCHANGE_ACCOUNT_TIMEOUT_SECONDS", 3)
# Links and re-validations one user may make per minute (each asks the exchange).
EXCHANGE_ACCOUNT_CHECKS_PER_MINUTE = env_int("EXCHANGE_ACCOUNT_CHECKS_PER_MINUTE", 10)

# --- the exchange order submitter (copytrading/exchanges/submitter.py) -------------
# Orders in flight at once per exchange, per worker process (threads, one ccxt client each).
EXCHANGE_SUBMIT_CONCURRENCY = env_int("EXCHANGE_SUBMIT_CONCURRENCY", 64)
# Orders in flight at once per linked account (an account's orders otherwise go one after another).
EXCHANGE_ACCOUNT_CONCURRENCY = env_int("EXCHANGE_ACCOUNT_CONCURRENCY", 2)
# ccxt's timeout of each order call (create, look-up).
EXCHANGE_SUBMIT_TIMEOUT_SECONDS = env_float("EXCHANGE_SUBMIT_TIMEOUT_SECONDS", 5.0)
# Attempts to place an order (each one committed before it is sent) before it is `failed`.
EXCHANGE_SUBMIT_MAX_ATTEMPTS = env_int("EXCHANGE_SUBMIT_MAX_ATTEMPTS", 6)
# First retry delay (doubles per attempt, capped at EXCHANGE_SUBMIT_MAX_BACKOFF_SECONDS).
EXCHANGE_SUBMIT_BACKOFF_SECONDS = env_float("EXCHANGE_SUBMIT_BACKOFF_SECONDS", 0.5)
EXCHANGE_SUBMIT_MAX_BACKOFF_SECONDS = env_float("EXCHANGE_SUBMIT_MAX_BACKOFF_SECONDS", 30.0)
# The window an order request is valid in at the exchange (Binance's recvWindow): an
# order whose answer was lost is looked up no sooner than this after it was sent.
EXCHANGE_ORDER_RECV_WINDOW_SECONDS = env_float("EXCHANGE_ORDER_RECV_WINDOW_SECONDS", 5.0)
# A claimed order's lease: another submitter takes it over (looking it up first) after this.
EXCHANGE_SUBMIT_LEASE_SECONDS = env_float("EXCHANGE_SUBMIT_LEASE_SECONDS", 60.0)
# How long one submit task keeps retrying its orders before leaving them to the sweep.
EXCHANGE_SUBMIT_BUDGET_SECONDS = env_float("EXCHANGE_SUBMIT_BUDGET_SECONDS", 120.0)
# Orders one submit task claims at most (the sweep's batch).
EXCHANGE_SUBMIT_BATCH = env_int("EXCHANGE_SUBMIT_BATCH", 2000)
# The sweep leaves a pending order this long to the task dispatched for it.
EXCHANGE_SUBMIT_SWEEP_GRACE_SECONDS = env_float("EXCHANGE_SUBMIT_SWEEP_GRACE_SECONDS", 2.0)
# Markets an exchange's clients share, reloaded after this.
EXCHANGE_MARKETS_TTL_SECONDS = env_float("EXCHANGE_MARKETS_TTL_SECONDS", 3600.0)
# The exchange reconciliation (copytrading/exchanges/reconciliation.py): how often beat
# runs it (read by config/celery.py), and how old a pending/sent exchange order must be
# before its absence from the exchange's open orders is a finding (MISSING_ORDER).
EXCHANGE_RECONCILE_INTERVAL_SECONDS = env_int("EXCHANGE_RECONCILE_INTERVAL_SECONDS", 300)
EXCHANGE_RECONCILE_GRACE_SECONDS = env_int("EXCHANGE_RECONCILE_GRACE_SECONDS", 120)
