"""Times in the reader's zone: ``static/web/app.js`` stores the browser's IANA
zone in the ``tz`` cookie; a name Python does not know is ignored (UTC)."""

import zoneinfo

from django.utils import timezone

COOKIE = "tz"


def reader_zone(name: str | None) -> zoneinfo.ZoneInfo | None:
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return None


class ReaderTimezone:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = None if request.path.startswith(("/api/", "/admin/")) else reader_zone(request.COOKIES.get(COOKIE))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
