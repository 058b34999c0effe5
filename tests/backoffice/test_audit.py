"""The audit trail (issue #16 §1): every staff action and every user change
to money-relevant objects leaves an entry with the actor, the verb, before
and after and the reason; secrets masked; immutable; one filterable list and
a history per object in the admin."""

from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from backoffice.joberrors import job_error_record
from backoffice.models import JobError
from copytrading.audit import actor_name, record
from copytrading.audit.registry import AUDITED
from copytrading.auth.models import AuthToken, LoginThrottle
from copytrading.auth.services import auth_token_create
from copytrading.exchanges.models import ExchangeAccount
from copytrading.models import LeaderEvent
from copytrading.services import instruments_seed, user_register, wallet_deposit
from fees.models import AccrualStatus, FeeAccrual, FeeGroup
from followers.models import Subscription, SubscriptionStatus
from followers.services import subscription_create, subscription_pause
from portfolios.models import Portfolio, PortfolioStatus
from portfolios.services import portfolio_create, portfolio_fund, portfolio_order_place
from tests.exchange_double.fixtures import API_KEY, API_SECRET, exchange_double, exchange_settings  # noqa: F401
from tests.factories import StaffFactory, UserFactory, token_for
from tests.fees.conftest import fee_world as fee_world
from tests.fees.test_admin_and_tasks import stuck as stuck

pytestmark = pytest.mark.django_db
D = Decimal
PASSWORD = "s3cret-pass-word"
LOG = reverse("admin:auditlog_logentry_changelist")


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def ops1(client):
    """A staff member who runs the back office (the browser journey's "ops1")."""
    staff = StaffFactory(username="ops1", is_superuser=True)
    client.force_login(staff)
    return staff


@pytest.fixture
def leader(db):
    user = user_register(username="leader-la", password=PASSWORD)
    wallet_deposit(user=user, amount=D("50000"))
    return user


@pytest.fixture
def portfolio(leader) -> Portfolio:
    instruments_seed()
    portfolio = portfolio_create(leader=leader, name="Momentum Alpha", mode="all")
    portfolio_fund(portfolio=portfolio, amount=D("20000"))
    return portfolio


@pytest.fixture
def follower(db):
    user = user_register(username="follower-fx", password=PASSWORD)
    wallet_deposit(user=user, amount=D("5000"))
    return user


@pytest.fixture
def subscription(portfolio, follower) -> Subscription:
    return subscription_create(follower=follower, portfolio=portfolio, amount=D("1000"), multiplier=D("0.5"))


def api_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def entries(obj, verb: str | None = None) -> list[LogEntry]:
    found = list(LogEntry.objects.get_for_object(obj).select_related("actor").order_by("pk"))
    if verb is not None:
        found = [e for e in found if (e.additional_data or {}).get("action") == verb]
    return found


def only(obj, verb: str) -> LogEntry:
    [entry] = entries(obj, verb)
    return entry


def admin_action(client, model, action: str, pks: list, **extra):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return client.post(url, {"action": action, "_selected_action": pks, **extra}, follow=True)


def all_log_text() -> str:
    rows = LogEntry.objects.values_list("changes", "changes_text", "object_repr", "additional_data", "serialized_data")
    return " ".join(str(row) for row in rows)


# --- the registry ---------------------------------------------------------------------


def test_every_listed_model_and_field_exists_and_is_registered():
    for label, options in AUDITED.items():
        model = apps.get_model(label)
        assert auditlog.contains(model), label
        names = {f.name for f in model._meta.get_fields()}
        for key in ("fields", "exclude", "mask", "m2m"):
            missing = set(options.get(key, [])) - names
            assert not missing, (label, key, missing)


def test_giving_a_user_a_group_or_a_permission_and_a_group_a_permission_is_recorded(client, ops1):
    """Staff rights are money-relevant: who made whom staff, and with what."""
    from django.contrib.auth.models import Group, Permission

    user = StaffFactory(username="newcomer")
    support = Group.objects.create(name="support")
    pause = Permission.objects.get(codename="change_subscription")
    page = client.post(
        reverse("admin:auth_group_change", args=[support.pk]), {"name": "support", "permissions": [pause.pk]}
    )
    assert page.status_code == 302, page.content
    user.groups.add(support)
    user.user_permissions.add(pause)

    [group_change] = [e for e in entries(support) if e.action == LogEntry.Action.UPDATE]
    assert group_change.actor == ops1 and "permissions" in group_change.changes_dict
    changed = {field for e in entries(user) for field in (e.changes_dict or {})}
    assert {"groups", "user_permissions"} <= changed


# --- staff actions in the admin --------------------------------------------------------


def test_pause_by_staff_is_in_the_log_and_on_the_subscriptions_history(client, ops1, subscription):
    """The browser journey's contract: ops1 pauses a copy; the list and the
    subscription's history both show ops1, "pause" and the subscription."""
    response = admin_action(client, Subscription, "pause_selected", [subscription.pk])
    assert response.status_code == 200
    entry = only(subscription, "pause")
    assert (entry.actor, actor_name(entry)) == (ops1, "ops1")
    assert entry.changes_dict["status"] == ["active", "paused"]
    assert entry.additional_data["reason"] == "staff"

    page = client.get(LOG).content.decode()
    row = next(line for line in page.split("<tr") if "ops1" in line and ">pause<" in line)
    assert str(subscription) in row
    assert "status: active → paused" in row
    assert "reason: staff" in row

    history = client.get(reverse("admin:followers_subscription_history", args=[subscription.pk]))
    assert history.status_code == 200
    text = history.content.decode()
    assert "ops1" in text and "pause" in text and str(subscription) in text
    # The change page's History button leads there.
    change = client.get(reverse("admin:followers_subscription_change", args=[subscription.pk])).content.decode()
    assert reverse("admin:followers_subscription_history", args=[subscription.pk]) in change


def test_resume_and_unfollow_by_staff(client, ops1, subscription):
    subscription_pause(subscription=subscription)  # the follower, outside any request: the system
    admin_action(client, Subscription, "resume_selected", [subscription.pk])
    admin_action(client, Subscription, "unfollow_selected", [subscription.pk])
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.ENDED
    assert actor_name(only(subscription, "pause")) == "system"
    resume = only(subscription, "resume")
    assert resume.actor == ops1 and resume.changes_dict["status"] == ["paused", "active"]
    unfollow = only(subscription, "unfollow")
    assert unfollow.actor == ops1
    assert unfollow.changes_dict["status"] == ["active", "ended"]
    assert unfollow.additional_data["reason"] == "ended by staff (ops1)"


def test_force_close_records_the_staff_member_and_the_reason(client, ops1, portfolio):
    url = reverse("admin:portfolios_portfolio_changelist")
    client.post(url, {"action": "force_close", "_selected_action": [portfolio.pk], "apply": "1", "reason": "fraud"})
    portfolio.refresh_from_db()
    assert portfolio.status == PortfolioStatus.CLOSING
    entry = only(portfolio, "force_close")
    assert entry.actor == ops1
    assert entry.additional_data["reason"] == "fraud"
    assert entry.changes_dict["status"] == ["active", "closing"]


def test_replay_revoke_unlock_and_acknowledge(client, ops1, portfolio, subscription, follower):
    with transaction.atomic():
        [event] = portfolio_order_place(portfolio=portfolio, symbol="BTC/USDT:USDT", side="buy", quantity=D("0.1"))
    admin_action(client, LeaderEvent, "replay", [event.pk])
    assert only(event, "replay").actor == ops1

    token, _ = auth_token_create(user=follower)
    admin_action(client, AuthToken, "revoke", [token.pk])
    token.refresh_from_db()
    revoke = only(token, "revoke")
    assert revoke.actor == ops1 and revoke.changes_dict["revoked_at"][0] is None
    # Revoking again changes nothing and records nothing.
    admin_action(client, AuthToken, "revoke", [token.pk])
    assert len(entries(token, "revoke")) == 1

    locked = LoginThrottle.objects.create(
        key="user:follower-fx", attempts=9, window_started_at=timezone.now(), locked_until=timezone.now()
    )
    admin_action(client, LoginThrottle, "unlock", [locked.pk])
    assert not LoginThrottle.objects.exists()
    unlock = only(locked, "unlock")
    assert unlock.actor == ops1 and unlock.changes_dict["attempts"] == ["9", None]
    assert unlock.object_repr == str(locked)

    job_error_record(task="fees.settle", exc=RuntimeError("disk full"), arguments="", severity="high")
    error = JobError.objects.get()
    admin_action(client, JobError, "acknowledge", [error.pk])
    admin_action(client, JobError, "acknowledge", [error.pk])  # already acknowledged: nothing new
    assert only(error, "acknowledge").actor == ops1


def test_resolving_a_stuck_fee_is_recorded(client, ops1, stuck):
    admin_action(client, FeeAccrual, "resolve_stuck", [stuck.pk])
    entry = only(stuck, "resolve")
    assert entry.actor == ops1
    assert entry.changes_dict["status"] == [AccrualStatus.FAILED, AccrualStatus.SETTLED]


def test_admin_edits_of_fee_groups_are_recorded_with_before_and_after(client, ops1):
    group = FeeGroup.objects.create(name="vip", max_profit_share_pct=D("30"), platform_cut_pct=D("10"))
    url = reverse("admin:fees_feegroup_change", args=[group.pk])
    response = client.post(url, {"name": "vip", "max_profit_share_pct": "25", "platform_cut_pct": "10"})
    assert response.status_code == 302, response.content
    [create, update] = entries(group)
    # Made by this test's code, outside any request: the system.
    assert actor_name(create) == "system" and create.action == LogEntry.Action.CREATE
    assert update.actor == ops1
    assert update.changes_dict == {"max_profit_share_pct": ["30.00", "25"]}
    history = client.get(reverse("admin:fees_feegroup_history", args=[group.pk])).content.decode()
    assert "ops1" in history and "max_profit_share_pct" in history


def test_unlinking_an_exchange_account_in_the_admin(client, ops1, follower):
    from tests.exchanges.test_admin import exchange_account_row

    account = exchange_account_row(follower)
    admin_action(client, ExchangeAccount, "unlink", [account.pk])
    [delete] = [e for e in entries(account) if e.action == LogEntry.Action.DELETE]
    assert delete.actor == ops1
    assert API_KEY not in all_log_text()


# --- user changes through the API (the token's user is the actor) ---------------------


def test_subscription_settings_and_lifecycle_through_the_api(subscription, follower):
    api = api_for(follower)
    url = f"/api/v1/subscriptions/{subscription.pk}"
    create = entries(subscription)[0]
    assert create.action == LogEntry.Action.CREATE
    # Related rows by name (AUDITLOG_USE_FK_STRING_REPRESENTATION).
    assert create.changes_dict["follower"] == [None, "follower-fx"]
    assert create.changes_dict["portfolio"] == [None, "Momentum Alpha"]
    answer = api.patch(f"{url}/settings", {"multiplier": "0.75", "daily_loss_limit_realized": "100"}, format="json")
    assert answer.status_code == 200, answer.content
    update = next(e for e in entries(subscription) if e.action == LogEntry.Action.UPDATE)
    assert update.actor == follower
    assert update.changes_dict["multiplier"] == ["0.50000000", "0.75000000"]
    from risk.models import RiskLimits

    limits = RiskLimits.objects.get(pk=subscription.pk)
    assert [e.actor for e in entries(limits)] and all(e.actor == follower for e in entries(limits))

    assert api.post(f"{url}/pause").status_code == 200
    assert api.post(f"{url}/resume").status_code == 200
    assert api.post(f"{url}/unfollow").status_code == 200
    for verb in ("pause", "resume", "unfollow"):
        assert only(subscription, verb).actor == follower, verb
    assert only(subscription, "pause").additional_data["reason"] == "manual"


def test_portfolio_settings_fee_model_and_webhook_secret_through_the_api(portfolio, leader):
    api = api_for(leader)
    url = f"/api/v1/portfolios/{portfolio.pk}"
    assert api.patch(url, {"min_investment": "250", "name": "Momentum Beta"}, format="json").status_code == 200
    [update] = [
        e for e in entries(portfolio) if e.action == LogEntry.Action.UPDATE and "action" not in e.additional_data
    ]
    assert update.actor == leader
    assert update.changes_dict["name"] == ["Momentum Alpha", "Momentum Beta"]
    assert update.changes_dict["min_investment"] == ["0E-8", "250.00000000"]

    answer = api.put(f"{url}/fee-model", {"fee_model": "high_water_mark"}, format="json")
    assert answer.status_code == 200, answer.content
    fee = [e for e in entries(portfolio) if e.action == LogEntry.Action.UPDATE and "fee_model" in e.changes_dict]
    assert [(e.actor, e.changes_dict["fee_model"]) for e in fee] == [(leader, ["per_trade", "high_water_mark"])]

    first = api.post(f"{url}/webhook-secret").json()["secret"]
    second = api.post(f"{url}/webhook-secret").json()["secret"]
    rotations = entries(portfolio, "rotate_webhook_secret")
    assert [e.actor for e in rotations] == [leader, leader]
    assert rotations[0].changes_dict["webhook_secret"] == ["[none]", "[hidden]"]
    assert rotations[1].changes_dict["webhook_secret"] == ["[hidden]", "[hidden]"]
    text = all_log_text()
    assert first not in text and second not in text


def test_a_private_portfolios_passcode_is_masked(portfolio, leader):
    api = api_for(leader)
    answer = api.patch(
        f"/api/v1/portfolios/{portfolio.pk}", {"is_public": False, "passcode": "40417788"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    [update] = [
        e for e in entries(portfolio) if e.action == LogEntry.Action.UPDATE and "passcode_hash" in e.changes_dict
    ]
    assert update.changes_dict["passcode_hash"] == ["[none]", "[hidden]"]
    portfolio.refresh_from_db()
    assert portfolio.passcode_hash not in all_log_text()


def test_exchange_accounts_link_validate_delete_through_the_api(exchange_settings, follower):  # noqa: F811
    api = api_for(follower)
    body = {"exchange": "binanceusdm", "label": "main futures", "api_key": API_KEY, "secret": API_SECRET}
    answer = api.post("/api/v1/exchange-accounts", body, format="json")
    assert answer.status_code == 201, answer.content
    account = ExchangeAccount.objects.get(pk=answer.json()["id"])
    [create] = entries(account)
    assert create.actor == follower and create.action == LogEntry.Action.CREATE
    assert create.changes_dict["api_key_encrypted"] == ["[none]", "[hidden]"]
    assert create.changes_dict["label"][1] == "main futures"

    assert api.post(f"/api/v1/exchange-accounts/{account.pk}/validate").status_code == 200
    assert only(account, "validate").actor == follower

    assert api.delete(f"/api/v1/exchange-accounts/{account.pk}").status_code == 204
    [delete] = [e for e in entries(account) if e.action == LogEntry.Action.DELETE]
    assert delete.actor == follower
    text = all_log_text()
    assert API_KEY not in text and API_SECRET not in text
    assert account.api_key_encrypted not in text


def test_binding_a_portfolio_to_an_exchange_account_through_the_api(exchange_settings, leader):  # noqa: F811
    from copytrading.exchanges.instruments import instruments_sync, markets_load
    from tests.portfolios.test_exchange_leader import linked_account

    markets, mode = markets_load("binanceusdm")
    instruments_sync(exchange_id="binanceusdm", markets=markets, precision_mode=mode)
    portfolio = portfolio_create(leader=leader, name="on binance", mode="margin")
    linked = linked_account(leader)
    api = api_for(leader)
    url = f"/api/v1/portfolios/{portfolio.pk}/exchange-account"
    assert api.post(url, {"exchange_account_id": linked.pk}, format="json").status_code == 200
    assert api.delete(url).status_code == 200
    bind, unbind = only(portfolio, "exchange_bind"), only(portfolio, "exchange_unbind")
    assert (bind.actor, unbind.actor) == (leader, leader)
    assert bind.changes_dict["exchange_account"] == [None, str(linked.pk)]
    assert unbind.changes_dict["exchange_account"] == [str(linked.pk), None]


# --- the log itself -------------------------------------------------------------------


def test_a_rolled_back_change_leaves_no_entry(subscription):
    with pytest.raises(RuntimeError), transaction.atomic():
        subscription_pause(subscription=subscription)
        assert entries(subscription, "pause")
        raise RuntimeError("the rest of the change failed")
    assert entries(subscription, "pause") == []
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.ACTIVE


def test_jobs_and_commands_are_the_system(subscription):
    entry = record(action="pause", target=subscription, changes={"status": ("active", "paused")})
    assert entry.actor is None and actor_name(entry) == "system"


def test_the_list_filters_searches_and_is_read_only(client, ops1, subscription, portfolio):
    admin_action(client, Subscription, "pause_selected", [subscription.pk])
    record(action="close", target=portfolio, reason="by the system")

    def listed(**params) -> list[LogEntry]:
        response = client.get(LOG, params)
        assert response.status_code == 200, params
        return list(response.context["cl"].result_list)

    pause = only(subscription, "pause")
    everything = listed()
    assert pause in everything and len(everything) >= 3
    assert listed(actor="ops1") == [pause]
    assert all(actor_name(e) == "system" for e in listed(actor="system"))
    assert listed(verb="pause") == [pause]
    content_type = ContentType.objects.get_for_model(Portfolio)
    assert {e.content_type_id for e in listed(resource_type=content_type.pk)} == {content_type.pk}
    assert pause in listed(q="ops1")
    assert pause in listed(q=str(subscription))
    day = timezone.now()
    assert pause in listed(**{"timestamp__year": day.year, "timestamp__month": day.month, "timestamp__day": day.day})

    detail = reverse("admin:auditlog_logentry_change", args=[pause.pk])
    page = client.get(detail)
    assert page.status_code == 200 and b"ops1" in page.content
    assert client.post(detail, {"changes_text": "nothing happened"}).status_code == 403
    assert client.post(reverse("admin:auditlog_logentry_delete", args=[pause.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:auditlog_logentry_add")).status_code == 403
    pause.refresh_from_db()
    assert pause.changes_text == "pause: staff"


def test_every_audited_models_history_page_opens(client, ops1, subscription, portfolio):
    group = FeeGroup.objects.create(name="pro", max_profit_share_pct=D("30"), platform_cut_pct=D("10"))
    for obj in (subscription, portfolio, group, ops1):
        opts = obj._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[obj.pk])
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"audit-history" in response.content or b"No audit entries" in response.content


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the immutability trigger is PostgreSQL's")
def test_the_database_refuses_to_change_or_delete_an_entry(subscription):
    entry = record(action="pause", target=subscription, reason="x")
    for statement in (
        "UPDATE auditlog_logentry SET changes_text = 'forged' WHERE id = %s",
        "UPDATE auditlog_logentry SET actor_id = NULL, changes_text = 'forged' WHERE id = %s",
        "DELETE FROM auditlog_logentry WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="immutable"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [entry.pk])
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        LogEntry.objects.filter(pk=entry.pk).delete()
    entry.refresh_from_db()
    assert entry.changes_text == "pause: x"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the immutability trigger is PostgreSQL's")
def test_deleting_a_staff_user_keeps_their_name_on_their_entries(client, subscription):
    gone = UserFactory(username="ops-gone", is_staff=True)
    entry = record(actor=gone, action="pause", target=subscription, reason="x")
    gone.delete()  # the actor link goes (SET NULL, the one update the trigger allows)
    entry.refresh_from_db()
    assert entry.actor_id is None
    assert actor_name(entry) == "ops-gone"


def test_the_recorded_address_is_not_what_the_client_claims(subscription, follower, settings):
    """X-Forwarded-For is believed only from a trusted proxy (as for the
    login throttle): a client cannot write someone else's address into the
    audit trail."""
    settings.TRUSTED_PROXIES = []
    api = api_for(follower)
    url = f"/api/v1/subscriptions/{subscription.pk}/pause"
    assert api.post(url, HTTP_X_FORWARDED_FOR="203.0.113.9", REMOTE_ADDR="198.51.100.7").status_code == 200
    assert only(subscription, "pause").remote_addr == "198.51.100.7"
