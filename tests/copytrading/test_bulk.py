"""copytrading.bulk: the hot path's set-based inserts (COPY on PostgreSQL,
multi-row INSERT on SQLite) and the venue's singleton account read."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from copytrading import bulk, ledger
from copytrading.models import Account, AccountKind

FIELDS = ["kind", "name", "currency", "balance", "locked", "is_closed", "created_at"]


def _rows(n: int) -> list[tuple]:
    now = timezone.now()
    return [(AccountKind.COPY, f"bulk-{i}", "USDT", Decimal(i), Decimal("0"), False, now) for i in range(n)]


@pytest.mark.django_db
def test_insert_rows_returns_each_rows_id_in_order():
    ids = bulk.insert_rows(Account, FIELDS, _rows(7), returning=True)
    assert len(ids) == len(set(ids)) == 7
    stored = dict(Account.objects.filter(pk__in=ids).values_list("pk", "name"))
    assert [stored[pk] for pk in ids] == [f"bulk-{i}" for i in range(7)]
    # The ids come from the table's own sequence: a later ordinary insert gets a higher one.
    assert Account.objects.create(kind=AccountKind.COPY, currency="USDT").pk > max(ids)


@pytest.mark.postgres  # SQLite's RETURNING inserts go by as many rows as its parameter limit allows
@pytest.mark.django_db
def test_id_reservation_is_one_statement_whatever_the_number_of_rows():
    counts = []
    for n in (3, 300):
        with CaptureQueriesContext(connection) as ctx:
            bulk.insert_rows(Account, FIELDS, _rows(n), returning=True)
        counts.append(len(ctx.captured_queries))
    assert counts == [1, 1]
    (reserve,) = [q["sql"] for q in ctx.captured_queries]  # the COPY is not captured
    # The sequence is resolved once per statement, not once per row.
    assert reserve.count("pg_get_serial_sequence") == 1 and "MATERIALIZED" in reserve


@pytest.mark.django_db
def test_system_account_is_the_one_row_of_its_kind_however_many_accounts_precede_it():
    bulk.insert_rows(Account, FIELDS, _rows(50))
    venue = ledger.system_account(AccountKind.VENUE)
    bulk.insert_rows(Account, FIELDS, _rows(50))
    assert ledger.system_account(AccountKind.VENUE).pk == venue.pk
    assert Account.objects.filter(kind=AccountKind.VENUE).count() == 1


@pytest.mark.postgres  # SQLite numbers rows as it inserts them: reserve_ids gives None there
@pytest.mark.django_db
def test_ids_of_two_tables_are_reserved_in_one_statement_and_used_by_the_rows():
    from copytrading.models import LeaderEvent

    with CaptureQueriesContext(connection) as ctx:
        accounts, events, none = bulk.reserve_ids([(Account, 4), (LeaderEvent, 2), (Account, 0)])
    assert len(ctx.captured_queries) == 1
    assert len(set(accounts)) == 4 and accounts == sorted(accounts) and len(events) == 2 and none == []
    # The ids come from each table's own sequence: an ordinary insert gets a higher one.
    later = Account.objects.create(kind=AccountKind.COPY, currency="USDT").pk
    assert later > max(accounts)
    with CaptureQueriesContext(connection) as ctx:
        assert bulk.insert_rows(Account, FIELDS, _rows(4), returning=True, ids=accounts) == accounts
    assert ctx.captured_queries == []  # no id statement; the COPY is not captured
    stored = dict(Account.objects.filter(pk__in=accounts).values_list("pk", "name"))
    assert [stored[pk] for pk in accounts] == [f"bulk-{i}" for i in range(4)]


@pytest.mark.django_db
def test_nothing_to_reserve_asks_nothing():
    with CaptureQueriesContext(connection) as ctx:
        reserved = bulk.reserve_ids([(Account, 0)])
    assert ctx.captured_queries == []
    assert reserved == ([[]] if connection.vendor == "postgresql" else None)
