"""Meeting an outage in-process (both modes): a failed post-commit dispatch
never turns a committed change into an error, outage errors are 503 JSON with
Retry-After everywhere under /api/ and /graphql/, and a cache error reads the
database. tests/outages/ does the same against real stopped and frozen servers."""

import asyncio
from datetime import timedelta

import kombu.exceptions
import pytest
import redis.exceptions
from django.db import OperationalError

from copytrading import outages
from copytrading.models import LeaderEvent, LeaderEventStatus
from portfolios.models import Portfolio
from tests.acceptance.test_signal_webhook import BTC_PERP, Desk, post_signal, signal
from tests.factories import UserFactory


@pytest.fixture
def broker_down(monkeypatch):
    """Every publish fails the way kombu fails with the broker stopped."""
    from copytrading.tasks import propagate_event
    from portfolios.lifecycle_tasks import wind_down_portfolio

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(propagate_event, "delay", refuse)
    monkeypatch.setattr(wind_down_portfolio, "delay", refuse)
    return calls


@pytest.mark.django_db(transaction=True)
def test_order_signal_and_close_answer_success_when_the_dispatch_fails(instruments, broker_down):
    desk = Desk()
    before = outages.dispatch_failures.value
    r = desk.leader.post(
        f"/api/v1/portfolios/{desk.portfolio_id}/orders",
        {"symbol": BTC_PERP, "side": "buy", "quantity": "0.1", "leverage": 10},
        format="json",
    )
    assert r.status_code == 201, r.content
    secret = desk.rotate()
    r = post_signal(desk.portfolio_id, secret, signal("outage-1"))
    assert r.status_code == 201, r.content
    # Committed, not dispatched: the outbox relay finds them pending.
    events = LeaderEvent.objects.filter(portfolio_id=desk.portfolio_id)
    assert events.count() == 2
    assert set(events.values_list("status", flat=True)) == {LeaderEventStatus.PENDING}
    assert outages.dispatch_failures.value == before + 2

    r = desk.leader.post(f"/api/v1/portfolios/{desk.portfolio_id}/close", {}, format="json")
    assert r.status_code == 202, r.content
    assert Portfolio.objects.get(pk=desk.portfolio_id).status == "closing"
    assert outages.dispatch_failures.value == before + 3


@pytest.mark.django_db(transaction=True)
def test_after_a_failed_dispatch_the_next_ones_wait_for_the_relay(instruments, broker_down):
    """A TP/SL batch records one event per position: with the broker frozen,
    each publish would cost ~1 s, past the request's deadline. After the first
    failure the rest are left to the outbox relay at once."""
    desk = Desk()
    url = f"/api/v1/portfolios/{desk.portfolio_id}"
    for symbol in (BTC_PERP, "ETH/USDT:USDT", "SOL/USDT:USDT"):
        order = {"symbol": symbol, "side": "buy", "quantity": "0.1", "leverage": 10}
        assert desk.leader.post(f"{url}/orders", order, format="json").status_code == 201
    assert len(broker_down) == 1  # the first publish failed; the next two were not tried
    positions = desk.leader.get(f"{url}/positions").json()["results"]
    items = [{"position": p["id"], "stop_loss": "1.00000000"} for p in positions]
    before = outages.dispatch_failures.value
    r = desk.leader.post(f"{url}/positions/tpsl", {"items": items}, format="json")
    assert r.status_code == 200, r.content
    assert len(broker_down) == 1
    assert outages.dispatch_failures.value == before + 3
    pending = LeaderEvent.objects.filter(portfolio_id=desk.portfolio_id, status=LeaderEventStatus.PENDING)
    assert pending.count() == 6


@pytest.mark.django_db(transaction=True)
def test_the_outbox_relay_delivers_what_a_failed_dispatch_left(instruments, broker_down, monkeypatch):
    desk = Desk()
    r = desk.leader.post(
        f"/api/v1/portfolios/{desk.portfolio_id}/orders",
        {"symbol": BTC_PERP, "side": "buy", "quantity": "0.1", "leverage": 10},
        format="json",
    )
    assert r.status_code == 201
    monkeypatch.undo()  # the broker is back
    from copytrading.propagation import relay_undispatched

    assert relay_undispatched(older_than=timedelta(0)) == 1
    assert set(LeaderEvent.objects.filter(portfolio_id=desk.portfolio_id).values_list("status", flat=True)) == {
        LeaderEventStatus.DONE
    }


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("connection refused"),
        redis.exceptions.ConnectionError("Error 111 connecting"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        kombu.exceptions.OperationalError("broker down"),
    ],
)
@pytest.mark.django_db
def test_outage_errors_in_a_rest_view_are_503_json(api, monkeypatch, error):
    from copytrading import api as core_api

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(core_api.InstrumentListView, "get", fail)
    api.force_authenticate(user=UserFactory())
    r = api.get("/api/v1/market/instruments")
    assert r.status_code == 503
    assert r.json()["code"] == "SERVICE_UNAVAILABLE"
    assert r.json()["field"] is None
    assert int(r["Retry-After"]) > 0


@pytest.mark.django_db
def test_outage_errors_in_plain_django_views_under_api_are_503_json(client, monkeypatch):
    """Anything under /api/ that is not a DRF view (and so escapes its handler)."""
    from django.urls import path

    import config.urls

    def plain(request):
        raise redis.exceptions.ConnectionError("down")

    monkeypatch.setattr(config.urls, "urlpatterns", [path("api/v1/plain", plain), *config.urls.urlpatterns])
    from django.urls import clear_url_caches

    clear_url_caches()
    try:
        r = client.get("/api/v1/plain")
    finally:
        monkeypatch.undo()
        clear_url_caches()
    assert r.status_code == 503
    assert r["Content-Type"] == "application/json"
    assert r.json()["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.django_db
def test_graphql_answers_503_json_when_the_database_is_down(client, monkeypatch):
    from portfolios import catalog

    def down(*args, **kwargs):
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    monkeypatch.setattr(catalog, "catalog_page", down)
    r = client.post("/graphql/", {"query": "{ catalog(first: 1) { edges { node { id } } } }"}, "application/json")
    assert r.status_code == 503
    assert r.json()["code"] == "SERVICE_UNAVAILABLE"
    assert "5432" not in r.content.decode()  # no driver message leaks
    assert int(r["Retry-After"]) > 0


@pytest.mark.django_db
def test_graphql_token_check_meeting_a_database_outage_is_503(client, monkeypatch):
    from copytrading.auth.authentication import ExpiringTokenAuthentication

    def down(self, request):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ExpiringTokenAuthentication, "authenticate", down)
    r = client.post("/graphql/", {"query": "{ __typename }"}, "application/json", HTTP_AUTHORIZATION="Token x")
    assert r.status_code == 503
    assert r.json()["code"] == "SERVICE_UNAVAILABLE"


class _BrokenCache:
    def __init__(self):
        self.calls = 0

    def get(self, *args, **kwargs):
        self.calls += 1
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    set = get


@pytest.mark.django_db
def test_the_catalog_reads_the_database_when_the_cache_is_down(api, settings, monkeypatch, caplog):
    from portfolios.services import portfolio_create

    settings.CATALOG_CACHE_SECONDS = 5
    portfolio_create(leader=UserFactory(), name="Cacheless", mode="margin")
    from portfolios.stats import stats_refresh

    stats_refresh()
    broken = _BrokenCache()
    monkeypatch.setattr(outages, "cache", broken)
    monkeypatch.setattr(outages, "_cache_skip_until", 0.0)
    api.force_authenticate(user=UserFactory())
    r = api.get("/api/v1/catalog?list=all")
    assert r.status_code == 200, r.content
    assert [item["name"] for item in r.json()["results"]] == ["Cacheless"]
    assert "cache unavailable" in caplog.text
    # The next calls skip the cache for a few seconds instead of waiting on it again.
    calls = broken.calls
    assert api.get("/api/v1/catalog?list=all").status_code == 200
    assert broken.calls == calls


def test_the_request_deadline_answers_503_and_drops_the_late_response():
    from config.deadline import RequestDeadline

    release = asyncio.Event()
    sent: list[dict] = []

    async def stuck_app(scope, receive, send):
        await release.wait()  # a query in flight on a frozen server
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    async def send(message):
        sent.append(message)

    async def scenario():
        app = RequestDeadline(stuck_app, seconds=0.05)
        await app({"type": "http", "method": "GET", "path": "/api/v1/me"}, None, send)
        assert len(app.abandoned) == 1
        release.set()
        await asyncio.sleep(0.05)
        assert not app.abandoned

    asyncio.run(scenario())
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [503]
    assert b"SERVICE_UNAVAILABLE" in sent[1]["body"]
    assert (b"retry-after", b"5") in sent[0]["headers"]
    assert len(sent) == 2  # the late 200 never reached the client


def test_the_request_deadline_leaves_a_started_response_alone():
    from config.deadline import RequestDeadline

    sent: list[dict] = []

    async def slow_stream(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.1)
        await send({"type": "http.response.body", "body": b"done"})

    async def send(message):
        sent.append(message)

    asyncio.run(RequestDeadline(slow_stream, seconds=0.02)({"type": "http", "method": "GET", "path": "/"}, None, send))
    assert [m.get("status") for m in sent] == [200, None]
    assert sent[1]["body"] == b"done"


@pytest.mark.django_db
def test_after_the_deadline_a_request_runs_no_more_queries(rf):
    """What keeps a request answered 503 at its deadline from committing when
    a frozen database resumes (tests/outages checks it for real)."""
    from django.contrib.auth import get_user_model

    from config.deadline import DeadlineGuardMiddleware

    state = {"expired": False}
    seen = []

    def view(request):
        seen.append(get_user_model().objects.count())
        state["expired"] = True  # the deadline passes while the view runs
        get_user_model().objects.count()

    request = rf.get("/api/v1/me")
    request.scope = {"type": "http", "deadline": state}
    with pytest.raises(OperationalError, match="deadline"):
        DeadlineGuardMiddleware(view)(request)
    assert seen == [0]
    # Without a deadline in the scope (tests, WSGI) the middleware does nothing.
    assert DeadlineGuardMiddleware(lambda r: "answer")(rf.get("/")) == "answer"


@pytest.mark.django_db(transaction=True)
def test_a_statement_that_outlives_the_deadline_does_not_commit(rf):
    """The deadline passes while the transaction's last statement is in flight
    (a frozen server that then resumes): the client got 503, so the
    transaction must roll back instead of committing."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from config.deadline import DeadlineGuardMiddleware

    state = {"expired": False}

    def freeze(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith("INSERT"):
            state["expired"] = True  # the 503 goes out while this INSERT runs
        return result

    def view(request):
        with transaction.atomic(), connection.execute_wrapper(freeze):
            get_user_model().objects.create_user("late", password="x")

    request = rf.post("/api/v1/portfolios/1/orders")
    request.scope = {"type": "http", "deadline": state}
    with pytest.raises(OperationalError, match="deadline"):
        DeadlineGuardMiddleware(view)(request)
    assert state["expired"]
    assert not get_user_model().objects.filter(username="late").exists()


def test_every_post_commit_dispatch_goes_through_the_one_helper():
    """A raw ``transaction.on_commit``/``delay_on_commit`` would turn a broker
    outage into a 500 after the commit; ``outages.dispatch_on_commit`` is the
    one place that may register one (and ``changes.touch`` its one callback
    per transaction, which calls its listeners each under a try)."""
    import re
    from pathlib import Path

    raw = re.compile(r"(?<!dispatch_)on_commit\(")
    root = Path(__file__).resolve().parents[2]
    apps = ["config", "copytrading", "portfolios", "followers", "risk", "fees", "backoffice"]
    offenders = [
        str(path.relative_to(root))
        for app in apps
        for path in (root / app).rglob("*.py")
        if "migrations" not in path.parts
        and path not in (root / "copytrading" / "outages.py", root / "copytrading" / "changes.py")
        and raw.search(path.read_text())
    ]
    assert offenders == []


@pytest.mark.django_db
def test_after_commit_runs_bookkeeping_once_committed_and_never_raises(django_capture_on_commit_callbacks):
    """``outages.after_commit`` (the job-error report of a broken match): runs
    after the commit, swallows its own failure, and runs nothing for a
    transaction that rolled back."""
    from django.db import transaction

    ran = []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outages.after_commit(lambda: ran.append("kept"), what="a report")
        outages.after_commit(lambda: 1 / 0, what="a broken report")
    assert (ran, len(callbacks)) == (["kept"], 2)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        outages.after_commit(lambda: ran.append("rolled back"), what="a report")
        raise RuntimeError("the price update failed")
    assert (ran, callbacks) == (["kept"], [])
