"""/metrics: our series move with real work, access is not public, and values
recorded in another process are in the scrape (multiprocess mode)."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from backoffice.joberrors import job_error_record
from backoffice.models import Heartbeat
from backoffice.services import heartbeat_record
from config.env import env_networks
from copytrading.models import Execution, LeaderEvent, LeaderEventStatus
from copytrading.observability import metrics, multiproc
from tests.copytrading.test_propagation import ETH_PERP
from tests.factories import StaffFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def staff_client(client):
    client.force_login(StaffFactory())
    return client


def test_a_fan_out_moves_our_series(world, staff_client):
    portfolio = world.leader()
    for _ in range(3):
        world.follower(portfolio)
    broke = world.follower(portfolio, amount="1")  # too little to copy: a skip or reject with its reason
    before = scrape(staff_client)

    (event,) = world.trade(portfolio, ETH_PERP, "buy", "1")

    after = scrape(staff_client)
    event.refresh_from_db()
    assert event.status == LeaderEventStatus.DONE
    # Two chunks of two followers: one observation each, one fan-out.
    assert value(after, "copytrading_chunk_seconds_count") - value(before, "copytrading_chunk_seconds_count") == 2
    assert value(after, "copytrading_fanout_seconds_count") - value(before, "copytrading_fanout_seconds_count") == 1
    assert value(after, "copytrading_fanout_seconds_sum") > value(before, "copytrading_fanout_seconds_sum")
    # Executions by outcome and reason code: exactly the rows written.
    for outcome, reason_code in Execution.objects.filter(event=event).values_list("outcome", "reason_code"):
        assert value(after, "copytrading_executions_total", outcome=outcome, reason_code=reason_code) > value(
            before, "copytrading_executions_total", outcome=outcome, reason_code=reason_code
        )
    rows = Execution.objects.filter(event=event)
    moved = sum(
        value(after, name, **dict(labels)) - value(before, name, **dict(labels))
        for name, labels in after
        if name == "copytrading_executions_total"
    )
    assert moved == rows.count() == 4
    assert rows.get(subscription_id=broke.pk).outcome != "copied"
    # Read at scrape: nothing pending, no open job error; and django-prometheus's basics.
    assert value(after, "copytrading_outbox_lag_seconds") == 0.0
    assert ("copytrading_job_errors_unacknowledged", ()) in after
    assert any(name == "django_http_requests_total_by_method_total" for name, _ in after)
    assert any(name == "django_db_execute_total" for name, _ in after)


def test_outbox_lag_and_job_errors_are_read_at_scrape(world, staff_client):
    portfolio = world.leader()
    # A pending event nobody dispatched (the broker was down), two minutes old.
    stuck = LeaderEvent.objects.create(portfolio_id=portfolio.pk, seq=999, kind="position_open", payload={})
    LeaderEvent.objects.filter(pk=stuck.pk).update(created_at=stuck.created_at - timedelta(minutes=2))
    before = scrape(staff_client)
    assert value(before, "copytrading_outbox_lag_seconds") >= 120
    assert job_error_record(task="tests.observability", exc=RuntimeError("boom"))
    after = scrape(staff_client)
    assert (
        value(after, "copytrading_job_errors_unacknowledged")
        == value(before, "copytrading_job_errors_unacknowledged") + 1
    )
    labels = {"task": "tests.observability", "severity": "medium"}
    # Heartbeats: their age per process kind.
    heartbeat_record(name=Heartbeat.WORKER)
    assert 0 <= value(scrape(staff_client), "copytrading_heartbeat_age_seconds", process="worker") < 60
    assert (
        value(after, "copytrading_job_errors_total", **labels)
        == value(before, "copytrading_job_errors_total", **labels) + 1
    )


# --- access ------------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_is_refused_in_the_api_error_shape(client):
    response = client.get("/metrics")
    assert response.status_code == 403
    assert response.json() == {
        "code": "METRICS_FORBIDDEN",
        "detail": "Metrics are for staff, the metrics token or an allowed network.",
        "field": None,
    }


@pytest.mark.django_db
def test_a_user_who_is_not_staff_is_refused(client):
    client.force_login(UserFactory())
    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_staff_session_is_allowed(staff_client):
    assert "copytrading_chunk_seconds" in staff_client.get("/metrics").content.decode()


@pytest.mark.django_db
def test_the_token_is_allowed_and_a_bad_one_is_refused(client, settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-012345678").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    # No token configured: no bearer token is right.
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


@pytest.mark.django_db
def test_a_bad_token_is_refused_even_from_an_allowed_network(client, settings):
    settings.METRICS_TOKEN = "right"
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


@pytest.mark.django_db
def test_allowed_networks(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "fd00::/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="fd12:3456::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::1").status_code == 403
    # X-Forwarded-For counts only from a trusted proxy.
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403
    settings.TRUSTED_PROXIES = ["192.168.1.1"]
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200


@pytest.mark.django_db
def test_a_forwarded_request_is_judged_by_its_client(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.TRUSTED_PROXIES = ["10.0.0.5"]
    # Through a trusted proxy on the allowed network: the client (outside) is refused.
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="10.7.7.7").status_code == 200
    # Through a proxy not trusted (a load balancer on the allowed network): never by network.
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.6", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.6", HTTP_X_FORWARDED_FOR="10.7.7.7").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.6").status_code == 200


def test_a_malformed_network_is_refused_at_load(monkeypatch):
    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8, 10.0.0.0/33")
    with pytest.raises(ValueError, match=r"METRICS_ALLOWED_NETWORKS: '10.0.0.0/33' is not an IP address or network"):
        env_networks("METRICS_ALLOWED_NETWORKS")
    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8, fd00::/8,192.168.1.1")
    assert env_networks("METRICS_ALLOWED_NETWORKS") == ["10.0.0.0/8", "fd00::/8", "192.168.1.1"]


@pytest.mark.slow  # a subprocess
def test_settings_refuse_a_malformed_network():
    env = {**os.environ, "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-network"}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured: METRICS_ALLOWED_NETWORKS: 'not-a-network'" in done.stderr


@pytest.mark.django_db
def test_only_get(staff_client):
    assert staff_client.post("/metrics").status_code == 405


# --- across processes ------------------------------------------------------------------


@pytest.mark.slow  # a subprocess
@pytest.mark.django_db
def test_a_value_recorded_in_another_process_is_in_the_scrape(staff_client):
    if metrics.multiproc_dir() is None:
        pytest.skip("multiprocess mode is on in services mode (PROMETHEUS_MULTIPROC_DIR)")
    code = (
        "import os; from copytrading.observability import metrics; "
        "metrics.EXECUTIONS.labels('copied', 'TEST_OTHER_PROCESS').inc(7); "
        "metrics.WEBSOCKET_CONNECTIONS.inc(3); print(os.getpid())"
    )
    before = scrape(staff_client)
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60, capture_output=True, text=True
    )
    after = scrape(staff_client)
    labels = {"outcome": "copied", "reason_code": "TEST_OTHER_PROCESS"}
    assert (
        value(after, "copytrading_executions_total", **labels) - value(before, "copytrading_executions_total", **labels)
        == 7
    )
    connections = value(before, "copytrading_websocket_connections")
    assert value(after, "copytrading_websocket_connections") == connections + 3
    # Once that process is known dead (a worker child's exit hook) its open
    # connections no longer count; its counters stay.
    metrics.process_exited(int(done.stdout.split()[-1]))
    last = scrape(staff_client)
    assert value(last, "copytrading_websocket_connections") == connections
    assert value(last, "copytrading_executions_total", **labels) == value(
        after, "copytrading_executions_total", **labels
    )


def test_the_directory_is_emptied_at_start(tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")
    metrics.multiproc_dir_reset(directory)
    assert directory.is_dir() and list(directory.iterdir()) == []
    metrics.multiproc_dir_reset(tmp_path / "new")
    assert (tmp_path / "new").is_dir()


def test_this_process_files_are_named_by_pid_and_host():
    """Installed before django-prometheus's metrics and ours: every file this
    process wrote is ``<type>_<pid>-<host>.db`` (containers sharing the
    directory all have a PID 1)."""
    directory = metrics.multiproc_dir()
    if directory is None:
        assert values.ValueClass is values.MutexValue
        return
    metrics.EXECUTIONS.labels("copied", "TEST_FILE_NAME").inc()
    assert values.ValueClass is not values.MutexValue
    assert multiproc.process_identifier() == f"{os.getpid()}-{multiproc.HOST}"
    # Whatever this process wrote there (an earlier test of the suite may have
    # emptied the directory under its open files; the forked-child test below
    # proves the files a fresh process creates).
    ours = [p.name for p in directory.glob(f"*_{os.getpid()}*.db")]
    assert all(name.endswith(f"_{os.getpid()}-{multiproc.HOST}.db") for name in ours), ours
    assert "_" not in multiproc.HOST


@pytest.mark.slow  # a subprocess
def test_a_process_and_its_forked_child_write_host_qualified_files(tmp_path):
    code = (
        "import os, django; django.setup(); "
        "from django_prometheus.middleware import Metrics; Metrics.get_instance(); "
        "from copytrading.observability import metrics; "
        "metrics.EXECUTIONS.labels('copied', 'PARENT').inc(); "
        "child = os.fork()\n"
        "if child == 0:\n"
        "    metrics.EXECUTIONS.labels('copied', 'CHILD').inc(); os._exit(0)\n"
        "os.waitpid(child, 0); print(os.getpid(), child)"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=60, capture_output=True, text=True
    )
    parent, child = done.stdout.split()[-2:]
    names = sorted(p.name for p in tmp_path.glob("*.db"))
    assert f"counter_{parent}-{multiproc.HOST}.db" in names
    assert f"histogram_{parent}-{multiproc.HOST}.db" in names  # django-prometheus's latency histograms
    assert f"counter_{child}-{multiproc.HOST}.db" in names
    assert all(name.endswith(f"-{multiproc.HOST}.db") for name in names), names
    # The collector parses these names and sums both processes.
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    samples = {
        (sample.name, sample.labels.get("reason_code")): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    assert samples[("copytrading_executions_total", "PARENT")] == 1
    assert samples[("copytrading_executions_total", "CHILD")] == 1
