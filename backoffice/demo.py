"""The demo: seed data for `make run` and the simulated leaders' strategy.

The leaders, their portfolios and trades go through the same services as the
API (user_register, wallet_deposit, portfolio_create, portfolio_fund,
price_set, portfolio_order_place, portfolio_position_close), so the demo
exercises the real write paths, ledger and propagation. The followers, up to
tens of thousands, are written set-based by backoffice.loadgen: the same
rows and ledger transfers as user_register, wallet_deposit and
subscription_create, a batch at a time (docs/decisions.md, "seed_demo at any
size").

The strategy is split in two: ``plan_trade`` decides from plain numbers
(pure, tested with hypothesis) and ``demo_trade`` loads those numbers and
carries the plan out.
"""

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from backoffice import loadgen
from copytrading import live as live_settings
from copytrading import market_sim, trade_math
from copytrading.errors import DomainError
from copytrading.models import Account, Holding, Instrument, Position, PositionStatus, Product
from copytrading.money import ZERO, floor_to_step, round_to_tick
from copytrading.services import DEFAULT_INSTRUMENTS, instruments_seed, price_set, user_register, wallet_deposit
from copytrading.sizing import SizingModel
from fees.models import LimitsGroup
from fees.selectors import default_limits_group, leader_caps
from fees.services import leader_group_assign
from followers.lifecycle import check_amount
from followers.models import Subscription, SubscriptionStatus
from portfolios import copy_settings
from portfolios.models import Portfolio, PortfolioMode, PortfolioStatus
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from portfolios.stats import stats_refresh

log = logging.getLogger(__name__)
User = get_user_model()

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-demo-pass"
DEMO_PASSWORD = "demo-pass-123"
FOLLOWER_COUNT = 20
# Every seeded amount uses this key, so a second seed replays the same
# transfers (ledger no-ops) instead of moving money again.
SEED_KEY = "demo-seed"


@dataclass(frozen=True)
class DemoLeader:
    username: str
    portfolio: str
    description: str
    mode: str
    deposit: Decimal
    fund: Decimal
    profit_share_pct: Decimal


DEMO_LEADERS = (
    DemoLeader(
        username="leader1",
        portfolio="Momentum Majors",
        description="Leveraged trend following on BTC, ETH, SOL and AVAX perpetuals.",
        mode=PortfolioMode.MARGIN,
        deposit=Decimal("50000"),
        fund=Decimal("20000"),
        profit_share_pct=Decimal("10"),
    ),
    DemoLeader(
        username="leader2",
        portfolio="Balanced Rotation",
        description="Spot accumulation of majors with tactical margin trades.",
        mode=PortfolioMode.ALL,
        deposit=Decimal("50000"),
        fund=Decimal("20000"),
        profit_share_pct=Decimal("15"),
    ),
)
FOLLOWER_DEPOSIT = Decimal("10000")
MULTIPLIER_STEP = Decimal("0.015")
# The followers' amounts and multipliers repeat every PATTERN followers: a
# demo of any size keeps the mix below, and every follower's copies fit the
# deposit (at most 2 x 3,000 of 10,000). The amounts used to grow with n
# without end: follower 41, who copies both portfolios with 5,100 each,
# could not pay (InsufficientFunds).
PATTERN = 20
# Followers written per transaction (and per progress step): an interrupted
# seed keeps the batches it committed, and the next run adds the rest.
SEED_BATCH = 1000
DEMO_LIMITS_GROUP = "Demo leaders"


def follower_username(n: int) -> str:
    return f"follower{n:02d}"


@dataclass(frozen=True)
class DemoSubscription:
    """One seeded copy relationship: who, which leader, how much, how."""

    follower: str
    leader: str
    amount: Decimal
    multiplier: Decimal
    copy_spot: bool


def follower_subscriptions(n: int) -> list[DemoSubscription]:
    """Follower n's copies: n % 3 == 1 copies leader1 only, n % 3 == 0
    leader2 only, n % 3 == 2 both. Within each PATTERN followers, multipliers
    grow (0.015 to 0.30) faster than the wallets (1,100 to 3,000), from a
    quarter of the leader's relative risk to twice it: the execution log
    shows full copies, minimum-size skips and the odd margin rejection side
    by side."""
    k = (n - 1) % PATTERN + 1
    amount = Decimal(1000 + 100 * k)
    multiplier = MULTIPLIER_STEP * k
    rows = []
    if n % 3 != 0:
        rows.append(DemoSubscription(follower_username(n), "leader1", amount, multiplier, copy_spot=True))
    if n % 3 != 1:
        # Every fourth follower of the mixed portfolio copies margin only.
        rows.append(DemoSubscription(follower_username(n), "leader2", amount, multiplier, copy_spot=n % 4 != 0))
    return rows


def demo_subscriptions(count: int = FOLLOWER_COUNT) -> list[DemoSubscription]:
    return [row for n in range(1, count + 1) for row in follower_subscriptions(n)]


@dataclass
class SeedReport:
    instruments: int = 0
    users: int = 0
    portfolios: int = 0
    subscriptions: int = 0

    @property
    def created_anything(self) -> bool:
        return any((self.instruments, self.users, self.portfolios, self.subscriptions))


def _demo_user(username: str, password: str, report: SeedReport):
    user = User.objects.filter(username=username).first()
    if user is None:
        user = user_register(username=username, password=password, email=f"{username}@demo.invalid")
        report.users += 1
    return user


def _demo_capacity(portfolio: Portfolio, adding: int, target: int) -> None:
    """Room for ``adding`` more followers on the portfolio: the default cap
    (1,000) would refuse the demo's 1,001st follower of a leader. A leader
    short of room goes into the demo limits group, sized for ``target``
    followers (the whole demo) plus the default's worth of real users; a
    seed that adds nobody changes nothing."""
    live = Subscription.objects.filter(portfolio=portfolio).exclude(status=SubscriptionStatus.ENDED).count()
    if leader_caps(portfolio.leader_id).max_followers >= live + adding:
        return
    default = default_limits_group()
    wanted = max(target, live + adding) + default.max_followers
    group = LimitsGroup.objects.filter(name=DEMO_LIMITS_GROUP).first()
    if group is None:
        group = LimitsGroup.objects.create(
            name=DEMO_LIMITS_GROUP, max_followers=wanted, max_profit_share_pct=default.max_profit_share_pct
        )
    elif group.max_followers < wanted:
        group.max_followers = wanted
        group.save(update_fields=["max_followers", "updated_at"])
    leader_group_assign(leader=portfolio.leader, limits_group=group)


@transaction.atomic
def _demo_setup(report: SeedReport) -> dict[str, Portfolio]:
    """Instruments, the admin, the leaders and their funded portfolios."""
    report.instruments += instruments_seed()
    admin = _demo_user(ADMIN_USERNAME, ADMIN_PASSWORD, report)
    if not (admin.is_staff and admin.is_superuser):
        User.objects.filter(pk=admin.pk).update(is_staff=True, is_superuser=True)

    portfolios: dict[str, Portfolio] = {}
    for spec in DEMO_LEADERS:
        leader = _demo_user(spec.username, DEMO_PASSWORD, report)
        wallet_deposit(user=leader, amount=spec.deposit, idempotency_key=SEED_KEY)
        portfolio = Portfolio.objects.filter(leader=leader, name=spec.portfolio).first()
        if portfolio is None:
            portfolio = portfolio_create(
                leader=leader,
                name=spec.portfolio,
                description=spec.description,
                mode=spec.mode,
                min_investment=Decimal("100"),
                profit_share_pct=spec.profit_share_pct,
            )
            report.portfolios += 1
        portfolio_fund(portfolio=portfolio, amount=spec.fund, idempotency_key=SEED_KEY)
        portfolios[spec.username] = portfolio
    return portfolios


def _copy_settings(row: DemoSubscription, minimum: Decimal) -> dict:
    """The subscription's settings, checked as ``subscription_open`` checks them."""
    check_amount(row.amount)
    if row.amount < minimum:
        raise DomainError(
            "BELOW_MIN_INVESTMENT", f"The portfolio needs at least {minimum}; the demo copies {row.amount}."
        )
    explicit = {"sizing_model": SizingModel.PROGRESSIVE, "multiplier": row.multiplier, "copy_spot": row.copy_spot}
    return copy_settings.resolve(template_values=None, explicit=explicit, amount=row.amount).settings


@transaction.atomic
def _seed_followers(numbers: range, portfolios: dict[str, Portfolio], targets: Counter, report: SeedReport) -> None:
    """Followers ``numbers`` (their users, funded main wallets and copies),
    set-based through backoffice.loadgen; what exists already is skipped."""
    names = [follower_username(n) for n in numbers]
    ids, created = loadgen.users_bulk(usernames=names, password=DEMO_PASSWORD, email_domain="demo.invalid")
    report.users += created
    loadgen.main_wallets_fund(user_ids=list(ids.values()), amount=FOLLOWER_DEPOSIT, idempotency_key=SEED_KEY)
    # Any earlier subscription counts, even an ended one: re-seeding must
    # not undo a demo user's unfollow.
    have = set(
        Subscription.objects.filter(
            follower_id__any=list(ids.values()), portfolio_id__in=[p.pk for p in portfolios.values()]
        ).values_list("follower_id", "portfolio_id")
    )
    platform_minimum = live_settings.current().min_investment
    checked: dict[tuple, dict] = {}
    new: dict[str, list[loadgen.NewSubscription]] = {username: [] for username in portfolios}
    for n in numbers:
        for row in follower_subscriptions(n):
            portfolio, follower_id = portfolios[row.leader], ids[row.follower]
            if (follower_id, portfolio.pk) in have:
                continue
            key = (row.leader, row.amount, row.multiplier, row.copy_spot)
            if key not in checked:
                checked[key] = _copy_settings(row, max(portfolio.min_investment, platform_minimum))
            new[row.leader].append(loadgen.NewSubscription(follower_id, row.amount, checked[key]))
    for leader, rows in new.items():
        if rows:
            _demo_capacity(portfolios[leader], len(rows), targets[leader])
        report.subscriptions += len(loadgen.subscriptions_bulk(portfolio=portfolios[leader], rows=rows))


def demo_seed(*, followers: int = FOLLOWER_COUNT, progress: Callable[[int, int], None] | None = None) -> SeedReport:
    """Create the demo world; idempotent (a second run creates nothing, a
    run with more followers adds the difference). ``progress(done, total)``
    is called after each batch of followers."""
    if followers < 0:
        raise DomainError("INVALID_FOLLOWERS", "The number of demo followers cannot be negative.", field="followers")
    report = SeedReport()
    portfolios = _demo_setup(report)
    targets = Counter(row.leader for row in demo_subscriptions(followers))
    for start in range(1, followers + 1, SEED_BATCH):
        numbers = range(start, min(start + SEED_BATCH, followers + 1))
        _seed_followers(numbers, portfolios, targets, report)
        if progress is not None:
            progress(numbers[-1], followers)
    if report.created_anything:
        stats_refresh()  # the catalog shows the demo's followers at once
    return report


def demo_portfolios() -> list[Portfolio]:
    """The active portfolios of the demo leaders, in a stable order."""
    usernames = [spec.username for spec in DEMO_LEADERS]
    return list(
        Portfolio.objects.filter(leader__username__in=usernames, status=PortfolioStatus.ACTIVE)
        .select_related("leader")
        .order_by("pk")
    )


# --- the strategy (pure) -------------------------------------------------------

OPEN, INCREASE, REDUCE, CLOSE = trade_math.OPEN, trade_math.INCREASE, trade_math.REDUCE, trade_math.CLOSE
CLOSE_BY_ORDER = "close_by_order"  # an opposite market order of exactly the position's size
SPOT_BUY, SPOT_SELL = "spot_buy", "spot_sell"

LEVERAGES = (2, 3, 5, 10)
# Below this share of equity free, the leader only takes risk off.
DE_RISK_BELOW = Decimal("0.4")


@dataclass(frozen=True)
class Market:
    symbol: str
    product: str
    base: str
    price: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_leverage: int


@dataclass(frozen=True)
class OpenPosition:
    id: int
    symbol: str
    side: str  # long / short
    quantity: Decimal
    leverage: int


@dataclass(frozen=True)
class Plan:
    action: str
    symbol: str
    side: str = ""  # the order side for market orders
    quantity: Decimal | None = None  # None: the whole position
    leverage: int = 1
    position_id: int | None = None


def _uniform(rng: random.Random, low: str, high: str) -> Decimal:
    # Money never sees the float: the draw becomes a 4-dp Decimal first.
    return Decimal(f"{rng.uniform(float(low), float(high)):.4f}")


def least_quantity(market: Market, price: Decimal) -> Decimal:
    """The smallest quantity the venue accepts at ``price``."""
    by_notional = round_to_tick(market.min_notional / price, market.qty_step, up=True)
    return round_to_tick(max(market.min_qty, by_notional), market.qty_step, up=True)


def _entry_quantity(market: Market, budget: Decimal, leverage: int, free: Decimal) -> Decimal | None:
    """A quantity worth about ``budget`` of margin (or cash), within the
    instrument's limits and what ``free`` can pay for; None if impossible."""
    price = market.price
    quantity = floor_to_step(budget * leverage / price, market.qty_step)
    quantity = min(quantity, floor_to_step(market.max_qty, market.qty_step))
    quantity = max(quantity, least_quantity(market, price))
    # Keep 2 % headroom for the spread and the tick rounding of the fill.
    if quantity > market.max_qty or quantity * price / leverage * Decimal("1.02") > free:
        return None
    return quantity


def _exit_plan(market: Market, position: OpenPosition, rng: random.Random) -> Plan:
    """Take some or all of a position off."""
    closing = trade_math.closing_side(position.side)
    if rng.random() < 0.5:
        share = _uniform(rng, "0.25", "0.6")
        quantity = floor_to_step(position.quantity * share, market.qty_step)
        # A remainder below the minimum could never be closed on its own.
        if quantity > 0 and position.quantity - quantity >= market.min_qty:
            return Plan(REDUCE, market.symbol, closing, quantity, position.leverage, position.id)
    sellable = market.min_notional <= position.quantity * market.price and position.quantity <= market.max_qty
    if sellable and rng.random() < 0.5:
        return Plan(CLOSE_BY_ORDER, market.symbol, closing, position.quantity, position.leverage, position.id)
    return Plan(CLOSE, market.symbol, closing, None, position.leverage, position.id)


def _sell_plan(market: Market, holding: Decimal, rng: random.Random) -> Plan | None:
    least = least_quantity(market, market.price)
    if holding < least:
        return None  # dust: the venue would refuse any sell of it
    quantity = floor_to_step(holding * _uniform(rng, "0.3", "0.8"), market.qty_step)
    if quantity < least or holding - quantity < least or rng.random() < 0.3:
        quantity = holding  # sell out rather than leave unsellable dust
    return Plan(SPOT_SELL, market.symbol, trade_math.SELL, quantity)


def plan_trade(
    *,
    rng: random.Random,
    markets: list[Market],
    positions: dict[str, OpenPosition],
    holdings: dict[str, Decimal],
    free: Decimal,
    equity: Decimal,
) -> Plan | None:
    """The demo leader's next market order, or None if there is nothing sensible to do.

    ``markets`` are the instruments the portfolio may trade, ``positions`` its
    open margin positions by symbol, ``holdings`` its spot assets by base.
    """
    if not markets:
        return None
    by_symbol = {m.symbol: m for m in markets}
    if free < equity * DE_RISK_BELOW:
        exits = [p for p in positions.values() if p.symbol in by_symbol]
        sells = [m for m in markets if m.product == Product.SPOT and holdings.get(m.base, ZERO) > 0]
        options = [("position", p.symbol) for p in exits] + [("holding", m.symbol) for m in sells]
        if options:
            kind, symbol = options[rng.randrange(len(options))]
            if kind == "position":
                return _exit_plan(by_symbol[symbol], positions[symbol], rng)
            market = by_symbol[symbol]
            return _sell_plan(market, holdings[market.base], rng)
        return None

    market = markets[rng.randrange(len(markets))]
    if market.product == Product.MARGIN:
        position = positions.get(market.symbol)
        if position is None:
            side = trade_math.BUY if rng.random() < 0.5 else trade_math.SELL
            leverage = min(LEVERAGES[rng.randrange(len(LEVERAGES))], market.max_leverage)
            quantity = _entry_quantity(market, free * _uniform(rng, "0.02", "0.05"), leverage, free)
            return Plan(OPEN, market.symbol, side, quantity, leverage) if quantity else None
        if rng.random() < 0.35:
            side = trade_math.BUY if position.side == trade_math.LONG else trade_math.SELL
            budget = free * _uniform(rng, "0.01", "0.03")
            quantity = _entry_quantity(market, budget, position.leverage, free)
            if quantity:
                return Plan(INCREASE, market.symbol, side, quantity, position.leverage, position.id)
        return _exit_plan(market, position, rng)

    holding = holdings.get(market.base, ZERO)
    if holding > 0 and rng.random() < 0.45:
        plan = _sell_plan(market, holding, rng)
        if plan is not None:
            return plan
    quantity = _entry_quantity(market, free * _uniform(rng, "0.02", "0.05"), 1, free)
    return Plan(SPOT_BUY, market.symbol, trade_math.BUY, quantity) if quantity else None


# --- the strategy (carried out) ----------------------------------------------------


def _markets_for(portfolio: Portfolio) -> list[Market]:
    products = {
        PortfolioMode.MARGIN: [Product.MARGIN],
        PortfolioMode.SPOT: [Product.SPOT],
        PortfolioMode.ALL: [Product.MARGIN, Product.SPOT],
    }[portfolio.mode]
    # Spot pairs quoted in another currency never propagate; the demo keeps
    # to the primary currency so every trade it makes can be copied.
    rows = Instrument.objects.filter(
        is_active=True, product__in=products, quote=settings.PRIMARY_CURRENCY, mark_price__isnull=False
    ).order_by("symbol")
    return [
        Market(
            symbol=i.symbol,
            product=i.product,
            base=i.base,
            price=i.mark_price,
            qty_step=i.qty_step,
            min_qty=i.min_qty,
            max_qty=i.max_qty,
            min_notional=i.min_notional,
            max_leverage=i.max_leverage,
        )
        for i in rows
    ]


@dataclass(frozen=True)
class TradeResult:
    portfolio_id: int
    plan: Plan
    event_ids: list[int] = field(default_factory=list)


def demo_trade(*, portfolio: Portfolio, rng: random.Random) -> TradeResult | None:
    """Let the portfolio's simulated leader place one market order (or close).

    A refused order raises DomainError exactly as it would for a human leader."""
    markets = _markets_for(portfolio)
    account = Account.objects.get(pk=portfolio.trading_account_id)
    positions = {
        p.instrument.symbol: OpenPosition(p.pk, p.instrument.symbol, p.side, p.quantity, p.leverage)
        for p in Position.objects.filter(
            account_id=account.pk, status=PositionStatus.OPEN, leader_position__isnull=True
        ).select_related("instrument")
    }
    holdings = dict(Holding.objects.filter(account_id=account.pk, quantity__gt=0).values_list("asset", "quantity"))
    prices = {m.base: m.price for m in markets if m.product == Product.SPOT}
    equity = account.balance + sum((q * prices.get(asset, ZERO) for asset, q in holdings.items()), ZERO)
    plan = plan_trade(
        rng=rng, markets=markets, positions=positions, holdings=holdings, free=account.free, equity=equity
    )
    if plan is None:
        return None
    if plan.action in (REDUCE, CLOSE):
        events = [portfolio_position_close(portfolio=portfolio, position_id=plan.position_id, quantity=plan.quantity)]
    else:
        events = portfolio_order_place(
            portfolio=portfolio, symbol=plan.symbol, side=plan.side, quantity=plan.quantity, leverage=plan.leverage
        )
    return TradeResult(portfolio.pk, plan, [e.pk for e in events])


# --- the market ------------------------------------------------------------------------

# The walk is pulled back towards the seeded prices so a long demo stays believable.
ANCHORS = {row[0]: Decimal(row[-1]) for row in DEFAULT_INSTRUMENTS}


@transaction.atomic
def demo_market_move(*, rng: random.Random, volatility_bps: Decimal) -> dict[str, Decimal]:
    """Move every instrument's mark price one random-walk step (one
    transaction: one short write lock per tick in embedded mode)."""
    instruments = list(Instrument.objects.filter(is_active=True, mark_price__isnull=False).order_by("symbol"))
    targets = market_sim.walk({i.symbol: i.mark_price for i in instruments}, rng, volatility_bps, anchors=ANCHORS)
    moved = {}
    for instrument in instruments:
        try:
            moved[instrument.symbol] = price_set(instrument=instrument, price=targets[instrument.symbol]).mark_price
        except DomainError as exc:
            # e.g. a price that would round below one tick: skip this market this tick.
            log.warning("price %s not set: %s %s", instrument.symbol, exc.code, exc.detail)
    return moved


@dataclass(frozen=True)
class TickReport:
    prices: dict[str, Decimal]
    trade: TradeResult | None = None
    error: DomainError | None = None


def demo_tick(*, rng: random.Random, volatility_bps: Decimal, trade_probability: float) -> TickReport:
    """One simulator tick: move the market, then maybe let one demo leader trade.

    A refused order is logged and reported, never raised: the simulator must
    keep running whatever the market does to the leaders' balances."""
    prices = demo_market_move(rng=rng, volatility_bps=volatility_bps)
    if rng.random() >= trade_probability:
        return TickReport(prices)
    portfolios = demo_portfolios()
    if not portfolios:
        return TickReport(prices)
    portfolio = portfolios[rng.randrange(len(portfolios))]
    try:
        return TickReport(prices, trade=demo_trade(portfolio=portfolio, rng=rng))
    except DomainError as exc:
        log.warning("demo leader of portfolio %s: order refused: %s %s", portfolio.pk, exc.code, exc.detail)
        return TickReport(prices, error=exc)
