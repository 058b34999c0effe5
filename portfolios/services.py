"""Every write to portfolios."""

import uuid
from decimal import Decimal

from django.db import transaction

from copytrading import leader_events, ledger
from copytrading.errors import Conflict, DomainError
from copytrading.events import (
    ADVANCED_ORDER_TYPES,
    NOT_COPIED_TYPES,
    STOP_ORDER_TYPES,
    leader_event_record,
    order_not_copied_event,
    position_step_event,
    spot_step_event,
)
from copytrading.models import (
    Holding,
    Instrument,
    LeaderEvent,
    Order,
    Position,
    Product,
    TransferKind,
)
from copytrading.money import Q8
from copytrading.trade_math import SELL
from copytrading.trading import UNCHANGED, instrument_for_trading, validate_side
from copytrading.venues import portfolio_exchange_account_id, venue_for_portfolio
from portfolios.editing import portfolio_create, portfolio_update  # noqa: F401 - the public write API
from portfolios.exchange import (
    SentOrder,
    portfolio_create_on_exchange,
    portfolio_exchange_order_place,
    refuse_on_exchange,
)
from portfolios.locks import lock_portfolio
from portfolios.models import Portfolio, PortfolioMode, PortfolioStatus

MARKET, LIMIT = "market", "limit"
# Out of scope for the paper venue and for copying (SPEC.md): the REST API
# refuses them before anything is written; a signal reporting one made
# elsewhere records it as not copied (portfolio_order_not_copied_record).
# ADVANCED_ORDER_TYPES and STOP_ORDER_TYPES live in copytrading.events.


@transaction.atomic
def portfolio_fund(*, portfolio: Portfolio, amount: Decimal, idempotency_key: str | None = None):
    """Move money from the leader's main wallet to the portfolio's trading account."""
    portfolio = _lock_active(portfolio)
    refuse_on_exchange(portfolio, "its balance is the exchange's; deposit")
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
    return lock_portfolio(portfolio.pk)


def _lock_active(portfolio: Portfolio) -> Portfolio:
    """For what adds or changes exposure: a closing or archived portfolio takes
    nothing new (closing a position or cancelling an order stays allowed)."""
    portfolio = _lock(portfolio)
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "The portfolio is closing or archived: it takes no new orders.")
    return portfolio


def _check_mode(portfolio: Portfolio, product: str) -> None:
    if portfolio.mode != PortfolioMode.ALL and portfolio.mode != product:
        raise DomainError(
            "PRODUCT_NOT_IN_MODE", f"This is a {portfolio.mode} portfolio; it cannot trade {product}.", field="symbol"
        )


def check_order_type(order_type: str) -> None:
    if order_type in ADVANCED_ORDER_TYPES:
        raise DomainError(
            "ADVANCED_ORDER_NOT_SUPPORTED",
            f"{order_type.upper()} orders are not supported and cannot be copied; place market or limit orders.",
            field="type",
        )
    if order_type in STOP_ORDER_TYPES:
        raise DomainError(
            "STOP_ORDER_NOT_SUPPORTED_FOR_COPY",
            "Standalone stop orders cannot be copied; set a stop-loss on the position instead.",
            field="type",
        )
    if order_type not in (MARKET, LIMIT):
        raise DomainError("INVALID_ORDER_TYPE", "The type must be market or limit.", field="type")


@transaction.atomic
def portfolio_order_not_copied_record(
    *,
    portfolio: Portfolio,
    symbol: str,
    side: str,
    quantity: Decimal,
    order_type: str,
    price: Decimal | None = None,
) -> LeaderEvent:
    """Record a leader order the venue did not execute and followers never
    copy (an advanced or standalone stop order the leader placed elsewhere and
    reported by a signal). Nothing is traded or reserved: the leader event
    only tells every follower, through propagation, why it got nothing
    (ADVANCED_ORDER_NOT_SUPPORTED or STOP_ORDER_NOT_SUPPORTED_FOR_COPY)."""
    if order_type not in NOT_COPIED_TYPES:
        raise DomainError("INVALID_ORDER_TYPE", f"{order_type!r} orders are not of a never-copied type.", field="type")
    validate_side(side)
    portfolio = _lock_active(portfolio)
    instrument = Instrument.objects.filter(symbol=symbol, is_active=True).first()
    if instrument is None:
        raise DomainError("UNKNOWN_INSTRUMENT", f"There is no tradable instrument {symbol!r}.", field="symbol")
    _check_mode(portfolio, instrument.product)
    if not quantity.is_finite() or quantity <= 0:
        raise DomainError("INVALID_QUANTITY", "The quantity must be greater than zero.", field="quantity")
    if price is not None and (not price.is_finite() or price <= 0):
        raise DomainError("INVALID_PRICE", "The price must be greater than zero.", field="price")
    return order_not_copied_event(
        portfolio_id=portfolio.pk,
        instrument=instrument,
        order_side=side,
        order_type=order_type,
        quantity=quantity.quantize(Q8),
        price=price.quantize(Q8) if price is not None else None,
    )


def portfolio_open(*, leader, **fields) -> Portfolio:
    """A new portfolio (the API and the leader's page): on the leader's
    linked exchange account when ``exchange_account_id`` is given, else on
    the paper venue."""
    if "exchange_account_id" in fields:
        return portfolio_create_on_exchange(leader=leader, **fields)
    return portfolio_create(leader=leader, **fields)


def portfolio_order_submit(
    *,
    portfolio: Portfolio,
    symbol: str,
    side: str,
    quantity: Decimal,
    leverage: int | None = None,
    order_type: str = MARKET,
    price: Decimal | None = None,
    token: str | None = None,
) -> SentOrder | list[LeaderEvent]:
    """A leader's order where the portfolio trades (the API, the pages and
    the signal webhook all send theirs here). Bound to the leader's exchange
    account: sent there (a ``SentOrder``; its fills become leader events when
    the trade poll sees them; ``token`` makes the client order id, so a retry
    cannot send it twice; ``leverage`` None keeps the account's own).
    Otherwise placed on the paper venue and copied at once (its leader
    events; ``leverage`` None is 1)."""
    if portfolio_exchange_account_id(portfolio.pk) is not None:
        return portfolio_exchange_order_place(
            portfolio=portfolio,
            symbol=symbol,
            side=side,
            quantity=quantity,
            order_type=order_type,
            price=price,
            leverage=leverage,
            token=token,
        )
    return portfolio_order_place(
        portfolio=portfolio,
        symbol=symbol,
        side=side,
        quantity=quantity,
        leverage=leverage or 1,
        order_type=order_type,
        price=price,
    )


@transaction.atomic
def portfolio_order_place(
    *,
    portfolio: Portfolio,
    symbol: str,
    side: str,
    quantity: Decimal,
    leverage: int = 1,
    order_type: str = MARKET,
    price: Decimal | None = None,
) -> list[LeaderEvent]:
    """The leader's market or limit order. Each venue step commits its leader
    event in the same transaction, so no trade is ever without its event; a
    limit order commits ``limit_placed`` (its fill comes with a price update)."""
    check_order_type(order_type)
    portfolio = _lock_active(portfolio)
    refuse_on_exchange(portfolio, "place orders through the API, the webhook or the exchange")
    instrument = instrument_for_trading(symbol)
    _check_mode(portfolio, instrument.product)
    account_id = portfolio.trading_account_id
    venue = venue_for_portfolio(portfolio.pk)
    equity = ledger.lock_accounts([account_id])[account_id].balance
    events = []
    if order_type == LIMIT:
        if price is None:
            raise DomainError("INVALID_PRICE", "A limit order needs a price.", field="price")
        order = venue.limit_order_place(
            account_id=account_id, instrument=instrument, side=side, quantity=quantity, price=price, leverage=leverage
        )
        share = {}
        if instrument.product == Product.SPOT and side == SELL:
            # Followers rest a sell of the same share of their own holding:
            # holding x quantity ÷ quantity_before (decisions.Share).
            held = Holding.objects.get(account_id=account_id, asset=instrument.base).quantity
            share = {"quantity_before": held, "fraction": order.quantity / held}
        placed = leader_events.LimitPlaced(
            instrument_id=instrument.pk,
            symbol=instrument.symbol,
            order_side=side,
            price=order.price,
            quantity=order.quantity,
            leverage=order.leverage,
            leader_equity=equity,
            leader_order_id=order.pk,
            **share,
        )
        return [leader_event_record(portfolio_id=portfolio.pk, data=placed)]
    if instrument.product == Product.MARGIN:
        for step in venue.market_order(
            account_id=account_id, instrument=instrument, side=side, quantity=quantity, leverage=leverage
        ):
            events.append(_record_margin_step(portfolio, step, equity))
    else:
        (step,) = venue.market_order(account_id=account_id, instrument=instrument, side=side, quantity=quantity)
        events.append(
            spot_step_event(
                portfolio_id=portfolio.pk, fill=step.fill, quantity_before=step.quantity_before, equity=equity
            )
        )
    return events


def _record_margin_step(portfolio: Portfolio, step, equity: Decimal) -> LeaderEvent:
    return position_step_event(
        portfolio_id=portfolio.pk,
        instrument=step.fill.instrument,
        action=step.action,
        fill=step.fill,
        quantity_before=step.quantity_before,
        equity=equity,
    )


@transaction.atomic
def portfolio_position_close(*, portfolio: Portfolio, position_id: int, quantity: Decimal | None = None) -> LeaderEvent:
    """The leader closes all or part of an open position; mirrors follow by fraction."""
    portfolio = _lock(portfolio)
    refuse_on_exchange(portfolio, "close positions")
    step = venue_for_portfolio(portfolio.pk).position_close(
        account_id=portfolio.trading_account_id, position_id=position_id, quantity=quantity
    )
    equity = ledger.lock_accounts([portfolio.trading_account_id])[portfolio.trading_account_id].balance
    return _record_margin_step(portfolio, step, equity)


def _order_fields(order: Order) -> dict:
    return {
        "instrument_id": order.instrument_id,
        "symbol": order.instrument.symbol,
        "order_side": order.side,
        "price": order.price,
        "quantity": order.quantity,
        "leverage": order.leverage,
        "leader_order_id": order.pk,
    }


@transaction.atomic
def portfolio_order_reprice(*, portfolio: Portfolio, order_id: int, price: Decimal) -> LeaderEvent:
    """Move the leader's resting limit order; its mirrors are re-priced."""
    portfolio = _lock_active(portfolio)
    refuse_on_exchange(portfolio, "re-price orders")
    order, old_price = venue_for_portfolio(portfolio.pk).limit_order_amend(
        account_id=portfolio.trading_account_id, order_id=order_id, price=price
    )
    return leader_event_record(
        portfolio_id=portfolio.pk,
        data=leader_events.LimitRepriced(**_order_fields(order), previous_price=old_price),
    )


@transaction.atomic
def portfolio_order_cancel(*, portfolio: Portfolio, order_id: int) -> LeaderEvent:
    """Cancel the leader's resting limit order; its mirrors are cancelled."""
    portfolio = _lock(portfolio)
    refuse_on_exchange(portfolio, "cancel orders")
    order = venue_for_portfolio(portfolio.pk).limit_order_cancel(
        account_id=portfolio.trading_account_id, order_id=order_id
    )
    return leader_event_record(portfolio_id=portfolio.pk, data=leader_events.LimitCancelled(**_order_fields(order)))


def _tpsl_event(portfolio: Portfolio, position: Position) -> LeaderEvent:
    data = leader_events.TpslSet(
        instrument_id=position.instrument_id,
        symbol=position.instrument.symbol,
        leader_position_id=position.pk,
        take_profit=position.take_profit,
        stop_loss=position.stop_loss,
    )
    return leader_event_record(portfolio_id=portfolio.pk, data=data)


@transaction.atomic
def portfolio_position_tpsl_set(
    *,
    portfolio: Portfolio,
    position_id: int,
    take_profit: Decimal | object | None = UNCHANGED,
    stop_loss: Decimal | object | None = UNCHANGED,
) -> LeaderEvent:
    """Set or clear (None) the TP and SL of the leader's open position (an
    omitted one stays as it is); every open mirror gets the same prices."""
    portfolio = _lock_active(portfolio)
    refuse_on_exchange(portfolio, "set take-profit and stop-loss")
    position = venue_for_portfolio(portfolio.pk).position_tpsl_set(
        position_id=position_id,
        account_id=portfolio.trading_account_id,
        take_profit=take_profit,
        stop_loss=stop_loss,
    )
    return _tpsl_event(portfolio, position)


@transaction.atomic
def portfolio_positions_tpsl_set(*, portfolio: Portfolio, items: list[dict]) -> list[LeaderEvent]:
    """The batch form: all items apply, or (on the first refused one) none.
    Each item is ``{"position", "take_profit"?, "stop_loss"?}``; one event each."""
    if not items:
        raise DomainError("EMPTY_BATCH", "Send at least one item.", field="items")
    seen: set[int] = set()
    for n, item in enumerate(items):
        if item["position"] in seen:
            raise DomainError(
                "DUPLICATE_POSITION", "A position may appear once per batch.", field=f"items.{n}.position"
            )
        seen.add(item["position"])
    portfolio = _lock_active(portfolio)
    refuse_on_exchange(portfolio, "set take-profit and stop-loss")
    venue = venue_for_portfolio(portfolio.pk)
    events = []
    for n, item in enumerate(items):
        try:
            position = venue.position_tpsl_set(
                position_id=item["position"],
                account_id=portfolio.trading_account_id,
                take_profit=item.get("take_profit", UNCHANGED),
                stop_loss=item.get("stop_loss", UNCHANGED),
            )
        except DomainError as exc:
            # Name the item; raising rolls back the items already applied.
            field = f"items.{n}.{exc.field}" if exc.field else f"items.{n}.position"
            raise DomainError(exc.code, exc.detail, field=field, status=exc.status) from None
        events.append(_tpsl_event(portfolio, position))
    return events


@transaction.atomic
def portfolio_position_leverage_set(*, portfolio: Portfolio, position_id: int, leverage: int) -> LeaderEvent:
    """The leader changes an open position's leverage (and so its margin).
    Followers keep theirs: the event's executions say why
    (POSITION_EDIT_NOT_PROPAGATED)."""
    portfolio = _lock_active(portfolio)
    refuse_on_exchange(portfolio, "change leverage")
    position, old = venue_for_portfolio(portfolio.pk).position_leverage_set(
        position_id=position_id, account_id=portfolio.trading_account_id, leverage=leverage
    )
    data = leader_events.PositionEdit(
        instrument_id=position.instrument_id,
        symbol=position.instrument.symbol,
        leader_position_id=position.pk,
        field="leverage",
        previous_leverage=old,
        leverage=position.leverage,
        margin=position.margin,
    )
    return leader_event_record(portfolio_id=portfolio.pk, data=data)
