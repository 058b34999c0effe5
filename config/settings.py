"""The one settings module. Everything configurable comes from the environment.

Two modes share one code path:
- services mode: DATABASE_URL and REDIS_URL are set (PostgreSQL, Redis broker,
  Redis channel layer and cache);
- embedded mode: nothing is set (SQLite file under var/, a filesystem Celery
  broker under var/, in-memory channel layer and cache).
"""

from pathlib import Path

import dj_database_url

from config.env import env_bool, env_decimal, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
EMBEDDED = not DATABASE_URL

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_filters",
    "graphene_django",
    "django_celery_beat",
    "channels",
    "copytrading",
    "risk",
    "fees",
    "portfolios",
    "followers",
    "backoffice",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
            ],
        },
    },
]

# A psycopg connection pool of at most DB_POOL_MAX connections per process (0:
# none, persistent connections instead). The web process turns it on (config/asgi.py):
# Django's ASGI handler runs each request in a thread of its own, so a persistent
# per-thread connection is never reused and every request would leak one.
DB_POOL_MAX = env_int("DB_POOL_MAX", 0)
if DATABASE_URL and DB_POOL_MAX > 0:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DB_POOL_MAX, "timeout": 10}
elif DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Let the ASGI app serve static files itself (no reverse proxy in front).
SERVE_STATIC = env_bool("DJANGO_SERVE_STATIC", EMBEDDED)

# --- cache and channel layer -------------------------------------------------
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery --------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "broker"
    (_queue_dir / "out").mkdir(parents=True, exist_ok=True)
    (_queue_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
        # The folder is polled; kombu's default 1 s would add a second per
        # hop (event -> chunk) to the demo's copy latency.
        "polling_interval": 0.1,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "copytrading.tasks.propagate_event": {"queue": "fanout"},
    "copytrading.tasks.propagate_chunk": {"queue": "fanout"},
    "risk.tasks.watchdog_tick": {"queue": "watchdog"},
    "risk.tasks.watchdog_drain": {"queue": "watchdog"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- REST framework ---------------------------------------------------------------
# How long a public catalog page is served from the cache (0: never cached).
CATALOG_CACHE_SECONDS = env_int("CATALOG_CACHE_SECONDS", 5)

# GraphQL at /graphql/ (read side; config/schema.py).
GRAPHENE = {"SCHEMA": "config.schema.schema"}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "copytrading.api_schema.PagedAutoSchema",
    "EXCEPTION_HANDLER": "copytrading.api_errors.exception_handler",
    # JSON bodies with NUL or unpaired surrogates are refused (copytrading/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "copytrading.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Every list pages with cursors, the same way (copytrading/paging.py; docs/api.md "Paging").
    "DEFAULT_PAGINATION_CLASS": "copytrading.paging.CursorPagination",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Copy trading API",
    "DESCRIPTION": "Leaders trade; followers' isolated copy wallets mirror them.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- the product ----------------------------------------------------------------
PRIMARY_CURRENCY = env_str("PRIMARY_CURRENCY", "USDT")
FANOUT_CHUNK_SIZE = env_int("FANOUT_CHUNK_SIZE", 500)
FANOUT_ASYNC_COMMIT = env_bool("FANOUT_ASYNC_COMMIT", True)
PAPER_SPREAD_BPS = env_decimal("PAPER_SPREAD_BPS", "0")
PAPER_MAX_DEPOSIT = env_decimal("PAPER_MAX_DEPOSIT", "1000000")
MAX_PORTFOLIOS_PER_LEADER = env_int("MAX_PORTFOLIOS_PER_LEADER", 5)
# Private portfolios: wrong passcodes allowed per user (over all portfolios) and
# per portfolio (over all users) within the window, then a lockout.
PASSCODE_MAX_ATTEMPTS_PER_USER = env_int("PASSCODE_MAX_ATTEMPTS_PER_USER", 5)
PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO = env_int("PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO", 20)
PASSCODE_WINDOW_SECONDS = env_int("PASSCODE_WINDOW_SECONDS", 900)
PASSCODE_LOCKOUT_SECONDS = env_int("PASSCODE_LOCKOUT_SECONDS", 900)
RISK_WATCHDOG_INTERVAL_SECONDS = env_int("RISK_WATCHDOG_INTERVAL_SECONDS", 30)
RISK_WATCHDOG_CHUNK_SIZE = env_int("RISK_WATCHDOG_CHUNK_SIZE", 5000)
RISK_WATCHDOG_WORKERS = env_int("RISK_WATCHDOG_WORKERS", 2)
RISK_MARGIN_CALL_LEVEL_PCT = env_decimal("RISK_MARGIN_CALL_LEVEL_PCT", "110")
# Leader withdrawals of earned profit share: the smallest amount (after rounding down to cents).
FEES_MIN_WITHDRAWAL = env_decimal("FEES_MIN_WITHDRAWAL", "1.00")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
