"""One way to page every list of the API: keyset cursor pages.

A page is ``{"results": [...], "next_cursor": "<opaque>" | null}``. The query
takes ``limit`` (a whole number from 1 to MAX_LIMIT, default DEFAULT_LIMIT;
anything else is 400 ``INVALID_LIMIT``, never clamped) and ``cursor`` (the
previous page's ``next_cursor``; empty or absent is the first page; anything
this service did not give out for this list is 400 ``INVALID_CURSOR``).

Rows are ordered by a total order (ending in a unique column) and a cursor
holds the last row's keys, so the next page starts strictly after it: rows
inserted or deleted between two pages never repeat or hide another row.
Cursors are signed with the secret key and bound to the list they were made
for (its ``scope``), so a tampered or foreign cursor is refused rather than
silently read as a different position."""

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache, reduce
from typing import Any

from django.core import signing
from django.db.models import Q, QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from copytrading.errors import DomainError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SALT = "copytrading.paging.v1"
_WHOLE = re.compile(r"[0-9]{1,6}")

LIMIT_PARAMETER = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    description=f"rows per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); anything else is 400 INVALID_LIMIT",
)
CURSOR_PARAMETER = OpenApiParameter(
    "cursor",
    str,
    description="next_cursor of the previous page; empty or absent for the first page; "
    "a cursor this list did not give out is 400 INVALID_CURSOR",
)
PAGE_PARAMETERS = [LIMIT_PARAMETER, CURSOR_PARAMETER]


def invalid_limit() -> DomainError:
    return DomainError("INVALID_LIMIT", f"limit is a whole number from 1 to {MAX_LIMIT}.", field="limit")


def invalid_cursor() -> DomainError:
    return DomainError("INVALID_CURSOR", "The cursor is not one this list gave out.", field="cursor")


def parse_limit(raw: object) -> int:
    """``limit`` from a query string (or a GraphQL int); absent = default."""
    if raw is None:
        return DEFAULT_LIMIT
    if isinstance(raw, bool):
        raise invalid_limit()
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _WHOLE.fullmatch(raw):
        value = int(raw)
    else:  # "", "1.5", "-3", "1e3", " 5", "5_0": int() would take some of these
        raise invalid_limit()
    if not 1 <= value <= MAX_LIMIT:
        raise invalid_limit()
    return value


# --- cursors -------------------------------------------------------------------------


def _pack(value: Any) -> list:
    # Typed, so a Decimal or a datetime key comes back as what it was.
    if isinstance(value, bool) or value is None:
        raise TypeError(f"not a keyset value: {value!r}")
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, Decimal):
        return ["d", str(value)]
    if isinstance(value, datetime):
        return ["t", value.isoformat()]
    if isinstance(value, str):
        return ["s", value]
    raise TypeError(f"not a keyset value: {value!r}")


def _unpack(item: Any) -> Any:
    tag, value = item
    if tag == "i" and isinstance(value, int):
        return value
    if tag == "d" and isinstance(value, str):
        number = Decimal(value)
        if not number.is_finite():
            raise ValueError(value)
        return number
    if tag == "t" and isinstance(value, str):
        return datetime.fromisoformat(value)
    if tag == "s" and isinstance(value, str):
        return value
    raise ValueError(item)


def encode_cursor(scope: str, values: Sequence[Any]) -> str:
    # Not timestamped: the same row gives the same cursor (pages can be cached, and
    # a GraphQL cursor equals the REST one).
    return signing.Signer(salt=SALT).sign_object({"s": scope, "v": [_pack(v) for v in values]})


def decode_cursor(raw: str, scope: str, size: int | None) -> tuple:
    """The keys of a cursor given out for ``scope`` with ``size`` keys (None:
    any number, for a list that is empty now)."""
    try:
        body = signing.Signer(salt=SALT).unsign_object(raw)
        if not isinstance(body, dict) or body.get("s") != scope:
            raise invalid_cursor()
        values = body["v"]
        if not isinstance(values, list) or not values or (size is not None and len(values) != size):
            raise invalid_cursor()
        return tuple(_unpack(v) for v in values)
    except (signing.BadSignature, ValueError, TypeError, KeyError, InvalidOperation):
        raise invalid_cursor() from None


def read_cursor(params: Mapping[str, Any], scope: str, size: int | None) -> tuple:
    """The cursor's keys, or () for the first page (no or an empty cursor)."""
    raw = params.get("cursor")
    if raw is None or raw == "":
        return ()
    if not isinstance(raw, str):
        raise invalid_cursor()
    return decode_cursor(raw, scope, size)


def filter_choice(queryset: QuerySet, params: Mapping[str, Any], name: str, choices: Sequence[str]) -> QuerySet:
    """A list's optional ``?<name>=`` filter: absent keeps every row; anything
    but one of ``choices`` is 400 INVALID_CHOICE (never silently ignored)."""
    wanted = params.get(name)
    if wanted is None:
        return queryset
    if wanted not in choices:
        raise DomainError("INVALID_CHOICE", f"{name} is one of {', '.join(choices)}.", field=name)
    return queryset.filter(**{name: wanted})


# --- keyset ---------------------------------------------------------------------------


def keyset_after(ordering: Sequence[str], values: Sequence[Any]) -> Q:
    """Rows strictly after ``values`` in ``ordering`` ("-score", "id", ...):
    (k1 beyond v1) or (k1 = v1 and k2 beyond v2) or ..."""
    branches = []
    equal = Q()
    for term, value in zip(ordering, values, strict=True):
        column = term.lstrip("-")
        branches.append(equal & Q(**{f"{column}__{'lt' if term.startswith('-') else 'gt'}": value}))
        equal &= Q(**{column: value})
    return reduce(operator.or_, branches)


def key_of(row: Any, ordering: Sequence[str]) -> tuple:
    """The ordering's values of a row (a model instance or a dict)."""
    values = []
    for term in ordering:
        column = term.lstrip("-")
        if isinstance(row, Mapping):
            values.append(row[column])
            continue
        value = row
        for part in column.split("__"):
            value = getattr(value, part)
        values.append(value)
    return tuple(values)


class CursorPagination(BasePagination):
    """The one paginator of the API. ``ordering`` must be a total order (end
    in a unique column); ``scope`` names the list a cursor belongs to (by
    default the view's class)."""

    def __init__(self, *, ordering: Sequence[str] = ("-id",), scope: str | None = None) -> None:
        self.ordering = tuple(ordering)
        self.scope = scope
        self.next_cursor: str | None = None

    def _scope(self, view) -> str:
        if self.scope is not None:
            return self.scope
        return type(view).__name__ if view is not None else "list"

    def _page(self, rows: list, limit: int, scope: str, key: Callable[[Any], tuple]) -> list:
        more = len(rows) > limit
        rows = rows[:limit]
        self.next_cursor = encode_cursor(scope, key(rows[-1])) if more else None
        return rows

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        limit = parse_limit(request.query_params.get("limit"))
        scope = self._scope(view)
        after = read_cursor(request.query_params, scope, len(self.ordering))
        if after:
            queryset = queryset.filter(keyset_after(self.ordering, after))
        rows = list(queryset.order_by(*self.ordering)[: limit + 1])
        return self._page(rows, limit, scope, lambda row: key_of(row, self.ordering))

    def paginate_sequence(self, items: Sequence[Any], request, *, key: Callable[[Any], tuple], view=None) -> list:
        """A list built in Python (platform templates, replayed spot trades),
        paged by ``key`` ascending with the same cursors as a queryset."""
        limit = parse_limit(request.query_params.get("limit"))
        scope = self._scope(view)
        ordered = sorted(items, key=key)
        after = read_cursor(request.query_params, scope, len(key(ordered[0])) if ordered else None)
        if after:
            ordered = [item for item in ordered if key(item) > after]
        return self._page(ordered[: limit + 1], limit, scope, key)

    def get_paginated_response(self, data) -> Response:
        return Response({"results": data, "next_cursor": self.next_cursor})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results", "next_cursor"],
            "properties": {
                "results": schema,
                "next_cursor": {"type": "string", "nullable": True, "description": "null on the last page"},
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": LIMIT_PARAMETER.description,
                "schema": LIMIT_PARAMETER.type,
            },
            {"name": "cursor", "required": False, "in": "query", "description": CURSOR_PARAMETER.description,
             "schema": {"type": "string"}},
        ]  # fmt: skip


def queryset_page(
    queryset: QuerySet, serializer: type[serializers.Serializer], request, view, *, ordering: Sequence[str] = ("-id",)
) -> Response:
    """The common list answer: one page of ``queryset`` through ``serializer``."""
    paginator = CursorPagination(ordering=ordering)
    rows = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(rows, many=True).data)


@cache
def page_serializer(item: type[serializers.Serializer], name: str | None = None) -> type[serializers.Serializer]:
    """The schema of a page of ``item`` rows (one component per row type)."""
    base = name or item.__name__.removesuffix("Serializer")
    return type(
        f"{base}PageSerializer",
        (serializers.Serializer,),
        {
            "is_page": True,
            "results": item(many=True),
            "next_cursor": serializers.CharField(allow_null=True, help_text="null on the last page"),
            "__doc__": f"A page of {base} rows: pass next_cursor as cursor for the next one.",
        },
    )
