"""The copy-fidelity report (issue #18 §3): a seeded, simulated month on the
real engine, then each follower's ROI against the leader's, and every
divergence with its cause (``manage.py fidelity_report``; docs/operations.md,
"Copy fidelity").

The run. A fresh leader (portfolio mode "all", capital 100,000, profit share
10 %) trades about 200 x days / 30 times: the demo leader's strategy
(``backoffice.demo.plan_trade``: opens, increases, reduces, closes on three
perpetuals, buys and sells on two spot pairs), drawn from
``random.Random(seed)``, with one random-walk step of every market
(``copytrading.market_sim``) before each trade. Simulated time is compressed:
everything runs now, one step after another. Every order goes through the
portfolio services, every price through ``price_set`` (matching: liquidations
too), every copy through the outbox and Celery (a real worker in services
mode, inline where Celery is eager); after each step the run waits until the
portfolio's leader events are done, and runs a watchdog tick through Celery
(in a slot of its own, in the past day) and waits for it, so a seed gives one
run. At the end the leader closes and sells everything and the followers'
mirrors follow.

Followers (``--followers N``): about 60 % "ample" (progressive 1.0, twice the
leader's capital, no risk limits: the group the goal is about), the rest
in turn: "small" (progressive 0.01 with 2 % of the leader's capital: steps
and minimums), "stop" (ample, with a 2 % drawdown stop: the watchdog pauses
and closes), "risk" (ample, at most one open position), "capital"
(progressive 0.5 with 15 %: short of margin), "adaptive" (risk factor 1.0
with half), "fixed" (1,000 per trade), "slippage" (ample, 0.01 % tolerance).
Users are created with the prefix ``fidelity-<seed>-r<run>-`` and nothing
else is touched; as the run moves the marks of the instruments it trades,
it refuses a database with portfolios or subscriptions of anyone else.

The figures come from what the engine recorded: balances and positions
(``risk.selectors.wallet_figures``), execution rows, fee accruals and risk
events. ``backoffice.fidelity_causes`` decides the causes.
"""

import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from backoffice import fidelity_causes as fc
from backoffice import loadgen
from backoffice.demo import ANCHORS, CLOSE, REDUCE, Market, OpenPosition, least_quantity, plan_trade
from copytrading import market_sim, trade_math
from copytrading.errors import DomainError
from copytrading.models import (
    Account,
    Execution,
    Holding,
    Instrument,
    LeaderEvent,
    LeaderEventStatus,
    Position,
    PositionStatus,
    Product,
)
from copytrading.money import ZERO
from copytrading.services import instruments_seed, price_set
from copytrading.sizing import SizingModel
from fees.models import FeeAccrual
from followers.models import Subscription
from portfolios import copy_settings
from portfolios.models import Portfolio, PortfolioMode
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place, portfolio_position_close
from risk import tasks as risk_tasks
from risk import watchdog
from risk.models import Action, RiskEvent, WatchdogTick
from risk.selectors import wallet_figures
from risk.services import risk_limits_set

User = get_user_model()

PREFIX = "fidelity-"
LEADER_CAPITAL = Decimal("100000")
PROFIT_SHARE_PCT = Decimal("10")
TRADES_PER_30_DAYS = 200
# One market step before each trade: ~0.6 % per step is ~1.5 % a simulated day
# at 6.7 trades a day, a calm month (liquidations are rare, not impossible).
VOLATILITY_BPS = Decimal("60")
MARGIN_SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT")
SPOT_SYMBOLS = ("ETH/USDT", "SOL/USDT")
SYMBOLS = MARGIN_SYMBOLS + SPOT_SYMBOLS
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.02
AMPLE = "ample"
ONE = Decimal(1)


class FidelityError(DomainError):
    """The run cannot go on (a foreign database, a worker that never came)."""


@dataclass(frozen=True)
class Group:
    """A kind of follower: its copy settings, its capital as a multiple of the
    leader's, its risk limits."""

    name: str
    settings: dict
    capital: Decimal
    risk: dict = field(default_factory=dict)

    def scale(self, invested: Decimal) -> Decimal | None:
        """What its PnL is divided by to compare with the leader's ROI:
        progressive m: m x the leader's capital; adaptive r: r x its own
        capital; fixed notional: none (never counted in max/median)."""
        model = self.settings["sizing_model"]
        if model == SizingModel.PROGRESSIVE:
            return self.settings["multiplier"] * LEADER_CAPITAL
        if model == SizingModel.ADAPTIVE:
            return self.settings["risk_factor"] * invested
        return None


def _progressive(multiplier: str, **more) -> dict:
    return {"sizing_model": SizingModel.PROGRESSIVE, "multiplier": Decimal(multiplier), **more}


GROUPS = {
    g.name: g
    for g in (
        Group(AMPLE, _progressive("1"), Decimal(2)),
        Group("small", _progressive("0.01"), Decimal("0.02")),
        Group("stop", _progressive("1"), Decimal(2), {"max_drawdown_pct": Decimal("2")}),
        Group("risk", _progressive("1"), Decimal(2), {"max_open_positions": 1}),
        Group("capital", _progressive("0.5"), Decimal("0.15")),
        Group("adaptive", {"sizing_model": SizingModel.ADAPTIVE, "risk_factor": ONE}, Decimal("0.5")),
        Group("fixed", {"sizing_model": SizingModel.FIXED, "fixed_notional": Decimal("1000")}, Decimal("0.2")),
        Group("slippage", _progressive("1", slippage_tolerance_pct=Decimal("0.01")), Decimal(2)),
    )
}
MIX = ("small", "stop", "risk", "capital", "adaptive", "fixed", "slippage")


def follower_groups(count: int) -> list[str]:
    """~60 % ample (at least one), the rest through MIX in turn."""
    ample = max(1, round(count * Decimal("0.6"))) if count else 0
    return [AMPLE] * ample + [MIX[i % len(MIX)] for i in range(count - ample)]


def trade_count(days: int) -> int:
    return max(1, round(Decimal(TRADES_PER_30_DAYS * days) / 30))


# --- the world -----------------------------------------------------------------------


def foreign_activity() -> bool:
    """Portfolios or subscriptions of users the report did not create: the
    run's price moves would reach their positions."""
    return (
        Portfolio.objects.exclude(leader__username__startswith=PREFIX).exists()
        or Subscription.objects.exclude(follower__username__startswith=PREFIX).exists()
    )


@dataclass
class World:
    prefix: str
    portfolio: Portfolio
    groups: dict[int, str]  # subscription id -> group name


def _run_prefix(seed: int) -> str:
    """``fidelity-<seed>-r<n>-``: a new n per run of the same seed."""
    stem = f"{PREFIX}{seed}-r"
    runs = User.objects.filter(username__startswith=stem, username__endswith="-leader").count()
    return f"{stem}{runs + 1}-"


@transaction.atomic
def world_create(*, seed: int, followers: int) -> World:
    """The leader, its funded portfolio and the followers (set-based, through
    backoffice.loadgen: users, funded main wallets, subscriptions)."""
    prefix = _run_prefix(seed)
    names = [f"{prefix}leader"] + [f"{prefix}f{n:03d}" for n in range(1, followers + 1)]
    ids, _ = loadgen.users_bulk(usernames=names)
    leader = User.objects.get(pk=ids[names[0]])
    loadgen.main_wallets_fund(user_ids=[leader.pk], amount=LEADER_CAPITAL, idempotency_key="fidelity")
    portfolio = portfolio_create(
        leader=leader,
        name=f"Fidelity {seed} {prefix.rsplit('-', 2)[-2]}",
        mode=PortfolioMode.ALL,
        profit_share_pct=PROFIT_SHARE_PCT,
    )
    portfolio_fund(portfolio=portfolio, amount=LEADER_CAPITAL, idempotency_key="fidelity")

    by_group: dict[str, list[int]] = defaultdict(list)
    for name, group in zip(names[1:], follower_groups(followers), strict=True):
        by_group[group].append(ids[name])
    groups: dict[int, str] = {}
    for name, user_ids in by_group.items():
        group = GROUPS[name]
        amount = (group.capital * LEADER_CAPITAL).quantize(Decimal("0.01"))
        resolved = copy_settings.resolve(template_values=None, explicit={**group.settings, **group.risk}, amount=amount)
        loadgen.main_wallets_fund(user_ids=user_ids, amount=amount, idempotency_key="fidelity")
        rows = [loadgen.NewSubscription(pk, amount, resolved.settings) for pk in user_ids]
        for sub_id in loadgen.subscriptions_bulk(portfolio=portfolio, rows=rows):
            groups[sub_id] = name
            if resolved.risk_limits:
                risk_limits_set(subscription_id=sub_id, **resolved.risk_limits)
    return World(prefix, portfolio, groups)


# --- the run ------------------------------------------------------------------------


class Engine:
    """Drives the run and waits for the engine after each step."""

    def __init__(self, world: World, *, rng: random.Random, wait_seconds: float) -> None:
        self.world = world
        self.rng = rng
        self.wait_seconds = wait_seconds
        self.trades = 0
        self.refused = 0
        start = watchdog.tick_number(timezone.now() - timedelta(days=1))
        last = WatchdogTick.objects.aggregate(m=Max("number"))["m"]
        self.next_slot = max(start, (last or 0) + 1)

    def wait_for_events(self) -> None:
        """Until every leader event of the portfolio is done (bounded)."""
        pending = LeaderEvent.objects.filter(portfolio_id=self.world.portfolio.pk).exclude(
            status=LeaderEventStatus.DONE
        )
        deadline = time.monotonic() + self.wait_seconds
        while True:
            event = pending.order_by("seq").values_list("seq", "status").first()
            if event is None:
                return
            if time.monotonic() >= deadline:
                raise FidelityError(
                    "FIDELITY_TIMEOUT",
                    f"leader event #{event[0]} is still {event[1]} after {self.wait_seconds:g} s: is a Celery worker "
                    "consuming the fanout queue? (celery -A config worker -Q fanout,default,watchdog)",
                )
            time.sleep(POLL_SECONDS)

    def watchdog_tick(self) -> None:
        """One watchdog tick through Celery, in a slot of its own (the slots
        of the past day, one after another), waited for."""
        number, self.next_slot = self.next_slot, self.next_slot + 1
        at = datetime.fromtimestamp(number * watchdog.interval_seconds(), tz=UTC)
        risk_tasks.watchdog_tick.delay(at=at.isoformat())
        deadline = time.monotonic() + self.wait_seconds
        while not WatchdogTick.objects.filter(number=number, completed_at__isnull=False).exists():
            if time.monotonic() >= deadline:
                raise FidelityError(
                    "FIDELITY_TIMEOUT",
                    f"watchdog tick {number} not done after {self.wait_seconds:g} s: is a Celery worker "
                    "consuming the watchdog queue?",
                )
            time.sleep(POLL_SECONDS)

    def market_move(self) -> None:
        with transaction.atomic():
            instruments = list(Instrument.objects.filter(symbol__in=SYMBOLS).order_by("symbol"))
            targets = market_sim.walk(
                {i.symbol: i.mark_price for i in instruments}, self.rng, VOLATILITY_BPS, anchors=ANCHORS
            )
            for instrument in instruments:
                price_set(instrument=instrument, price=targets[instrument.symbol])
        self.wait_for_events()

    def _book(self) -> tuple[Account, list[Market], dict[str, OpenPosition], dict[str, Decimal]]:
        """The leader's trading account, markets, open positions and holdings, as plan_trade reads them."""
        portfolio = self.world.portfolio
        account = Account.objects.get(pk=portfolio.trading_account_id)
        instruments = list(Instrument.objects.filter(symbol__in=SYMBOLS).order_by("symbol"))
        markets = [
            Market(
                i.symbol, i.product, i.base, i.mark_price, i.qty_step, i.min_qty, i.max_qty, i.min_notional,
                i.max_leverage,
            )
            for i in instruments
        ]  # fmt: skip
        positions = {
            p.instrument.symbol: OpenPosition(p.pk, p.instrument.symbol, p.side, p.quantity, p.leverage)
            for p in Position.objects.filter(account_id=account.pk, status=PositionStatus.OPEN).select_related(
                "instrument"
            )
        }
        holdings = dict(Holding.objects.filter(account_id=account.pk, quantity__gt=0).values_list("asset", "quantity"))
        return account, markets, positions, holdings

    def leader_trade(self) -> None:
        """The leader's next order (the demo strategy); a refused one is
        counted, not raised."""
        account, markets, positions, holdings = self._book()
        prices = {m.base: m.price for m in markets if m.product == Product.SPOT}
        equity = account.balance + sum((q * prices.get(a, ZERO) for a, q in holdings.items()), ZERO)
        plan = plan_trade(
            rng=self.rng, markets=markets, positions=positions, holdings=holdings, free=account.free, equity=equity
        )
        if plan is None:
            return
        portfolio = self.world.portfolio
        try:
            if plan.action in (REDUCE, CLOSE):
                portfolio_position_close(portfolio=portfolio, position_id=plan.position_id, quantity=plan.quantity)
            else:
                portfolio_order_place(
                    portfolio=portfolio,
                    symbol=plan.symbol,
                    side=plan.side,
                    quantity=plan.quantity,
                    leverage=plan.leverage,
                )
        except DomainError:
            self.refused += 1
            return
        self.trades += 1
        self.wait_for_events()

    def flatten(self) -> None:
        """The leader closes every position and sells every holding it can."""
        _, markets, positions, holdings = self._book()
        portfolio = self.world.portfolio
        for position in positions.values():
            portfolio_position_close(portfolio=portfolio, position_id=position.id)
            self.wait_for_events()
        for market in markets:
            held = holdings.get(market.base, ZERO)
            if market.product == Product.SPOT and held >= least_quantity(market, market.price):
                portfolio_order_place(portfolio=portfolio, symbol=market.symbol, side=trade_math.SELL, quantity=held)
                self.wait_for_events()


@dataclass(frozen=True)
class FollowerResult:
    subscription_id: int
    group: str
    invested: Decimal
    pnl: Decimal  # equity at the end - invested
    fee: Decimal
    roi: Decimal | None  # gross of the fee, at the leader's scale
    gap_pp: Decimal | None


@dataclass(frozen=True)
class Report:
    summary: fc.Summary
    prefix: str
    portfolio_id: int
    trades: int
    refused: int
    events: int
    leader_roi: Decimal
    followers: list[FollowerResult]

    @property
    def lines(self) -> list[str]:
        """The exact line, then the leader, the groups and the divergences."""
        out = [
            self.summary.line,
            f"leader portfolio={self.portfolio_id} users={self.prefix}* trades={self.trades} "
            f"refused={self.refused} events={self.events} roi_pct={self.leader_roi * 100:.4f}",
        ]
        by_group: dict[str, list[FollowerResult]] = defaultdict(list)
        for f in self.followers:
            by_group[f.group].append(f)
        for name in (AMPLE, *MIX):
            rows = by_group.get(name)
            if not rows:
                continue
            gaps = [f.gap_pp for f in rows if f.gap_pp is not None]
            figures = (
                f"max_gap_pp={max(gaps):.4f} median_gap_pp={fc.median(gaps):.4f}" if gaps else "gap_pp=- (no scale)"
            )
            fees = sum((f.fee for f in rows), ZERO)
            out.append(f"group {name:<9} followers={len(rows):<3} {figures} fees={fc.num(fees)}")
        out.append(f"divergences: {len(self.summary.divergences)}")
        out.extend(fc.table_lines(self.summary.divergences))
        return out


def _row_facts(portfolio_id: int, subscription_ids: list[int]) -> dict[int, list[fc.RowFacts]]:
    max_qty = dict(Instrument.objects.values_list("symbol", "max_qty"))
    closed_mirrors = set(
        Position.objects.filter(subscription_id__in=subscription_ids, status=PositionStatus.CLOSED).values_list(
            "subscription_id", "leader_position_id"
        )
    )
    rows: dict[int, list[fc.RowFacts]] = defaultdict(list)
    executions = (
        Execution.objects.filter(portfolio_id=portfolio_id, subscription_id__in=subscription_ids)
        .select_related("event")
        .order_by("event__seq")
    )
    for e in executions.iterator():
        payload = e.event.payload if isinstance(e.event.payload, dict) else {}
        symbol = payload.get("symbol", "")
        rows[e.subscription_id].append(
            fc.RowFacts(
                seq=e.event.seq,
                kind=e.event.kind,
                symbol=symbol,
                outcome=e.outcome,
                reason_code=e.reason_code,
                leader_quantity=e.leader_quantity,
                leader_price=e.leader_price,
                follower_quantity=e.follower_quantity,
                follower_price=e.follower_price,
                attempted_quantity=e.attempted_quantity,
                quantity_step=e.quantity_step,
                min_quantity=e.min_quantity,
                min_notional=e.min_notional,
                max_quantity=max_qty.get(symbol),
                reason_detail=e.reason_detail,
                trigger=payload.get("trigger") or "",
                mirror_triggered=(e.subscription_id, payload.get("leader_position_id")) in closed_mirrors,
            )
        )
    return rows


def report_build(world: World, engine: Engine, *, days: int) -> Report:
    """Each follower's ROI against the leader's, from what the engine recorded."""
    portfolio = world.portfolio
    subs = list(Subscription.objects.filter(pk__in=list(world.groups)).order_by("pk"))
    figures = wallet_figures([portfolio.trading_account_id, *(s.copy_account_id for s in subs)])
    leader_roi = fc.roi(figures[portfolio.trading_account_id].equity - LEADER_CAPITAL, LEADER_CAPITAL)
    fees = dict(
        FeeAccrual.objects.filter(subscription_id__in=[s.pk for s in subs])
        .values("subscription_id")
        .annotate(total=Sum("fee"))
        .values_list("subscription_id", "total")
    )
    risk = defaultdict(set)
    for sub_id, action in RiskEvent.objects.filter(
        subscription_id__in=[s.pk for s in subs], action__in=[Action.PAUSE, Action.PAUSE_AND_CLOSE]
    ).values_list("subscription_id", "action"):
        risk[sub_id].add(action)
    rows = _row_facts(portfolio.pk, [s.pk for s in subs])

    results, facts = [], []
    for sub in subs:
        group = GROUPS[world.groups[sub.pk]]
        fee = fees.get(sub.pk) or ZERO
        pnl = figures[sub.copy_account_id].equity - sub.invested
        scale = group.scale(sub.invested)
        roi = fc.roi(pnl + fee, scale) if scale else None
        gap = fc.gap_pp(leader_roi, roi) if roi is not None else None
        results.append(FollowerResult(sub.pk, group.name, sub.invested, pnl, fee, roi, gap))
        facts.append(
            fc.FollowerFacts(
                subscription_id=sub.pk,
                group=group.name,
                sizing_model=sub.sizing_model,
                multiplier=sub.multiplier,
                rows=rows.get(sub.pk, []),
                fee=fee,
                gap_pp=gap,
                risk_paused=bool(risk.get(sub.pk)),
                risk_closed=Action.PAUSE_AND_CLOSE in risk.get(sub.pk, ()),
            )
        )
    return Report(
        summary=fc.summarize(days=days, followers=facts, measured_group=AMPLE),
        prefix=world.prefix,
        portfolio_id=portfolio.pk,
        trades=engine.trades,
        refused=engine.refused,
        events=LeaderEvent.objects.filter(portfolio_id=portfolio.pk).count(),
        leader_roi=leader_roi,
        followers=results,
    )


def fidelity_run(
    *,
    days: int,
    followers: int,
    seed: int,
    force: bool = False,
    wait_seconds: float = WAIT_SECONDS,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Seed the world, run the leader's month step by step on the real engine,
    flatten, and report. ``progress(done, total)`` after each step."""
    if days < 1 or followers < 1:
        raise FidelityError("INVALID_SIZE", "days and followers must be at least 1.")
    if not force and foreign_activity():
        raise FidelityError(
            "FOREIGN_DATA",
            "this database has portfolios or subscriptions the report did not create, and the run moves the "
            "marks of the instruments it trades: run it on a scratch database (or pass --force)",
        )
    instruments_seed()
    with transaction.atomic():
        # Every run starts from the same marks: the instruments' seeded prices.
        for instrument in Instrument.objects.filter(symbol__in=SYMBOLS).order_by("symbol"):
            price_set(instrument=instrument, price=ANCHORS[instrument.symbol])
    world = world_create(seed=seed, followers=followers)
    engine = Engine(world, rng=random.Random(seed), wait_seconds=wait_seconds)
    engine.wait_for_events()
    target = trade_count(days)
    # A step without a trade (nothing sensible, or refused) is still a step of
    # the market; the run gives up on trades after 4 x the target's steps.
    steps = 0
    while engine.trades < target and steps < 4 * target:
        steps += 1
        engine.market_move()
        engine.watchdog_tick()
        engine.leader_trade()
        if progress is not None:
            progress(engine.trades, target)
    engine.flatten()
    return report_build(world, engine, days=days)
