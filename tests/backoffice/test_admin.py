"""The back office (Django admin) over real data made by the services."""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.urls import reverse

from copytrading.auth.models import AuthToken, LoginThrottle
from copytrading.candles import candle_record
from copytrading.exchanges.models import (
    ExchangeAccount,
    ExchangeDrift,
    ExchangeOrder,
    LeaderTradeCursor,
    LeaderTradePoll,
)
from copytrading.inbox import inbox_accept
from copytrading.live.models import LiveSettings, PortfolioHalt
from copytrading.models import (
    Account,
    AccountKind,
    ChunkStatus,
    Execution,
    Holding,
    IdempotentRequest,
    InboxMessage,
    Instrument,
    LeaderEvent,
    LeaderEventKind,
    LeaderEventStatus,
    Order,
    Outcome,
    Position,
    PriceCandle,
    PropagationChunk,
    StreamNotice,
    Transfer,
    TransferKey,
    TransferKind,
)
from copytrading.notifications.models import Notification, NotificationPreference
from copytrading.services import Mark, instruments_seed, user_register, wallet_deposit
from followers.models import Subscription
from followers.services import subscription_create
from portfolios.models import (
    CopyTemplate,
    Favorite,
    FollowerDailyStats,
    PasscodeThrottle,
    Portfolio,
    PortfolioMode,
    PortfolioScore,
    PortfolioStats,
)
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

PASSWORD = "s3cret-pass-word"
BACK_OFFICE_APPS = ("copytrading", "portfolios", "followers")
LEDGER_MODELS = [Account, Transfer, Execution, Order, LeaderEvent, PropagationChunk, Position, Holding]
# Pages whose rows are read-only in the admin: every model of the three apps.
READ_ONLY_MODELS = [
    *LEDGER_MODELS, Instrument, Portfolio, Subscription, InboxMessage, PasscodeThrottle, CopyTemplate,
    PortfolioStats, PortfolioScore, FollowerDailyStats, Favorite, AuthToken, LoginThrottle, IdempotentRequest,
    Notification, NotificationPreference, StreamNotice, PriceCandle, ExchangeAccount,
    ExchangeOrder, ExchangeDrift, LeaderTradePoll, LeaderTradeCursor,
    PortfolioHalt, TransferKey,
]  # fmt: skip
# Edited in the admin through their services (tests/live/test_admin.py).
EDITABLE_MODELS = [LiveSettings]

# A changelist costs a fixed number of queries (session, user, count, the page,
# filter choices) whatever the number of rows; 6-7 today, so one lazy relation
# per row would already break the bound at 5 rows.
CHANGELIST_MAX_QUERIES = 8


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # Dozens of users per test: the default PBKDF2 cost would dominate the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(username: str, deposit: str | None = None):
    user = user_register(username=username, password=PASSWORD)
    if deposit:
        wallet_deposit(user=user, amount=Decimal(deposit))
    return user


def _portfolio(name: str = "Momentum Alpha") -> Portfolio:
    leader = _user(f"leader-{name.lower().replace(' ', '-')}", deposit="50000")
    portfolio = portfolio_create(leader=leader, name=name, mode=PortfolioMode.ALL)
    portfolio_fund(portfolio=portfolio, amount=Decimal("20000"))
    return portfolio


def _follow(portfolio: Portfolio, username: str, multiplier: str = "0.5") -> Subscription:
    follower = _user(username, deposit="5000")
    return subscription_create(
        follower=follower, portfolio=portfolio, amount=Decimal("1000"), multiplier=Decimal(multiplier)
    )


def _leader_buys(portfolio: Portfolio, capture) -> list[LeaderEvent]:
    # Propagation is dispatched on commit; run those callbacks (eager Celery)
    # inside the test transaction.
    with capture(execute=True):
        return portfolio_order_place(
            portfolio=portfolio, symbol="BTC/USDT:USDT", side="buy", quantity=Decimal("0.1"), leverage=10
        )


@dataclass
class World:
    portfolio: Portfolio
    copied: Subscription
    skipped: Subscription
    open_event: LeaderEvent
    spot_event: LeaderEvent


@pytest.fixture
def world(db, django_capture_on_commit_callbacks) -> World:
    instruments_seed()
    portfolio = _portfolio()
    copied = _follow(portfolio, "follower-copied", multiplier="0.5")
    # 0.1 BTC * 0.001 is below the instrument's minimum quantity: a skip.
    skipped = _follow(portfolio, "follower-tiny", multiplier="0.001")
    [open_event] = _leader_buys(portfolio, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        [spot_event] = portfolio_order_place(
            portfolio=portfolio, symbol="BTC/USDT", side="buy", quantity=Decimal("0.01")
        )
    return World(portfolio, copied, skipped, open_event, spot_event)


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def _url(model, view: str, *args) -> str:
    # Quoted as the admin quotes a primary key in its links (a text key may hold ":").
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=[quote(a) for a in args])


def _sample(world: World, model) -> tuple[object, list[str]]:
    """One real row of ``model`` and text its pages must show."""
    copied, skipped, portfolio = world.copied, world.skipped, world.portfolio
    if model is Account:
        wallet = Account.objects.get(pk=copied.copy_account_id)
        return wallet, [wallet.name, "follower-copied", str(wallet.balance)]
    if model is Transfer:
        fund = Transfer.objects.get(kind=TransferKind.COPY_FUND, credit_id=copied.copy_account_id)
        return fund, [fund.idempotency_key, str(fund.amount)]
    if model is Instrument:
        instrument = Instrument.objects.get(symbol="ETH/BTC")
        return instrument, ["ETH/BTC", str(instrument.mark_price)]
    if model is PriceCandle:
        eth = Instrument.objects.get(symbol="ETH/USDT:USDT")
        candle_record(Mark(eth.pk, eth.symbol, Decimal("3211.5"), datetime.now(UTC)))
        return PriceCandle.objects.get(instrument=eth), ["ETH/USDT:USDT", "3211.5"]
    if model is Position:
        mirror = Position.objects.get(subscription_id=copied.pk)
        return mirror, [str(mirror.quantity), str(mirror.entry_price)]
    if model is Holding:
        holding = Holding.objects.get(account_id=portfolio.trading_account_id, asset="BTC")
        return holding, [str(holding.quantity)]
    if model is Order:
        order = Order.objects.get(subscription_id=copied.pk, leader_event=world.open_event)
        return order, [str(order.quantity), str(order.price)]
    if model is LeaderEvent:
        return world.open_event, [LeaderEventKind.POSITION_OPEN.label]
    if model is PropagationChunk:
        chunk = PropagationChunk.objects.get(event=world.open_event)
        return chunk, [str(world.open_event)]
    if model is Execution:
        execution = Execution.objects.get(event=world.open_event, subscription_id=skipped.pk)
        return execution, [execution.reason_code]
    if model is Portfolio:
        return portfolio, ["Momentum Alpha"]
    if model is Subscription:
        return copied, ["follower-copied", "Momentum Alpha", "multiplier=0.50000000"]
    if model is PasscodeThrottle:
        row = PasscodeThrottle.objects.create(scope="portfolio", subject_id=portfolio.pk, attempts=3)
        return row, ["Portfolio", str(portfolio.pk)]
    if model is CopyTemplate:
        template = CopyTemplate.objects.create(portfolio=portfolio, name="Steady", multiplier=Decimal("0.3"))
        return template, ["Steady", "0.30000000"]
    if model in (PortfolioStats, FollowerDailyStats):
        from portfolios.stats import stats_refresh

        stats_refresh(portfolio_ids=[portfolio.pk])
        if model is FollowerDailyStats:
            return FollowerDailyStats.objects.get(portfolio=portfolio), ["Momentum Alpha"]
        row = PortfolioStats.objects.get(portfolio=portfolio, line="all")
        return row, ["Momentum Alpha", str(row.trade_count)]
    if model is PortfolioScore:
        from django.utils import timezone

        score = PortfolioScore.objects.create(
            portfolio=portfolio, computed_at=timezone.now(), score=Decimal("0.612345"), win_rate=Decimal("0.5"),
            follower_health=Decimal("1"), profitability=Decimal("0.25"), consistency=Decimal("0"),
            activity=Decimal("1"), popularity=Decimal("1"),
        )  # fmt: skip
        return score, ["Momentum Alpha", "0.612345"]
    if model is Favorite:
        favorite = Favorite.objects.create(user=copied.follower, portfolio=portfolio)
        return favorite, ["follower-copied", "Momentum Alpha"]
    if model is InboxMessage:
        message, _ = inbox_accept(source="signal", external_id="sig-42", portfolio_id=portfolio.pk, payload={})
        return message, ["sig-42"]
    if model is AuthToken:
        from copytrading.auth.services import auth_token_create

        token, key = auth_token_create(user=copied.follower)
        return token, [key[:8], "follower-copied"]
    if model is LoginThrottle:
        row = LoginThrottle.objects.create(key="user:follower-copied", attempts=4, window_started_at=copied.created_at)
        return row, ["user:follower-copied"]
    if model is Notification:
        # subscribing told the follower so
        note = Notification.objects.get(user=copied.follower, kind="subscribed")
        return note, ["follower-copied", note.title]
    if model is NotificationPreference:
        from copytrading.notifications.services import notification_preferences_set

        notification_preferences_set(user=copied.follower, choices=[("copy_error", True, False)])
        return NotificationPreference.objects.get(user=copied.follower), ["follower-copied", "copy_error"]
    if model is IdempotentRequest:
        record = IdempotentRequest.objects.create(
            user=copied.follower, key="retry-7", fingerprint="0" * 64, status_code=201, body={"id": 1}
        )
        return record, ["retry-7"]
    if model is TransferKey:
        fund = Transfer.objects.get(kind=TransferKind.COPY_FUND, credit_id=copied.copy_account_id)
        return TransferKey.objects.get(idempotency_key=fund.idempotency_key), [fund.idempotency_key, str(fund.pk)]
    if model is StreamNotice:
        notice = StreamNotice.objects.create(payload={"type": "hub.changes", "users": [copied.follower_id]})
        return notice, ["hub.changes"]
    if model is ExchangeAccount:
        from tests.exchanges.test_admin import exchange_account_row

        return exchange_account_row(copied.follower), ["follower-copied", "abcd…wxyz", "main futures"]
    if model is ExchangeOrder:
        from django.utils import timezone

        from tests.exchanges.test_admin import exchange_account_row

        row = ExchangeOrder.objects.create(
            exchange_account=exchange_account_row(copied.follower), client_order_id="ct-77-88", symbol="BTC/USDT:USDT",
            side="buy", quantity=Decimal("0.5"), decided_at=timezone.now(), reject_code="EXCHANGE_REJECTED",
        )  # fmt: skip
        return row, ["ct-77-88", "BTC/USDT:USDT", "EXCHANGE_REJECTED"]
    if model is ExchangeDrift:
        from django.utils import timezone

        from tests.exchanges.test_admin import exchange_account_row

        now = timezone.now()
        row = ExchangeDrift.objects.create(
            account_id=copied.copy_account_id, exchange_account=exchange_account_row(copied.follower),
            code="CLOSED_ON_EXCHANGE", subject="ETH/USDT:USDT", symbol="ETH/USDT:USDT", subscription_id=copied.pk,
            detail="ETH/USDT:USDT: 1 in the service, none on the exchange", repair="closed_in_service",
            first_seen_at=now, last_seen_at=now,
        )  # fmt: skip
        return row, ["CLOSED_ON_EXCHANGE", "ETH/USDT:USDT", "closed_in_service"]
    if model in (LeaderTradePoll, LeaderTradeCursor):
        from django.utils import timezone

        poll = LeaderTradePoll.objects.create(account_id=portfolio.trading_account_id, bound_at=timezone.now())
        if model is LeaderTradePoll:
            return poll, [str(poll.account)]
        cursor = LeaderTradeCursor.objects.create(
            poll=poll, symbol="BTC/USDT:USDT", last_trade_ms=1, last_trade_id="9071"
        )
        return cursor, ["BTC/USDT:USDT", "9071"]
    if model is PortfolioHalt:
        from django.utils import timezone

        halt = PortfolioHalt.objects.create(portfolio_id=portfolio.pk, reason="outage drill", at=timezone.now())
        return halt, ["outage drill", f"#{portfolio.pk}"]
    raise AssertionError(f"no sample for {model.__name__}")


def test_every_model_of_the_back_office_apps_is_registered():
    registered = {m for m in admin.site._registry if m._meta.app_label in BACK_OFFICE_APPS}
    expected = {m for label in BACK_OFFICE_APPS for m in apps.get_app_config(label).get_models()}
    assert registered == expected
    assert registered == set(READ_ONLY_MODELS) | set(EDITABLE_MODELS)


def test_the_sample_data_covers_both_outcomes(world):
    # The pages below are only meaningful if the services produced these rows.
    copied = Execution.objects.get(event=world.open_event, subscription_id=world.copied.pk)
    skipped = Execution.objects.get(event=world.open_event, subscription_id=world.skipped.pk)
    assert (copied.outcome, copied.reason_code) == (Outcome.COPIED, "")
    assert (skipped.outcome, skipped.reason_code) == (Outcome.SKIPPED, "BELOW_MIN_QUANTITY")


@pytest.mark.parametrize("model", READ_ONLY_MODELS, ids=lambda m: m.__name__)
def test_staff_can_list_and_view_every_model(admin_client, world, model):
    obj, texts = _sample(world, model)

    response = admin_client.get(_changelist(model))
    assert response.status_code == 200
    assert obj.pk in [row.pk for row in response.context["cl"].result_list]
    page = response.content.decode()
    assert _url(model, "change", obj.pk) in page
    for text in texts:
        assert text in page, text

    response = admin_client.get(_url(model, "change", obj.pk))
    assert response.status_code == 200
    page = response.content.decode()
    for text in texts:
        assert text in page, text
    # View-only: the page offers no save or delete button.
    assert 'name="_save"' not in page
    assert _url(model, "delete", obj.pk) not in page


@pytest.mark.parametrize("model", READ_ONLY_MODELS, ids=lambda m: m.__name__)
def test_every_column_sorts(admin_client, world, model):
    # Computed columns declare their ordering (joined fields, F() expressions).
    obj, _ = _sample(world, model)
    columns = len(admin.site._registry[model].list_display)
    for column in range(1, columns + 1):
        for order in (str(column), f"-{column}"):
            response = admin_client.get(_changelist(model), {"o": order})
            assert response.status_code == 200, order
            assert obj.pk in [row.pk for row in response.context["cl"].result_list]


@pytest.mark.parametrize("model", READ_ONLY_MODELS, ids=lambda m: m.__name__)
def test_no_add_change_or_delete_even_for_a_superuser(admin_client, world, model):
    obj, _ = _sample(world, model)
    rows = model.objects.count()

    assert admin_client.get(_url(model, "add")).status_code == 403
    assert admin_client.post(_url(model, "add"), {}).status_code == 403
    assert admin_client.post(_url(model, "change", obj.pk), {}).status_code == 403
    assert admin_client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    bulk_delete = {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    admin_client.post(_changelist(model), bulk_delete)

    assert model.objects.count() == rows
    assert model.objects.filter(pk=obj.pk).exists()


def test_a_posted_balance_edit_changes_nothing(admin_client, world):
    wallet = Account.objects.get(pk=world.copied.copy_account_id)
    form = {"kind": AccountKind.COPY, "currency": wallet.currency, "balance": "999999", "locked": "0"}

    response = admin_client.post(_url(Account, "change", wallet.pk), form)

    assert response.status_code == 403
    refreshed = Account.objects.get(pk=wallet.pk)
    assert (refreshed.balance, refreshed.locked) == (wallet.balance, wallet.locked)


def test_a_non_staff_user_is_sent_to_the_login_page(client, world):
    client.force_login(world.copied.follower)
    for model in (Execution, Account, Portfolio, Subscription):
        response = client.get(_changelist(model))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_execution_log_filters_by_subscription_portfolio_and_reason_code(admin_client, world):
    response = admin_client.get(_changelist(Execution), {"subscription_id": world.skipped.pk})
    assert response.status_code == 200
    rows = response.context["cl"].result_list
    # The tiny follower skips both leader trades, each with its own reason.
    assert {(e.event_id, e.reason_code) for e in rows} == {
        (world.open_event.pk, "BELOW_MIN_QUANTITY"),
        (world.spot_event.pk, "BELOW_MIN_NOTIONAL"),
    }

    response = admin_client.get(_changelist(Execution), {"reason_code": "BELOW_MIN_QUANTITY"})
    assert {e.subscription_id for e in response.context["cl"].result_list} == {world.skipped.pk}

    response = admin_client.get(_changelist(Execution), {"portfolio_id": world.portfolio.pk})
    expected = set(Execution.objects.filter(portfolio_id=world.portfolio.pk).values_list("pk", flat=True))
    assert {e.pk for e in response.context["cl"].result_list} == expected
    assert len(expected) == 4  # two followers * (margin open + spot buy)


def test_portfolio_page_links_to_its_subscriptions_and_executions(admin_client, world):
    response = admin_client.get(_url(Portfolio, "change", world.portfolio.pk))
    page = response.content.decode()
    subscriptions = f"{_changelist(Subscription)}?portfolio__id__exact={world.portfolio.pk}"
    executions = f"{_changelist(Execution)}?portfolio_id={world.portfolio.pk}"
    assert subscriptions in page
    assert executions in page

    response = admin_client.get(subscriptions)
    assert {s.pk for s in response.context["cl"].result_list} == {world.copied.pk, world.skipped.pk}


def test_subscription_list_shows_the_copy_wallet(admin_client, world):
    wallet = Account.objects.get(pk=world.copied.copy_account_id)
    assert wallet.locked > 0  # the mirror holds margin

    response = admin_client.get(_changelist(Subscription))
    page = response.content.decode()
    assert str(wallet.balance) in page
    assert str(wallet.locked) in page
    assert _url(Portfolio, "change", world.portfolio.pk) in page


def _copied_portfolio(followers: int, capture) -> Portfolio:
    instruments_seed()
    portfolio = _portfolio(f"Crowd {followers}")
    for n in range(followers):
        _follow(portfolio, f"crowd-{followers}-{n}")
    _leader_buys(portfolio, capture)
    return portfolio


@pytest.mark.parametrize("rows", [5, 30])
def test_execution_changelist_queries_do_not_grow_with_rows(
    admin_client, django_capture_on_commit_callbacks, django_assert_max_num_queries, rows
):
    _copied_portfolio(rows, django_capture_on_commit_callbacks)
    assert Execution.objects.filter(outcome=Outcome.COPIED).count() == rows

    with django_assert_max_num_queries(CHANGELIST_MAX_QUERIES):
        response = admin_client.get(_changelist(Execution))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == rows


@pytest.mark.parametrize("rows", [5, 30])
def test_subscription_changelist_queries_do_not_grow_with_rows(
    admin_client, django_capture_on_commit_callbacks, django_assert_max_num_queries, rows
):
    _copied_portfolio(rows, django_capture_on_commit_callbacks)

    with django_assert_max_num_queries(CHANGELIST_MAX_QUERIES):
        response = admin_client.get(_changelist(Subscription))

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == rows
    assert "crowd-" in response.content.decode()


def test_replaying_a_completed_event_changes_nothing(admin_client, world, django_capture_on_commit_callbacks):
    event = world.open_event
    footprint = (Execution.objects.count(), Order.objects.count(), Transfer.objects.count())

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            _changelist(LeaderEvent), {"action": "replay", "_selected_action": [event.pk]}, follow=True
        )

    assert response.status_code == 200
    assert "1 event(s) replayed; 1 chunk(s) queued." in response.content.decode()
    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE
    assert (Execution.objects.count(), Order.objects.count(), Transfer.objects.count()) == footprint


def test_replaying_a_stuck_event_finishes_it_now(admin_client, world, django_capture_on_commit_callbacks):
    # A chunk whose message was lost: the reconciler would find it in 10 minutes.
    event = world.open_event
    PropagationChunk.objects.filter(event=event).update(status=ChunkStatus.PENDING)
    LeaderEvent.objects.filter(pk=event.pk).update(status=LeaderEventStatus.PROPAGATING, completed_at=None)
    footprint = (Execution.objects.count(), Order.objects.count(), Transfer.objects.count())

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(_changelist(LeaderEvent), {"action": "replay", "_selected_action": [event.pk]})

    assert LeaderEvent.objects.get(pk=event.pk).status == LeaderEventStatus.DONE
    assert not PropagationChunk.objects.filter(event=event, status=ChunkStatus.PENDING).exists()
    assert (Execution.objects.count(), Order.objects.count(), Transfer.objects.count()) == footprint
