"""CSV of a report, streamed: rows come from the database in chunks (a
server-side cursor on PostgreSQL, ``.iterator(chunk_size=…)``) as plain
tuples, are formatted and written out a block of lines at a time, so memory
does not grow with the number of rows."""

import csv
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from backoffice.reports.kinds import Report
from copytrading.replicas import replica_alias

CHUNK_SIZE = 2000  # rows per database fetch
LINES_PER_BLOCK = 500  # CSV lines per piece of the response
# A cell starting with one of these is a formula to a spreadsheet (CSV
# injection): such text gets a leading apostrophe, shown but not evaluated.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value) -> str:
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


# By exact type: one dict lookup per value (a million rows of twenty columns).
_FORMATS: dict[type, Callable] = {
    type(None): lambda _: "",
    bool: lambda value: "true" if value else "false",
    int: str,
    Decimal: lambda value: format(value, "f"),
    datetime: lambda value: value.astimezone(UTC).isoformat(),
    date: date.isoformat,
    str: _text,
}


def cell(value) -> str:
    """One value as CSV text: decimals plain (never 1E+1), times ISO 8601 in
    UTC, booleans true/false, nothing as empty; text made safe for spreadsheets."""
    return _FORMATS.get(type(value), _text)(value)


class _Echo:
    """A file whose write returns the line (csv.writer formats, we stream)."""

    def write(self, value: str) -> str:
        return value


def csv_blocks(report: Report, rows: QuerySet, *, on_rows: Callable[[int], None] | None = None) -> Iterator[str]:
    """The report's header line, then its rows in blocks of CSV lines.
    ``on_rows(count so far)`` is called after each block (progress)."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(report.headers)
    count = 0
    block: list[str] = []
    formats = _FORMATS
    # An export reads a replica when there is one: a long scan there holds nothing back on the primary.
    for row in rows.using(replica_alias()).values_list(*report.lookups).iterator(chunk_size=CHUNK_SIZE):
        block.append(writer.writerow([formats.get(type(v), _text)(v) for v in row]))
        if len(block) == LINES_PER_BLOCK:
            count += len(block)
            yield "".join(block)
            block = []
            if on_rows is not None:
                on_rows(count)
    if block:
        count += len(block)
        yield "".join(block)
    if on_rows is not None:
        on_rows(count)


_END = object()


async def _in_thread(blocks: Iterator[str]) -> AsyncIterator[str]:
    """Serves a synchronous block iterator to an ASGI server one block at a
    time. Django's ASGI handler would otherwise read a synchronous iterator
    into a list first: the whole export in memory."""
    step = sync_to_async(next, thread_sensitive=True)
    try:
        while (block := await step(blocks, _END)) is not _END:
            yield block
    finally:
        await sync_to_async(getattr(blocks, "close", lambda: None), thread_sensitive=True)()


def filename(report: Report, *, now: datetime | None = None) -> str:
    return f"{report.kind}-{(now or timezone.now()).astimezone(UTC):%Y%m%dT%H%M%SZ}.csv"


def csv_response(request: HttpRequest, report: Report, blocks: Iterable[str]) -> StreamingHttpResponse:
    """A streamed ``text/csv`` download of ``blocks`` (sync under WSGI, async under ASGI)."""
    content = _in_thread(iter(blocks)) if isinstance(request, ASGIRequest) else blocks
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename(report)}"'
    response["Cache-Control"] = "no-store"
    return response
