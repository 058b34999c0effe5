"""The exchange reconciliation against the exchange double: a follower's
copy wallet bound to an account on the double, its mirror opened by the paper
engine, the double's positions and orders arranged to match or not.

Each finding is detected; each repair is done once and each drift reported
once however many runs see it; a dry run changes nothing anywhere; an
exchange that cannot be read changes nothing and says so (exit code 2)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from backoffice.models import JobError
from copytrading.exchanges import crypto
from copytrading.exchanges.models import (
    ExchangeAccount,
    ExchangeAccountStatus,
    ExchangeDrift,
    ExchangeOrder,
    ExchangeOrderStatus,
)
from copytrading.exchanges.reconciliation import exchange_accounts_reconcile
from copytrading.ledger import ledger_check
from copytrading.models import Account, Order, Position, PositionStatus, Transfer
from copytrading.notifications.models import Notification
from fees.models import FeeAccrual
from risk.models import Action, RiskEvent, Rule
from tests.copytrading.world import BTC_PERP, ETH_PERP, World
from tests.exchange_double.fixtures import API_KEY, API_SECRET
from tests.exchange_double.state import Position as DoublePosition
from tests.exchange_double.state import Trade

D = Decimal


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks, exchange_settings):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.EXCHANGE_SECRET_KEYS = [Fernet.generate_key().decode()]
    settings.EXCHANGE_SECRET_KEYS_GENERATED = False
    return World(instruments, django_capture_on_commit_callbacks)


def bind(account_id: int, user) -> ExchangeAccount:
    """Bind the ledger account to the double's account (as the subscribe flow will)."""
    now = timezone.now()
    linked = ExchangeAccount.objects.create(
        user=user, exchange="binanceusdm", label="futures", api_key_encrypted=crypto.encrypt(API_KEY),
        secret_encrypted=crypto.encrypt(API_SECRET), api_key_hint=crypto.mask(API_KEY),
        api_key_fingerprint=crypto.fingerprint("binanceusdm", API_KEY), status=ExchangeAccountStatus.VALID,
        created_at=now, last_validated_at=now,
    )  # fmt: skip
    Account.objects.filter(pk=account_id).update(exchange_account=linked)
    return linked


@pytest.fixture
def copy(world, exchange_double):
    """A follower copying 1 ETH long (the leader's 2 at 0.5) at 3000, its
    copy wallet bound to the double's account, which holds the same position."""
    portfolio = world.leader()
    portfolio.profit_share_pct = D("10")  # a close in profit pays the leader's share
    portfolio.save(update_fields=["profit_share_pct"])
    sub = world.follower(portfolio)
    world.price(ETH_PERP, "3000")
    world.trade(portfolio, ETH_PERP, "buy", "2")
    mirror = Position.objects.get(subscription_id=sub.pk)
    assert (mirror.side, mirror.quantity) == ("long", D("1"))
    linked = bind(sub.copy_account_id, sub.follower)
    state = exchange_double.state
    state.set_mark("ETHUSDT", "3000")
    hold(exchange_double, "ETHUSDT", "1", "3000")
    sub.linked, sub.mirror, sub.double = linked, mirror, exchange_double
    return sub


def hold(double, symbol: str, amount: str, entry: str) -> None:
    with double.state.lock:
        double.state.accounts[API_KEY].positions[symbol] = DoublePosition(symbol, D(amount), D(entry))


def our_order(sub, symbol=BTC_PERP, status=ExchangeOrderStatus.FILLED, client_id="ct-900-1", age=timedelta(hours=1)):
    """An exchange order of ours on the copy's account (the service traded there)."""
    return ExchangeOrder.objects.create(
        exchange_account=sub.linked, client_order_id=client_id, symbol=symbol, side="buy", quantity=D("0.010"),
        status=status, subscription_id=sub.pk, decided_at=timezone.now() - age,
    )  # fmt: skip


def run(**kwargs):
    return exchange_accounts_reconcile(**kwargs)


def found(report) -> list[tuple[str, str]]:
    return [(f.code, f.subject) for a in report.accounts for f in a.findings]


def snapshot(double) -> dict:
    """Everything a run could change: the service's rows and balances, the double's state."""
    state = double.state
    with state.lock:
        account = state.accounts[API_KEY]
        exchange = (
            {s: (p.amount, p.entry_price) for s, p in account.positions.items()},
            sorted((o.client_order_id, o.status) for o in account.orders.values()),
            dict(account.balances),
            [r.path for r in state.requests if r.method != "GET"],
        )
    return {
        "exchange": exchange,
        "rows": {
            model.__name__: model.objects.count()
            for model in (Position, Order, Transfer, ExchangeOrder, ExchangeDrift, RiskEvent, JobError, Notification)
        },
        "balances": sorted(Account.objects.values_list("pk", "balance", "locked")),
        "positions": sorted(Position.objects.values_list("pk", "status", "quantity", "realized_pnl")),
    }


def test_an_account_in_line_with_its_exchange_has_no_findings(copy):
    report = run()
    assert [a.account_id for a in report.accounts] == [copy.copy_account_id]
    assert (found(report), report.exit_code) == ([], 0)
    assert not ExchangeDrift.objects.exists() and not RiskEvent.objects.exists()


def test_a_close_on_the_exchange_is_adopted_once_at_the_exchanges_last_trade(copy):
    double, state = copy.double, copy.double.state
    with state.lock:  # the user closed it on the exchange at 3050
        state.accounts[API_KEY].positions.pop("ETHUSDT")
        state.accounts[API_KEY].trades.append(
            Trade(state.next_id(), 1, "ETHUSDT", "SELL", D("3050"), D("1"), D("1.22"), "USDT", D("50"), state.now_ms())
        )
    wallet_before = Account.objects.get(pk=copy.copy_account_id).balance

    report = run()

    assert found(report) == [("CLOSED_ON_EXCHANGE", ETH_PERP)] and report.exit_code == 1
    assert report.accounts[0].repairs == {f"CLOSED_ON_EXCHANGE:{ETH_PERP}": "closed_in_service"}
    mirror = Position.objects.get(pk=copy.mirror.pk)
    # Closed in the service at the exchange's price, through the engine: 1 ETH x (3050 - 3000).
    assert (mirror.status, mirror.quantity, mirror.realized_pnl) == (PositionStatus.CLOSED, 0, D("50"))
    close = Order.objects.get(position=mirror, side="sell")
    assert close.price == D("3050")
    # The close listeners ran as for any close: the profit share accrued on the 50.
    accrual = FeeAccrual.objects.get(source_position=mirror)
    assert (accrual.profit, accrual.subscription_id, accrual.share_pct) == (D("50"), copy.pk, D("10"))
    assert accrual.fee == D("50") * accrual.share_pct / 100
    wallet = Account.objects.get(pk=copy.copy_account_id)
    assert (wallet.balance - wallet_before, wallet.locked) == (D("50") - accrual.fee, 0)
    assert ledger_check().ok
    # Reported once: a risk event on the subscription, a job error, the follower told.
    (event,) = RiskEvent.objects.all()
    assert (event.subscription_id, event.rule, event.action) == (copy.pk, Rule.EXCHANGE_DRIFT, Action.DRIFT_REPAIRED)
    assert event.detail.startswith("CLOSED_ON_EXCHANGE")
    (error,) = JobError.objects.filter(task="exchange.reconcile:CLOSED_ON_EXCHANGE")
    assert error.count == 1
    (note,) = Notification.objects.filter(user=copy.follower, kind="exchange_drift")
    assert "closed on binanceusdm" in note.body and "closed too" in note.body
    # No order went to the exchange: the close was the exchange's.
    assert not double.state.seen("/fapi/v1/order", "POST")

    again = run()
    assert (found(again), again.exit_code) == ([], 0)
    assert again.accounts[0].resolved == 1
    assert Order.objects.filter(position=mirror).count() == 2  # the open and the one close
    assert (RiskEvent.objects.count(), Notification.objects.filter(kind="exchange_drift").count()) == (1, 1)
    assert JobError.objects.get(task="exchange.reconcile:CLOSED_ON_EXCHANGE").count == 1


def test_without_a_trade_the_close_is_adopted_at_the_mark(copy, world):
    with copy.double.state.lock:
        copy.double.state.accounts[API_KEY].positions.pop("ETHUSDT")
    world.price(ETH_PERP, "2990")

    run()

    mirror = Position.objects.get(pk=copy.mirror.pk)
    assert (mirror.status, mirror.realized_pnl) == (PositionStatus.CLOSED, D("-10"))


def test_an_orphan_the_service_opened_is_closed_with_one_reduce_only_order(copy):
    our_order(copy, BTC_PERP)  # the service once traded BTC on this account
    hold(copy.double, "BTCUSDT", "0.010", "64000")

    report = run()

    assert found(report) == [("UNKNOWN_POSITION", BTC_PERP)]
    (drift,) = ExchangeDrift.objects.all()
    repair = ExchangeOrder.objects.get(client_order_id=f"ct-r{drift.pk}")
    assert (repair.side, repair.quantity, repair.reduce_only, repair.order) == ("sell", D("0.010"), True, None)
    # Sent through the submitter; the exchange closed the position.
    assert repair.status == ExchangeOrderStatus.FILLED
    orders = copy.double.state.accounts[API_KEY].orders.values()
    sent = [o for o in orders if o.client_order_id == repair.client_order_id]
    assert [(o.side, o.quantity, o.reduce_only) for o in sent] == [("SELL", D("0.010"), True)]
    assert copy.double.state.accounts[API_KEY].positions["BTCUSDT"].amount == 0
    (event,) = RiskEvent.objects.all()
    assert (event.subscription_id, event.action) == (copy.pk, Action.DRIFT_REPAIRED)
    (note,) = Notification.objects.filter(kind="exchange_drift")
    assert "an order closing it was sent" in note.body

    again = run()
    assert found(again) == []
    assert len(copy.double.state.seen("/fapi/v1/order", "POST")) == 1
    assert RiskEvent.objects.count() == 1


def test_an_orphan_whose_close_order_is_not_answered_is_never_sent_twice(copy, settings):
    # Quick retries: the submitter gives up on a refusing exchange in
    # a second, not half a minute (what is tested is that it never resends).
    settings.EXCHANGE_SUBMIT_BACKOFF_SECONDS = 0.05
    settings.EXCHANGE_SUBMIT_MAX_BACKOFF_SECONDS = 0.2
    our_order(copy, BTC_PERP)
    hold(copy.double, "BTCUSDT", "0.010", "64000")
    copy.double.inject("status", status=503, path="/fapi/v1/order", times=None)

    run()
    run()

    # The submitter retried the refused sends and gave up (the exchange never
    # took the order); the second run made no second repair order.
    (repair,) = ExchangeOrder.objects.filter(client_order_id__startswith="ct-r")
    assert repair.status in (ExchangeOrderStatus.PENDING, ExchangeOrderStatus.SENT, ExchangeOrderStatus.FAILED)
    assert copy.double.state.client_order_ids()[repair.client_order_id] == 0
    assert ExchangeDrift.objects.count() == 1 and RiskEvent.objects.count() == 1


def test_a_position_the_user_opened_themselves_is_reported_only(copy):
    hold(copy.double, "SOLUSDT", "-3", "150")
    before = snapshot(copy.double)

    report = run()

    assert found(report) == [("UNKNOWN_POSITION", "SOL/USDT:USDT")] and report.accounts[0].repairs == {}
    assert not copy.double.state.seen("/fapi/v1/order", "POST")
    assert copy.double.state.accounts[API_KEY].positions["SOLUSDT"].amount == D("-3")
    (event,) = RiskEvent.objects.all()
    assert (event.action, event.measured) == (Action.DRIFT_REPORTED, D("-3"))
    (note,) = Notification.objects.filter(kind="exchange_drift")
    assert "did not open" in note.body
    assert snapshot(copy.double)["positions"] == before["positions"]

    run()
    assert (RiskEvent.objects.count(), Notification.objects.count() - before["rows"]["Notification"]) == (1, 1)
    assert ExchangeDrift.objects.get().seen_count == 2


def test_a_quantity_mismatch_is_reported_not_repaired_and_one_step_is_not_drift(copy):
    hold(copy.double, "ETHUSDT", "1.01", "3000")  # one step (0.01): rounding
    assert found(run()) == []

    hold(copy.double, "ETHUSDT", "1.5", "3000")
    report = run()

    assert found(report) == [("QUANTITY_MISMATCH", ETH_PERP)] and report.accounts[0].repairs == {}
    mirror = Position.objects.get(pk=copy.mirror.pk)
    assert (mirror.status, mirror.quantity) == (PositionStatus.OPEN, D("1"))
    (event,) = RiskEvent.objects.all()
    assert (event.measured, event.threshold, event.action) == (D("1.5"), D("1"), Action.DRIFT_REPORTED)
    assert not copy.double.state.seen("/fapi/v1/order", "POST")

    # Back in line: the drift is over; a new mismatch later is a new report.
    hold(copy.double, "ETHUSDT", "1", "3000")
    assert run().accounts[0].resolved == 1
    hold(copy.double, "ETHUSDT", "2", "3000")
    run()
    assert RiskEvent.objects.count() == 2


def test_an_open_order_with_our_prefix_unknown_to_the_service_is_reported(copy):
    from tests.exchange_double.state import Order as DoubleOrder

    state = copy.double.state
    with state.lock:
        for client_id in ("ct-777-1", "web_user_order"):
            pk = state.next_id()
            state.accounts[API_KEY].orders[pk] = DoubleOrder(
                pk, client_id, "ETHUSDT", "BUY", "LIMIT", D("1"), D("2500"), "NEW"
            )

    report = run()

    assert found(report) == [("UNKNOWN_ORDER", "ct-777-1")]
    (error,) = JobError.objects.filter(task="exchange.reconcile:UNKNOWN_ORDER")
    assert "ct-777-1" in error.message
    # Ops' business: a risk event, no notification to the follower.
    assert RiskEvent.objects.get().detail.startswith("UNKNOWN_ORDER")
    assert not Notification.objects.filter(kind="exchange_drift").exists()


def test_a_missing_order_goes_back_to_the_submitters_lookup_never_resent(copy):
    # Sent long ago, never answered; the exchange has it, filled (so not open).
    row = our_order(copy, ETH_PERP, ExchangeOrderStatus.SENT, "ct-901-1", age=timedelta(minutes=10))
    state = copy.double.state
    from tests.exchange_double.state import Order as DoubleOrder

    with state.lock:
        pk = state.next_id()
        state.accounts[API_KEY].orders[pk] = DoubleOrder(
            pk, "ct-901-1", "ETHUSDT", "BUY", "MARKET", D("0.010"), D("0"), "FILLED", executed_qty=D("0.010"),
            avg_price=D("3000"),
        )  # fmt: skip

    report = run()

    assert found(report) == [("MISSING_ORDER", "ct-901-1")]
    assert report.accounts[0].repairs == {"MISSING_ORDER:ct-901-1": "handed_to_submitter"}
    row.refresh_from_db()
    assert (row.status, row.filled_quantity) == (ExchangeOrderStatus.FILLED, D("0.010"))
    assert not state.seen("/fapi/v1/order", "POST")  # looked up, not sent again
    assert found(run()) == []


def test_a_dry_run_changes_nothing_anywhere(copy):
    our_order(copy, BTC_PERP)
    hold(copy.double, "BTCUSDT", "0.010", "64000")  # would be closed by an order
    hold(copy.double, "SOLUSDT", "-3", "150")  # reported only
    with copy.double.state.lock:
        copy.double.state.accounts[API_KEY].positions.pop("ETHUSDT")  # would be adopted
    before = snapshot(copy.double)

    report = run(dry_run=True)

    assert found(report) == [
        ("UNKNOWN_POSITION", BTC_PERP),
        ("CLOSED_ON_EXCHANGE", ETH_PERP),
        ("UNKNOWN_POSITION", "SOL/USDT:USDT"),
    ]
    assert report.exit_code == 1 and report.accounts[0].repairs == {}
    assert len(report.accounts[0].new) == 3
    assert snapshot(copy.double) == before


def test_an_exchange_that_is_down_changes_nothing_and_is_reported(copy):
    with copy.double.state.lock:
        copy.double.state.accounts[API_KEY].positions.pop("ETHUSDT")
    copy.double.inject("status", status=503, path="/fapi", times=None)
    before = snapshot(copy.double)

    report = run()

    assert report.exit_code == 2 and report.accounts[0].error == "EXCHANGE_UNAVAILABLE"
    assert found(report) == []
    after = snapshot(copy.double)
    assert after["rows"]["JobError"] == before["rows"]["JobError"] + 1
    after["rows"]["JobError"] = before["rows"]["JobError"]
    assert after == before
    (error,) = JobError.objects.filter(task="exchange.reconcile")
    assert (error.severity, error.exception_class) == ("high", "copytrading.exchanges.accounts.ExchangeUnavailable")


def test_the_command_prints_progress_findings_and_a_summary_with_its_exit_code(copy, capsys):
    hold(copy.double, "SOLUSDT", "-3", "150")

    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile_exchanges", "--dry-run")

    out = capsys.readouterr().out
    assert exit_.value.code == 1
    assert f"[1/1] account {copy.copy_account_id} (binanceusdm): 1 findings" in out
    assert "UNKNOWN_POSITION   SOL/USDT:USDT  [new] SOL/USDT:USDT: -3 on the exchange, none in the service" in out
    assert "1 accounts checked, 1 findings (1 new), 0 repaired, 0 resolved, 0 unreachable (dry run" in out
    assert not ExchangeDrift.objects.exists()

    hold(copy.double, "SOLUSDT", "0", "0")
    call_command("reconcile_exchanges", "--account", str(copy.copy_account_id))  # exit 0: returns
    assert "in line" in capsys.readouterr().out

    copy.double.inject("status", status=503, path="/fapi", times=None)
    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile_exchanges")
    assert exit_.value.code == 2
    assert "could not read the exchange (EXCHANGE_UNAVAILABLE)" in capsys.readouterr().out


def test_the_command_shows_progress_on_stderr_and_refuses_an_unknown_account(copy, capsys):
    call_command("reconcile_exchanges", "--account", str(copy.copy_account_id))  # in line: exit 0
    assert "reconcile_exchanges accounts: 1/1 (100 %)" in capsys.readouterr().err

    call_command("reconcile_exchanges", "--quiet")
    assert capsys.readouterr().err == ""

    with pytest.raises(CommandError) as raised:
        call_command("reconcile_exchanges", "--account", "987654")
    assert raised.value.returncode == 2


def test_a_leaders_bound_trading_account_is_reported_never_repaired(world, exchange_double):
    # The leader's fills reach followers as leader events (the leader's
    # exchange watcher); a close adopted quietly here would strand every mirror.
    portfolio = world.leader()
    world.price(ETH_PERP, "3000")
    world.trade(portfolio, ETH_PERP, "buy", "2")
    bind(portfolio.trading_account_id, portfolio.leader)

    report = run()

    assert found(report) == [("CLOSED_ON_EXCHANGE", ETH_PERP)] and report.accounts[0].repairs == {}
    assert Position.objects.get(account_id=portfolio.trading_account_id).status == PositionStatus.OPEN
    assert JobError.objects.filter(task="exchange.reconcile:CLOSED_ON_EXCHANGE").exists()
    assert not RiskEvent.objects.exists() and not Notification.objects.filter(kind="exchange_drift").exists()


def test_the_periodic_task_runs_the_reconciliation_and_beat_schedules_it(copy):
    from config.celery import app
    from copytrading.exchanges.reconcile_tasks import reconcile_exchange_accounts

    hold(copy.double, "SOLUSDT", "-3", "150")
    entry = app.conf.beat_schedule["reconcile-exchange-accounts"]
    assert entry["task"] in app.tasks and entry["schedule"] == 300.0

    result = reconcile_exchange_accounts.delay().get()

    assert result == {"accounts": 1, "findings": 1, "new": 1, "unreachable": 0}
    assert ExchangeDrift.objects.get().code == "UNKNOWN_POSITION"


def test_the_dry_run_says_what_it_would_repair(copy, capsys):
    with copy.double.state.lock:
        copy.double.state.accounts[API_KEY].positions.pop("ETHUSDT")

    with pytest.raises(SystemExit):
        call_command("reconcile_exchanges", "--dry-run", "--account", str(copy.copy_account_id))

    out = capsys.readouterr().out
    line = f"CLOSED_ON_EXCHANGE {ETH_PERP}  [new] {ETH_PERP}: 1 in the service, none on the exchange (would repair)"
    assert line in out
    assert Position.objects.get(pk=copy.mirror.pk).status == PositionStatus.OPEN


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_adopt_a_close_once_and_report_it_once(copy):
    import threading

    from django.db import connection

    with copy.double.state.lock:
        copy.double.state.accounts[API_KEY].positions.pop("ETHUSDT")
    start = threading.Barrier(2)
    reports, errors = [], []

    def one_run():
        try:
            start.wait()
            reports.append(run())
        except Exception as exc:  # noqa: BLE001  surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == [] and len(reports) == 2
    mirror = Position.objects.get(pk=copy.mirror.pk)
    assert (mirror.status, mirror.realized_pnl) == (PositionStatus.CLOSED, D("0"))  # at the mark: 3000
    assert Order.objects.filter(position=mirror).count() == 2
    assert ExchangeDrift.objects.count() == 1 and RiskEvent.objects.count() == 1
    assert Notification.objects.filter(kind="exchange_drift").count() == 1
    assert sum(len(r.accounts[0].repairs) for r in reports) == 1
    assert ledger_check().ok


def test_an_account_that_fails_to_reconcile_is_reported_and_does_not_stop_the_others(copy, world, monkeypatch):
    from copytrading.exchanges import reconciliation

    portfolio = world.leader()  # a second bound account, on another key of the double
    copy.double.state.add_account("leader-key", "leader-secret")
    now = timezone.now()
    linked = ExchangeAccount.objects.create(
        user=portfolio.leader, exchange="binanceusdm", label="leader", api_key_encrypted=crypto.encrypt("leader-key"),
        secret_encrypted=crypto.encrypt("leader-secret"), api_key_hint="lead…-key",
        api_key_fingerprint=crypto.fingerprint("binanceusdm", "leader-key"), status=ExchangeAccountStatus.VALID,
        created_at=now, last_validated_at=now,
    )  # fmt: skip
    Account.objects.filter(pk=portfolio.trading_account_id).update(exchange_account=linked)
    real = reconciliation._known

    def broken_for_the_copy(exchange_account_id, read_at):
        if exchange_account_id == copy.linked.pk:
            raise RuntimeError("a bug")
        return real(exchange_account_id, read_at)

    monkeypatch.setattr(reconciliation, "_known", broken_for_the_copy)

    report = run()

    assert [(a.account_id, a.error) for a in report.accounts] == [
        (copy.copy_account_id, "INTERNAL_ERROR"),
        (portfolio.trading_account_id, ""),
    ]
    assert report.exit_code == 2
    (error,) = JobError.objects.filter(task="exchange.reconcile")
    assert error.exception_class == "builtins.RuntimeError"


def test_a_drift_report_never_hides_the_event_that_paused_a_copy(copy):
    from followers.selectors import risk_views
    from risk.models import RiskState
    from risk.services import exchange_drift_events_record

    now = timezone.now()
    RiskState.objects.create(
        subscription_id=copy.pk, copy_account_id=copy.copy_account_id, follower_id=copy.follower_id,
        paused_by_rule=Rule.MAX_DRAWDOWN, paused_at=now,
    )  # fmt: skip
    RiskEvent.objects.create(
        subscription_id=copy.pk, rule=Rule.MAX_DRAWDOWN, measured=D("31"), threshold=D("30"), action=Action.PAUSE,
        created_at=now,
    )  # fmt: skip
    exchange_drift_events_record(drifts=[(copy.pk, "QUANTITY_MISMATCH ETH", D("1.5"), D("1"), False)])

    event = risk_views([copy.pk])[copy.pk]["pause_event"]
    assert (event["rule"], event["measured"]) == (Rule.MAX_DRAWDOWN, "31.00000000")


def test_an_order_decided_after_the_read_holds_the_repair_back(copy, monkeypatch):
    from copytrading.exchanges import reconciliation

    with copy.double.state.lock:
        copy.double.state.accounts[API_KEY].positions.pop("ETHUSDT")
    real = reconciliation._known

    def known_then_a_new_decision(exchange_account_id, read_at):
        seen = real(exchange_account_id, read_at)
        # The fan-out decides a close of this mirror right after the service was read.
        our_order(copy, ETH_PERP, ExchangeOrderStatus.PENDING, "ct-950-1", age=timedelta(0))
        return seen

    monkeypatch.setattr(reconciliation, "_known", known_then_a_new_decision)
    report = run()
    monkeypatch.undo()

    assert found(report) == [("CLOSED_ON_EXCHANGE", ETH_PERP)] and report.accounts[0].repairs == {}
    assert Position.objects.get(pk=copy.mirror.pk).status == PositionStatus.OPEN
    # Next run: the symbol has an order in flight, so it is not compared; the drift stays open.
    again = run()
    assert (found(again), again.accounts[0].resolved) == ([], 0)
    assert ExchangeDrift.objects.get().resolved_at is None
