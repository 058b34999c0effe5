"""The high-water-mark fee model, on real mirrors closed by the leader
(propagation) with the close listener accruing: exact decimals."""

import pytest

from copytrading.errors import DomainError
from copytrading.ledger import ledger_check
from copytrading.models import Transfer, TransferKind
from fees.models import FeeAccrual, FeeModel, HighWaterMark
from fees.services import fees_accrue, fees_settle
from portfolios.fee_settings import portfolio_fee_model_set
from tests.fees.conftest import D, balance, closed_mirrors, escrow, platform

pytestmark = pytest.mark.django_db

# Leader moves per round trip, entry 3200; the mirror holds 0.5 of the leader's 1 ETH.
WIN_100, LOSS_60, WIN_80, LOSS_100, WIN_50 = "3400", "3080", "3360", "3000", "3300"


def fees(sub) -> list[tuple]:
    return list(
        FeeAccrual.objects.filter(subscription_id=sub.pk)
        .order_by("pk")
        .values_list("profit", "fee", "platform_part", "leader_part", "mark_before", "mark_after")
    )


def trade(fee_world, portfolio, *exits: str) -> None:
    for exit_ in exits:
        fee_world.round_trip(portfolio, "3200", exit_)


def test_three_wins_and_two_losses_pay_only_on_new_highs(fee_world):
    portfolio = fee_world.leader(share="15.00", platform_cut="40.00")
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    sub = fee_world.follower(portfolio)

    # +100 (result 100, new high), -60 (40), +80 (120: 20 above the high),
    # -100 (20), +100 (120: back at the high, nothing above it).
    trade(fee_world, portfolio, WIN_100, LOSS_60, WIN_80, LOSS_100, WIN_100)

    assert fees(sub) == [
        (D("100"), D("15"), D("6"), D("9"), D("0"), D("100")),
        (D("20"), D("3"), D("1.2"), D("1.8"), D("100"), D("120")),
    ]
    assert HighWaterMark.objects.get(subscription_id=sub.pk).mark == D("120")
    # 5000 + 100 - 60 + 80 - 100 + 100 = 5120, less 18 of fees.
    assert balance(sub.copy_account_id) == D("5102")
    assert escrow() == D("18")
    fees_settle()
    assert (escrow(), platform()) == (0, D("7.2"))
    assert ledger_check().ok


def test_the_same_trades_per_trade_pay_on_every_win(fee_world):
    portfolio = fee_world.leader(share="15.00", platform_cut="40.00")
    sub = fee_world.follower(portfolio)
    trade(fee_world, portfolio, WIN_100, LOSS_60, WIN_80, LOSS_100, WIN_100)
    assert [row[:4] for row in fees(sub)] == [
        (D("100"), D("15"), D("6"), D("9")),
        (D("80"), D("12"), D("4.8"), D("7.2")),
        (D("100"), D("15"), D("6"), D("9")),
    ]
    assert not HighWaterMark.objects.exists()


def test_a_follower_who_lost_100_then_won_100_pays_nothing(fee_world):
    portfolio = fee_world.leader()
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3000")  # -100
    fee_world.round_trip(portfolio, "3200", "3400")  # +100: result 0

    assert fees(sub) == []
    assert not Transfer.objects.filter(kind=TransferKind.PROFIT_SHARE).exists()
    assert balance(sub.copy_account_id) == D("5000")

    fee_world.round_trip(portfolio, "3200", WIN_50)  # +50 above the high of 0
    assert [row[:2] for row in fees(sub)] == [(D("50"), D("7.5"))]


def test_replaying_closes_under_the_high_water_mark_charges_nothing_more(fee_world):
    portfolio = fee_world.leader()
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    sub = fee_world.follower(portfolio)
    trade(fee_world, portfolio, WIN_100, LOSS_60, WIN_80)
    before = balance(sub.copy_account_id)

    assert fees_accrue(closes=closed_mirrors(sub)) == []
    assert fees_accrue(closes=closed_mirrors(sub)[::-1]) == []
    assert balance(sub.copy_account_id) == before
    assert HighWaterMark.objects.get(subscription_id=sub.pk).mark == D("120")


def test_each_subscription_has_its_own_mark(fee_world):
    portfolio = fee_world.leader()
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    first = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3000")  # first: -100
    second = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")  # both +100: first back at 0, second at a new high
    assert fees(first) == []
    assert [row[:2] for row in fees(second)] == [(D("100"), D("15"))]


def test_switching_to_the_high_water_mark_does_not_charge_earlier_profit_again(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", WIN_100)  # per trade: 15 on 100
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    fee_world.round_trip(portfolio, "3200", WIN_50)  # the mark starts at the result before: 100

    assert [(row[0], row[1], row[4], row[5]) for row in fees(sub)] == [
        (D("100"), D("15"), None, None),
        (D("50"), D("7.5"), D("100"), D("150")),
    ]
    assert FeeAccrual.objects.order_by("pk").last().fee_model == FeeModel.HIGH_WATER_MARK


def test_an_unknown_fee_model_is_refused(fee_world):
    portfolio = fee_world.leader()
    with pytest.raises(DomainError) as exc:
        portfolio_fee_model_set(portfolio=portfolio, fee_model="monthly")
    assert (exc.value.code, exc.value.field) == ("INVALID_FEE_MODEL", "fee_model")
    portfolio.refresh_from_db()
    assert portfolio.fee_model == FeeModel.PER_TRADE


def test_a_switch_away_and_back_keeps_a_follower_in_drawdown_protected(fee_world):
    portfolio = fee_world.leader()
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    sub = fee_world.follower(portfolio)
    trade(fee_world, portfolio, WIN_100, LOSS_60)  # charged up to 100; result 40
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.PER_TRADE)
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    trade(fee_world, portfolio, WIN_80)  # result 120: only the 20 above the kept mark pays

    assert [(row[0], row[1], row[4], row[5]) for row in fees(sub)] == [
        (D("100"), D("15"), D("0"), D("100")),
        (D("20"), D("3"), D("100"), D("120")),
    ]


def test_profit_charged_per_trade_in_between_is_not_charged_again(fee_world):
    portfolio = fee_world.leader()
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    sub = fee_world.follower(portfolio)
    trade(fee_world, portfolio, WIN_100)  # mark 100
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.PER_TRADE)
    trade(fee_world, portfolio, WIN_50)  # per trade: 7.50 on 50; result 150
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    fee_world.round_trip(portfolio, "3200", "3240")  # +20: result 170, 20 above the result before

    assert [(row[0], row[1], row[4], row[5]) for row in fees(sub)] == [
        (D("100"), D("15"), D("0"), D("100")),
        (D("50"), D("7.5"), None, None),
        (D("20"), D("3"), D("150"), D("170")),
    ]
