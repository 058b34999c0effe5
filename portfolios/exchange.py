"""A portfolio bound to the leader's own exchange account (issue #15 §1).

- **Binding** (``portfolio_exchange_bind`` / ``_unbind``): only a flat margin
  or spot portfolio (no open position, resting order or holding) is bound; its
  trading account then mirrors the exchange: the paper balance goes back to
  the leader's main wallet and the exchange's wallet balance is credited
  from the external account (``EXCHANGE_SYNC``). Unbinding (flat again)
  gives that balance back to the external account.
- **Detection** (``leader_trades_poll``): the leader's trades are read per
  bound account and symbol from a stored cursor; each is claimed in the
  inbox (source ``exchange``, the exchange's trade id) and replayed into the
  service-side book at the exchange's price and quantity through the same
  trading services as a paper order (``trading.margin_external_fill``), so
  the same leader events go out through the outbox. One event per trade.
- **Orders** (``portfolio_exchange_order_place``): the leader's API and
  webhook orders on a bound portfolio are sent to the exchange with a
  ``ct-l…`` client order id; they become events when the poll sees them fill.

Lock order: the account's trade-poll row, then the portfolio (then what
copytrading/locks.py lists). A poll holds its poll row for the whole poll
(``SKIP LOCKED``: a second poller of the same account does nothing), and an
unbind takes the poll row before the portfolio so it waits for a running poll
instead of deadlocking with it.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import ccxt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from copytrading import audit, failures, ledger
from copytrading.enqueue import task
from copytrading.errors import Conflict, DomainError, NotFound
from copytrading.events import position_step_event, spot_step_event
from copytrading.exchanges import leader as exchange
from copytrading.exchanges.errors import exchange_domain_error
from copytrading.exchanges.models import (
    ExchangeAccount,
    ExchangeAccountStatus,
    ExchangeOrder,
    ExchangeOrderStatus,
    LeaderTradeCursor,
    LeaderTradePoll,
)
from copytrading.exchanges.outcomes import OrderOutcome, record_outcomes, status_of
from copytrading.inbox import inbox_accept, inbox_result_record
from copytrading.models import (
    Account,
    AccountKind,
    Holding,
    InboxStatus,
    Instrument,
    LeaderEvent,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Product,
    TransferKind,
)
from copytrading.money import Q8, ZERO
from copytrading.outages import dispatch_on_commit
from copytrading.trading import margin_external_fill, spot_external_fill, validate_side
from portfolios.locks import lock_portfolio
from portfolios.models import Portfolio, PortfolioMode, PortfolioStatus

log = logging.getLogger(__name__)

INBOX_SOURCE = "exchange"
POLL_TASK = "portfolios.exchange_tasks.poll_leader_trades"
CLIENT_ID_LENGTH = 36  # Binance's limit


# --- binding ----------------------------------------------------------------


def _not_flat() -> Conflict:
    return Conflict(
        "PORTFOLIO_NOT_FLAT",
        "Only a portfolio with no open positions, resting orders or holdings can be bound to or unbound from "
        "an exchange account: close them first.",
    )


def _check_flat(account_id: int) -> None:
    if (
        Position.objects.filter(account_id=account_id, status=PositionStatus.OPEN).exists()
        or Order.objects.filter(account_id=account_id, status__in=[OrderStatus.OPEN, OrderStatus.PENDING]).exists()
        or Holding.objects.filter(account_id=account_id, quantity__gt=0).exists()
    ):
        raise _not_flat()


def _bindable(portfolio: Portfolio, account: ExchangeAccount) -> None:
    """What can be refused before the exchange is asked (checked again under the locks)."""
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "The portfolio is closing or archived.")
    if portfolio.mode not in (PortfolioMode.MARGIN, PortfolioMode.SPOT):
        # "all" spans two product lines: on an exchange, two accounts (or APIs).
        raise DomainError(
            "PORTFOLIO_MODE_NOT_BINDABLE",
            "Only a margin or a spot portfolio can be bound to an exchange account (one product line each).",
            field="exchange_account_id",
        )
    if account.status != ExchangeAccountStatus.VALID:
        raise Conflict(
            "EXCHANGE_ACCOUNT_NOT_VALID",
            "This exchange account's key was refused or can withdraw; validate a trade-only key first.",
            field="exchange_account_id",
        )
    if not Instrument.objects.filter(exchange=account.exchange, product=portfolio.mode, is_active=True).exists():
        raise Conflict(
            "EXCHANGE_PRODUCT_NOT_SYNCED",
            f"No {portfolio.mode} instruments are synced from {account.exchange}: this account cannot serve "
            f"a {portfolio.mode} portfolio.",
            field="exchange_account_id",
        )


def _in_use() -> Conflict:
    return Conflict(
        "EXCHANGE_ACCOUNT_IN_USE",
        "This exchange account is already bound to another portfolio or copy wallet.",
        field="exchange_account_id",
    )


def portfolio_exchange_bind(*, portfolio: Portfolio, exchange_account_id: int) -> Portfolio:
    """Bind ``portfolio`` to its leader's linked exchange account. The
    exchange is asked for the balance first, outside any transaction."""
    account = ExchangeAccount.objects.filter(pk=exchange_account_id, user_id=portfolio.leader_id).first()
    if account is None:
        raise NotFound("exchange account", field="exchange_account_id")
    _bindable(portfolio, account)
    try:
        with exchange.leader_client(account) as client:
            balance = exchange.quote_balance(client, settings.PRIMARY_CURRENCY)
    except ccxt.BaseError as exc:
        exchange.log_failure("reading the balance", account, exc)
        raise exchange_domain_error(exc) from None
    return _bind(portfolio.pk, account, balance.quantize(Q8))


def portfolio_create_on_exchange(*, leader, exchange_account_id: int, **fields) -> Portfolio:
    """Create a portfolio already bound to ``exchange_account_id``: either
    both happen or neither (the exchange is asked while the new, still
    invisible rows are held)."""
    from portfolios.editing import portfolio_create

    with transaction.atomic():
        portfolio = portfolio_create(leader=leader, **fields)
        return portfolio_exchange_bind(portfolio=portfolio, exchange_account_id=exchange_account_id)


@transaction.atomic
def _bind(portfolio_id: int, account: ExchangeAccount, balance: Decimal) -> Portfolio:
    portfolio = lock_portfolio(portfolio_id)
    _bindable(portfolio, account)
    trading = ledger.lock_accounts([portfolio.trading_account_id])[portfolio.trading_account_id]
    if trading.exchange_account_id == account.pk:
        return portfolio  # bound already: a repeated request
    if trading.exchange_account_id is not None:
        raise Conflict(
            "PORTFOLIO_ALREADY_BOUND", "This portfolio is bound to another exchange account; unbind it first."
        )
    _check_flat(trading.pk)
    if Account.objects.filter(exchange_account=account, is_closed=False).exists():
        raise _in_use()
    token = uuid.uuid4().hex
    if trading.balance > 0:  # the paper money goes home
        ledger.transfer(
            debit_id=trading.pk,
            credit_id=ledger.main_account_for(portfolio.leader).pk,
            amount=trading.balance,
            kind=TransferKind.LEADER_RETURN,
            key=f"exchange-bind:{trading.pk}:{token}:return",
            ref=f"portfolio {portfolio.pk} bound to exchange account {account.pk}",
        )
    if balance > 0:
        ledger.transfer(
            debit_id=ledger.system_account(AccountKind.EXTERNAL).pk,
            credit_id=trading.pk,
            amount=balance,
            kind=TransferKind.EXCHANGE_SYNC,
            key=f"exchange-bind:{trading.pk}:{token}:sync",
            ref=f"{account.exchange} balance of exchange account {account.pk}",
        )
    try:
        with transaction.atomic():
            Account.objects.filter(pk=trading.pk).update(exchange_account=account)
    except IntegrityError:  # one_open_account_per_exchange_account: a concurrent bind won
        raise _in_use() from None
    LeaderTradePoll.objects.create(account_id=trading.pk, bound_at=timezone.now())
    audit.record(
        action="exchange_bind",
        target=portfolio,
        changes={"exchange_account": (None, account.pk), "exchange_balance": (None, balance)},
    )
    return portfolio


@transaction.atomic
def portfolio_exchange_unbind(*, portfolio: Portfolio) -> Portfolio:
    """Unbind a flat portfolio: its balance (the exchange's) leaves the book;
    the portfolio trades on paper again once funded."""
    # The poll row first (the lock order above): a running poll finishes.
    LeaderTradePoll.objects.select_for_update().filter(account_id=portfolio.trading_account_id).first()
    portfolio = lock_portfolio(portfolio.pk)
    trading = ledger.lock_accounts([portfolio.trading_account_id])[portfolio.trading_account_id]
    if trading.exchange_account_id is None:
        return portfolio
    _check_flat(trading.pk)
    if trading.balance > 0:
        ledger.transfer(
            debit_id=trading.pk,
            credit_id=ledger.system_account(AccountKind.EXTERNAL).pk,
            amount=trading.balance,
            kind=TransferKind.EXCHANGE_SYNC,
            key=f"exchange-unbind:{trading.pk}:{uuid.uuid4().hex}",
            ref=f"portfolio {portfolio.pk} unbound from exchange account {trading.exchange_account_id}",
        )
    Account.objects.filter(pk=trading.pk).update(exchange_account=None)
    LeaderTradePoll.objects.filter(account_id=trading.pk).delete()
    audit.record(
        action="exchange_unbind", target=portfolio, changes={"exchange_account": (trading.exchange_account_id, None)}
    )
    return portfolio


def refuse_on_exchange(portfolio: Portfolio, what: str) -> None:
    """For the paper-only leader services: a bound portfolio trades on its exchange."""
    if Account.objects.filter(pk=portfolio.trading_account_id, exchange_account__isnull=False).exists():
        raise Conflict(
            "PORTFOLIO_ON_EXCHANGE",
            f"This portfolio trades on its exchange account: {what} there (its trades are copied from it).",
        )


# --- detection --------------------------------------------------------------


@dataclass
class PollReport:
    account_id: int
    skipped: bool = False  # another poller holds the account, or it is not bound
    trades: int = 0  # trades read past the cursors
    events: list[int] = field(default_factory=list)
    duplicates: int = 0
    rejected: int = 0
    error: str = ""  # the code of an exchange failure (what was read before it is applied)


def _external_id(exchange_id: str, trade: exchange.ExchangeTrade) -> str:
    # Binance's trade ids are per symbol.
    return f"{exchange_id}:{trade.symbol}:{trade.trade_id}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def leader_trades_poll(*, account_id: int) -> PollReport:
    """Turn the leader's new trades on the exchange into leader events,
    each exactly once. Idempotent; safe to run concurrently (SKIP LOCKED)."""
    report = PollReport(account_id=account_id)
    rejected: list[tuple[dict, DomainError]] = []
    with transaction.atomic():
        poll = (
            LeaderTradePoll.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("account__exchange_account")
            .filter(account_id=account_id)
            .first()
        )
        if poll is None or poll.account.exchange_account is None or poll.account.is_closed:
            report.skipped = True
            return report
        _poll(poll, report, rejected)
    for arguments, exc in rejected:
        failures.failure_report(task="exchange.leader_trades", arguments=arguments, exc=exc)
    return report


def _poll(poll: LeaderTradePoll, report: PollReport, rejected: list) -> None:
    account = poll.account.exchange_account
    portfolio_id, mode = Portfolio.objects.filter(trading_account_id=poll.account_id).values_list("pk", "mode").get()
    cursors = {c.symbol: c for c in poll.cursors.all()}
    # The active instruments of the account's exchange and product line, and
    # any halted one it has traded (its last trades still count).
    instruments = {
        i.symbol: i
        for i in Instrument.objects.filter(exchange=account.exchange, product=mode).order_by("symbol")
        if i.is_active or i.symbol in cursors
    }
    bound_ms = _ms(poll.bound_at)
    fetched: dict[str, list[exchange.ExchangeTrade]] = {}
    leverage: dict[str, int] = {}
    try:
        with exchange.leader_client(account) as client:
            for symbol in instruments:
                cursor = cursors.get(symbol)
                last_ms, last_id = (cursor.last_trade_ms, cursor.last_trade_id) if cursor else (bound_ms, "")
                # Never before the binding: those trades are not the portfolio's.
                since = max(last_ms, bound_ms)
                new = [t for t in exchange.trades_since(client, symbol, since) if exchange.after(t, last_ms, last_id)]
                if new:
                    fetched[symbol] = new
            if fetched and mode == Product.MARGIN:
                leverage = exchange.leverages(client, list(fetched))
    except ccxt.BaseError as exc:
        # Nothing is applied from a partial read: the cursors stay, the next
        # poll reads the same trades again (nothing lost).
        exchange.log_failure("polling the leader's trades", account, exc)
        report.error = exchange_domain_error(exc).code
        return
    poll.polled_at = timezone.now()
    poll.save(update_fields=["polled_at"])
    if not fetched:
        return
    portfolio = lock_portfolio(portfolio_id)
    # In the exchange's order across symbols: the events' sequence is the
    # leader's (each follower's equity moves as the leader's did).
    ordered = sorted(
        ((symbol, trade) for symbol, trades in fetched.items() for trade in trades),
        key=lambda st: (st[1].timestamp_ms, st[0], exchange.id_key(st[1].trade_id)),
    )
    moved: dict[str, LeaderTradeCursor] = {}
    for symbol, trade in ordered:
        cursor = moved.get(symbol) or cursors.get(symbol)
        if cursor is None:
            cursor = LeaderTradeCursor(poll=poll, symbol=symbol, last_trade_ms=bound_ms)
        moved[symbol] = cursor
        _apply_trade(poll, portfolio, instruments[symbol], trade, leverage.get(symbol), report, rejected)
        cursor.last_trade_ms, cursor.last_trade_id = trade.timestamp_ms, trade.trade_id
    for cursor in moved.values():  # in this transaction: with the events they produced
        cursor.save()


def _apply_trade(
    poll: LeaderTradePoll,
    portfolio: Portfolio,
    instrument: Instrument,
    trade: exchange.ExchangeTrade,
    leverage: int | None,
    report: PollReport,
    rejected: list,
) -> None:
    report.trades += 1
    message, created = inbox_accept(
        source=INBOX_SOURCE,
        external_id=_external_id(poll.account.exchange_account.exchange, trade),
        portfolio_id=portfolio.pk,
        payload={
            "trade_id": trade.trade_id, "order_id": trade.order_id, "symbol": trade.symbol, "side": trade.side,
            "price": str(trade.price), "amount": str(trade.amount), "time_ms": trade.timestamp_ms,
        },
    )  # fmt: skip
    if not created:
        report.duplicates += 1
        return
    try:
        with transaction.atomic():  # a refused trade rolls back alone; its inbox row stays
            events = portfolio_external_fill_apply(
                portfolio=portfolio, instrument=instrument, trade=trade, leverage=leverage
            )
    except (DomainError, IntegrityError) as error:
        # A trade the book cannot take (a ledger constraint: margin above the
        # mirrored balance, money the service never saw) is recorded refused
        # and reported, never retried forever: the cursor moves past it, and
        # the reconciliation reports the drift it leaves.
        exc = (
            error
            if isinstance(error, DomainError)
            else DomainError(
                "TRADE_NOT_APPLICABLE", "The trade does not fit the portfolio's book (a ledger constraint refused it)."
            )
        )
        report.rejected += 1
        inbox_result_record(
            message=message, status=InboxStatus.REJECTED, result={"code": exc.code, "detail": exc.detail}
        )
        rejected.append(({"account_id": poll.account_id, "trade": message.external_id}, exc))
        return
    _fee_record(portfolio, trade, message.external_id)
    report.events += [e.pk for e in events]
    inbox_result_record(
        message=message,
        status=InboxStatus.EXECUTED,
        result={"events": [{"id": e.pk, "seq": e.seq, "kind": e.kind} for e in events]},
    )


def _fee_record(portfolio: Portfolio, trade: exchange.ExchangeTrade, trade_key: str) -> None:
    """The exchange's fee, when charged in the primary currency, leaves the
    mirrored balance too (to the external account: it went to the exchange),
    so the book keeps matching the exchange. Fees in another asset (BNB, the
    base asset of a spot buy) are the leader's own business and not mirrored;
    a fee the book cannot pay from free balance is skipped, never a reason to
    refuse the trade."""
    fee = (trade.fee or ZERO).quantize(Q8)
    if fee <= 0 or trade.fee_currency != settings.PRIMARY_CURRENCY:
        return
    account_id = portfolio.trading_account_id
    if Account.objects.get(pk=account_id).free < fee:
        return
    ledger.transfer(
        debit_id=account_id,
        credit_id=ledger.system_account(AccountKind.EXTERNAL).pk,
        amount=fee,
        kind=TransferKind.TRADING_FEE,
        key=f"exchange-fee:{trade_key}",
        ref=f"exchange fee of trade {trade_key}",
    )


def portfolio_external_fill_apply(
    *, portfolio: Portfolio, instrument: Instrument, trade: exchange.ExchangeTrade, leverage: int | None
) -> list[LeaderEvent]:
    """Replay one exchange trade into the portfolio's book (the portfolio is
    locked by the caller) and record its leader events: the same steps and
    events as a paper market order, at the exchange's price and quantity."""
    validate_side(trade.side)
    quantity = (trade.amount * instrument.contract_size).quantize(Q8)
    price = trade.price.quantize(Q8)
    account_id = portfolio.trading_account_id
    equity = ledger.lock_accounts([account_id])[account_id].balance
    if instrument.product == Product.SPOT:
        step = spot_external_fill(
            account_id=account_id, instrument=instrument, side=trade.side, quantity=quantity, price=price
        )
        return [
            spot_step_event(
                portfolio_id=portfolio.pk, fill=step.fill, quantity_before=step.quantity_before, equity=equity
            )
        ]
    current = (
        Position.objects.filter(
            account_id=account_id, instrument=instrument, status=PositionStatus.OPEN, leader_position__isnull=True
        )
        .values_list("leverage", flat=True)
        .first()
    )
    steps = margin_external_fill(
        account_id=account_id,
        instrument=instrument,
        side=trade.side,
        quantity=quantity,
        price=price,
        leverage=leverage or current or 1,
    )
    return [
        position_step_event(
            portfolio_id=portfolio.pk,
            instrument=instrument,
            action=step.action,
            fill=step.fill,
            quantity_before=step.quantity_before,
            equity=equity,
        )
        for step in steps
    ]


def poll_soon(account_id: int) -> None:
    """Queue a poll of ``account_id`` after the current transaction commits
    (the beat sweep polls it anyway if the broker is down)."""
    dispatch_on_commit(lambda: task(POLL_TASK).delay(account_id), what="leader trade poll (the beat sweep re-polls)")


def bound_accounts_due() -> list[int]:
    """The bound leader accounts a sweep should poll."""
    return list(LeaderTradePoll.objects.order_by("pk").values_list("account_id", flat=True))


# --- orders -----------------------------------------------------------------


@dataclass(frozen=True)
class SentOrder:
    client_order_id: str
    exchange_order_id: str
    status: str  # ExchangeOrderStatus value


def leader_client_order_id(portfolio_id: int, token: str) -> str:
    """``ct-l<portfolio>-<digest>``: a webhook signal's id gives the same
    order id on a redelivery, so the exchange refuses a second order."""
    prefix = f"ct-l{portfolio_id}-"
    digest = hashlib.sha256(token.encode()).hexdigest()
    return prefix + digest[: CLIENT_ID_LENGTH - len(prefix)]


@transaction.atomic
def _order_record(
    *, portfolio: Portfolio, symbol: str, side: str, quantity: Decimal, order_type: str, price: Decimal | None,
    client_order_id: str,
) -> tuple[ExchangeOrder, Instrument]:  # fmt: skip
    portfolio = lock_portfolio(portfolio.pk)
    if portfolio.status != PortfolioStatus.ACTIVE:
        raise Conflict("PORTFOLIO_NOT_ACTIVE", "The portfolio is closing or archived: it takes no new orders.")
    trading = Account.objects.select_related("exchange_account").get(pk=portfolio.trading_account_id)
    account = trading.exchange_account
    if account is None:
        raise Conflict("PORTFOLIO_NOT_BOUND", "This portfolio is not bound to an exchange account.")
    validate_side(side)
    instrument = Instrument.objects.filter(symbol=symbol, exchange=account.exchange, is_active=True).first()
    if instrument is None:
        raise DomainError(
            "UNKNOWN_INSTRUMENT", f"{account.exchange} has no tradable instrument {symbol!r} synced.", field="symbol"
        )
    if instrument.product != portfolio.mode:
        raise DomainError(
            "PRODUCT_NOT_IN_MODE", f"This is a {portfolio.mode} portfolio; it cannot trade {symbol}.", field="symbol"
        )
    if not quantity.is_finite() or quantity <= 0:
        raise DomainError("INVALID_QUANTITY", "The quantity must be greater than zero.", field="quantity")
    if order_type == "limit" and (price is None or not price.is_finite() or price <= 0):
        raise DomainError("INVALID_PRICE", "A limit order needs a price.", field="price")
    amount = quantity / instrument.contract_size  # the exchange's unit
    existing = ExchangeOrder.objects.filter(client_order_id=client_order_id).first()
    if existing is not None:
        return existing, instrument  # a redelivered signal: the same order
    row = ExchangeOrder.objects.create(
        exchange_account=account,
        client_order_id=client_order_id,
        symbol=instrument.symbol,
        side=side,
        order_type=order_type,
        quantity=amount,
        price=price if order_type == "limit" else None,
        decided_at=timezone.now(),
        # Sent at once below. The submitter's sweep leaves it alone for a
        # lease (longer than the call's timeout and the exchange's recvWindow),
        # then looks it up by client id before anything is resent: a row left
        # here by a crash is never sent twice, nor raced by the sweep.
        status=ExchangeOrderStatus.SENT,
        submitted_at=timezone.now(),
        next_attempt_at=timezone.now() + timedelta(seconds=settings.EXCHANGE_SUBMIT_LEASE_SECONDS),
    )
    return row, instrument


def portfolio_exchange_order_place(
    *,
    portfolio: Portfolio,
    symbol: str,
    side: str,
    quantity: Decimal,
    order_type: str = "market",
    price: Decimal | None = None,
    leverage: int | None = None,
    token: str | None = None,
) -> SentOrder:
    """Send the leader's order to the exchange (not to the paper book). Its
    fills become leader events through the poll, triggered at once.
    ``token`` (a signal's id) makes the client order id deterministic.
    Refusals: 400 with the exchange's code; down or timed out: 503
    ``EXCHANGE_UNAVAILABLE`` — the order may still have reached the exchange,
    in which case its fills become events like any other trade."""
    client_order_id = leader_client_order_id(portfolio.pk, token or uuid.uuid4().hex)
    row, instrument = _order_record(
        portfolio=portfolio, symbol=symbol, side=side, quantity=quantity, order_type=order_type, price=price,
        client_order_id=client_order_id,
    )  # fmt: skip
    if row.status not in (ExchangeOrderStatus.SENT, ExchangeOrderStatus.PENDING):
        return SentOrder(row.client_order_id, row.exchange_order_id, row.status)
    account = row.exchange_account
    now = timezone.now
    try:
        with exchange.leader_client(account) as client:
            if leverage and instrument.product == Product.MARGIN:
                # The position's leverage is the exchange account's per symbol.
                client.set_leverage(leverage, row.symbol)
            # A deterministic id (a signal's, an Idempotency-Key's) may have
            # been sent by an attempt whose transaction then rolled back: the
            # exchange is asked first, and only an order it lacks is placed.
            placed = (
                exchange.order_find(client, symbol=row.symbol, client_order_id=row.client_order_id) if token else None
            )
            if placed is None:
                placed = exchange.order_create(
                    client, symbol=row.symbol, side=row.side, amount=row.quantity, order_type=row.order_type,
                    price=row.price, client_order_id=row.client_order_id,
                )  # fmt: skip
    except ccxt.BaseError as exc:
        exchange.log_failure("placing the leader's order", account, exc)
        error = exchange_domain_error(exc)
        # A refusal is final; an unanswered order is marked failed too (the
        # leader was told 503 and may place it again): if it did reach the
        # exchange, its fills are still copied through the poll.
        record_outcomes(
            [
                OrderOutcome(
                    client_order_id=row.client_order_id,
                    status=ExchangeOrderStatus.FAILED if error.status >= 500 else ExchangeOrderStatus.REJECTED,
                    at=now(),
                    reject_code=error.code,
                    reject_message=type(exc).__name__,
                )
            ]
        )
        with transaction.atomic():
            poll_soon(portfolio.trading_account_id)
        raise error from None
    status = status_of(placed.status, placed.filled)
    with transaction.atomic():
        record_outcomes(
            [
                OrderOutcome(
                    client_order_id=row.client_order_id,
                    status=status,
                    at=now(),
                    exchange_order_id=placed.exchange_order_id,
                    filled_quantity=placed.filled,
                    average_price=placed.average,
                )
            ]
        )
        poll_soon(portfolio.trading_account_id)
    return SentOrder(row.client_order_id, placed.exchange_order_id, status)
