"""Real concurrency on PostgreSQL: the same close accrued by two workers at
once debits once; two settlement runs at once credit once; two withdrawals at
once never overdraw the profit account."""

import threading

import pytest
from django.db import connection, transaction

from copytrading.ledger import ledger_check
from copytrading.models import Transfer
from fees.models import AccrualStatus, FeeAccrual, LeaderProfitAccount, LeaderWithdrawal
from fees.services import KIND_ACCRUAL, KIND_TO_LEADER, fees_accrue, fees_settle, leader_withdrawal_create
from tests.fees.conftest import D, accrue, balance, closed_mirrors, escrow, platform

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(*calls, timeout: float = 30):
    """Run the calls in threads released together; each in its own transaction
    on its own connection. Returns results (or the exceptions raised)."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            with transaction.atomic():
                results[i] = call()
        except Exception as exc:  # noqa: BLE001 (returned to the test, which asserts on it)
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a racer hung (deadlock?)"
    return results


def test_the_same_close_accrued_concurrently_debits_once(fee_world, no_close_listener):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")  # closed, not yet accrued (listener off)
    closes = closed_mirrors(sub)

    results = race(*(lambda: fees_accrue(closes=closes) for _ in range(4)))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert FeeAccrual.objects.count() == 1
    assert Transfer.objects.filter(kind=KIND_ACCRUAL).count() == 1
    assert balance(sub.copy_account_id) == D("5085")
    assert ledger_check().ok


def test_concurrent_settlement_runs_credit_each_fee_once(fee_world):
    portfolio = fee_world.leader()
    subs = [fee_world.follower(portfolio) for _ in range(6)]
    fee_world.round_trip(portfolio, "3200", "3400")
    accrue(*subs)

    def settle_all():
        settled = 0
        while (result := fees_settle(limit=2)).claimed:
            settled += result.settled
        return settled

    results = race(settle_all, settle_all, settle_all)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 6
    assert not FeeAccrual.objects.exclude(status=AccrualStatus.SETTLED).exists()
    assert Transfer.objects.filter(kind=KIND_TO_LEADER).count() == 6
    account = LeaderProfitAccount.objects.get(portfolio_id=portfolio.pk).account
    assert (escrow(), platform(), account.balance) == (0, D("36"), D("54"))
    assert ledger_check().ok


def test_concurrent_withdrawals_never_overdraw_and_a_replayed_key_withdraws_once(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    accrue(sub)
    fees_settle()  # 9.00 earned
    leader = portfolio.leader

    results = race(*(lambda: leader_withdrawal_create(leader=leader, portfolio_id=portfolio.pk, amount=D("5")),) * 2)
    outcomes = sorted(type(r).__name__ for r in results)
    assert outcomes == ["InsufficientFunds", "LeaderWithdrawal"]

    same_key = race(
        *(
            lambda: leader_withdrawal_create(
                leader=leader, portfolio_id=portfolio.pk, amount=D("2"), idempotency_key="once"
            ),
        )
        * 3
    )
    assert not [r for r in same_key if isinstance(r, Exception)], same_key
    assert len({r.pk for r in same_key}) == 1
    assert LeaderWithdrawal.objects.count() == 2
    assert LeaderProfitAccount.objects.get(portfolio_id=portfolio.pk).account.balance == D("2")
    assert ledger_check().ok


def test_the_leaders_close_and_the_followers_own_close_of_one_mirror_racing_charge_once(fee_world, monkeypatch):
    from copytrading import events, propagation
    from copytrading.models import Position, PositionStatus
    from followers.services import subscription_position_close
    from portfolios.services import portfolio_position_close

    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    leader_position_id = fee_world.open(portfolio)
    fee_world.price("3400")
    mirror = Position.objects.get(account_id=sub.copy_account_id)
    # The leader's close, propagated by hand (no dispatch), against the follower's own close.
    monkeypatch.setattr(events, "dispatch", lambda event_id: None)
    event = portfolio_position_close(portfolio=portfolio, position_id=leader_position_id)
    (chunk_id,) = propagation.event_start(event.pk)

    results = race(
        lambda: propagation.chunk_propagate(chunk_id),
        lambda: subscription_position_close(subscription=sub, position_id=mirror.pk),
    )

    assert not [r for r in results if isinstance(r, Exception) and getattr(r, "code", "") != "POSITION_CLOSED"]
    mirror.refresh_from_db()
    assert (mirror.status, mirror.realized_pnl) == (PositionStatus.CLOSED, D("100"))
    (accrual,) = FeeAccrual.objects.all()
    assert (accrual.source_position_id, accrual.fee) == (mirror.pk, D("15"))
    assert balance(sub.copy_account_id) == D("5085")
    assert ledger_check().ok


def test_two_mirrors_of_one_high_water_mark_subscription_closing_at_once_raise_the_mark_once_each(fee_world):
    from copytrading.models import Position
    from fees.models import FeeModel, HighWaterMark
    from followers.services import subscription_position_close
    from portfolios.fee_settings import portfolio_fee_model_set
    from portfolios.services import portfolio_order_place

    portfolio = fee_world.leader()
    portfolio_fee_model_set(portfolio=portfolio, fee_model=FeeModel.HIGH_WATER_MARK)
    sub = fee_world.follower(portfolio)
    fee_world.price("3200")
    fee_world.price("64000", "BTC/USDT:USDT")
    fee_world.open(portfolio)  # mirror 0.5 ETH
    with fee_world.capture(execute=True):
        portfolio_order_place(portfolio=portfolio, symbol="BTC/USDT:USDT", side="buy", quantity=D("0.092"), leverage=5)
    fee_world.price("3400")  # ETH mirror +100
    fee_world.price("66000", "BTC/USDT:USDT")  # BTC mirror 0.046 x 2000 = +92
    mirrors = list(Position.objects.filter(account_id=sub.copy_account_id).values_list("pk", flat=True))
    assert len(mirrors) == 2

    results = race(*(lambda pk=pk: subscription_position_close(subscription=sub, position_id=pk) for pk in mirrors))

    assert not [r for r in results if isinstance(r, Exception)], results
    # Serialized on the copy wallet: each close charged only its own gain above the mark.
    assert sorted(FeeAccrual.objects.values_list("fee", flat=True)) == [D("13.8"), D("15")]
    assert HighWaterMark.objects.get(subscription_id=sub.pk).mark == D("192")
    assert balance(sub.copy_account_id) == D("5000") + D("192") - D("28.8")
    assert ledger_check().ok


def test_the_same_spot_sell_accrued_concurrently_debits_once(fee_world, no_close_listener):
    from copytrading.models import Order
    from fees.services import ClosedMirror

    portfolio = fee_world.leader(mode="spot")
    sub = fee_world.follower(portfolio)
    fee_world.spot_round_trip(portfolio, "3200", "3400")  # sold, not yet accrued (listener off)
    sell = Order.objects.get(account_id=sub.copy_account_id, side="sell")
    closes = [
        ClosedMirror(
            position_id=None, order_id=sell.pk, subscription_id=sub.pk, portfolio_id=portfolio.pk,
            copy_account_id=sub.copy_account_id, leader_user_id=portfolio.leader_id, realized_pnl=sell.realized_pnl,
            profit_share_pct=portfolio.profit_share_pct,
        )
    ]  # fmt: skip

    results = race(*(lambda: fees_accrue(closes=closes) for _ in range(4)))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert FeeAccrual.objects.get().source_order_id == sell.pk
    assert Transfer.objects.filter(kind=KIND_ACCRUAL).count() == 1
    assert balance(sub.copy_account_id) == D("5085")
    assert ledger_check().ok
