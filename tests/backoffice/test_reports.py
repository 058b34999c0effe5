"""Reports: each kind's columns and time range, the admin's "Export CSV"
(the list's filters, search and permissions), CSV injection, the command's
exit codes, and streaming in constant memory."""

import csv
import io
import tracemalloc
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import StreamingHttpResponse
from django.test import AsyncRequestFactory

from backoffice.management.commands.export_report import Command as ExportCommand
from backoffice.reports import stream
from backoffice.reports.kinds import EXECUTIONS, REPORTS
from backoffice.reports.stream import cell, csv_blocks, csv_response
from benchmarks.export import seed_executions
from copytrading.models import Execution, Outcome, Transfer
from fees.models import FeeAccrual, LeaderWithdrawal
from fees.services import fees_settle, leader_withdrawal_create
from followers.models import Subscription
from tests.factories import StaffFactory
from tests.fees.conftest import D, accrue, fee_world  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


def at(*args):
    return time_machine.travel(datetime(*args, tzinfo=UTC), tick=False)


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def export(*args) -> str:
    out = io.StringIO()
    call_command("export_report", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


class World:
    def __init__(self, portfolio, subscription, other):
        self.portfolio, self.subscription, self.other = portfolio, subscription, other
        self.leader = portfolio.leader


@pytest.fixture
def world(fee_world):  # noqa: F811
    """Leader L (a follower "-2+3@x", whose name a spreadsheet would read as a
    formula) and another leader with a follower of their own, all on 3 March
    2025; L's round trips on 4 March (settled) and 6 March (not), a
    withdrawal on 5 March."""
    with at(2025, 3, 3, 9):
        portfolio = fee_world.leader()
        other = fee_world.leader()
        subscription = fee_world.follower(portfolio, multiplier="1")
        fee_world.follower(other, multiplier="1")
    follower = subscription.follower
    follower.username = "-2+3@x"
    follower.save(update_fields=["username"])
    with at(2025, 3, 4, 10):
        fee_world.round_trip(portfolio, "3200", "3300")
        accrue(subscription)
    with at(2025, 3, 4, 12):
        fees_settle()
    with at(2025, 3, 5, 10):
        leader_withdrawal_create(leader=portfolio.leader, portfolio_id=portfolio.pk, amount=D("5"))
    with at(2025, 3, 6, 10):
        fee_world.round_trip(portfolio, "3200", "3250")
        accrue(subscription)
    with at(2025, 3, 6, 11):
        fee_world.round_trip(other, "3000", "3100")
    return World(portfolio, subscription, other)


MARCH = ["--since", "2025-03-01", "--until", "2025-04-01"]


@pytest.mark.parametrize("kind", list(REPORTS))
def test_each_kind_has_its_header_and_the_leaders_rows(world, kind):
    report = REPORTS[kind]
    rows = rows_of(export(kind, *MARCH, "--leader", world.leader.username))
    assert list(rows[0]) == report.headers
    leader_ids = world.leader.pk
    expected = {
        "executions": Execution.objects.filter(portfolio_id=world.portfolio.pk),
        "fee_accruals": FeeAccrual.objects.filter(leader_user_id=leader_ids),
        "withdrawals": LeaderWithdrawal.objects.filter(leader_id=leader_ids),
        "transfers": Transfer.objects.filter(debit__user_id=leader_ids)
        | Transfer.objects.filter(credit__user_id=leader_ids),
        "subscriptions": Subscription.objects.filter(portfolio__leader_id=leader_ids),
    }[kind]
    assert expected.exists()
    assert [int(r["id"]) for r in rows] == sorted(expected.values_list("pk", flat=True))
    for row in rows:  # times are ISO 8601 in UTC
        assert row["created_at" if "created_at" in row else "accrued_at"].endswith("+00:00")


def test_rows_read_as_plain_text(world):
    (accrual, second) = rows_of(export("fee_accruals", *MARCH, "--leader", world.leader.username))
    # +100 on 4 March: fee 15 %, the leader keeps 60 % of it; settled at noon.
    assert accrual["accrued_at"] == "2025-03-04T10:00:00+00:00"
    assert accrual["settled_at"] == "2025-03-04T12:00:00+00:00"
    assert (accrual["profit"], accrual["fee"], accrual["leader_part"]) == ("100.00000000", "15.00000000", "9.00000000")
    assert (accrual["status"], accrual["leader"]) == ("settled", world.leader.username)
    assert (second["status"], second["settled_at"]) == ("accrued", "")
    (withdrawal,) = rows_of(export("withdrawals", *MARCH))
    assert (withdrawal["amount"], withdrawal["leader"]) == ("5.00000000", world.leader.username)
    assert withdrawal["created_at"] == "2025-03-05T10:00:00+00:00"


def test_the_time_range_is_since_inclusive_until_exclusive(world):
    def ids(*args):
        return [int(r["id"]) for r in rows_of(export("executions", *args, "--portfolio", str(world.portfolio.pk)))]

    first_trip = ids("--since", "2025-03-04T10:00:00Z", "--until", "2025-03-05")
    second_trip = ids("--since", "2025-03-05", "--until", "2025-03-06T10:00:00.000001+00:00")
    mine = Execution.objects.filter(portfolio_id=world.portfolio.pk)
    assert first_trip == sorted(mine.filter(created_at__date="2025-03-04").values_list("pk", flat=True))
    assert second_trip == sorted(mine.filter(created_at__date="2025-03-06").values_list("pk", flat=True))
    assert first_trip and second_trip
    assert ids("--since", "2025-03-04T10:00:00.000001", "--until", "2025-03-06T10:00:00") == []


def test_csv_injection_is_defused(world):
    (row,) = rows_of(export("subscriptions", *MARCH, "--portfolio", str(world.portfolio.pk)))
    assert row["follower"] == "'-2+3@x"
    assert [cell(v) for v in ("=1+1", "+1", "-1", "@A1", "\tx", "plain", "a=b")] == [
        "'=1+1", "'+1", "'-1", "'@A1", "'\tx", "plain", "a=b"
    ]  # fmt: skip
    # Numbers are numbers: a negative amount stays one.
    assert [cell(D("-5.50")), cell(D("1E+2")), cell(-3), cell(None), cell(True)] == ["-5.50", "100", "-3", "", "true"]
    assert cell(datetime(2025, 3, 4, 11, 0, tzinfo=ZoneInfo("Europe/Paris"))) == "2025-03-04T10:00:00+00:00"


# --- the command -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus", *MARCH], "Unknown report"),
        (["executions", "--since", "March", "--until", "2025-04-01"], "ISO 8601"),
        (["executions", "--since", "2025-04-01", "--until", "2025-03-01"], "before --until"),
        (["executions", *MARCH, "--leader", "nobody-here"], "No user named"),
        (["transfers", *MARCH, "--portfolio", "1"], "cannot be filtered by portfolio"),
        (["executions", *MARCH, "--output", "/nonexistent-dir/x.csv"], "Cannot write"),
    ],
)
def test_bad_input_exits_2_with_a_message(args, message):
    with pytest.raises(CommandError, match=message) as caught:
        call_command("export_report", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == 2


@pytest.mark.parametrize("args", [["bogus", *MARCH], ["executions", "--until", "2025-04-01"]])
def test_the_process_exit_code_is_2(args, capsys):
    with pytest.raises(SystemExit) as caught:
        ExportCommand().run_from_argv(["manage.py", "export_report", *args])
    assert caught.value.code == 2


def test_output_to_a_file_with_progress_on_stderr(world, tmp_path):
    target = tmp_path / "executions.csv"
    err = io.StringIO()
    call_command("export_report", "executions", *MARCH, "--output", str(target), stdout=io.StringIO(), stderr=err)
    rows = rows_of(target.read_text())
    assert len(rows) == Execution.objects.count() > 0
    assert f"export_report executions: {len(rows):,} rows in" in err.getvalue()
    assert err.getvalue().rstrip().endswith("done")


# --- the admin's Export CSV ----------------------------------------------------------------


@pytest.fixture
def staff(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


def body(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


CHANGELISTS = {
    "executions": "/admin/copytrading/execution/",
    "fee_accruals": "/admin/fees/feeaccrual/",
    "withdrawals": "/admin/fees/leaderwithdrawal/",
    "transfers": "/admin/copytrading/transfer/",
    "subscriptions": "/admin/followers/subscription/",
}


@pytest.mark.parametrize("kind", list(REPORTS))
def test_every_list_links_its_export_with_the_current_filters(world, staff, kind):
    html = staff.get(f"{CHANGELISTS[kind]}?o=1").content.decode()
    assert f'<a class="export-csv" href="/admin/reports/{kind}.csv?o=1"' in html
    response = staff.get(f"/admin/reports/{kind}.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="{kind}-')
    assert rows_of(body(response))


def _changelist_ids(client, url: str) -> list[int]:
    return list(client.get(url).context_data["cl"].queryset.values_list("pk", flat=True))


@pytest.mark.parametrize(
    "query",
    [
        "outcome__exact=COPIED",
        "portfolio_id={portfolio}&o=-1",
        "q={subscription}",
        "created_at__day=6&created_at__month=3&created_at__year=2025",
    ],
)
def test_the_export_is_the_filtered_list_in_its_order(world, staff, query):
    seed_executions(3, portfolio_id=8004)  # a copy, a skip, a reject (in 2026)
    query = query.format(portfolio=world.other.pk, subscription=world.subscription.pk)
    expected = _changelist_ids(staff, f"/admin/copytrading/execution/?{query}")
    assert expected and len(expected) < Execution.objects.count()
    exported = [int(r["id"]) for r in rows_of(body(staff.get(f"/admin/reports/executions.csv?{query}&p=2")))]
    assert exported == expected


def test_export_of_a_leaders_subscriptions_and_a_search(world, staff):
    leader = world.leader.username
    rows = rows_of(body(staff.get(f"/admin/reports/subscriptions.csv?leader={leader}")))
    assert [int(r["id"]) for r in rows] == [world.subscription.pk]
    assert rows[0]["leader"] == leader
    found = rows_of(body(staff.get("/admin/reports/subscriptions.csv?q=-2%2B3@x")))
    assert [r["follower"] for r in found] == ["'-2+3@x"]
    accruals = rows_of(body(staff.get(f"/admin/reports/fee_accruals.csv?leader={leader}&status__exact=accrued")))
    assert [r["fee"] for r in accruals] == ["7.50000000"]


def test_the_export_needs_the_lists_permission(world, client):
    assert client.get("/admin/reports/executions.csv").status_code == 302  # to the login page
    user = StaffFactory()
    client.force_login(user)
    assert client.get("/admin/reports/executions.csv").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_execution"))
    client.force_login(user)
    assert client.get("/admin/reports/executions.csv").status_code == 200
    assert client.get("/admin/reports/transfers.csv").status_code == 403


def test_an_unknown_report_or_a_bad_filter_is_no_500(staff):
    assert staff.get("/admin/reports/bogus.csv").status_code == 404
    response = staff.get("/admin/reports/executions.csv?no_such_field=1")
    assert response.status_code == 400
    assert b"filters are not valid" in response.content


# --- streaming -------------------------------------------------------------------------------


def _peak_while_streaming(client, portfolio_id: int) -> tuple[int, int]:
    response = client.get(f"/admin/reports/executions.csv?portfolio_id={portfolio_id}")
    assert isinstance(response, StreamingHttpResponse)
    lines = 0
    tracemalloc.start()
    try:
        for block in response.streaming_content:
            lines += block.count(b"\r\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return lines, peak


def test_memory_stays_flat_from_2k_to_20k_rows(staff, monkeypatch):
    # Several database chunks in both exports, so both peaks are "one chunk
    # in flight" (the driver's previous chunk may still be alive meanwhile).
    monkeypatch.setattr(stream, "CHUNK_SIZE", 500)
    seed_executions(2_000, portfolio_id=8001)
    seed_executions(20_000, portfolio_id=8002)
    small_lines, small_peak = _peak_while_streaming(staff, 8001)
    big_lines, big_peak = _peak_while_streaming(staff, 8002)
    assert (small_lines, big_lines) == (2_001, 20_001)
    # Ten times the rows; the peak is that of a chunk or two either way.
    assert big_peak < small_peak * 1.25 + 100_000, (small_peak, big_peak)


def test_under_asgi_the_rows_are_served_one_block_at_a_time(world):
    request = AsyncRequestFactory().get("/admin/reports/executions.csv")
    blocks = csv_blocks(EXECUTIONS, EXECUTIONS.queryset())
    response = csv_response(request, EXECUTIONS, blocks)
    assert response.is_async

    async def read() -> list[str]:
        return [block async for block in response.streaming_content]

    got = async_to_sync(read)()
    assert len(got) >= 2  # the header, then the rows
    expected = b"".join(csv_response(None, EXECUTIONS, csv_blocks(EXECUTIONS, EXECUTIONS.queryset())))
    assert b"".join(got) == expected
    assert len(rows_of(expected.decode())) == Execution.objects.count() > 0


def test_outcomes_of_the_seed_are_all_kinds(staff):
    seed_executions(3, portfolio_id=8003)
    outcomes = {r["outcome"] for r in rows_of(body(staff.get("/admin/reports/executions.csv?portfolio_id=8003")))}
    assert outcomes == {Outcome.COPIED, Outcome.SKIPPED, Outcome.REJECTED}
