"""Profit share on spot sells (issue #12 point 5): a follower's spot sell
realizes proceeds less the average cost of what it sold, and accrues the
profit share exactly as a closed margin mirror does — per trade or above the
high-water mark, once per sell, in the sell's transaction, settled by the
same job. Everything runs through the real services and propagation (eager
Celery dispatched on commit) with the venue's close listener accruing."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from copytrading import ledger, propagation
from copytrading.ledger import ledger_check
from copytrading.models import Account, AccountKind, Holding, Instrument, Order, Position, Transfer, TransferKind
from copytrading.services import price_set
from copytrading.venue import SpotSale
from fees import tasks
from fees.checks import fee_books_check
from fees.models import AccrualStatus, AuditAction, FeeAccrual, FeeModel, HighWaterMark, LeaderProfitAccount
from fees.services import ClosedMirror, fees_accrue, fees_settle, leader_key, platform_key
from followers import fee_hooks
from followers.services import subscription_unfollow
from portfolios.fee_settings import portfolio_fee_model_set
from portfolios.services import portfolio_order_place
from tests.factories import StaffFactory
from tests.fees.conftest import ETH_PERP, ETH_SPOT, D, balance, escrow, platform

pytestmark = pytest.mark.django_db


def sells_of(sub) -> list[Order]:
    """The copy wallet's spot sells (a spot order has no position)."""
    return list(Order.objects.filter(account_id=sub.copy_account_id, side="sell", position=None).order_by("pk"))


def accruals_of(sub) -> list[FeeAccrual]:
    return list(FeeAccrual.objects.filter(subscription_id=sub.pk).order_by("pk"))


def reported(sub, order: Order, portfolio) -> ClosedMirror:
    """What the close listener reports for one spot sell (for replays)."""
    return ClosedMirror(
        position_id=None,
        order_id=order.pk,
        subscription_id=sub.pk,
        portfolio_id=portfolio.pk,
        copy_account_id=sub.copy_account_id,
        leader_user_id=portfolio.leader_id,
        realized_pnl=order.realized_pnl,
        profit_share_pct=portfolio.profit_share_pct,
        fee_model=portfolio.fee_model,
    )


def test_worked_example_for_spot_accrues_15_and_settles_6_to_platform_and_9_to_leader(fee_world):
    portfolio = fee_world.leader(share="15.00", platform_cut="40.00", mode="spot")
    sub = fee_world.follower(portfolio)  # 0.5 of the leader's 1 ETH
    fee_world.spot_round_trip(portfolio, "3200", "3400")  # buys 0.5 for 1600, sells for 1700

    (sell,) = sells_of(sub)
    assert (sell.realized_pnl, sell.position_id) == (D("100"), None)
    (accrual,) = accruals_of(sub)
    assert (accrual.source_order_id, accrual.source_position_id, accrual.source) == (
        sell.pk,
        None,
        f"order {sell.pk}",
    )
    assert (accrual.profit, accrual.position_pnl, accrual.share_pct, accrual.platform_cut_pct) == (
        D("100"),
        D("100"),
        D("15"),
        D("40"),
    )
    assert (accrual.fee, accrual.platform_part, accrual.leader_part) == (D("15"), D("6"), D("9"))
    # 5000 + 100 of profit - 15 of fee: the 5,400-without-a-fee hole is closed.
    assert balance(sub.copy_account_id) == D("5085")
    assert escrow() == D("15")
    (debit,) = Transfer.objects.filter(kind=TransferKind.PROFIT_SHARE)
    assert (debit.debit_id, debit.amount, debit.idempotency_key, debit.ref) == (
        sub.copy_account_id,
        D("15"),
        f"fee:order:{sell.pk}:accrue",
        f"order {sell.pk}",
    )
    assert accrual.audit.get(action=AuditAction.ACCRUED).detail["order"] == sell.pk

    assert tasks.settle_fees() == {"settled": 1, "failed": 0}
    accrual.refresh_from_db()
    assert accrual.status == AccrualStatus.SETTLED
    profit = LeaderProfitAccount.objects.get(portfolio_id=portfolio.pk).account
    assert (escrow(), platform(), profit.balance) == (0, D("6"), D("9"))
    keys = set(Transfer.objects.filter(kind__startswith="FEE_SETTLE").values_list("idempotency_key", flat=True))
    assert keys == {leader_key(None, sell.pk), platform_key(None, sell.pk)}
    # The leader's own sell (+200) is never charged.
    assert FeeAccrual.objects.count() == 1
    assert ledger_check().ok
    assert fee_books_check().ok


def test_a_spot_sell_accrues_once_however_often_it_is_reported(fee_world):
    portfolio = fee_world.leader(mode="spot")
    sub = fee_world.follower(portfolio)
    fee_world.spot_round_trip(portfolio, "3200", "3400")
    (sell,) = sells_of(sub)
    before = (balance(sub.copy_account_id), escrow(), Transfer.objects.count())

    # The same sell reported again: by the listener (a replayed batch) and to the service.
    fee_hooks.accrue_closed_mirrors([], [SpotSale(sell.pk, sub.copy_account_id, sell.realized_pnl, sub.pk)])
    assert fees_accrue(closes=[reported(sub, sell, portfolio)] * 2) == []

    assert len(accruals_of(sub)) == 1
    assert (balance(sub.copy_account_id), escrow(), Transfer.objects.count()) == before


def test_a_sell_whose_accrual_fails_is_not_written_either(fee_world, monkeypatch):
    """The accrual runs in the sell's transaction: a crash in between leaves
    neither a sale without its fee nor a fee without its sale."""
    portfolio = fee_world.leader(mode="spot")
    sub = fee_world.follower(portfolio)
    fee_world.price("3200", ETH_SPOT)
    fee_world.spot(portfolio, "buy")
    fee_world.price("3400", ETH_SPOT)
    holding = Holding.objects.get(account_id=sub.copy_account_id, asset="ETH")

    def crash(**kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(fee_hooks, "fees_accrue", crash)
    with pytest.raises(RuntimeError):
        subscription_unfollow(subscription=sub)  # sells the copied holding at market

    assert Holding.objects.get(pk=holding.pk).quantity == D("0.5")
    assert sells_of(sub) == []
    assert balance(sub.copy_account_id) == D("3400")  # 5000 - 1600 paid for the ETH
    assert not FeeAccrual.objects.exists()

    monkeypatch.undo()
    result = subscription_unfollow(subscription=sub)  # the retry sells and accrues once
    (accrual,) = accruals_of(sub)
    assert (accrual.source_order_id, accrual.fee) == (sells_of(sub)[0].pk, D("15"))
    assert result.returned == D("5085")
    assert ledger_check().ok


def test_a_losing_or_break_even_spot_sell_pays_nothing(fee_world):
    portfolio = fee_world.leader(mode="spot")
    loser, flat = fee_world.follower(portfolio), fee_world.follower(portfolio)
    fee_world.spot_round_trip(portfolio, "3200", "3000")  # -100 each
    fee_world.spot_round_trip(portfolio, "3200", "3200")  # 0 each

    assert [o.realized_pnl for o in sells_of(loser)] == [D("-100"), D("0")]
    assert not FeeAccrual.objects.exists()
    assert not Transfer.objects.filter(kind=TransferKind.PROFIT_SHARE).exists()
    assert balance(loser.copy_account_id) == balance(flat.copy_account_id) == D("4900")


def test_a_partial_sell_is_charged_on_the_average_cost_of_what_it_sold(fee_world):
    portfolio = fee_world.leader(mode="spot")
    sub = fee_world.follower(portfolio)
    fee_world.price("3000", ETH_SPOT)
    fee_world.spot(portfolio, "buy")  # 0.5 at 3000
    fee_world.price("3400", ETH_SPOT)
    fee_world.spot(portfolio, "buy")  # 0.5 more at 3400: 1.0 at an average 3200
    fee_world.price("3600", ETH_SPOT)
    fee_world.spot(portfolio, "sell", "1")  # half of the leader's 2: the mirror sells 0.5

    (sell,) = sells_of(sub)
    assert (sell.quantity, sell.realized_pnl) == (D("0.5"), D("200"))  # 1800 - 0.5 x 3200
    (accrual,) = accruals_of(sub)
    assert (accrual.profit, accrual.fee) == (D("200"), D("30"))
    assert Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").cost_basis == D("1600")


def test_a_resting_spot_limit_sell_that_fills_accrues(fee_world):
    portfolio = fee_world.leader(mode="spot")
    sub = fee_world.follower(portfolio)
    fee_world.price("3200", ETH_SPOT)
    fee_world.spot(portfolio, "buy")
    fee_world.spot_limit(portfolio, "sell", "3400")
    (resting,) = Order.objects.filter(account_id=sub.copy_account_id, status="open")
    assert not FeeAccrual.objects.exists()

    with fee_world.capture(execute=True):
        fee_world.price("3400", ETH_SPOT)  # the matching fills leader and mirror

    resting.refresh_from_db()
    assert (resting.status, resting.realized_pnl) == ("filled", D("100"))
    (accrual,) = accruals_of(sub)
    assert (accrual.source_order_id, accrual.fee) == (resting.pk, D("15"))
    assert balance(sub.copy_account_id) == D("5085")
    assert ledger_check().ok


def test_a_cross_quote_sell_realizes_nothing_in_usdt_and_reports_no_sale(fee_world, monkeypatch):
    """ETH/BTC settles in BTC: the basis moves to the BTC holding and nothing is
    realized in the primary currency, so no fee (the gain pays when the BTC is
    sold for USDT). Copy wallets skip cross-quote pairs (QUOTE_MISMATCH)."""
    from copytrading import venue

    portfolio = fee_world.leader(mode="spot")
    sub = fee_world.follower(portfolio)
    fee_world.price("64000", "BTC/USDT")
    fee_world.price("0.05", "ETH/BTC")
    fee_world.spot(portfolio, "buy", "0.1", "BTC/USDT")
    fee_world.spot(portfolio, "buy", "1", "ETH/BTC")
    fee_world.price("0.06", "ETH/BTC")
    batches = []
    monkeypatch.setattr(venue, "_close_listeners", [*venue.close_listeners(), lambda c, s: batches.append(s)])

    fee_world.spot(portfolio, "sell", "1", "ETH/BTC")

    (cross,) = Order.objects.filter(account_id=portfolio.trading_account_id, instrument__symbol="ETH/BTC", side="sell")
    assert cross.realized_pnl is None
    assert batches == []  # the batch realized nothing: no listener call at all
    assert sells_of(sub) == [] and not FeeAccrual.objects.exists()

    fee_world.price("66000", "BTC/USDT")
    fee_world.spot(portfolio, "sell", "0.11", "BTC/USDT")  # all of it: the follower's 0.05 BTC sells for USDT
    (back,) = sells_of(sub)
    assert back.realized_pnl == D("100")  # 0.05 x (66000 - 64000)
    (accrual,) = accruals_of(sub)
    assert (accrual.source_order_id, accrual.fee) == (back.pk, D("15"))


# Mixed spot and margin results of one subscription (a portfolio trading both):
# the mirror holds 0.5 of the leader's 1 ETH on either product line.
MIXED = [
    ("spot", "3400", D("100")),
    ("margin", "3080", D("-60")),
    ("spot", "3360", D("80")),
    ("margin", "3000", D("-100")),
    ("spot", "3400", D("100")),
]


def _trade_mixed(fee_world, portfolio) -> None:
    for line, exit_, _ in MIXED:
        if line == "spot":
            fee_world.spot_round_trip(portfolio, "3200", exit_)
        else:
            fee_world.round_trip(portfolio, "3200", exit_)


@pytest.mark.parametrize(
    ("fee_model", "charged", "mark"),
    [
        # Every profitable trade pays, spot or margin.
        (
            FeeModel.PER_TRADE,
            [("order", D("100"), D("15")), ("order", D("80"), D("12")), ("order", D("100"), D("15"))],
            None,
        ),
        # Cumulative 100, 40, 120, 20, 120: only the new highs pay (100, then 20 above it);
        # the margin losses count against the mark.
        (FeeModel.HIGH_WATER_MARK, [("order", D("100"), D("15")), ("order", D("20"), D("3"))], D("120")),
    ],
)  # fmt: skip
def test_mixed_spot_and_margin_results(fee_world, fee_model, charged, mark):
    portfolio = fee_world.leader(share="15.00", platform_cut="40.00", mode="all")
    portfolio_fee_model_set(portfolio=portfolio, fee_model=fee_model)
    sub = fee_world.follower(portfolio)

    _trade_mixed(fee_world, portfolio)

    got = [("order" if a.source_order_id else "position", a.profit, a.fee) for a in accruals_of(sub)]
    assert got == charged
    assert HighWaterMark.objects.filter(subscription_id=sub.pk).values_list("mark", flat=True).first() == mark
    fees = sum((f for _, _, f in charged), D("0"))
    assert balance(sub.copy_account_id) == D("5000") + sum(r for _, _, r in MIXED) - fees
    fees_settle()
    assert (escrow(), platform()) == (0, fees * D("0.4"))
    assert ledger_check().ok and fee_books_check().ok


def test_under_the_high_water_mark_a_losing_spot_sell_counts_against_the_mark(fee_world):
    portfolio = fee_world.leader(mode="spot")
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    sub = fee_world.follower(portfolio)
    fee_world.spot_round_trip(portfolio, "3200", "3000")  # -100
    fee_world.spot_round_trip(portfolio, "3200", "3400")  # +100: back at 0, nothing above the mark
    assert accruals_of(sub) == []
    fee_world.spot_round_trip(portfolio, "3200", "3300")  # +50: 50 above the mark
    (accrual,) = accruals_of(sub)
    assert (accrual.profit, accrual.fee, accrual.mark_before, accrual.mark_after) == (D("50"), D("7.5"), 0, D("50"))
    # A replay of every sell charges nothing more: the cumulative result is at the mark.
    portfolio.refresh_from_db()
    assert fees_accrue(closes=[reported(sub, o, portfolio) for o in sells_of(sub) if o.realized_pnl > 0]) == []


def test_a_margin_close_and_a_spot_sell_of_one_wallet_in_one_batch_each_accrue(fee_world):
    portfolio = fee_world.leader(mode="all")
    sub = fee_world.follower(portfolio)
    fee_world.price("3200", ETH_SPOT)
    fee_world.price("3200", ETH_PERP)
    fee_world.spot(portfolio, "buy")
    fee_world.open(portfolio)
    fee_world.price("3400", ETH_SPOT)
    fee_world.price("3400", ETH_PERP)

    subscription_unfollow(subscription=sub)  # closes the mirror and sells the holding

    mirror = Position.objects.get(account_id=sub.copy_account_id)
    assert sorted((a.source, a.fee) for a in accruals_of(sub)) == sorted(
        [(f"order {sells_of(sub)[0].pk}", D("15")), (f"position {mirror.pk}", D("15"))]
    )
    assert escrow() == D("30")
    assert ledger_check().ok


def _spot_sell_chunk_queries(fee_world, followers: int) -> int:
    """Queries of one propagation chunk of a leader's spot sell that realizes
    a profit for ``followers`` copy wallets, each accruing its fee."""
    portfolio = fee_world.leader(mode="spot")
    subs = [fee_world.follower(portfolio) for _ in range(followers)]
    fee_world.price("3200", ETH_SPOT)
    fee_world.spot(portfolio, "buy")
    ledger.system_account(AccountKind.FEE_ESCROW)  # created once ever, not per chunk
    price_set(instrument=Instrument.objects.get(symbol=ETH_SPOT), price=D("3400"))
    (event,) = portfolio_order_place(portfolio=portfolio, symbol=ETH_SPOT, side="sell", quantity=D("1"), leverage=1)
    (chunk_id,) = propagation.event_start(event.pk)
    with CaptureQueriesContext(connection) as queries:
        result = propagation.chunk_propagate(chunk_id)
    assert result.copied == followers
    assert FeeAccrual.objects.filter(subscription_id__in=[s.pk for s in subs], source_order__isnull=False).count() == (
        followers
    )
    return len(queries)


def test_a_spot_sell_chunks_query_count_stays_constant_with_fees_accruing(fee_world, settings):
    settings.FANOUT_CHUNK_SIZE = 100
    assert _spot_sell_chunk_queries(fee_world, 5) == _spot_sell_chunk_queries(fee_world, 40)


def test_the_admin_shows_what_a_fee_came_from(fee_world, client):
    portfolio = fee_world.leader(mode="spot")
    sub = fee_world.follower(portfolio)
    fee_world.spot_round_trip(portfolio, "3200", "3400")
    (accrual,) = accruals_of(sub)
    client.force_login(StaffFactory(is_superuser=True))

    listing = client.get(reverse("admin:fees_feeaccrual_changelist"))
    page = client.get(reverse("admin:fees_feeaccrual_change", args=[accrual.pk]))
    found = client.get(reverse("admin:fees_feeaccrual_changelist"), {"q": str(accrual.source_order_id)})

    assert listing.status_code == page.status_code == found.status_code == 200
    assert f"order {accrual.source_order_id}" in listing.content.decode()
    assert reverse("admin:copytrading_order_change", args=[accrual.source_order_id]) in page.content.decode()
    assert found.context["cl"].result_count == 1


def test_a_wallet_short_of_a_spot_sells_fee_is_charged_its_free_balance(fee_world, no_close_listener):
    """The available-balance cap applies as for margin: the proceeds went into
    margin elsewhere before the fee was taken."""
    portfolio = fee_world.leader(mode="all")
    sub = fee_world.follower(portfolio, amount="500")
    fee_world.price("3200", ETH_SPOT)
    fee_world.spot(portfolio, "buy", "0.2")  # the wallet: 0.1 ETH for 320
    fee_world.price("4200", ETH_SPOT)
    fee_world.spot(portfolio, "sell", "0.2")  # +100: wallet 600, fee due 15 (listener off)
    with fee_world.capture(execute=True):
        portfolio_order_place(portfolio=portfolio, symbol="BTC/USDT:USDT", side="buy", quantity=D("0.092"), leverage=5)
    assert Account.objects.get(pk=sub.copy_account_id).free == D("11.2")

    (sell,) = sells_of(sub)
    (accrual,) = fees_accrue(closes=[reported(sub, sell, portfolio)])

    assert (accrual.fee_due, accrual.available, accrual.fee) == (D("15"), D("11.2"), D("11.2"))
    assert (accrual.platform_part, accrual.leader_part) == (D("4.48"), D("6.72"))
    assert ledger_check().ok


def test_follower_and_leader_fee_endpoints_count_spot_accruals(fee_world, api):
    portfolio = fee_world.leader(mode="all")
    sub = fee_world.follower(portfolio)
    fee_world.spot_round_trip(portfolio, "3200", "3400")  # spot: fee 15
    fee_world.round_trip(portfolio, "3200", "3300")  # margin: +50, fee 7.5
    fees_settle()

    api.force_authenticate(sub.follower)
    paid = api.get(f"/api/v1/subscriptions/{sub.pk}/fees").json()
    assert paid["total"] == {"count": 2, "fees": "22.50000000", "fees_due": "22.50000000"}
    api.force_authenticate(portfolio.leader)
    earned = api.get(f"/api/v1/portfolios/{portfolio.pk}/earnings").json()
    assert (earned["total_earned"], earned["accruals"]) == ("13.50000000", 2)  # 9 + 4.5
    assert earned["by_follower"][0]["fees"] == "22.50000000"
