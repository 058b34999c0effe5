"""The public catalog: lists, filters, multi-key sort and cursor pagination,
served from the precomputed stats rows; favorites. REST and GraphQL both call
``catalog_page`` with a ``CatalogQuery`` parsed by ``catalog_query``."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import F, QuerySet

from copytrading import paging
from copytrading.errors import DomainError, NotFound
from copytrading.money import parse_decimal
from copytrading.replicas import replica_alias
from portfolios.models import Favorite, Portfolio, PortfolioMode, PortfolioStats, PortfolioStatus, StatsLine

LISTS = ("margin", "spot", "all", "favorites")
# A list shows the portfolios that copy its line, with that line's figures.
LIST_MODES = {
    "margin": (PortfolioMode.MARGIN, PortfolioMode.ALL),
    "spot": (PortfolioMode.SPOT, PortfolioMode.ALL),
    "all": tuple(PortfolioMode.values),
    "favorites": tuple(PortfolioMode.values),
}
LIST_LINE = {"margin": StatsLine.MARGIN, "spot": StatsLine.SPOT, "all": StatsLine.ALL, "favorites": StatsLine.ALL}
SORT_COLUMNS = {
    "score": "score",
    "roi": "roi_pct",
    "pnl": "pnl",
    "followers": "follower_count",
    "win_rate": "win_rate_pct",
    "created_at": "portfolio__created_at",
}
SORT_ALIASES = {"newest": "-created_at", "oldest": "created_at"}
TIEBREAK = "portfolio_id"  # unique within a line: makes every sort a total order
RANGES = {  # query parameter prefix -> column
    "score": "score",
    "roi": "roi_pct",
    "pnl": "pnl",
    "win_rate": "win_rate_pct",
    "followers": "follower_count",
    "min_investment": "portfolio__min_investment",
    "profit_share": "portfolio__profit_share_pct",
}
INTEGER_RANGES = {"follower_count"}  # range columns holding whole numbers
PAGE_FIELDS = [
    "portfolio_id", "line", "pnl", "roi_pct", "win_rate_pct", "trade_count", "follower_count", "max_followers",
    "max_drawdown_pct", "score", "portfolio__name", "portfolio__description", "portfolio__mode",
    "portfolio__min_investment", "portfolio__profit_share_pct", "portfolio__created_at", "portfolio__leader__username",
]  # fmt: skip
DEFAULT_SORT = "-score"
DEFAULT_LIMIT = paging.DEFAULT_LIMIT  # the API's one paging rule (copytrading/paging.py)
MAX_LIMIT = paging.MAX_LIMIT
# Range filter bounds beyond every range column (MONEY: 20 integer digits, 8 places).
RANGE_LIMIT = Decimal(10) ** 20
RANGE_STEP = Decimal("0.00000001")


@dataclass(frozen=True)
class CatalogQuery:
    list: str = "all"
    modes: tuple[str, ...] = ()
    ranges: tuple[tuple[str, str, Decimal], ...] = ()  # (column, "gte"/"lte", bound)
    open_slots: bool | None = None
    sort: tuple[tuple[str, bool], ...] = (("score", True),)  # (key, descending)
    limit: int = DEFAULT_LIMIT
    after: tuple = field(default=())  # the cursor's key values

    @property
    def sort_signature(self) -> str:
        return ",".join(("-" if desc else "") + key for key, desc in self.sort)


def _invalid(code: str, detail: str, name: str) -> DomainError:
    return DomainError(code, detail, field=name)


_NUMBER = re.compile(r"^([-+]?(?:\d+(?:\.\d*)?|\.\d+))[eE]([-+]?\d+)$")


def _bound_value(raw: object) -> Decimal | None:
    """A range bound as a number; one whose exponent is past what Decimal can
    hold ("-63.4e976427205956701353887", schema-valid) is read as what it
    means here: beyond any bound (its sign kept) or, with a negative
    exponent, a tiny number of its sign."""
    value = parse_decimal(raw)
    if value is not None:
        return value
    match = _NUMBER.match(str(raw))
    if match is None:
        return None
    mantissa = Decimal(match.group(1))
    if not mantissa:
        return Decimal(0)
    tiny_or_huge = "1e-1000" if match.group(2).startswith("-") else "1e1000"
    return Decimal(tiny_or_huge).copy_sign(mantissa)


def _range_bound(value: Decimal, op: str) -> Decimal:
    """The same filter with a bound the database can take: "1e999999" or
    "1e-999999" would overflow PostgreSQL's numeric. Every range column has at
    most 20 integer digits and 8 decimal places, so clamping to +-10^20 and
    rounding toward the inside of the range (up for gte, down for lte) to 8
    places keeps exactly the same rows."""
    # adjusted() is the exponent of the leading digit: no arithmetic, so an
    # exponent past the context's limits ("6e654733813") cannot overflow here.
    if value and value.adjusted() >= RANGE_LIMIT.adjusted():
        return RANGE_LIMIT.copy_sign(value)
    with localcontext(prec=40):  # 20 + 8 digits may round up to 29
        return value.quantize(RANGE_STEP, rounding=ROUND_CEILING if op == "gte" else ROUND_FLOOR)


def parse_sort(raw: str) -> tuple[tuple[str, bool], ...]:
    keys = []
    for part in (p.strip() for p in raw.split(",")):
        part = SORT_ALIASES.get(part, part)
        key = part.lstrip("-")
        if key not in SORT_COLUMNS or part.count("-") > 1:
            raise _invalid(
                "INVALID_SORT", f"sort keys are {', '.join([*SORT_COLUMNS, 'newest'])}, '-' for descending.", "sort"
            )
        if any(k == key for k, _ in keys):
            raise _invalid("INVALID_SORT", f"sort key {key} is given twice.", "sort")
        keys.append((key, part.startswith("-")))
    return tuple(keys)


def catalog_query(params: Mapping[str, object]) -> CatalogQuery:
    """Validate query parameters (REST query string or GraphQL arguments)."""
    # A parameter given empty is not a parameter left out: "list=" is no list.
    list_name = str(params["list"] if params.get("list") is not None else "all")
    if list_name not in LISTS:
        raise _invalid("INVALID_LIST", f"list is one of {', '.join(LISTS)}.", "list")
    modes: tuple[str, ...] = ()
    if params.get("mode"):
        modes = tuple(str(params["mode"]).split(","))
        if any(m not in PortfolioMode.values for m in modes):
            raise _invalid("INVALID_MODE", f"mode is one or more of {', '.join(PortfolioMode.values)}.", "mode")
    ranges = []
    for prefix, column in RANGES.items():
        for suffix, op in (("min", "gte"), ("max", "lte")):
            name = f"{prefix}_{suffix}"
            raw = params.get(name)
            if raw is None or raw == "":
                continue
            value = _bound_value(raw)
            if value is None:
                raise _invalid("INVALID_FILTER", f"{name} must be a number.", name)
            bound = _range_bound(value, op)
            if column in INTEGER_RANGES:
                # Whole numbers: followers_min=1.5 keeps 2 and up, on every database and path.
                bound = bound.to_integral_value(rounding=ROUND_CEILING if op == "gte" else ROUND_FLOOR)
            ranges.append((column, op, bound))
    open_slots = params.get("has_open_slots")
    if isinstance(open_slots, str):
        if open_slots.lower() not in ("true", "false", "1", "0"):
            raise _invalid("INVALID_FILTER", "has_open_slots is true or false.", "has_open_slots")
        open_slots = open_slots.lower() in ("true", "1")
    sort = parse_sort(str(params.get("sort") or DEFAULT_SORT))
    limit = paging.parse_limit(params.get("limit"))
    query = CatalogQuery(list_name, modes, tuple(ranges), open_slots, sort, limit)
    after = paging.read_cursor(params, _cursor_scope(query), len(query.sort) + 1)
    if after:
        query = CatalogQuery(**{**query.__dict__, "after": after})
    return query


# --- cursors: the last row's sort keys, bound to the sort they were made for ---------


def _cursor_scope(query: CatalogQuery) -> str:
    return f"catalog:{query.sort_signature}"


def _ordering(query: CatalogQuery) -> list[str]:
    return [("-" if desc else "") + SORT_COLUMNS[key] for key, desc in query.sort] + [TIEBREAK]


def encode_cursor(row: PortfolioStats | Mapping, query: CatalogQuery) -> str:
    return paging.encode_cursor(_cursor_scope(query), paging.key_of(row, _ordering(query)))


# --- the page ----------------------------------------------------------------------------


@dataclass
class CatalogPage:
    rows: list  # PortfolioStats rows, or dicts of PAGE_FIELDS (``catalog_page(values=True)``)
    next_cursor: str | None
    favorite_ids: set[int]


def _filtered_rows(query: CatalogQuery, user=None) -> QuerySet[PortfolioStats]:
    # The public lists may lag a replica's delay (their figures are minutes old anyway);
    # a user's favorites are read where they were just added (read-your-writes).
    database = DEFAULT_DB_ALIAS if query.list == "favorites" else replica_alias()
    rows = PortfolioStats.objects.using(database).filter(
        line=LIST_LINE[query.list],
        portfolio__is_public=True,
        portfolio__status=PortfolioStatus.ACTIVE,
        portfolio__mode__in=LIST_MODES[query.list],
    )
    if query.list == "favorites":
        if user is None or not user.is_authenticated:
            raise DomainError("AUTHENTICATION_REQUIRED", "Sign in to see your favorites.", field="list", status=401)
        rows = rows.filter(portfolio__favorited_by__user=user)
    if query.modes:
        rows = rows.filter(portfolio__mode__in=query.modes)
    for column, op, value in query.ranges:
        rows = rows.filter(**{f"{column}__{op}": value})
    if query.open_slots is True:
        rows = rows.filter(follower_count__lt=F("max_followers"))
    elif query.open_slots is False:
        rows = rows.filter(follower_count__gte=F("max_followers"))
    if query.after:
        # Keyset: strictly after the cursor's row in the sort order (ties broken by id).
        rows = rows.filter(paging.keyset_after(_ordering(query), query.after))
    return rows.order_by(*_ordering(query))


def catalog_rows(query: CatalogQuery, user=None) -> QuerySet[PortfolioStats]:
    # Only what a page shows: the equity curve and the users' other columns stay behind.
    return _filtered_rows(query, user).select_related("portfolio", "portfolio__leader").only(*PAGE_FIELDS)


# --- the public page in one hand-written statement (PostgreSQL) ------------------------
# Building and compiling the ORM's queryset and converting its rows was about
# 2.5 ms of an uncached page's ~10 ms of CPU, the statement itself ~1 ms
# (docs/decisions.md §96). The statement is the one the ORM writes for
# ``_filtered_rows(...).values(*PAGE_FIELDS)`` (same joins, conditions, order
# and limit, so the same plan on the sort indexes); a test holds the two equal
# row for row. Other databases (SQLite, embedded) and the favorites list keep the ORM.


def _sql_column(path: str) -> str:
    """A PAGE_FIELDS / SORT_COLUMNS / RANGES path as its quoted table.column."""
    model, parts = PortfolioStats, path.split("__")
    for part in parts[:-1]:
        model = model._meta.get_field(part).related_model
    column = model._meta.get_field(parts[-1]).column
    return f'"{model._meta.db_table}"."{column}"'


_STATS = PortfolioStats._meta.db_table
_PORTFOLIO = Portfolio._meta.db_table
_LEADER = Portfolio._meta.get_field("leader").related_model._meta.db_table
_PAGE_FROM = (
    f'SELECT {", ".join(_sql_column(f) for f in PAGE_FIELDS)} FROM "{_STATS}" '
    f'INNER JOIN "{_PORTFOLIO}" ON ("{_STATS}"."portfolio_id" = "{_PORTFOLIO}"."id") '
    f'INNER JOIN "{_LEADER}" ON ("{_PORTFOLIO}"."leader_id" = "{_LEADER}"."id") '
)


def _page_sql(query: CatalogQuery) -> tuple[str, list]:
    """The statement and parameters of one public page (``query.limit + 1`` rows)."""
    where = [f"{_sql_column('line')} = %s", f"{_sql_column('portfolio__is_public')}"]
    params: list = [LIST_LINE[query.list]]
    mode = _sql_column("portfolio__mode")
    for modes in (LIST_MODES[query.list], query.modes) if query.modes else (LIST_MODES[query.list],):
        where.append(f"{mode} IN ({', '.join(['%s'] * len(modes))})")
        params.extend(modes)
    where.append(f"{_sql_column('portfolio__status')} = %s")
    params.append(PortfolioStatus.ACTIVE)
    for column, op, value in query.ranges:
        where.append(f"{_sql_column(column)} {'>=' if op == 'gte' else '<='} %s")
        params.append(value)
    if query.open_slots is not None:
        op = "<" if query.open_slots else ">="
        where.append(f"{_sql_column('follower_count')} {op} {_sql_column('max_followers')}")
    ordering = _ordering(query)
    if query.after:
        # Keyset, as paging.keyset_after writes it: (k1 beyond v1) or (k1 = v1 and k2 beyond v2) ...
        branches, equal = [], []
        for term, value in zip(ordering, query.after, strict=True):
            column = _sql_column(term.lstrip("-"))
            branches.append(" AND ".join([*equal, f"{column} {'<' if term.startswith('-') else '>'} %s"]))
            params.extend([*query.after[: len(equal)], value])
            equal.append(f"{column} = %s")
        where.append("(" + " OR ".join(f"({b})" for b in branches) + ")")
    order = ", ".join(_sql_column(t.lstrip("-")) + (" DESC" if t.startswith("-") else " ASC") for t in ordering)
    params.append(query.limit + 1)
    return f"{_PAGE_FROM}WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %s", params


def _page_rows(query: CatalogQuery, user) -> list[dict]:
    """Up to ``query.limit + 1`` rows as dicts of PAGE_FIELDS."""
    database = DEFAULT_DB_ALIAS if query.list == "favorites" else replica_alias()
    if query.list == "favorites" or connections[database].vendor != "postgresql":
        return list(_filtered_rows(query, user).values(*PAGE_FIELDS)[: query.limit + 1])
    # Django's cursor: the query is counted (metrics) and the request deadline's guard applies.
    with connections[database].cursor() as cursor:
        cursor.execute(*_page_sql(query))
        return [dict(zip(PAGE_FIELDS, row, strict=True)) for row in cursor.fetchall()]


def catalog_page(query: CatalogQuery, user=None, *, values: bool = False) -> CatalogPage:
    """One page (one query, plus one for the user's favorites among it).
    ``values``: rows as dicts of PAGE_FIELDS, not model instances. The REST
    list reads them so: building three model instances per row was a fifth
    of an uncached page's time (docs/decisions.md §90)."""
    if values:
        rows = _page_rows(query, user)
    else:
        rows = list(catalog_rows(query, user)[: query.limit + 1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    favorites: set[int] = set()
    if user is not None and user.is_authenticated and rows:
        favorites = favorite_ids(user, [r["portfolio_id"] if values else r.portfolio_id for r in rows])
    return CatalogPage(rows, encode_cursor(rows[-1], query) if more else None, favorites)


# --- favorites ------------------------------------------------------------------------------


def favorite_ids(user, portfolio_ids: list[int]) -> set[int]:
    """Which of these portfolios the user marked (one query)."""
    return set(
        Favorite.objects.filter(user=user, portfolio_id__in=portfolio_ids).values_list("portfolio_id", flat=True)
    )


def _catalog_portfolio(portfolio_id: int) -> Portfolio:
    portfolio = Portfolio.objects.filter(pk=portfolio_id, is_public=True).first()
    if portfolio is None:
        raise NotFound("portfolio", field="portfolio")
    return portfolio


@transaction.atomic
def favorite_add(*, user, portfolio_id: int) -> tuple[Favorite, bool]:
    """Idempotent: adding a favorite twice keeps one."""
    portfolio = _catalog_portfolio(portfolio_id)
    try:
        with transaction.atomic():
            return Favorite.objects.get_or_create(user=user, portfolio=portfolio)
    except IntegrityError:  # a parallel add won the unique index
        return Favorite.objects.get(user=user, portfolio=portfolio), False


@transaction.atomic
def favorite_remove(*, user, portfolio_id: int) -> bool:
    deleted, _ = Favorite.objects.filter(user=user, portfolio_id=portfolio_id).delete()
    return deleted > 0
