"""Every write to portfolios."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from copytrading import ledger, trade_math
from copytrading.errors import Conflict, DomainError
from copytrading.events import leader_event_record
from copytrading.models import AccountKind, LeaderEvent, LeaderEventKind, Product, TransferKind
from copytrading.trading import instrument_for_trading, margin_market_order, position_close, spot_market_order
from portfolios.models import Portfolio, PortfolioMode, PortfolioStatus

_EVENT_FOR_ACTION = {
    trade_math.OPEN: LeaderEventKind.POSITION_OPEN,
    trade_math.INCREASE: LeaderEventKind.POSITION_OPEN,
    trade_math.REDUCE: LeaderEventKind.POSITION_REDUCE,
    trade_math.CLOSE: LeaderEventKind.POSITION_CLOSE,
}


@transaction.atomic
def portfolio_create(
    *,
    leader,
    name: str,
    description: str = "",
    mode: str = PortfolioMode.MARGIN,
    min_investment: Decimal = Decimal("0"),
    profit_share_pct: Decimal = Decimal("0"),
    is_public: bool = True,
) -> Portfolio:
    name = name.strip()
    if not name:
        raise DomainError("INVALID_NAME", "The name must not be empty.", field="name")
    if Portfolio.objects.filter(leader=leader).exclude(status=PortfolioStatus.ARCHIVED).count() >= (
        settings.MAX_PORTFOLIOS_PER_LEADER
    ):
        raise DomainError(
            "PORTFOLIO_LIMIT", f"A leader can have at most {settings.MAX_PORTFOLIOS_PER_LEADER} portfolios."
        )
    if Portfolio.objects.filter(leader=leader, name__iexact=name).exists():
        raise Conflict("NAME_TAKEN", "You already have a portfolio with this name.", field="name")
    account = ledger.account_open(kind=AccountKind.LEADER_TRADING, user=leader, name=f"trading:{name}")
    try:
        with transaction.atomic():
            return Portfolio.objects.create(
                leader=leader,
                name=name,
                description=description,
                mode=mode,
                min_investment=min_investment,
                profit_share_pct=profit_share_pct,
                is_public=is_public,
                trading_account=account,
            )
    except IntegrityError:
        raise Conflict("NAME_TAKEN", "You already have a portfolio with this name.", field="name") from None


@transaction.atomic
def portfolio_fund(*, portfolio: Portfolio, amount: Decimal, idempotency_key: str | None = None):
    """Move money from the leader's main wallet to the portfolio's trading account."""
    main = ledger.main_account_for(portfolio.leader)
    key = f"portfolio-fund:{portfolio.pk}:{idempotency_key or uuid.uuid4().hex}"
    return ledger.transfer(
        debit_id=main.pk,
        credit_id=portfolio.trading_account_id,
        amount=amount,
        kind=TransferKind.LEADER_FUND,
        key=key,
        ref=f"portfolio {portfolio.pk}",
    )


def _lock(portfolio: Portfolio) -> Portfolio:
    # The portfolio row lock serializes the portfolio's trades and therefore
    # its leader-event sequence numbers.
    return Portfolio.objects.select_for_update().get(pk=portfolio.pk)


def _check_mode(portfolio: Portfolio, product: str) -> None:
    if portfolio.mode != PortfolioMode.ALL and portfolio.mode != product:
        raise DomainError(
            "PRODUCT_NOT_IN_MODE", f"This is a {portfolio.mode} portfolio; it cannot trade {product}.", field="symbol"
        )


@transaction.atomic
def portfolio_order_place(
    *, portfolio: Portfolio, symbol: str, side: str, quantity: Decimal, leverage: int = 1
) -> list[LeaderEvent]:
    """The leader's market order. Each venue step commits its leader event in
    the same transaction, so no trade is ever without its event."""
    portfolio = _lock(portfolio)
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "The portfolio is not active.")
    instrument = instrument_for_trading(symbol)
    _check_mode(portfolio, instrument.product)
    account_id = portfolio.trading_account_id
    equity = ledger.lock_accounts([account_id])[account_id].balance
    base = {"instrument_id": instrument.pk, "symbol": instrument.symbol, "order_side": side}
    events = []
    if instrument.product == Product.MARGIN:
        for step in margin_market_order(
            account_id=account_id, instrument=instrument, side=side, quantity=quantity, leverage=leverage
        ):
            events.append(_record_margin_step(portfolio, base, step, equity))
    else:
        step = spot_market_order(account_id=account_id, instrument=instrument, side=side, quantity=quantity)
        payload = {**base, "price": str(step.fill.price), "order_id": step.fill.order.pk}
        if step.action == "spot_buy":
            payload |= {"quantity": str(step.fill.quantity), "leader_equity": str(equity)}
            kind = LeaderEventKind.SPOT_BUY
        else:
            payload["fraction"] = str(step.fill.quantity / step.quantity_before)
            kind = LeaderEventKind.SPOT_SELL
        events.append(leader_event_record(portfolio_id=portfolio.pk, kind=kind, payload=payload))
    return events


def _record_margin_step(portfolio: Portfolio, base: dict, step, equity: Decimal) -> LeaderEvent:
    fill = step.fill
    payload = {
        **base,
        "order_side": fill.order_side,
        "price": str(fill.price),
        "leader_position_id": fill.position.pk,
        "order_id": fill.order.pk,
    }
    if step.action in (trade_math.OPEN, trade_math.INCREASE):
        payload |= {"quantity": str(fill.quantity), "leverage": fill.leverage, "leader_equity": str(equity)}
    elif step.action == trade_math.REDUCE:
        payload["fraction"] = str(fill.quantity / step.quantity_before)
    return leader_event_record(portfolio_id=portfolio.pk, kind=_EVENT_FOR_ACTION[step.action], payload=payload)


@transaction.atomic
def portfolio_position_close(*, portfolio: Portfolio, position_id: int, quantity: Decimal | None = None) -> LeaderEvent:
    """The leader closes all or part of an open position; mirrors follow by fraction."""
    portfolio = _lock(portfolio)
    step = position_close(position_id=position_id, account_id=portfolio.trading_account_id, quantity=quantity)
    equity = ledger.lock_accounts([portfolio.trading_account_id])[portfolio.trading_account_id].balance
    base = {"instrument_id": step.fill.instrument.pk, "symbol": step.fill.instrument.symbol}
    return _record_margin_step(portfolio, base, step, equity)
