"""The copy-fidelity report (issue #18 §3; backoffice/fidelity.py, the
command fidelity_report): the small run through a real Celery worker (the
services pass), a smaller one with eager Celery (both passes), the refusal of a
foreign database, and the cause of every kind of divergence on hand-made rows
(backoffice/fidelity_causes.py)."""

import io
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backoffice import fidelity
from backoffice import fidelity_causes as fc
from copytrading.ledger import ledger_check
from copytrading.models import Execution, LeaderEvent, LeaderEventStatus
from followers.models import Subscription
from tests.copytrading.world import World
from tests.worker import celery_worker

D = Decimal
LINE = re.compile(
    r"fidelity followers=(\d+) days=(\d+) max_gap_pp=(\d+\.\d{4}) median_gap_pp=(\d+\.\d{4}) unexplained=(\d+)"
)


def _report(**options) -> tuple[list[str], re.Match]:
    out = io.StringIO()
    call_command("fidelity_report", quiet=True, stdout=out, stderr=io.StringIO(), **options)
    lines = out.getvalue().splitlines()
    match = LINE.fullmatch(lines[0])
    assert match, lines[0]
    return lines, match


def _causes(lines: list[str]) -> set[str]:
    """The cause column of the divergence table."""
    start = next(i for i, line in enumerate(lines) if line.startswith("divergences: ")) + 2
    return {line.split()[2] for line in lines[start:]}


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_small_run_through_a_real_worker_meets_the_goal(instruments):
    """CI's size (3 days, 10 followers): every copy through Redis and a
    worker process; the ample group within 0.25 pp, nothing unexplained, the
    mix's causes in the table, the ledger balanced."""
    with celery_worker():
        lines, match = _report(days=3, followers=10, seed=7)
    assert match.group(1, 2) == ("10", "3")
    assert D(match[3]) <= D("0.25")
    assert D(match[4]) <= D(match[3])
    assert match[5] == "0"
    assert {fc.MINIMUM_QUANTITY, fc.FEE, fc.RISK_ACTION} <= _causes(lines)
    assert ledger_check().ok
    # The figures are the worker's rows: one per event and follower, every event done.
    events = LeaderEvent.objects.all()
    assert events.count() > 15
    assert not events.exclude(status=LeaderEventStatus.DONE).exists()
    assert Execution.objects.count() == events.count() * Subscription.objects.count()


@pytest.mark.django_db(transaction=True)
def test_eager_run_and_its_exit_codes(instruments):
    """Copies inline (eager Celery), both passes: the line and a table; a
    second run of the seed gets its own users and the same figures; a
    database with someone else's portfolio is refused (exit 2) unless --force."""
    lines, match = _report(days=1, followers=4, seed=3)
    assert match.group(1, 2) == ("4", "1")
    assert match[5] == "0"
    assert lines[1].startswith("leader portfolio=") and "users=fidelity-3-r1-*" in lines[1]
    assert any(line.startswith("group ample") for line in lines)
    again, match_again = _report(days=1, followers=4, seed=3)
    assert "users=fidelity-3-r2-*" in again[1]
    assert match_again[0] == match[0]
    assert ledger_check().ok

    World(instruments, None).leader()  # someone else's portfolio
    with pytest.raises(CommandError, match="scratch database") as refused:
        _report(days=1, followers=1, seed=3)
    assert refused.value.returncode == 2
    with pytest.raises(CommandError) as bad:
        _report(days=0, followers=1, seed=3)
    assert bad.value.returncode == 2


def test_groups_keep_the_mix():
    groups = fidelity.follower_groups(10)
    assert groups.count(fidelity.AMPLE) == 6
    assert groups[6:] == ["small", "stop", "risk", "capital"]
    assert fidelity.follower_groups(1) == [fidelity.AMPLE]
    assert fidelity.trade_count(30) == 200 and fidelity.trade_count(3) == 20
    assert fidelity.GROUPS["adaptive"].scale(D("50000")) == D("50000")
    assert fidelity.GROUPS["small"].scale(D("2000")) == D("1000")
    assert fidelity.GROUPS["fixed"].scale(D("20000")) is None


# --- the causes, on hand-made rows ------------------------------------------------------------

PERP = "BTC/USDT:USDT"


def _row(seq: int, **kw) -> fc.RowFacts:
    values = {
        "kind": "position_open",
        "symbol": PERP,
        "outcome": "COPIED",
        "leader_quantity": D("0.5"),
        "leader_price": D("64000"),
        "follower_price": D("64000"),
        "quantity_step": D("0.001"),
        "min_quantity": D("0.001"),
        "max_quantity": D("100"),
        **kw,
    }
    return fc.RowFacts(seq=seq, **values)


def _follower(rows, *, multiplier="0.01", model="progressive", **kw) -> fc.FollowerFacts:
    return fc.FollowerFacts(
        subscription_id=5, group="g", sizing_model=model, multiplier=D(multiplier) if multiplier else None,
        rows=rows, **kw,
    )  # fmt: skip


def _causes_of(follower) -> list[tuple[int | None, str]]:
    return [(row.seq, row.cause) for row in fc.follower_divergences(follower)]


def test_an_exact_copy_is_no_divergence():
    rows = [
        _row(1, follower_quantity=D("0.005"), attempted_quantity=D("0.005")),
        # A close of all: nothing to compare (attempted is empty).
        _row(2, kind="position_close", follower_quantity=D("0.005")),
    ]
    assert fc.follower_divergences(_follower(rows, gap_pp=D("0.001"))) == []


def test_step_rounding_and_the_maximum():
    rows = [
        _row(1, leader_quantity=D("0.55"), attempted_quantity=D("0.0055"), follower_quantity=D("0.005")),
        # A reduce: the exact share of the mirror, floored.
        _row(2, kind="position_reduce", attempted_quantity=D("0.00277777"), follower_quantity=D("0.002")),
        _row(3, leader_quantity=D("20000"), attempted_quantity=D("200"), follower_quantity=D("100")),
    ]
    assert _causes_of(_follower(rows)) == [(1, fc.STEP_ROUNDING), (2, fc.STEP_ROUNDING), (3, fc.MAXIMUM_QUANTITY)]


def test_minimums_capital_risk_and_settings():
    rows = [
        _row(1, outcome="SKIPPED", reason_code="BELOW_MIN_QUANTITY", attempted_quantity=D("0.0005")),
        _row(2, outcome="SKIPPED", reason_code="BELOW_MIN_NOTIONAL", symbol="ETH/USDT"),
        _row(3, outcome="REJECTED", reason_code="INSUFFICIENT_MARGIN", symbol="SOL/USDT:USDT"),
        _row(4, outcome="REJECTED", reason_code="RISK_MAX_OPEN_POSITIONS", symbol="AVAX/USDT:USDT"),
        _row(5, outcome="SKIPPED", reason_code="PRODUCT_NOT_COPIED", symbol="SOL/USDT"),
        # Nothing to reduce after the skip of #1 on the same symbol: a follow-up.
        _row(6, kind="position_close", outcome="SKIPPED", reason_code="NO_MIRROR_POSITION"),
    ]
    assert _causes_of(_follower(rows)) == [
        (1, fc.MINIMUM_QUANTITY),
        (2, fc.MINIMUM_NOTIONAL),
        (3, fc.CAPITAL),
        (4, fc.RISK_ACTION),
        (5, fc.COPY_SETTINGS),
        (6, fc.FOLLOW_UP),
    ]


def test_slippage_by_price_or_by_refusal():
    rows = [
        _row(1, follower_quantity=D("0.005"), attempted_quantity=D("0.005"), follower_price=D("64064")),
        _row(2, outcome="REJECTED", reason_code="SLIPPAGE_EXCEEDED", symbol="ETH/USDT:USDT"),
    ]
    found = fc.follower_divergences(_follower(rows))
    assert [(r.seq, r.cause) for r in found] == [(1, fc.SLIPPAGE), (2, fc.SLIPPAGE)]
    assert "(0.1 %)" in found[0].detail


def test_a_pause_is_a_risk_action_only_with_a_risk_event():
    rows = [
        _row(1, outcome="SKIPPED", reason_code="SUBSCRIPTION_PAUSED"),
        _row(2, kind="position_close", outcome="SKIPPED", reason_code="NO_MIRROR_POSITION", symbol="ETH/USDT:USDT"),
    ]
    by_watchdog = _follower(rows, risk_paused=True, risk_closed=True)
    assert _causes_of(by_watchdog) == [(1, fc.RISK_ACTION), (2, fc.RISK_ACTION)]
    assert _causes_of(_follower(rows)) == [(1, fc.UNEXPLAINED), (2, fc.UNEXPLAINED)]


def test_a_mirror_closed_by_the_same_liquidation():
    row = _row(
        1, kind="position_close", outcome="SKIPPED", reason_code="NO_MIRROR_POSITION", trigger="liquidation",
        mirror_triggered=True,
    )  # fmt: skip
    assert _causes_of(_follower([row])) == [(1, fc.TRIGGER)]


def test_fee_residual_and_unexplained_rows():
    # The engine copied a size neither the multiplier nor the step explains.
    odd = _row(1, follower_quantity=D("0.004"), attempted_quantity=D("0.005"))
    assert _causes_of(_follower([odd])) == [(1, fc.UNEXPLAINED)]
    missized = _row(1, follower_quantity=D("0.006"), attempted_quantity=D("0.006"))
    assert _causes_of(_follower([missized])) == [(1, fc.UNEXPLAINED)]
    unknown = _row(1, outcome="FAILED", reason_code="INTERNAL_ERROR")
    assert _causes_of(_follower([unknown])) == [(1, fc.UNEXPLAINED)]
    # A gap no row explains is a residual; the fee is listed, never an explanation.
    paid = _follower([], fee=D("12.5"), gap_pp=D("0.01"))
    assert _causes_of(paid) == [(None, fc.RESIDUAL), (None, fc.FEE)]
    assert _causes_of(_follower([], fee=D("12.5"), gap_pp=D("0.004"))) == [(None, fc.FEE)]


def test_summary_line_counts_and_goal():
    ample = [_follower([], gap_pp=D(g)) for g in ("0.0010", "0.0030", "0.0020", "0.0040")]
    other = fc.FollowerFacts(
        subscription_id=9, group="small", sizing_model="progressive", multiplier=D("0.01"),
        rows=[_row(1, outcome="FAILED", reason_code="INTERNAL_ERROR")], gap_pp=D("3"),
    )  # fmt: skip
    summary = fc.summarize(days=3, followers=[*ample, other], measured_group="g")
    assert summary.line == "fidelity followers=5 days=3 max_gap_pp=0.0040 median_gap_pp=0.0025 unexplained=1"
    assert not summary.ok  # the unexplained row of another group counts too
    table = fc.table_lines(summary.divergences)
    assert len(table) == 2 and table[1].split()[:4] == ["9", "small", "unexplained", "1"] and "#1" in table[1]


def test_the_table_puts_identical_followers_on_one_line():
    def paying(sub: int, fee: str) -> fc.FollowerFacts:
        rows = [_row(4, outcome="SKIPPED", reason_code="BELOW_MIN_QUANTITY", attempted_quantity=D("0.0005"))]
        return fc.FollowerFacts(sub, "small", "progressive", D("0.01"), rows, fee=D(fee))

    followers = [paying(3, "1.5"), paying(4, "1.5"), paying(5, "1.5"), paying(9, "1.5"), paying(10, "2")]
    table = fc.table_lines(row for f in followers for row in fc.follower_divergences(f))
    assert [line.split()[:3] for line in table[1:]] == [
        ["3-5,9", "small", "fee"],
        ["3-5,9-10", "small", "minimum_quantity"],
        ["10", "small", "fee"],
    ]
    assert fc.gap_pp(D("0.012345"), D("0.0123")) == D("0.0045")
