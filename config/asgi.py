import os

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The web process pools its database connections (see DB_POOL_MAX in settings).
os.environ.setdefault("DB_POOL_MAX", "8")
# Web requests are short: a statement limit and a request deadline (config/deadline.py)
# keep an outage from holding them; workers keep their own (longer) limits.
os.environ.setdefault("DB_STATEMENT_TIMEOUT_MS", "4000")
os.environ.setdefault("REQUEST_DEADLINE_SECONDS", "5")

# Static files are served by WhiteNoise's middleware (settings: DJANGO_SERVE_STATIC).
django.setup(set_prefix=False)  # what get_asgi_application() does, with our handler below

from config.sync_handler import SyncChainASGIHandler  # noqa: E402  (needs Django set up)

# The middleware chain and the view in one worker-thread hop per request (config/sync_handler.py).
django_asgi_app = SyncChainASGIHandler()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up)

from config.body_limit import BodyLimit, install_daphne_limit  # noqa: E402
from config.catalog_lane import CatalogLane  # noqa: E402
from config.deadline import RequestDeadline  # noqa: E402
from config.microcache import MicroCache  # noqa: E402

# Anonymous JSON reads of the catalog skip what does nothing for them (docs/decisions.md §96).
django_asgi_app = CatalogLane(django_asgi_app, workers=settings.DB_POOL_MAX or 4)

# Public catalog pages are the same for every anonymous reader (docs/decisions.md §23).
django_asgi_app = MicroCache(
    django_asgi_app,
    paths=["/api/v1/catalog"],
    ttl=settings.CATALOG_CACHE_SECONDS,
    session_cookie=settings.SESSION_COOKIE_NAME,
)

# Around the micro-cache, so one waiting on a stuck refresh is bounded too.
django_asgi_app = RequestDeadline(django_asgi_app, seconds=settings.REQUEST_DEADLINE_SECONDS)
# A body over the limit is refused before it is buffered (docs/decisions.md).
install_daphne_limit(settings.MAX_REQUEST_BODY_BYTES)
django_asgi_app = BodyLimit(django_asgi_app, limit=settings.MAX_REQUEST_BODY_BYTES)

from copytrading.observability.middleware import RequestContext  # noqa: E402
from copytrading.stream.routing import websocket_application  # noqa: E402

# WebSockets: /ws/stream/ (the live stream); any other path is closed with 4404.
# Outermost: every answer, the deadline's and the micro-cache's included,
# carries its X-Request-ID and every line it logs its request_id.
application = RequestContext(ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application()}))
