"""The leader's money on close (issue #12 point 6): when a portfolio closes, its
final trading balance and every bit of profit share it earned return to the
leader's main wallet through the ledger, in the closing flow.

Each scene runs the real flow: the leader trades, followers copy, fees accrue
(and the minute job settles some of them), the leader closes through the API,
and the wind-down runs as in production (the task dispatched on commit, then
the reconciler's pass). The table says where money was left before the close
and checks that afterwards every account of the portfolio is zero and the
leader's main wallet holds all of it."""

from dataclasses import dataclass
from decimal import Decimal

import pytest

from copytrading import ledger
from copytrading.errors import DomainError
from copytrading.models import Account, AccountKind, Holding, Transfer, TransferKind
from fees import services as fee_services
from fees import tasks as fee_tasks
from fees.checks import fee_books_check
from fees.models import AccrualStatus, FeeAccrual, LeaderProfitAccount, LeaderWithdrawal
from portfolios import lifecycle
from portfolios.lifecycle_tasks import reconcile_closing_portfolios
from portfolios.models import Portfolio, PortfolioStatus
from tests.copytrading.world import ETH_PERP, World

D = Decimal
ETH = "ETH/USDT"

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def main_balance(portfolio) -> Decimal:
    return Account.objects.get(pk=ledger.main_account_for(portfolio.leader).pk).balance


def profit_account(portfolio) -> Account | None:
    link = LeaderProfitAccount.objects.filter(portfolio_id=portfolio.pk).first()
    return Account.objects.get(pk=link.account_id) if link else None


def escrow_of(portfolio) -> Decimal:
    """What the portfolio's unsettled accruals hold in FEE_ESCROW."""
    unsettled = FeeAccrual.objects.filter(portfolio_id=portfolio.pk).exclude(status=AccrualStatus.SETTLED)
    return sum((a.fee for a in unsettled), D("0"))


def leader_parts_unsettled(portfolio) -> Decimal:
    unsettled = FeeAccrual.objects.filter(portfolio_id=portfolio.pk).exclude(status=AccrualStatus.SETTLED)
    return sum((a.leader_part for a in unsettled), D("0"))


def where_the_money_is(portfolio) -> dict[str, Decimal]:
    profit = profit_account(portfolio)
    return {
        "trading": Account.objects.get(pk=portfolio.trading_account_id).balance,
        "profit": profit.balance if profit else D("0"),
        "escrow": escrow_of(portfolio),
    }


def shared_portfolio(world, mode: str = "margin") -> Portfolio:
    """A portfolio asking a 10 % profit share (before anyone subscribes: a
    follower pays the share agreed when subscribing)."""
    portfolio = world.leader(mode=mode, fund="20000")
    Portfolio.objects.filter(pk=portfolio.pk).update(profit_share_pct=D("10.00"))
    portfolio.refresh_from_db()
    return portfolio


def leader_closes(world, api, portfolio) -> None:
    """The leader's close through the API; the wind-down task runs on commit."""
    api.force_authenticate(portfolio.leader)
    with world.capture(execute=True):
        r = api.post(f"/api/v1/portfolios/{portfolio.pk}/close", {}, format="json")
    assert r.status_code == 202, r.content


# --- the scenes: each leaves money somewhere when the leader closes -------------------


def _margin_profit_settled(world, portfolio, subs) -> None:
    """Followers' mirrors closed at a profit, the fees settled: the leader's
    part sits in the portfolio's profit account."""
    world.price(ETH_PERP, "3000")
    (event,) = world.trade(portfolio, ETH_PERP, "buy", "2")
    world.price(ETH_PERP, "3100")
    world.close(portfolio, event.payload["leader_position_id"])
    assert fee_tasks.settle_fees()["settled"] == len(subs)


def _open_mirrors_at_close(world, portfolio, subs) -> None:
    """Mirrors still open in profit when the leader closes: the fees accrue
    during the wind-down and wait in escrow (the minute job has not run)."""
    world.price(ETH_PERP, "3000")
    world.trade(portfolio, ETH_PERP, "buy", "2")
    world.price(ETH_PERP, "3100")


def _earned_then_partly_withdrawn(world, portfolio, subs) -> None:
    """Profit settled, the leader withdrew whole cents of it, the rest stays."""
    _margin_profit_settled(world, portfolio, subs)
    fee_services.leader_withdrawal_create(leader=portfolio.leader, portfolio_id=portfolio.pk, amount=D("10.005"))


def _spot_profit_and_holdings(world, portfolio, subs) -> None:
    """Spot round trip settled (profit account), then the leader and the
    followers hold ETH in profit at the close (accrued in the wind-down)."""
    world.price(ETH, "3000")
    world.trade(portfolio, ETH, "buy", "2", leverage=1)
    world.price(ETH, "3100")
    world.trade(portfolio, ETH, "sell", "2", leverage=1)
    fee_tasks.settle_fees()
    world.trade(portfolio, ETH, "buy", "1", leverage=1)
    world.price(ETH, "3300")


@dataclass(frozen=True)
class Scene:
    name: str
    mode: str
    setup: object
    # Where money sits just before the close (True: more than zero there).
    left_in_profit: bool
    left_in_escrow_at_close: bool


SCENES = [
    Scene("margin profit settled", "margin", _margin_profit_settled, True, False),
    Scene("mirrors open at close", "margin", _open_mirrors_at_close, False, True),
    Scene("earned, partly withdrawn", "margin", _earned_then_partly_withdrawn, True, False),
    Scene("spot profit and holdings", "all", _spot_profit_and_holdings, True, True),
]


@pytest.mark.parametrize("scene", SCENES, ids=[s.name for s in SCENES])
def test_closing_returns_everything_to_the_leaders_main_wallet(world, api, scene):
    portfolio = shared_portfolio(world, mode=scene.mode)
    subs = [world.follower(portfolio, amount="5000", multiplier="0.5") for _ in range(3)]
    scene.setup(world, portfolio, subs)
    before = where_the_money_is(portfolio)
    assert (before["profit"] > 0) == scene.left_in_profit
    main_before = main_balance(portfolio)

    leader_closes(world, api, portfolio)
    assert (FeeAccrual.objects.filter(portfolio_id=portfolio.pk).exclude(status="settled").exists()) is False or (
        scene.left_in_escrow_at_close
    )
    reconcile_closing_portfolios()  # the reconciler's pass finishes anything left

    portfolio.refresh_from_db()
    assert portfolio.status == PortfolioStatus.ARCHIVED
    after = where_the_money_is(portfolio)
    assert after == {"trading": 0, "profit": 0, "escrow": 0}, after
    # Every leader part was settled and the profit account swept; nothing stays behind.
    assert not FeeAccrual.objects.filter(portfolio_id=portfolio.pk).exclude(status=AccrualStatus.SETTLED).exists()
    trading = Account.objects.get(pk=portfolio.trading_account_id)
    assert (trading.balance, trading.locked, trading.is_closed) == (0, 0, True)
    assert not Holding.objects.filter(account_id=trading.pk, quantity__gt=0).exists()
    profit = profit_account(portfolio)
    if profit is not None:
        assert (profit.balance, profit.is_closed) == (0, True)
    # The main wallet gained exactly what the trading account returned and the
    # profit account (earned, less earlier withdrawals) handed over.
    returned = Transfer.objects.filter(debit_id=trading.pk, kind=TransferKind.LEADER_RETURN)
    swept = LeaderWithdrawal.objects.filter(
        portfolio_id=portfolio.pk, transfer__idempotency_key=fee_services.profit_return_key(portfolio.pk)
    )
    assert swept.count() == int(scene.left_in_profit or scene.left_in_escrow_at_close)
    assert main_balance(portfolio) - main_before == sum(t.amount for t in returned) + sum(w.amount for w in swept)
    assert ledger.ledger_check().ok
    assert fee_books_check().ok

    # Every step again changes nothing.
    transfers = Transfer.objects.count()
    assert lifecycle.portfolio_wind_down(portfolio_id=portfolio.pk) == PortfolioStatus.ARCHIVED
    assert reconcile_closing_portfolios() == {"closing": 0, "archived": 0}
    assert Transfer.objects.count() == transfers


def test_the_leaders_profit_share_ends_in_the_main_wallet_to_the_cent(world, api):
    """The worked figures: 3 followers' mirrors of 1 ETH gain 100 each, 10 %
    share, the default platform cut; the leader's parts all reach main."""
    portfolio = shared_portfolio(world)
    for _ in range(3):
        world.follower(portfolio, amount="5000", multiplier="0.5")
    _open_mirrors_at_close(world, portfolio, [])
    main_before = main_balance(portfolio)

    leader_closes(world, api, portfolio)

    portfolio.refresh_from_db()
    assert portfolio.status == PortfolioStatus.ARCHIVED  # settled in the wind-down: no wait for the reconciler
    leader_parts = sum((a.leader_part for a in FeeAccrual.objects.filter(portfolio_id=portfolio.pk)), D("0"))
    assert leader_parts > 0
    # 20000 funded + 2 ETH x 100 of the leader's own profit + the leader's parts.
    assert main_balance(portfolio) - main_before == D("20200") + leader_parts
    assert ledger.ledger_check().ok and fee_books_check().ok


def test_a_failed_settlement_holds_the_archive_until_staff_resolve_it(world, api, monkeypatch):
    portfolio = shared_portfolio(world)
    world.follower(portfolio, amount="5000", multiplier="0.5")
    _open_mirrors_at_close(world, portfolio, [])

    def refuse(accrual_ids, **kwargs):
        raise DomainError("ESCROW_SHORT", "refused")

    with monkeypatch.context() as m:
        m.setattr(fee_services, "_settle", refuse)
        leader_closes(world, api, portfolio)
    (accrual,) = FeeAccrual.objects.filter(portfolio_id=portfolio.pk)
    assert accrual.status == AccrualStatus.FAILED
    # Its money waits in escrow for the leader: archiving now would strand it.
    assert reconcile_closing_portfolios() == {"closing": 1, "archived": 0}
    assert Portfolio.objects.get(pk=portfolio.pk).status == PortfolioStatus.CLOSING

    assert fee_services.fee_accrual_resolve(accrual_id=accrual.pk).status == AccrualStatus.SETTLED
    assert reconcile_closing_portfolios() == {"closing": 1, "archived": 1}
    assert where_the_money_is(portfolio) == {"trading": 0, "profit": 0, "escrow": 0}
    assert ledger.ledger_check().ok and fee_books_check().ok


def test_a_crash_while_archiving_is_finished_by_the_reconciler(world, api, monkeypatch):
    portfolio = shared_portfolio(world)
    subs = [world.follower(portfolio, amount="5000", multiplier="0.5")]
    _margin_profit_settled(world, portfolio, subs)
    earned = profit_account(portfolio).balance
    main_before = main_balance(portfolio)

    def crash(**kwargs):
        raise RuntimeError("worker killed")

    with monkeypatch.context() as m:
        m.setattr(fee_services, "leader_profit_return", crash)
        leader_closes(world, api, portfolio)  # the wind-down task dies in the archive (logged, redelivered)
    # All or nothing: the archive's transaction rolled back, the money is where it was.
    assert Portfolio.objects.get(pk=portfolio.pk).status == PortfolioStatus.CLOSING
    assert profit_account(portfolio).balance == earned
    assert Account.objects.get(pk=portfolio.trading_account_id).balance > 0

    assert reconcile_closing_portfolios() == {"closing": 1, "archived": 1}
    assert where_the_money_is(portfolio) == {"trading": 0, "profit": 0, "escrow": 0}
    assert main_balance(portfolio) - main_before == D("20200") + earned  # funded 20000, +200 of its own trade
    assert ledger.ledger_check().ok and fee_books_check().ok


def test_a_withdrawal_after_the_archive_is_refused_with_a_clear_code(world, api):
    portfolio = shared_portfolio(world)
    subs = [world.follower(portfolio, amount="5000", multiplier="0.5")]
    _margin_profit_settled(world, portfolio, subs)
    leader_closes(world, api, portfolio)
    assert Portfolio.objects.get(pk=portfolio.pk).status == PortfolioStatus.ARCHIVED

    with pytest.raises(DomainError) as refused:
        fee_services.leader_withdrawal_create(leader=portfolio.leader, portfolio_id=portfolio.pk)
    assert refused.value.code == "PORTFOLIO_ARCHIVED"
    assert Account.objects.filter(kind=AccountKind.LEADER_PROFIT, balance__gt=0).count() == 0
