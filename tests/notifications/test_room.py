"""The notifications room: one notify, each source once, preferences, the
REST endpoints (own rows only), e-mail exactly once and bounded, the
listener seam and the migration that moved the rows out of ``risk``."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from copytrading import decisions, live
from copytrading.models import Notification
from copytrading.notifications import services
from copytrading.notifications.kinds import KINDS
from copytrading.notifications.models import EmailStatus
from copytrading.notifications.services import Note, notify
from copytrading.propagation import ExecutionOutcome
from followers import notify_hooks
from tests.factories import UserFactory, token_for

pytestmark = pytest.mark.django_db


def _auth(api, user):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return api


# --- notify -------------------------------------------------------------------------


def test_the_same_source_twice_is_one_notification(django_capture_on_commit_callbacks):
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        first = notify([Note(user.pk, "copy_error", "exec:1:2", {"portfolio": "Alpha", "reason": "no margin"})])
        again = notify([Note(user.pk, "copy_error", "exec:1:2", {"portfolio": "Alpha", "reason": "no margin"})])
    assert len(first) == 1 and again == []
    note = Notification.objects.get(user=user)
    assert (note.kind, note.severity, note.title) == ("copy_error", "critical", "A trade could not be copied")
    assert note.body == "A trade of Alpha was not copied: no margin."
    assert len(mail.outbox) == 1  # critical: e-mailed, once


def test_every_kind_has_a_severity_and_renders_without_its_data():
    for code, kind in KINDS.items():
        assert kind.severity.value in ("low", "medium", "high", "critical")
        title, _ = kind.render({})
        assert title, code
    assert {c for c, k in KINDS.items() if k.email} == {
        "copy_error", "risk.daily_loss_realized", "risk.daily_loss_unrealized", "risk.margin_call",
        "risk.max_drawdown", "portfolio_closed", "exchange_drift", "copying_halted",
    }  # fmt: skip


def test_notify_is_set_based_and_free_when_empty():
    users = UserFactory.create_batch(30)
    with CaptureQueriesContext(connection) as nothing:
        assert notify([]) == []
    assert len(nothing.captured_queries) == 0
    with CaptureQueriesContext(connection) as few:
        notify([Note(u.pk, "subscribed", f"s:{u.pk}") for u in users[:3]])
    with CaptureQueriesContext(connection) as many:
        notify([Note(u.pk, "subscribed", f"t:{u.pk}") for u in users])
    # one read of preferences, one INSERT, whatever the count
    assert len(many.captured_queries) == len(few.captured_queries) == 2


def test_a_kind_turned_off_in_app_is_stored_hidden_and_still_deduplicated(api):
    user = UserFactory()
    services.notification_preferences_set(user=user, choices=[("subscribed", False, False)])
    notify([Note(user.pk, "subscribed", "subscribed:9")])
    notify([Note(user.pk, "subscribed", "subscribed:9")])
    assert Notification.objects.filter(user=user).count() == 1
    assert Notification.objects.get(user=user).hidden
    body = _auth(api, user).get("/api/v1/notifications").json()
    assert body["results"] == []
    assert api.get("/api/v1/notifications/unread-count").json() == {"unread": 0}


# --- the fan-out's copy results -----------------------------------------------------


class _Event:
    def __init__(self, pk, portfolio_id):
        self.pk, self.portfolio_id = pk, portfolio_id


def test_copy_results_notify_nothing_without_a_query_when_nothing_is_critical(settings):
    settings.NOTIFY_TRADE_COPIED = False
    live.current()  # the live settings: read once per process every few seconds, not per chunk
    outcomes = [ExecutionOutcome(i, decisions.COPIED, "") for i in range(500)] + [
        ExecutionOutcome(999, decisions.SKIPPED, decisions.NO_HOLDING_TO_SELL)
    ]
    with CaptureQueriesContext(connection) as queries:
        notify_hooks.notify_executions(_Event(1, 1), outcomes)
    assert queries.captured_queries == []


# --- REST ---------------------------------------------------------------------------


def _notes(user, count, *, kind="subscribed", prefix="n"):
    return notify([Note(user.pk, kind, f"{prefix}:{user.pk}:{i}", {"portfolio": f"P{i}"}) for i in range(count)])


def test_the_list_is_mine_newest_first_paged_and_filtered(api):
    me, other = UserFactory(), UserFactory()
    ids = _notes(me, 5)
    _notes(other, 3)
    _auth(api, me)
    first = api.get("/api/v1/notifications?limit=3").json()
    assert [r["id"] for r in first["results"]] == sorted(ids, reverse=True)[:3]
    second = api.get(f"/api/v1/notifications?limit=3&cursor={first['next_cursor']}").json()
    assert [r["id"] for r in second["results"]] == sorted(ids, reverse=True)[3:]
    assert second["next_cursor"] is None
    assert api.get("/api/v1/notifications/unread-count").json() == {"unread": 5}

    read = api.post(f"/api/v1/notifications/{ids[0]}/read")
    assert read.status_code == 200 and read.json()["read_at"] is not None
    again = api.post(f"/api/v1/notifications/{ids[0]}/read").json()
    assert again["read_at"] == read.json()["read_at"]  # marking again keeps the first time
    unread = api.get("/api/v1/notifications?unread=true").json()["results"]
    assert ids[0] not in [r["id"] for r in unread] and len(unread) == 4
    assert [r["id"] for r in api.get("/api/v1/notifications?unread=false").json()["results"]] == [ids[0]]
    bad = api.get("/api/v1/notifications?unread=yes")
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_CHOICE"


def test_another_users_notification_is_not_found(api):
    me, other = UserFactory(), UserFactory()
    (theirs,) = _notes(other, 1)
    _auth(api, me)
    response = api.post(f"/api/v1/notifications/{theirs}/read")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert Notification.objects.get(pk=theirs).read_at is None
    assert api.post("/api/v1/notifications/9223372036854775807/read").status_code == 404
    assert api.get("/api/v1/notifications").json()["results"] == []
    assert api.post("/api/v1/notifications/read-all").json() == {"marked": 0, "unread": 0}
    assert Notification.objects.get(pk=theirs).read_at is None


def test_read_all_is_idempotent(api):
    me, other = UserFactory(), UserFactory()
    _notes(me, 4)
    _notes(other, 2)
    _auth(api, me)
    assert api.post("/api/v1/notifications/read-all").json() == {"marked": 4, "unread": 0}
    assert api.post("/api/v1/notifications/read-all").json() == {"marked": 0, "unread": 0}
    assert Notification.objects.filter(user=other, read_at__isnull=True).count() == 2


def test_the_endpoints_need_a_login(api):
    assert api.get("/api/v1/notifications").status_code in (401, 403)
    assert api.post("/api/v1/notifications/read-all").status_code in (401, 403)


def test_preferences_defaults_changes_and_validation(api):
    me = UserFactory()
    _auth(api, me)
    prefs = {p["kind"]: p for p in api.get("/api/v1/notifications/preferences").json()["preferences"]}
    assert set(prefs) == set(KINDS)
    assert (prefs["copy_error"]["in_app"], prefs["copy_error"]["email"]) == (True, True)
    assert (prefs["subscribed"]["in_app"], prefs["subscribed"]["email"]) == (True, False)
    assert (prefs["copy_error"]["enabled"], prefs["trade_copied"]["enabled"]) == (True, False)  # off platform-wide

    body = {"preferences": [{"kind": "copy_error", "in_app": True, "email": False}]}
    changed = {
        p["kind"]: p for p in api.put("/api/v1/notifications/preferences", body, format="json").json()["preferences"]
    }
    assert changed["copy_error"]["email"] is False and changed["copy_error"]["default_email"] is True

    unknown = {
        "preferences": [
            {"kind": "copy_error", "in_app": True, "email": True},
            {"kind": "nope", "in_app": True, "email": True},
        ]
    }
    response = api.put("/api/v1/notifications/preferences", unknown, format="json")
    assert response.status_code == 400 and response.json()["code"] == "UNKNOWN_NOTIFICATION_KIND"
    # all or none: the valid first choice was not applied
    again = {p["kind"]: p for p in api.get("/api/v1/notifications/preferences").json()["preferences"]}
    assert again["copy_error"]["email"] is False

    twice = {
        "preferences": [
            {"kind": "subscribed", "in_app": False, "email": False},
            {"kind": "subscribed", "in_app": True, "email": True},
        ]
    }
    assert api.put("/api/v1/notifications/preferences", twice, format="json").status_code == 200
    assert {p["kind"]: p for p in api.get("/api/v1/notifications/preferences").json()["preferences"]}["subscribed"][
        "email"
    ] is True
    for wrong in [{"preferences": [{"kind": 5, "in_app": True, "email": True}]}, {"preferences": "x"}, {}]:
        assert api.put("/api/v1/notifications/preferences", wrong, format="json").status_code == 400


# --- e-mail -------------------------------------------------------------------------


def test_only_high_and_critical_are_emailed_by_default_and_preferences_count(django_capture_on_commit_callbacks):
    user, muted = UserFactory(), UserFactory()
    services.notification_preferences_set(user=muted, choices=[("portfolio_closed", True, False)])
    services.notification_preferences_set(user=user, choices=[("withdrawal_done", True, True)])
    with django_capture_on_commit_callbacks(execute=True):
        notify(
            [
                Note(user.pk, "subscribed", "a"),  # low: no
                Note(user.pk, "portfolio_closing", "b"),  # medium: no
                Note(muted.pk, "portfolio_closed", "c"),  # high, but turned off
            ]
        )
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        notify([Note(user.pk, "portfolio_closed", "d", {"portfolio": "Alpha"})])
    with django_capture_on_commit_callbacks(execute=True):
        notify([Note(user.pk, "withdrawal_done", "e", {"amount": "10"})])  # low, but turned on
    assert [m.subject for m in mail.outbox] == ["Portfolio closed", "Withdrawal done"]
    assert mail.outbox[0].to == [user.email]
    assert set(Notification.objects.values_list("dedup_key", "email_status")) == {
        ("a", "none"), ("b", "none"), ("c", "none"), ("d", "sent"), ("e", "sent"),
    }  # fmt: skip


def test_a_retried_or_duplicated_task_sends_once():
    user = UserFactory()
    ids = notify([Note(user.pk, "copy_error", "x")])  # no commit callbacks run: nothing dispatched yet
    assert services.notification_emails_send(notification_ids=ids).sent == 1
    assert services.notification_emails_send(notification_ids=ids).sent == 0
    assert len(mail.outbox) == 1
    assert Notification.objects.get(pk=ids[0]).emailed_at is not None


def test_a_failed_send_gives_the_rows_back_for_the_retry(monkeypatch):
    user = UserFactory()
    ids = notify([Note(user.pk, "copy_error", "x")])

    def down(self, messages):
        raise OSError("smtp down")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", down)
    with pytest.raises(OSError):
        services.notification_emails_send(notification_ids=ids)
    assert Notification.objects.get(pk=ids[0]).email_status == EmailStatus.PENDING
    monkeypatch.undo()
    assert services.notification_emails_send(notification_ids=ids).sent == 1
    assert len(mail.outbox) == 1


def test_one_event_reaching_many_followers_sends_each_at_most_one_email(django_capture_on_commit_callbacks, settings):
    """The 10,000-follower bound at 1,200: each follower gets two critical
    notes from the event; tasks are batched by recipient, one e-mail each."""
    users = UserFactory.create_batch(1200)
    notes = [Note(u.pk, "copy_error", f"exec:7:{u.pk}") for u in users]
    notes += [Note(u.pk, "portfolio_closed", f"closed:{u.pk}") for u in users]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notify(notes)
    tasks = [c for c in callbacks if c.__qualname__.startswith("dispatch_on_commit")]
    assert len(tasks) == 3  # ceil(1200 / 500) tasks, not one per notification
    for callback in callbacks:
        callback()
    assert len(mail.outbox) == 1200
    assert sorted(m.to[0] for m in mail.outbox) == sorted(u.email for u in users)
    assert {m.subject for m in mail.outbox} == {"2 new notifications"}
    assert not Notification.objects.exclude(email_status=EmailStatus.SENT).exists()


def test_the_sweeper_sends_what_was_never_dispatched_and_frees_dead_claims():
    user = UserFactory()
    lost, dead = notify([Note(user.pk, "copy_error", "lost"), Note(user.pk, "portfolio_closed", "dead")])
    old = timezone.now() - timedelta(minutes=20)
    Notification.objects.filter(pk=lost).update(created_at=old)
    Notification.objects.filter(pk=dead).update(created_at=old, email_status=EmailStatus.SENDING, email_claimed_at=old)
    assert services.notification_emails_sweep() == 2  # eager tasks: sent now
    assert len(mail.outbox) == 1 and mail.outbox[0].subject == "2 new notifications"
    assert services.notification_emails_sweep() == 0


def test_a_user_without_an_address_is_not_emailed():
    user = UserFactory(email="")
    ids = notify([Note(user.pk, "copy_error", "x")])
    assert services.notification_emails_send(notification_ids=ids).sent == 0
    assert mail.outbox == []
    assert Notification.objects.get(pk=ids[0]).email_status == EmailStatus.NONE


# --- the seam for the live stream ----------------------------------------------------


def test_listeners_get_the_new_visible_ids_per_user_after_the_commit(django_capture_on_commit_callbacks, monkeypatch):
    seen = []
    monkeypatch.setattr(services, "_listeners", [seen.append])
    a, b = UserFactory(), UserFactory()
    services.notification_preferences_set(user=b, choices=[("subscribed", False, False)])
    with django_capture_on_commit_callbacks(execute=True):
        ids = notify([Note(a.pk, "subscribed", "1"), Note(a.pk, "subscribed", "2"), Note(b.pk, "subscribed", "3")])
        assert seen == []  # not before the commit
    assert seen == [{a.pk: ids[:2]}]  # b's is hidden: nothing to push
    with django_capture_on_commit_callbacks(execute=True):
        notify([Note(a.pk, "subscribed", "1")])
    assert len(seen) == 1  # a replay pushes nothing


# --- the move out of risk ------------------------------------------------------------

BEFORE = [("risk", "0002_risk_event_spot_sale"), ("copytrading", "0011_execution_leader_fraction")]


@pytest.mark.django_db(transaction=True)
def test_the_move_keeps_every_existing_notification():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User = old.get_model("auth", "User")
    Old = old.get_model("risk", "Notification")
    user = User.objects.create(username="before-the-move")
    now = timezone.now()
    rows = [
        Old.objects.create(
            user=user, kind="risk.margin_call", severity="high", title="T1", body="B1", data={"x": 1}, created_at=now
        ),
        Old.objects.create(
            user=user, kind="portfolio_closed", severity="high", title="T2", body="", data={}, created_at=now,
            read_at=now,
        ),
    ]  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    moved = list(Notification.objects.filter(user_id=user.pk).order_by("pk"))
    assert [(n.pk, n.kind, n.title, n.data, n.read_at is not None) for n in moved] == [
        (rows[0].pk, "risk.margin_call", "T1", {"x": 1}, False),
        (rows[1].pk, "portfolio_closed", "T2", {}, True),
    ]
    assert {n.dedup_key for n in moved} == {f"legacy:{r.pk}" for r in rows}
    assert {n.email_status for n in moved} == {"none"}  # no backlog mailed on deploy
    # New rows get new ids after the copied ones.
    (new,) = notify([Note(user.pk, "subscribed", "after-the-move")])
    assert new > rows[1].pk


# --- the back office -----------------------------------------------------------------


def test_the_admin_filters_by_kind_severity_read_email_and_searches_usernames(admin_client):
    alice, bob = UserFactory(username="alice-n"), UserFactory(username="bob-n")
    (critical,) = notify([Note(alice.pk, "copy_error", "k1")])
    (low,) = notify([Note(alice.pk, "subscribed", "k2")])
    (bobs,) = notify([Note(bob.pk, "copy_error", "k3")])
    Notification.objects.filter(pk=low).update(read_at=timezone.now())
    url = "/admin/copytrading/notification/"

    def listed(query: str) -> set[int]:
        response = admin_client.get(url + query)
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    assert listed("?q=alice-n") == {critical, low}
    assert listed("?kind=copy_error") == {critical, bobs}
    assert listed("?severity=low") == {low}
    assert listed("?read=yes") == {low}
    assert listed("?read=no&q=alice") == {critical}
    assert listed("?email_status=pending") == {critical, bobs}


def test_a_failure_part_way_never_mails_the_earlier_recipients_again(monkeypatch):
    """Recipients are sent and marked one by one: the third recipient's
    failure gives back only the third and fourth; the retry mails those two."""
    import django.core.mail.backends.locmem as locmem

    users = UserFactory.create_batch(4)
    ids = notify([Note(u.pk, "copy_error", f"x:{u.pk}") for u in users])
    real = locmem.EmailBackend.send_messages

    def third_fails(self, messages):
        if len(mail.outbox) == 2:
            raise OSError("connection reset")
        return real(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", third_fails)
    with pytest.raises(OSError):
        services.notification_emails_send(notification_ids=ids)
    assert len(mail.outbox) == 2
    statuses = dict(Notification.objects.values_list("pk", "email_status"))
    assert [statuses[pk] for pk in ids] == ["sent", "sent", "pending", "pending"]

    monkeypatch.undo()
    assert services.notification_emails_send(notification_ids=ids).sent == 2
    assert sorted(m.to[0] for m in mail.outbox) == sorted(u.email for u in users)  # each once


def test_a_refused_address_ends_failed_and_a_failing_server_gives_up_after_the_attempts(monkeypatch):
    import smtplib

    import django.core.mail.backends.locmem as locmem

    refused, unlucky = UserFactory.create_batch(2)
    (refused_id,) = notify([Note(refused.pk, "copy_error", "refused")])
    (unlucky_id,) = notify([Note(unlucky.pk, "copy_error", "unlucky")])

    def refuse(self, messages):
        raise smtplib.SMTPRecipientsRefused({messages[0].to[0]: (550, b"no such user")})

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", refuse)
    assert services.notification_emails_send(notification_ids=[refused_id]).sent == 0  # permanent: no retry
    assert Notification.objects.get(pk=refused_id).email_status == EmailStatus.FAILED

    def down(self, messages):
        raise OSError("smtp down")

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", down)
    for attempt in range(1, services.MAX_EMAIL_ATTEMPTS + 1):
        with pytest.raises(OSError):
            services.notification_emails_send(notification_ids=[unlucky_id])
        row = Notification.objects.get(pk=unlucky_id)
        assert row.email_attempts == attempt
    assert row.email_status == EmailStatus.FAILED
    assert services.notification_emails_sweep() == 0  # given up: the sweeper does not resurrect it


def test_a_claim_the_sweeper_took_back_is_not_sent_by_its_old_sender(monkeypatch):
    """A sender renews its claim before each e-mail; one whose claim was given
    back (it looked dead) skips those rows instead of sending them twice."""
    import django.core.mail.backends.locmem as locmem

    first, second = UserFactory.create_batch(2)
    ids = notify([Note(first.pk, "copy_error", "a"), Note(second.pk, "copy_error", "b")])
    real = locmem.EmailBackend.send_messages

    def slow_then_swept(self, messages):
        sent = real(self, messages)
        # While the first e-mail goes, the sweeper takes the second row back.
        Notification.objects.filter(pk=ids[1]).update(email_status=EmailStatus.PENDING, email_claimed_at=None)
        return sent

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", slow_then_swept)
    assert services.notification_emails_send(notification_ids=ids).sent == 1
    assert [m.to[0] for m in mail.outbox] == [first.email]
    assert Notification.objects.get(pk=ids[1]).email_status == EmailStatus.PENDING  # for the other sender


def test_the_sweeper_hands_a_row_over_once_not_every_minute(settings):
    """With the queue backed up (tasks not run), a pending row is handed to a
    task once, then left alone for STUCK_SENDING."""
    from copytrading.notifications import tasks

    sent = []
    user = UserFactory()
    (pk,) = notify([Note(user.pk, "copy_error", "queued")])
    Notification.objects.filter(pk=pk).update(created_at=timezone.now() - timedelta(minutes=5))
    original = tasks.send_notification_emails.delay
    tasks.send_notification_emails.delay = lambda ids: sent.append(ids)
    try:
        assert services.notification_emails_sweep() == 1
        assert services.notification_emails_sweep() == 0
        Notification.objects.filter(pk=pk).update(email_claimed_at=timezone.now() - timedelta(minutes=11))
        assert services.notification_emails_sweep() == 1
    finally:
        tasks.send_notification_emails.delay = original
    assert sent == [[pk], [pk]]


def test_a_failing_execution_listener_never_stops_the_copies(settings, instruments, monkeypatch):
    """Notifications are bookkeeping about copies: a listener that raises is
    rolled back to its savepoint and logged; every follower is still copied."""
    from backoffice.loadgen import followers_seed_bulk
    from copytrading import propagation
    from copytrading.models import Execution, Instrument
    from copytrading.services import price_set, wallet_deposit
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

    def broken(event, outcomes):
        Notification.objects.create(user_id=UserFactory().pk, kind="nope", severity="low", title="t")
        raise RuntimeError("a listener bug")

    monkeypatch.setattr(propagation, "_execution_listeners", [broken])
    leader = UserFactory()
    wallet_deposit(user=leader, amount=Decimal("21000"))
    portfolio = portfolio_create(leader=leader, name="listener", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=Decimal("20000"))
    subs = followers_seed_bulk(portfolio=portfolio, count=5)
    price_set(instrument=Instrument.objects.get(symbol="ETH/USDT:USDT"), price=Decimal("3200"))
    (event,) = portfolio_order_place(
        portfolio=portfolio, symbol="ETH/USDT:USDT", side="buy", quantity=Decimal("1"), leverage=10
    )
    for chunk_id in propagation.event_start(event.pk):
        propagation.chunk_propagate(chunk_id)
    assert sorted(
        Execution.objects.filter(event=event, outcome="COPIED").values_list("subscription_id", flat=True)
    ) == sorted(subs)
    assert not Notification.objects.filter(kind="nope").exists()  # the listener's own write rolled back


def test_a_listener_that_never_queries_runs_without_a_savepoint_and_its_failure_is_still_contained(
    settings, instruments, monkeypatch
):
    """``register_execution_listener(…, queries=False)`` skips the
    SAVEPOINT/RELEASE pair (two round trips per chunk); one that raises is
    still logged and the copies go on."""
    from backoffice.loadgen import followers_seed_bulk
    from copytrading import propagation
    from copytrading.models import Execution, Instrument
    from copytrading.services import price_set, wallet_deposit
    from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place

    seen = []

    def tally(event, outcomes):
        seen.append(len(outcomes))
        raise RuntimeError("a metrics bug")

    monkeypatch.setattr(propagation, "_execution_listeners", [])
    monkeypatch.setattr(propagation, "_listeners_without_queries", set())
    propagation.register_execution_listener(tally, queries=False)
    leader = UserFactory()
    wallet_deposit(user=leader, amount=Decimal("21000"))
    portfolio = portfolio_create(leader=leader, name="no-savepoint", mode="margin")
    portfolio_fund(portfolio=portfolio, amount=Decimal("20000"))
    subs = followers_seed_bulk(portfolio=portfolio, count=4)
    price_set(instrument=Instrument.objects.get(symbol="ETH/USDT:USDT"), price=Decimal("3200"))
    (event,) = portfolio_order_place(
        portfolio=portfolio, symbol="ETH/USDT:USDT", side="buy", quantity=Decimal("1"), leverage=10
    )
    for chunk_id in propagation.event_start(event.pk):
        propagation.chunk_propagate(chunk_id)
    assert seen == [4]
    assert sorted(
        Execution.objects.filter(event=event, outcome="COPIED").values_list("subscription_id", flat=True)
    ) == sorted(subs)
    # Told directly: no statement at all for it, a savepoint pair for a listener that may query.
    outcomes = [ExecutionOutcome(subs[0], decisions.COPIED, "")]
    with CaptureQueriesContext(connection) as ctx:
        propagation.tell_execution_listeners(event, outcomes)
    assert ctx.captured_queries == [] and seen == [4, 1]
    propagation.register_execution_listener(lambda event, outcomes: None)
    with CaptureQueriesContext(connection) as ctx:
        propagation.tell_execution_listeners(event, outcomes)
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["SAVEPOINT", "RELEASE"]
