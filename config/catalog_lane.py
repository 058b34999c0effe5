"""A short lane for the hot uncached read: anonymous ``GET /api/v1/catalog``.

Such a request is the same for every reader (no user, no session, JSON), yet
through Django it took ~3 ms of CPU beyond the page's own work: Django's ASGI
handler (three hops to a worker thread and back, two tasks), sixteen
middlewares of which most do nothing for it (sessions, CSRF, authentication,
messages, the audit actor, static files) and DRF's dispatch (content
negotiation, authentication, permissions) (docs/decisions.md, §96).

Here, in one call on a worker thread, the request goes through the
middlewares that do something for it, in the settings' order: the request
and response metrics (django-prometheus, before and after), the security
headers (SSL redirect, HSTS, nosniff, referrer and opener policies), the
request deadline's database guard, the host check and Content-Length, and
X-Frame-Options; around the same page function the DRF view calls
(``catalog_api.cached_catalog_body``), rendered by DRF's JSON renderer, with
the headers the DRF view and the session middleware add (Allow, Vary). The
request id comes from the ASGI layer outside. A test holds every answer equal
to Django's, status, headers and body, byte for byte, and the metrics too.

Everything else goes to Django untouched: another path or method, an
Authorization header or any cookie, an Accept header other than none,
``*/*`` or ``application/json``, a ``format`` parameter, a body; a query the
catalog refuses (400, answered by the DRF view); and any request that fails
in the lane (e.g. the database is down), which Django then answers (such a
request is counted twice in django_http_requests_total*). The lane turns
itself off if the view gains throttles or authentication requirements.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse
from django.urls import resolve
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer

from copytrading.outages import is_outage, service_unavailable_json
from portfolios import catalog
from portfolios.catalog_api import CatalogListView, cached_catalog_body

Scope = dict
ASGIApp = Callable[..., Awaitable[None]]

PATH = "/api/v1/catalog"
# What DRF's content negotiation answers with JSON (its first renderer) for this view.
JSON_ACCEPTS = frozenset({None, b"*/*", b"application/json"})
# The middlewares (of settings.MIDDLEWARE, in its order) that act on an
# anonymous JSON GET of the catalog; the others do nothing for it.
LANE_MIDDLEWARE = (
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # The request id where no ASGI layer outside bound it (config/asgi.py's does).
    "copytrading.observability.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.deadline.DeadlineGuardMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
)


def lane_applies() -> bool:
    """The lane answers only what the DRF view would answer the same way for anybody."""
    view = CatalogListView
    return (
        not view.throttle_classes
        and list(view.permission_classes) == [AllowAny]
        and view.renderer_classes
        and view.renderer_classes[0] is JSONRenderer
        and getattr(settings, "REST_FRAMEWORK", {}).get("URL_FORMAT_OVERRIDE", "format") == "format"
        and all(path in settings.MIDDLEWARE for path in LANE_MIDDLEWARE)
    )


log = logging.getLogger(__name__)


class CatalogLane:
    def __init__(self, app: ASGIApp, *, workers: int = 8) -> None:
        self.app = app
        self.enabled = lane_applies()
        if self.enabled:  # off, it builds nothing that could fail the process's start
            self._build(workers)

    def _build(self, workers: int) -> None:
        self.match = resolve(PATH)
        view = CatalogListView()
        view.setup(None)  # as as_view() does: HEAD where there is GET
        self.allow = ", ".join(view.allowed_methods)
        self.renderer = JSONRenderer()
        # The settings' order, whatever LANE_MIDDLEWARE lists first.
        ordered = [path for path in settings.MIDDLEWARE if path in LANE_MIDDLEWARE]
        handler: Callable = self._view
        instances = {}
        for path in reversed(ordered):
            handler = instances[path] = import_string(path)(handler)
        self.chain = handler
        self.metrics_after = instances["django_prometheus.middleware.PrometheusAfterMiddleware"]
        # One call per request: no thread affinity needed, and no more requests at
        # once than the database pool serves.
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="catalog-lane")

    def _eligible(self, scope: Scope) -> bool:
        if not (
            self.enabled
            and scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] == PATH
            and not scope.get("root_path")
        ):
            return False
        accept = None
        for name, value in scope.get("headers", ()):
            # Any cookie: the session's, or the CSRF one (a malformed one is replaced in the answer).
            if name in (b"authorization", b"cookie", b"transfer-encoding"):
                return False
            if name == b"content-length" and value.strip() != b"0":
                return False
            if name == b"accept":
                if accept is not None:
                    return False
                accept = value
        return accept in JSON_ACCEPTS

    async def __call__(self, scope: Scope, receive, send) -> None:
        if not self._eligible(scope):
            return await self.app(scope, receive, send)
        answer = await sync_to_async(self._answer, thread_sensitive=False, executor=self.executor)(scope)
        if answer is None:
            return await self.app(scope, receive, send)
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> tuple[int, list, bytes] | None:
        """(status, headers, body), or None for Django to answer."""
        response = None
        try:
            signals.request_started.send(sender=self.__class__, scope=scope)
            request = ASGIRequest(scope, io.BytesIO())
            request.get_host()  # a host not allowed: Django's 400 (and its security log)
            if "format" in request.GET:
                return None
            # Before anything is counted: a query the catalog refuses is the DRF view's 400.
            request.catalog_query = catalog.catalog_query(request.GET)
            if request.catalog_query.list == "favorites":
                return None  # signed in only: the DRF view's 401
            request.resolver_match = self.match
            response = self.chain(request)
            if response.streaming or response.cookies:
                return None
            headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
            return response.status_code, headers, response.content
        except Exception:
            log.debug("catalog lane handed a request to Django", exc_info=True)
            return None
        finally:
            if response is None:
                signals.request_finished.send(sender=self.__class__)
            else:
                response.close()  # request_finished: the database connection goes back to its pool

    def _view(self, request) -> HttpResponse:
        """What the DRF view answers an anonymous JSON GET."""
        self.metrics_after.process_view(request, self._view, (), {})
        try:
            body = cached_catalog_body(request.catalog_query, None)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # The database is down, slow or past the request's deadline: the API's 503
            # (through the middlewares), never the same query again through Django.
            log.error("catalog unavailable: %r", exc)
            response = service_unavailable_json()
            patch_vary_headers(response, ("Accept", "Cookie"))
            return response
        response = HttpResponse(self.renderer.render(body), content_type="application/json")
        # DRF's answer is a template response without a template: django-prometheus counts it
        # under templatename "None" (Django calls the hook for a response with render()).
        response.template_name = None
        self.metrics_after.process_template_response(request, response)
        patch_vary_headers(response, ("Accept",))
        response["Allow"] = self.allow
        patch_vary_headers(response, ("Cookie",))  # the session middleware's: DRF's session check read it
        return response
