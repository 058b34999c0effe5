"""``/metrics``: Prometheus's text format, not public.

Allowed for a staff user's session, a bearer token equal to ``METRICS_TOKEN``
(compared in constant time), or a client address inside
``METRICS_ALLOWED_NETWORKS`` (the client address as the login throttle sees
it: ``X-Forwarded-For`` only from ``TRUSTED_PROXIES``). A request forwarded
by a proxy that is not trusted is never allowed by network: behind a load
balancer on an allowed network, REMOTE_ADDR is the balancer's. Anything else is
a 403 in the API's error shape; a wrong token too, so a scraper's mistake is loud."""

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.error_views import api_error
from copytrading.auth.client import client_address, forwarded_by_untrusted
from copytrading.observability import metrics

FORBIDDEN_DETAIL = "Metrics are for staff, the metrics token or an allowed network."


@lru_cache(maxsize=4)
def _networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _address_allowed(request: HttpRequest) -> bool:
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    if not networks or forwarded_by_untrusted(request):
        return False
    group = client_address(request)  # an address, an IPv6 /64, or "unknown"
    try:
        address = ipaddress.ip_address(group)
    except ValueError:
        try:
            block = ipaddress.ip_network(group)
        except ValueError:
            return False
        return any(block.version == n.version and block.subnet_of(n) for n in networks)
    return any(address.version == n.version and address in n for n in networks)


def _token_state(request: HttpRequest) -> bool | None:
    """True: the right bearer token; False: a bearer token, wrong (or none is
    configured); None: no bearer token sent."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    expected = settings.METRICS_TOKEN
    return bool(expected) and hmac.compare_digest(presented.strip().encode(), expected.encode())


def metrics_access_allowed(request: HttpRequest) -> bool:
    token = _token_state(request)
    if token is not None:
        return token
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return _address_allowed(request)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_access_allowed(request):
        return api_error(403, FORBIDDEN_DETAIL, "METRICS_FORBIDDEN")
    return HttpResponse(generate_latest(metrics.registry()), content_type=CONTENT_TYPE_LATEST)
