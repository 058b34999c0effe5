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


def test_the_same_close_accrued_concurrently_debits_once(fee_world):
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
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
