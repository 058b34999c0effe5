from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.models import F

from copytrading import ledger
from copytrading.models import Account, AccountKind, TransferKind
from copytrading.services import user_register, wallet_deposit


@pytest.fixture
def funded_user(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = user_register(username="ledger-user", password="a-long-pass-phrase")
    wallet_deposit(user=user, amount=Decimal("1234.56789012"), idempotency_key="one")
    wallet_deposit(user=user, amount=Decimal("0.00000001"), idempotency_key="two")
    return user


def test_clean_ledger_passes(funded_user):
    out = StringIO()
    call_command("check_ledger", stdout=out)
    text = out.getvalue()
    assert "sum of balances: 0.00000000\n" in text
    assert "mismatched balances: 0" in text
    assert "negative balances: 0" in text
    assert "ledger OK" in text


def test_corrupted_cached_balance_fails_and_names_the_account(funded_user):
    main = ledger.main_account_for(funded_user)
    # A raw write around the ledger: exactly what the checker exists to catch.
    Account.objects.filter(pk=main.pk).update(balance=F("balance") + Decimal("1"))

    out = StringIO()
    with pytest.raises(CommandError, match="NOT balanced"):
        call_command("check_ledger", stdout=out)
    text = out.getvalue()
    assert "mismatched balances: 1" in text
    assert f"account #{main.pk}: cached 1235.56789013, transfers say 1234.56789013" in text
    assert "sum of balances: 1.00000000" in text
    assert "ledger OK" not in text


def test_margin_locked_and_released_in_steps_ends_exactly_at_zero(funded_user):
    """On SQLite, 0.3 - 0.1 - 0.2 in binary floats is -2.8e-17: without rounding
    each stored sum, the release would trip the CHECK (locked >= 0)."""
    main = ledger.main_account_for(funded_user)
    for delta in ("0.3", "-0.1", "-0.2"):
        with transaction.atomic():
            ledger.lock_accounts([main.pk])
            ledger.apply_transfers([], locked_deltas={main.pk: Decimal(delta)})
    with connection.cursor() as cursor:
        cursor.execute("SELECT locked FROM copytrading_account WHERE id = %s", [main.pk])
        assert cursor.fetchone()[0] == 0
    assert ledger.ledger_check().ok


def test_many_transfers_still_sum_exactly(funded_user):
    """The checker's Σ must not drift either (SQLite would sum floats)."""
    main = ledger.main_account_for(funded_user)
    external = ledger.system_account(AccountKind.EXTERNAL)
    amount = Decimal("1234.56789012")
    ledger.apply_transfers(
        [ledger.TransferSpec(external.pk, main.pk, amount, TransferKind.DEPOSIT, f"many:{n}") for n in range(2000)]
    )
    report = ledger.ledger_check()
    assert report.ok, report
    main.refresh_from_db()
    assert main.balance == Decimal("1234.56789013") + 2000 * amount
