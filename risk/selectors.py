"""Set-based reads for the watchdog and the pre-trade checks: a constant
number of queries for any number of copy wallets."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import BigIntegerField, F, Q, Sum
from django.db.models.functions import Cast, Round

from copytrading import live
from copytrading.models import (
    Account,
    Holding,
    Instrument,
    Order,
    Position,
    PositionStatus,
    Product,
    Transfer,
    TransferKind,
)
from copytrading.selectors import primary_pairs
from copytrading.valuation import position_unrealized
from risk import rules
from risk.models import RiskEvent, RiskLimits, RiskState

ZERO = Decimal(0)

# Money paid into or taken out of a copy wallet: not a gain or a loss.
FLOW_KINDS = (TransferKind.COPY_FUND, TransferKind.COPY_RETURN, TransferKind.DEPOSIT, TransferKind.WITHDRAWAL)


def margin_call_default() -> Decimal:
    """The platform's margin-call threshold (live settings; a subscription may set its own)."""
    return live.current().margin_call_level_pct


@dataclass(slots=True)
class WalletFigures:
    """A copy wallet valued at the current marks."""

    balance: Decimal = ZERO
    open_positions: int = 0
    used_margin: Decimal = ZERO  # Σ margin of the open positions
    unrealized_pnl: Decimal = ZERO  # Σ of the open positions, each loss capped at its margin
    exposure: Decimal = ZERO  # Σ quantity x mark of the open positions
    holdings_value: Decimal = ZERO  # spot holdings at the mark of their primary-currency pair
    # Spot holdings at the mark less their cost basis (an asset without a
    # priced primary-currency pair counts 0: it is valued at its cost).
    spot_unrealized: Decimal = ZERO
    held_assets: int = 0  # spot holdings of at least their pair's minimum quantity: positions too
    # From the ledger and the day's spot sells (``watchdog_figures`` only):
    realized_today: Decimal = ZERO  # REALIZED_PNL in minus out, plus spot sells' realized PnL, since the day started
    flows: Decimal = ZERO  # capital paid in minus taken out, ever

    @property
    def equity(self) -> Decimal:
        return self.balance + self.unrealized_pnl + self.holdings_value

    @property
    def total_unrealized(self) -> Decimal:
        """What the unrealized daily loss limit measures: margin and spot."""
        return self.unrealized_pnl + self.spot_unrealized


def wallet_figures(account_ids: Sequence[int]) -> dict[int, WalletFigures]:
    """Every wallet of ``account_ids`` valued at the marks, in a constant
    number of queries (one on PostgreSQL)."""
    return _figures(account_ids, day_start=None)


def watchdog_figures(account_ids: Sequence[int], *, day_start: datetime) -> dict[int, WalletFigures]:
    """``wallet_figures`` plus the realized PnL since ``day_start`` (margin
    from the ledger's REALIZED_PNL transfers, spot from the day's spot sells,
    ``Order.realized_pnl``: a spot sell moves no REALIZED_PNL transfer, a
    margin order has a position, so nothing counts twice) and the net
    capital flows of each wallet."""
    return _figures(account_ids, day_start=day_start)


def _figures(account_ids: Sequence[int], *, day_start: datetime | None) -> dict[int, WalletFigures]:
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    if connection.vendor == "postgresql":
        return _figures_sql(ids, day_start)
    figures = {
        pk: WalletFigures(balance=balance)
        for pk, balance in Account.objects.filter(pk__any=ids).values_list("pk", "balance")
    }
    _position_sums_python(ids, figures)
    _holdings_value(ids, figures)
    if day_start is not None:
        for pk, (realized, flows) in _ledger_sums(ids, day_start).items():
            f = figures.setdefault(pk, WalletFigures())
            f.realized_today, f.flows = realized, flows
        for pk, realized in _spot_realized_python(ids, day_start).items():
            figures.setdefault(pk, WalletFigures()).realized_today += realized
    return figures


def _figures_sql(ids: list[int], day_start: datetime | None) -> dict[int, WalletFigures]:
    """One statement: PostgreSQL sums numerics exactly, so positions are
    aggregated per wallet in the database, and the ids travel once as an
    array literal (cheaper to send than 5,000 bound integers)."""
    t = {
        m.__name__: connection.ops.quote_name(m._meta.db_table) for m in (Account, Position, Instrument, Holding, Order)
    }
    params = {
        "ids": "{" + ",".join(map(str, ids)) + "}",
        "open": PositionStatus.OPEN,
        "spot": Product.SPOT,
        "quote": settings.PRIMARY_CURRENCY,
    }
    ledger_cte, ledger_join, ledger_cols = "", "", "0, 0"
    if day_start is not None:
        transfer = connection.ops.quote_name(Transfer._meta.db_table)
        wanted = "(kind = ANY(%(flows)s) OR (kind = %(pnl)s AND created_at >= %(day)s))"
        ledger_cte = f""",
        moves AS (
            SELECT credit_id AS account_id, amount AS signed, kind FROM {transfer}
            WHERE credit_id = ANY(%(ids)s::bigint[]) AND {wanted}
            UNION ALL
            SELECT debit_id, -amount, kind FROM {transfer}
            WHERE debit_id = ANY(%(ids)s::bigint[]) AND {wanted}
        ),
        ledger AS (
            SELECT account_id, sum(signed) FILTER (WHERE kind = %(pnl)s) AS realized,
                   sum(signed) FILTER (WHERE kind <> %(pnl)s) AS flows
            FROM moves GROUP BY account_id
        ),
        spot AS (
            -- The day's spot sells, by the partial index spot_realization_by_day.
            SELECT account_id, sum(realized_pnl) AS realized FROM {t["Order"]}
            WHERE account_id = ANY(%(ids)s::bigint[]) AND realized_pnl IS NOT NULL AND position_id IS NULL
              AND filled_at >= %(day)s
            GROUP BY account_id
        )"""
        ledger_join = "LEFT JOIN ledger l ON l.account_id = a.id LEFT JOIN spot ON spot.account_id = a.id"
        ledger_cols = "coalesce(l.realized, 0) + coalesce(spot.realized, 0), coalesce(l.flows, 0)"
        params |= {"flows": list(FLOW_KINDS), "pnl": TransferKind.REALIZED_PNL, "day": day_start}
    sql = f"""
        WITH pos AS (
            SELECT p.account_id, count(*) AS n, sum(p.margin) AS margin,
                   sum(greatest(CASE WHEN p.side = 'long' THEN (i.mark_price - p.entry_price) * p.quantity
                                     ELSE (p.entry_price - i.mark_price) * p.quantity END,
                                -p.margin)) AS pnl,
                   sum(p.quantity * i.mark_price) AS exposure
            FROM {t["Position"]} p JOIN {t["Instrument"]} i ON i.id = p.instrument_id
            WHERE p.account_id = ANY(%(ids)s::bigint[]) AND p.status = %(open)s
            GROUP BY p.account_id
        ),
        held AS (
            SELECT h.account_id,
                   sum(coalesce(h.quantity * pair.mark_price, h.cost_basis)) AS value,
                   sum(coalesce(h.quantity * pair.mark_price - h.cost_basis, 0)) AS pnl,
                   count(*) FILTER (WHERE h.quantity >= coalesce(pair.min_qty, 0)) AS assets
            FROM {t["Holding"]} h
            LEFT JOIN LATERAL (
                SELECT i.mark_price, i.min_qty FROM {t["Instrument"]} i
                WHERE i.product = %(spot)s AND i.quote = %(quote)s AND i.base = h.asset AND i.mark_price IS NOT NULL
                ORDER BY i.id LIMIT 1
            ) pair ON true
            WHERE h.account_id = ANY(%(ids)s::bigint[]) AND h.quantity > 0
            GROUP BY h.account_id
        ){ledger_cte}
        SELECT a.id, a.balance, coalesce(pos.n, 0), coalesce(pos.margin, 0), coalesce(pos.pnl, 0),
               coalesce(pos.exposure, 0), coalesce(held.value, 0), coalesce(held.pnl, 0),
               coalesce(held.assets, 0), {ledger_cols}
        FROM {t["Account"]} a
        LEFT JOIN pos ON pos.account_id = a.id
        LEFT JOIN held ON held.account_id = a.id
        {ledger_join}
        WHERE a.id = ANY(%(ids)s::bigint[])
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0]: WalletFigures(*row[1:]) for row in cursor.fetchall()}


def _position_sums_python(ids: list[int], figures: dict[int, WalletFigures]) -> None:
    """SQLite would do the arithmetic in binary floats: sum in Decimal here
    (embedded mode is small, one row per position is fine)."""
    rows = Position.objects.filter(account_id__any=ids, status=PositionStatus.OPEN).values_list(
        "account_id", "side", "quantity", "entry_price", "margin", "instrument__mark_price"
    )
    for account_id, side, quantity, entry, margin, mark in rows:
        f = figures.setdefault(account_id, WalletFigures())
        f.open_positions += 1
        f.used_margin += margin
        f.unrealized_pnl += position_unrealized(side, quantity, entry, mark, margin)
        f.exposure += quantity * mark


def _holdings_value(ids: list[int], figures: dict[int, WalletFigures]) -> None:
    holdings = list(
        Holding.objects.filter(account_id__any=ids, quantity__gt=0).values_list(
            "account_id", "asset", "quantity", "cost_basis"
        )
    )
    if not holdings:
        return
    pairs = primary_pairs(asset for _, asset, _, _ in holdings)
    for account_id, asset, quantity, cost_basis in holdings:
        f = figures.setdefault(account_id, WalletFigures())
        pair = pairs.get(asset)
        if pair is None:
            # An asset without a priced pair is held at what it cost.
            f.holdings_value += cost_basis
            f.held_assets += 1
            continue
        mark, min_qty = pair
        f.holdings_value += quantity * mark
        f.spot_unrealized += quantity * mark - cost_basis
        # Dust (less than the pair's minimum quantity) is no position.
        f.held_assets += int(quantity >= min_qty)


def _spot_realized_python(ids: list[int], day_start: datetime) -> dict[int, Decimal]:
    """Σ realized PnL of each wallet's spot sells since ``day_start``, summed
    in Decimal (SQLite would sum binary floats)."""
    sums: dict[int, Decimal] = {}
    for account_id, realized in Order.objects.filter(
        account_id__any=ids, realized_pnl__isnull=False, position__isnull=True, filled_at__gte=day_start
    ).values_list("account_id", "realized_pnl"):
        sums[account_id] = sums.get(account_id, ZERO) + realized
    return sums


def _ledger_sums(ids: list[int], day_start: datetime) -> dict[int, tuple[Decimal, Decimal]]:
    """(realized since ``day_start``, net flows) per wallet. SQLite would sum
    the amounts as binary floats: whole units of 1e-8 are summed instead."""
    units = Sum(Cast(Round(F("amount") * 10**8), output_field=BigIntegerField()))
    wanted = Q(kind__in=FLOW_KINDS) | Q(kind=TransferKind.REALIZED_PNL, created_at__gte=day_start)
    sums: dict[int, list[int]] = {}
    for column, sign in (("credit_id", 1), ("debit_id", -1)):
        rows = (
            Transfer.objects.filter(wanted, **{f"{column}__any": ids})
            .values(column, "kind")
            .annotate(total=units)
            .values_list(column, "kind", "total")
            .order_by()
        )
        for account_id, kind, total in rows:
            pair = sums.setdefault(account_id, [0, 0])
            pair[0 if kind == TransferKind.REALIZED_PNL else 1] += sign * total
    return {pk: (Decimal(r).scaleb(-8), Decimal(f).scaleb(-8)) for pk, (r, f) in sums.items()}


LIMIT_COLUMNS = (
    "subscription_id",
    "daily_loss_limit_realized",
    "daily_loss_limit_unrealized",
    "margin_call_level_pct",
    "max_drawdown_pct",
    "max_open_positions",
    "max_exposure_pct",
)


def watchdog_limits(subscription_ids: Sequence[int]) -> tuple[dict[int, rules.Limits], rules.Limits]:
    """The limits of the subscriptions that set any, and the limits of those
    that did not (only the default margin-call level)."""
    default_level = margin_call_default()
    found = {}
    for sid, realized, unrealized, level, drawdown, _, _ in RiskLimits.objects.filter(
        subscription_id__any=sorted(set(subscription_ids))
    ).values_list(*LIMIT_COLUMNS):
        found[sid] = rules.Limits(
            daily_loss_realized=realized,
            daily_loss_unrealized=unrealized,
            margin_call_level_pct=level if level is not None else default_level,
            max_drawdown_pct=drawdown,
        )
    return found, rules.Limits(margin_call_level_pct=default_level)


def pretrade_limits(subscription_ids: Sequence[int]) -> dict[int, rules.PreTradeLimits]:
    """The pre-trade limits of a chunk's subscriptions, in one query; a
    subscription missing from the result has none."""
    rows = (
        RiskLimits.objects.filter(subscription_id__any=list(subscription_ids))
        .filter(Q(max_open_positions__isnull=False) | Q(max_exposure_pct__isnull=False))
        .values_list("subscription_id", "max_open_positions", "max_exposure_pct")
    )
    return {sid: rules.PreTradeLimits(n, pct) for sid, n, pct in rows}


def pretrade_books(account_ids: Sequence[int]) -> dict[int, rules.Book]:
    """The books of a chunk's copy wallets for ``rules.pretrade_check``, in
    a constant number of queries. Spot holdings count as margin positions
    do: each asset held above dust is an open position, its value at the
    mark is exposure."""
    return {
        pk: rules.Book(
            open_positions=f.open_positions + f.held_assets, exposure=f.exposure + f.holdings_value, equity=f.equity
        )
        for pk, f in wallet_figures(account_ids).items()
    }


def pretrade_gate(targets: Sequence[tuple[int, int]]):
    """The pre-trade checks of one propagation chunk, loaded set-based (one
    query, two if any subscription has limits): ``targets`` are
    (subscription id, copy wallet id) pairs. Returns
    ``check(subscription_id, *, opens_position, notional) -> reason | None``
    (see ``rules.pretrade_check``); a subscription without limits always
    passes. The books are those before the chunk: an event gives each
    follower at most one copy."""
    limits = pretrade_limits([sid for sid, _ in targets])
    accounts = {sid: account_id for sid, account_id in targets if sid in limits}
    books = pretrade_books(list(accounts.values())) if accounts else {}
    empty = rules.Book(open_positions=0, exposure=ZERO, equity=ZERO)

    def check(subscription_id: int, *, opens_position: bool, notional: Decimal) -> str | None:
        found = limits.get(subscription_id)
        if found is None:
            return None
        book = books.get(accounts[subscription_id], empty)
        return rules.pretrade_check(found, book, opens_position=opens_position, notional=notional)

    return check


@dataclass(frozen=True)
class RiskOverview:
    """Why a subscription is (or is not) held by the watchdog, for the
    follower's subscription page and the back office drill-down."""

    limits: RiskLimits | None
    paused_by_rule: str
    paused_at: datetime | None
    recent_events: list[RiskEvent]


def risk_overview(subscription_id: int, *, events: int = 10) -> RiskOverview:
    state = RiskState.objects.filter(pk=subscription_id).first()
    return RiskOverview(
        limits=RiskLimits.objects.filter(pk=subscription_id).first(),
        paused_by_rule=state.paused_by_rule if state else "",
        paused_at=state.paused_at if state else None,
        recent_events=list(RiskEvent.objects.filter(subscription_id=subscription_id).order_by("-id")[:events]),
    )
