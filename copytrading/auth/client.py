"""The client address that throttles count against.

REMOTE_ADDR, unless the request came from a proxy named in ``TRUSTED_PROXIES``:
then ``X-Forwarded-For`` is read from the right, skipping trusted proxies, and
the first address no trusted proxy vouches for is the client. Everything left of
it is whatever the client wrote, so a lie there changes nothing. IPv6 clients
are counted per /64, the block one subscriber usually holds."""

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _parse(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address, networks) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_address(request) -> str:
    remote = _parse(request.META.get("REMOTE_ADDR") or "")
    if remote is None:
        return "unknown"
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    client = remote
    if networks and _trusted(remote, networks):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
            address = _parse(hop)
            if address is None:
                break  # garbage written by the client: stop at the last good hop
            client = address
            if not _trusted(address, networks):
                break
    return address_group(str(client))


def forwarded_by_untrusted(request) -> bool:
    """The request carries ``X-Forwarded-For`` but REMOTE_ADDR is no trusted
    proxy: it came through a proxy we cannot believe (or a client wrote the
    header), so REMOTE_ADDR says nothing about the client."""
    if not request.META.get("HTTP_X_FORWARDED_FOR", "").strip():
        return False
    remote = _parse(request.META.get("REMOTE_ADDR") or "")
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    return remote is None or not _trusted(remote, networks)


def address_group(address: str | None) -> str:
    """A client address as throttles count it: IPv6 by its /64 (one host's
    usual share), IPv4 as is, an IPv4-mapped IPv6 as its IPv4; no address (a
    test client, a unix socket) is "unknown". A key it made maps to itself."""
    ip = _parse(address or "")
    if ip is None:
        try:
            network = ipaddress.ip_network((address or "").strip())
        except ValueError:
            return "unknown"
        return str(network) if network.version == 6 and network.prefixlen == 64 else "unknown"
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
