"""The double-entry ledger: transfers, idempotency, refusals and the DB's last line of defence."""

import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from copytrading import ledger
from copytrading.errors import Conflict, DomainError, InsufficientFunds
from copytrading.models import Account, AccountKind, Transfer, TransferKind
from tests.factories import UserFactory

D = Decimal


def funded_main(amount: str) -> Account:
    """A user's main wallet holding ``amount``, deposited from the outside world."""
    user = UserFactory()
    main = ledger.main_account_for(user)
    external = ledger.system_account(AccountKind.EXTERNAL)
    ledger.transfer(
        debit_id=external.pk, credit_id=main.pk, amount=D(amount), kind=TransferKind.DEPOSIT, key=f"dep:{main.pk}"
    )
    main.refresh_from_db()
    return main


def balances(*accounts: Account) -> list[tuple[Decimal, Decimal]]:
    return [tuple(Account.objects.values_list("balance", "locked").get(pk=a.pk)) for a in accounts]


@pytest.fixture
def pair(db):
    source = funded_main("100")
    target = ledger.main_account_for(UserFactory())
    return source, target


def test_transfer_moves_the_amount_and_records_one_row(pair):
    source, target = pair
    row, created = ledger.transfer(
        debit_id=source.pk, credit_id=target.pk, amount=D("30.5"), kind=TransferKind.COPY_FUND, key="t1"
    )
    assert created is True
    assert (row.debit_id, row.credit_id, row.amount) == (source.pk, target.pk, D("30.5"))
    assert balances(source, target) == [(D("69.5"), D("0")), (D("30.5"), D("0"))]
    assert ledger.ledger_check().ok


def test_transfer_takes_only_free_balance(pair):
    source, target = pair
    # 60 of the 100 is margin held by open positions.
    Account.objects.filter(pk=source.pk).update(locked=D("60"))
    with pytest.raises(InsufficientFunds):
        ledger.transfer(
            debit_id=source.pk, credit_id=target.pk, amount=D("40.00000001"), kind=TransferKind.COPY_FUND, key="t1"
        )
    assert not Transfer.objects.filter(idempotency_key="t1").exists()
    ledger.transfer(debit_id=source.pk, credit_id=target.pk, amount=D("40"), kind=TransferKind.COPY_FUND, key="t2")
    assert balances(source, target) == [(D("60"), D("60")), (D("40"), D("0"))]


def test_replay_of_the_same_key_changes_nothing(pair):
    source, target = pair
    first, created = ledger.transfer(
        debit_id=source.pk, credit_id=target.pk, amount=D("25"), kind=TransferKind.COPY_FUND, key="once"
    )
    assert created
    before, count = balances(source, target), Transfer.objects.count()
    again, created = ledger.transfer(
        debit_id=source.pk, credit_id=target.pk, amount=D("25"), kind=TransferKind.COPY_FUND, key="once"
    )
    assert created is False
    assert again.pk == first.pk
    assert balances(source, target) == before
    assert Transfer.objects.count() == count


@pytest.mark.parametrize(
    "change",
    [
        {"amount": D("26")},
        {"swap": True},
    ],
    ids=["other-amount", "other-direction"],
)
def test_same_key_with_different_terms_is_a_conflict(pair, change):
    source, target = pair
    ledger.transfer(debit_id=source.pk, credit_id=target.pk, amount=D("25"), kind=TransferKind.COPY_FUND, key="k")
    before, count = balances(source, target), Transfer.objects.count()
    debit, credit = (target, source) if change.get("swap") else (source, target)
    with pytest.raises(Conflict) as exc:
        ledger.transfer(
            debit_id=debit.pk,
            credit_id=credit.pk,
            amount=change.get("amount", D("25")),
            kind=TransferKind.COPY_FUND,
            key="k",
        )
    assert exc.value.code == "IDEMPOTENCY_CONFLICT"
    assert exc.value.status == 409
    assert balances(source, target) == before
    assert Transfer.objects.count() == count


def test_insufficient_funds_writes_nothing(pair):
    source, target = pair
    before, count = balances(source, target), Transfer.objects.count()
    with pytest.raises(InsufficientFunds) as exc:
        ledger.transfer(
            debit_id=source.pk, credit_id=target.pk, amount=D("100.00000001"), kind=TransferKind.COPY_FUND, key="big"
        )
    assert exc.value.code == "INSUFFICIENT_FUNDS"
    assert balances(source, target) == before
    assert Transfer.objects.count() == count
    # The key was not burnt by the refused attempt: it still works for an affordable amount.
    _, created = ledger.transfer(
        debit_id=source.pk, credit_id=target.pk, amount=D("100"), kind=TransferKind.COPY_FUND, key="big"
    )
    assert created
    assert balances(source, target) == [(D("0"), D("0")), (D("100"), D("0"))]


@pytest.mark.parametrize(
    "amount",
    [D("0"), D("-1"), D("-0.00000001"), D("0.000000001"), D("1.123456789"), D("NaN"), D("Infinity"), 1.5, 2],
)
def test_bad_amounts_are_refused(pair, amount):
    source, target = pair
    before, count = balances(source, target), Transfer.objects.count()
    with pytest.raises(DomainError) as exc:
        ledger.transfer(debit_id=source.pk, credit_id=target.pk, amount=amount, kind=TransferKind.COPY_FUND, key="x")
    assert (exc.value.code, exc.value.field) == ("INVALID_AMOUNT", "amount")
    assert balances(source, target) == before
    assert Transfer.objects.count() == count


def test_smallest_unit_is_accepted(pair):
    source, target = pair
    ledger.transfer(
        debit_id=source.pk, credit_id=target.pk, amount=D("0.00000001"), kind=TransferKind.COPY_FUND, key="dust"
    )
    assert balances(source, target) == [(D("99.99999999"), D("0")), (D("0.00000001"), D("0"))]


def test_transfer_to_itself_is_refused(pair):
    source, _ = pair
    with pytest.raises(DomainError) as exc:
        ledger.transfer(debit_id=source.pk, credit_id=source.pk, amount=D("1"), kind=TransferKind.COPY_FUND, key="s")
    assert exc.value.code == "SAME_ACCOUNT"
    assert not Transfer.objects.filter(idempotency_key="s").exists()


def test_closed_account_receives_nothing(pair):
    source, target = pair
    Account.objects.filter(pk=target.pk).update(is_closed=True)
    with pytest.raises(DomainError) as exc:
        ledger.transfer(debit_id=source.pk, credit_id=target.pk, amount=D("1"), kind=TransferKind.COPY_FUND, key="c")
    assert exc.value.code == "ACCOUNT_CLOSED"
    assert balances(source, target) == [(D("100"), D("0")), (D("0"), D("0"))]
    assert not Transfer.objects.filter(idempotency_key="c").exists()


def test_outside_world_accounts_may_go_negative(db):
    funded_main("250")
    external = ledger.system_account(AccountKind.EXTERNAL)
    external.refresh_from_db()
    assert external.balance == D("-250")
    assert ledger.ledger_check().ok


def test_system_account_is_a_singleton(db):
    first = ledger.system_account(AccountKind.VENUE)
    assert ledger.system_account(AccountKind.VENUE).pk == first.pk
    assert Account.objects.filter(kind=AccountKind.VENUE).count() == 1
    with pytest.raises(ValueError):
        ledger.system_account(AccountKind.MAIN)


@pytest.mark.parametrize(
    "update",
    [{"balance": D("-0.00000001")}, {"locked": D("-1")}, {"locked": D("100.00000001")}],
    ids=["negative-balance", "negative-locked", "locked-above-balance"],
)
def test_check_constraints_reject_a_raw_update(pair, update):
    source, _ = pair
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=source.pk).update(**update)
    assert balances(source) == [(D("100"), D("0"))]


def test_check_constraints_reject_a_raw_non_positive_transfer(pair):
    source, target = pair
    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.create(
            debit_id=source.pk, credit_id=target.pk, amount=D("0"), kind=TransferKind.COPY_FUND, idempotency_key="z"
        )


def test_ledger_check_finds_a_tampered_balance(pair):
    source, _ = pair
    assert ledger.ledger_check().ok
    # A balance edited behind the ledger's back no longer equals its transfers.
    Account.objects.filter(pk=source.pk).update(balance=D("90"))
    report = ledger.ledger_check()
    assert not report.ok
    assert report.mismatched == [(source.pk, D("90"), D("100"))]
    assert report.total == D("-10")


def test_apply_transfers_moves_balances_and_locks_in_one_go(pair):
    source, target = pair
    venue = ledger.system_account(AccountKind.VENUE)
    with transaction.atomic():
        ledger.lock_accounts([source.pk, target.pk, venue.pk])
        n = ledger.apply_transfers(
            [
                ledger.TransferSpec(source.pk, venue.pk, D("10"), TransferKind.SPOT_TRADE, "a1"),
                ledger.TransferSpec(venue.pk, target.pk, D("4"), TransferKind.REALIZED_PNL, "a2"),
            ],
            locked_deltas={source.pk: D("50")},
        )
    assert n == 2
    assert balances(source, target) == [(D("90"), D("50")), (D("4"), D("0"))]
    report = ledger.ledger_check()
    assert (report.total, report.mismatched, report.negative) == (D("0"), [], [])
    # Nothing holds the 50 locked here: the reservation check says so.
    assert report.unreserved == [("account", source.pk, D("50"), D("0"))]
    assert not report.ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_transfers_never_overdraw():
    """Two threads race to take 16 x 10 out of an account holding 100: the
    conditional UPDATE lets exactly ten through and the balance ends at zero."""
    assert connection.vendor == "postgresql"
    source = funded_main("100")
    sinks = [ledger.main_account_for(UserFactory()) for _ in range(2)]
    attempts_per_thread = 8
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(attempts_per_thread):
                try:
                    ledger.transfer(
                        debit_id=source.pk,
                        credit_id=sinks[n].pk,
                        amount=D("10"),
                        kind=TransferKind.COPY_FUND,
                        key=f"race:{n}:{i}",
                    )
                    result = "ok"
                except InsufficientFunds:
                    result = "refused"
                with guard:
                    outcomes.append(result)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the main thread below
            errors.append(exc)
        finally:
            connection.close()

    lowest: list[Decimal] = []
    running = threading.Event()
    running.set()

    def watch() -> None:
        # Reads committed balances while the race runs: none may dip below zero.
        try:
            while running.is_set():
                lowest.append(Account.objects.values_list("balance", flat=True).get(pk=source.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    watcher = threading.Thread(target=watch)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    running.clear()
    watcher.join(timeout=10)
    assert lowest and min(lowest) >= 0
    assert not errors, errors
    assert outcomes.count("ok") == 10
    assert outcomes.count("refused") == 2 * attempts_per_thread - 10
    source.refresh_from_db()
    assert source.balance == D("0")
    sink_total = sum(Account.objects.get(pk=s.pk).balance for s in sinks)
    assert sink_total == D("100")
    assert Transfer.objects.filter(kind=TransferKind.COPY_FUND).count() == 10
    report = ledger.ledger_check()
    assert report.ok, report
