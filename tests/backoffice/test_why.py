"""Answers to "why did follower X not copy trade Y?" in the back office (issue
#16 §3): executions found by username, ids as links, one click from a leader
event or order to its executions, the execution page's "Reason" sentence and
what the decision saw, and a subscription's page with its recent history."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils.html import escape

from copytrading import reasons
from copytrading.models import Execution, Instrument, LeaderEvent, Order, Outcome, Position, PositionStatus
from copytrading.services import instruments_seed, price_set
from fees.models import FeeAccrual
from followers.models import Subscription
from followers.selectors import copy_snapshots
from portfolios.models import Portfolio, PortfolioMode
from portfolios.services import portfolio_create, portfolio_fund, portfolio_position_close
from risk import services as risk_services
from risk import watchdog
from risk.models import RiskEvent
from tests.backoffice.test_admin import World, _follow, _leader_buys, _portfolio, _url, _user

# The admin tests' fixtures (a world made by the services, cheap passwords).
from tests.backoffice.test_admin import fast_passwords as fast_passwords
from tests.backoffice.test_admin import world as world

D = Decimal
EXECUTIONS = reverse("admin:copytrading_execution_changelist")


def _rows(response) -> set[int]:
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def _executions(**filters) -> set[int]:
    return set(Execution.objects.filter(**filters).values_list("pk", flat=True))


# --- finding the rows ---------------------------------------------------------------


def test_the_execution_list_finds_a_follower_by_username(admin_client, world: World):
    tiny = world.skipped
    response = admin_client.get(EXECUTIONS, {"q": tiny.follower.username})

    assert _rows(response) == _executions(subscription_id=tiny.pk)
    assert len(_rows(response)) == 2  # the margin open and the spot buy
    # Usernames are matched whole, whatever their case; not as a fragment.
    assert _rows(admin_client.get(EXECUTIONS, {"q": "FOLLOWER-TINY"})) == _executions(subscription_id=tiny.pk)
    assert _rows(admin_client.get(EXECUTIONS, {"q": "follower-"})) == set()


def test_the_search_takes_an_event_portfolio_or_subscription_id(admin_client, world: World):
    event = world.open_event
    assert _rows(admin_client.get(EXECUTIONS, {"q": str(event.pk)})) >= _executions(event=event)
    assert _rows(admin_client.get(EXECUTIONS, {"q": f"#{event.pk}"})) >= _executions(event=event)
    portfolio_rows = _rows(admin_client.get(EXECUTIONS, {"q": str(world.portfolio.pk)}))
    assert portfolio_rows >= _executions(portfolio_id=world.portfolio.pk)
    # A number larger than any id column, or digits that are not ASCII, are no match, not an error.
    assert _rows(admin_client.get(EXECUTIONS, {"q": "9" * 30})) == set()
    assert _rows(admin_client.get(EXECUTIONS, {"q": "²"})) == set()
    assert _rows(admin_client.get(EXECUTIONS, {"leader_order": "²"})) == set()


def test_the_list_filters_by_outcome_reason_and_date(admin_client, world: World):
    skipped = _rows(admin_client.get(EXECUTIONS, {"outcome__exact": Outcome.SKIPPED}))
    assert skipped == _executions(outcome=Outcome.SKIPPED)
    below = _rows(admin_client.get(EXECUTIONS, {"reason_code__exact": "BELOW_MIN_NOTIONAL"}))
    assert below == _executions(reason_code="BELOW_MIN_NOTIONAL")
    today = world.open_event.created_at
    dated = admin_client.get(
        EXECUTIONS, {"created_at__year": today.year, "created_at__month": today.month, "created_at__day": today.day}
    )
    assert _rows(dated) == _executions()


def test_ids_on_the_list_are_links_and_the_follower_is_named(admin_client, world: World):
    page = admin_client.get(EXECUTIONS, {"q": world.copied.follower.username}).content.decode()
    copied_row = Execution.objects.get(event=world.open_event, subscription_id=world.copied.pk)

    assert _url(LeaderEvent, "change", world.open_event.pk) in page
    assert reverse("admin:followers_subscription_change", args=[world.copied.pk]) in page
    assert reverse("admin:portfolios_portfolio_change", args=[world.portfolio.pk]) in page
    assert _url(Order, "change", copied_row.order_id) in page
    assert world.copied.follower.username in page


# --- one click from a leader event or order -------------------------------------------


def test_the_leader_event_list_links_n_executions(admin_client, world: World):
    event = world.open_event
    page = admin_client.get(reverse("admin:copytrading_leaderevent_changelist")).content.decode()
    link = f"{EXECUTIONS}?event__id__exact={event.pk}"
    count = Execution.objects.filter(event=event).count()

    assert f'<a href="{link}">{count} executions</a>' in page
    assert _rows(admin_client.get(link)) == _executions(event=event)
    # The event's own page too.
    page = admin_client.get(_url(LeaderEvent, "change", event.pk)).content.decode()
    assert f'<a href="{link}">{count} executions</a>' in page


def test_a_leader_order_links_every_follower_execution_of_it(admin_client, world: World):
    event = world.open_event
    leader_order = Order.objects.get(pk=event.payload["order_id"])
    assert leader_order.subscription_id is None
    link = f"{EXECUTIONS}?leader_order={leader_order.pk}"

    page = admin_client.get(_url(Order, "change", leader_order.pk)).content.decode()
    assert f'<a href="{link}">2 executions</a>' in page
    assert _rows(admin_client.get(link)) == _executions(event=event)

    # A follower's order links its own row.
    mirror = Order.objects.get(subscription_id=world.copied.pk, leader_event=event)
    page = admin_client.get(reverse("admin:copytrading_order_changelist")).content.decode()
    assert f"{EXECUTIONS}?order__id__exact={mirror.pk}" in page
    assert _rows(admin_client.get(EXECUTIONS, {"order__id__exact": mirror.pk})) == _executions(order=mirror)


# --- the execution page ----------------------------------------------------------------


def _readonly(page: str, label: str) -> str:
    """The text shown under ``label`` on a view-only admin page."""
    found = re.search(rf"<label>{re.escape(label)}:</label>\s*<div class=\"readonly\">(.*?)</div>", page, re.S)
    assert found, label
    return found.group(1)


def test_the_execution_page_reads_the_reason_and_what_the_decision_saw(admin_client, world: World):
    row = Execution.objects.select_related("event").get(event=world.open_event, subscription_id=world.skipped.pk)
    sentence = reasons.reason_text(row.reason_code, reasons.execution_values(row))
    assert "0.0001 BTC" in sentence and "minimum quantity 0.001" in sentence  # 0.1 x 0.001

    page = admin_client.get(_url(Execution, "change", row.pk)).content.decode()

    assert _readonly(page, "Reason") == escape(sentence)
    assert _readonly(page, "Attempted quantity") == str(row.attempted_quantity)
    assert _readonly(page, "Free balance") == str(row.free_balance)
    assert _readonly(page, "Min quantity") == str(row.min_quantity)
    assert _readonly(page, "Price used") == str(row.price_used)
    assert _readonly(page, "Leader quantity") == str(row.leader_quantity)
    assert _readonly(page, "Follower") == world.skipped.follower.username
    assert reverse("admin:followers_subscription_change", args=[world.skipped.pk]) in _readonly(page, "Subscription")
    assert reverse("admin:portfolios_portfolio_change", args=[world.portfolio.pk]) in _readonly(page, "Portfolio")
    assert "On the exchange" not in page  # a paper copy has no exchange timeline


def test_a_copied_row_shows_no_reason_and_its_order(admin_client, world: World):
    row = Execution.objects.get(event=world.open_event, subscription_id=world.copied.pk)
    page = admin_client.get(_url(Execution, "change", row.pk)).content.decode()

    assert _readonly(page, "Reason") == "-"
    assert _url(Order, "change", row.order_id) in _readonly(page, "Order")
    assert _readonly(page, "Price used") == str(row.follower_price)


# --- a subscription's page ---------------------------------------------------------------

BTC_PERP = "BTC/USDT:USDT"


def _leader_position(portfolio: Portfolio) -> int:
    return Position.objects.get(
        account_id=portfolio.trading_account_id, status=PositionStatus.OPEN, instrument__symbol=BTC_PERP
    ).pk


def _profitable_copy(capture) -> Subscription:
    """A copy whose leader charges a 20 % profit share and closes at a profit:
    the copy pays its fee (the close listener accrues it)."""
    instruments_seed()
    leader = _user("leader-sharing", deposit="50000")
    portfolio = portfolio_create(leader=leader, name="Sharing", mode=PortfolioMode.ALL, profit_share_pct=D("20"))
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    sub = _follow(portfolio, "follower-paying")
    _leader_buys(portfolio, capture)
    price_set(instrument=Instrument.objects.get(symbol=BTC_PERP), price=D("70000"))
    with capture(execute=True):
        portfolio_position_close(portfolio=portfolio, position_id=_leader_position(portfolio))
    return sub


def test_a_subscription_page_shows_its_executions_fees_and_figures(admin_client, django_capture_on_commit_callbacks):
    sub = _profitable_copy(django_capture_on_commit_callbacks)
    accrual = FeeAccrual.objects.get(subscription_id=sub.pk)
    assert accrual.fee > 0

    page = admin_client.get(_url(Subscription, "change", sub.pk)).content.decode()

    executions = _readonly(page, "Recent executions")
    rows = Execution.objects.filter(subscription_id=sub.pk)
    assert rows.count() == 2  # the open and the close
    for row in rows:
        assert _url(Execution, "change", row.pk) in executions
    fees = _readonly(page, "Fees paid")
    assert f"{accrual.fee} paid in 1 accrual(s)" in fees
    assert _url(FeeAccrual, "change", accrual.pk) in fees
    figures = _readonly(page, "Equity and PnL")
    # The follower API's figures (one selector, no second formula).
    snapshot = copy_snapshots([Subscription.objects.get(pk=sub.pk)])[sub.pk]
    for value in (snapshot.equity, snapshot.realized_pnl, snapshot.unrealized_pnl, snapshot.total_pnl):
        assert f"<td>{value}</td>" in figures
    assert snapshot.realized_pnl > 0  # the profitable close, net of the fee


def test_a_subscription_page_shows_reasons_and_risk_events(admin_client, world: World):
    skipped = world.skipped
    page = admin_client.get(_url(Subscription, "change", skipped.pk)).content.decode()
    executions = _readonly(page, "Recent executions")
    for row in Execution.objects.select_related("event").filter(subscription_id=skipped.pk):
        assert escape(reasons.reason_text(row.reason_code, reasons.execution_values(row))) in executions
    assert _readonly(page, "Risk events").startswith("<p>None.</p>")

    # The copied follower's open loss passes its limit: the watchdog pauses and closes.
    copied = world.copied
    risk_services.risk_limits_set(subscription_id=copied.pk, daily_loss_limit_unrealized=D("50"))
    price_set(instrument=Instrument.objects.get(symbol=BTC_PERP), price=D("62000"))  # 0.05 x -2000 = -100
    watchdog.watchdog_tick()
    (event,) = RiskEvent.objects.filter(subscription_id=copied.pk)

    page = admin_client.get(_url(Subscription, "change", copied.pk)).content.decode()
    risk = _readonly(page, "Risk events")
    assert _url(RiskEvent, "change", event.pk) in risk
    assert escape(event.get_rule_display()) in risk
    assert f"<td>{event.threshold}</td>" in risk


# Session, user, the subscription and its related rows (follower, portfolio,
# wallet, content type: 7), then a fixed number per section (figures 12 as the
# follower's API reads them, executions 1, risk events 3, fees 2): none per row.
SUBSCRIPTION_PAGE_MAX_QUERIES = 26


@pytest.mark.parametrize("trades", [2, 25])
def test_a_subscription_page_costs_a_bounded_number_of_queries(
    admin_client, django_capture_on_commit_callbacks, django_assert_max_num_queries, trades
):
    instruments_seed()
    portfolio = _portfolio("Busy")
    sub = _follow(portfolio, "follower-busy", multiplier="0.1")
    for _ in range(trades):
        _leader_buys(portfolio, django_capture_on_commit_callbacks)
    assert Execution.objects.filter(subscription_id=sub.pk).count() == trades

    with django_assert_max_num_queries(SUBSCRIPTION_PAGE_MAX_QUERIES):
        response = admin_client.get(_url(Subscription, "change", sub.pk))

    assert response.status_code == 200
    shown = _readonly(response.content.decode(), "Recent executions")
    assert f'<a href="{EXECUTIONS}?subscription_id={sub.pk}">all executions</a>' in shown
    assert shown.count("<tr>") == 1 + min(trades, 20)  # the header and at most the last 20 rows
