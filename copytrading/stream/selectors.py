"""What the stream's core topics read from the database (in a worker thread,
never per tick)."""

from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.conf import settings

from copytrading.models import Account, AccountKind, Holding, Instrument, Position, PositionStatus, Product
from copytrading.stream.book import Book, HoldingRow, PositionRow


def book_load(account_ids: Sequence[int]) -> Book:
    """The open positions and the spot holdings above zero of these accounts,
    two queries (plus one for the pairs that value the holdings)."""
    if not account_ids:
        return Book()
    positions = [
        PositionRow(*row)
        for row in Position.objects.filter(account_id__in=list(account_ids), status=PositionStatus.OPEN)
        .order_by("pk")
        .values_list(
            "pk",
            "account_id",
            "instrument_id",
            "instrument__symbol",
            "side",
            "quantity",
            "entry_price",
            "leverage",
            "margin",
        )
    ]
    rows = list(
        Holding.objects.filter(account_id__in=list(account_ids), quantity__gt=0)
        .order_by("account_id", "asset")
        .values_list("account_id", "asset", "quantity", "cost_basis")
    )
    pairs = pair_ids({asset for _, asset, _, _ in rows})
    holdings = [HoldingRow(a, asset, q, cost, pairs.get(asset)) for a, asset, q, cost in rows]
    return Book(positions, holdings)


def pair_ids(assets: Iterable[str]) -> dict[str, int]:
    """The spot pair quoted in the primary currency that values each asset (the
    lowest id, as copytrading.selectors.primary_pairs)."""
    wanted = sorted(set(assets))
    if not wanted:
        return {}
    pairs: dict[str, int] = {}
    for base, pk in (
        Instrument.objects.filter(product=Product.SPOT, quote=settings.PRIMARY_CURRENCY, base__in=wanted)
        .order_by("pk")
        .values_list("base", "pk")
    ):
        pairs.setdefault(base, pk)
    return pairs


def marks_at(instrument_ids: Iterable[int]) -> dict[int, tuple[Decimal, float]]:
    """Each priced instrument's (mark, its time as epoch seconds)."""
    ids = sorted(set(instrument_ids))
    if not ids:
        return {}
    rows = Instrument.objects.filter(pk__in=ids, mark_price__isnull=False)
    return {
        pk: (mark, at.timestamp() if at else 0.0)
        for pk, mark, at in rows.values_list("pk", "mark_price", "price_updated_at")
    }


def trading_accounts_of(user_id: int) -> list[int]:
    """The user's open copy wallets and leader trading accounts."""
    return list(
        Account.objects.filter(
            user_id=user_id, kind__in=[AccountKind.COPY, AccountKind.LEADER_TRADING], is_closed=False
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def instruments_by_symbol(symbols: Iterable[str]) -> dict[str, int]:
    return dict(Instrument.objects.filter(symbol__in=list(symbols)).values_list("symbol", "pk"))
