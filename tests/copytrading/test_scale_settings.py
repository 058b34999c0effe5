"""Settings for running past one machine (docs/scaling.md): read replicas from
DATABASE_REPLICA_URLS, and Redis behind Sentinel from a ``redis+sentinel://`` REDIS_URL
for the broker, the cache and the channel layer (config/redis_sentinel.py)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config import redis_sentinel
from config.redis_sentinel import SentinelTarget

ROOT = Path(__file__).resolve().parents[2]
SERVICES = "postgres://nobody@127.0.0.1:1/nothing"  # never connected to: settings only


# --- the URL ---------------------------------------------------------------------------


def test_a_sentinel_url_names_its_nodes_master_and_database():
    target = redis_sentinel.parse("redis+sentinel://:s3cr%40t@10.0.0.1:26379,10.0.0.2,sentinel-3:26380/prod/8")
    assert target == SentinelTarget(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("sentinel-3", 26380)),
        master="prod",
        db=8,
        password="s3cr@t",
    )
    assert redis_sentinel.parse("redis+sentinel://h:1/m") == SentinelTarget((("h", 1),), "m", 0)
    assert redis_sentinel.parse("redis+sentinel://app:pw@h:1/m").username == "app"


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://cache:6380/1", ""])
def test_other_urls_are_single_servers(url):
    assert redis_sentinel.parse(url) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel:///mymaster/0", "no Sentinel nodes"),
        ("redis+sentinel://h:26379", "the path is /<master name>"),
        ("redis+sentinel://h:26379/m/0/x", "the path is /<master name>"),
        ("redis+sentinel://h:26379/m/zero", "is not a number"),
        ("redis+sentinel://h:port/m", "bad Sentinel node"),
    ],
)
def test_a_malformed_sentinel_url_says_what_is_wrong(url, message):
    with pytest.raises(ValueError, match=message):
        redis_sentinel.parse(url)


def test_each_client_gets_the_form_its_library_reads():
    target = redis_sentinel.parse("redis+sentinel://:pw@a:26379,b:26380/prod/3")
    assert redis_sentinel.broker_url(target) == "sentinel://:pw@a:26379/3;sentinel://:pw@b:26380/3"
    odd = redis_sentinel.parse("redis+sentinel://:p%2Fw%3B1@a:26379/prod/3")
    assert redis_sentinel.broker_url(odd) == "sentinel://:p%2Fw%3B1@a:26379/3"  # "/" and ";" stay quoted
    host = redis_sentinel.channel_layer_host(target, socket_timeout=1.0)
    assert host == {
        "sentinels": [["a", 26379], ["b", 26380]],
        "master_name": "prod",
        "db": 3,
        "password": "pw",
        "sentinel_kwargs": {"socket_timeout": 1.0},
        "socket_timeout": 1.0,
    }


# --- the settings, in a process of their own --------------------------------------------

SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'aliases': sorted(s.DATABASES), 'replicas': s.DATABASE_REPLICAS, "
    "'routers': s.DATABASE_ROUTERS, 'replica1': s.DATABASES.get('replica1', {}).get('HOST'), "
    "'pool': s.DATABASES.get('replica1', {}).get('OPTIONS', {}).get('pool'), "
    "'broker': s.CELERY_BROKER_URL, 'master': s.CELERY_BROKER_TRANSPORT_OPTIONS.get('master_name'), "
    "'cache_pool': s.CACHES['default'].get('OPTIONS', {}).get('pool_class'), "
    "'layer': s.CHANNEL_LAYERS['default'].get('CONFIG', {}).get('hosts')}, default=str))"
)


def settings_of(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))}
    clean |= {"DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "true"} | env
    return subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_replica_urls_become_aliases_with_the_router(tmp_path):
    result = settings_of(
        tmp_path,
        DATABASE_URL=SERVICES,
        DATABASE_REPLICA_URLS="postgres://r@10.0.0.5:5432/ct, postgres://r@10.0.0.6:5432/ct",
        DB_POOL_MAX="4",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["aliases"] == ["default", "replica1", "replica2"]
    assert shown["replicas"] == ["replica1", "replica2"]
    assert shown["routers"] == ["copytrading.replicas.PrimaryWritesRouter"]
    assert shown["replica1"] == "10.0.0.5"
    assert shown["pool"]["max_size"] == 4  # the primary's pool and bounds


@pytest.mark.slow
def test_without_replica_urls_nothing_changes(tmp_path):
    shown = json.loads(settings_of(tmp_path, DATABASE_URL=SERVICES).stdout)
    assert (shown["aliases"], shown["replicas"], shown["routers"]) == (["default"], [], [])


@pytest.mark.slow
def test_replicas_without_a_primary_refuse_to_start(tmp_path):
    result = settings_of(tmp_path, DATABASE_REPLICA_URLS="postgres://r@10.0.0.5:5432/ct")
    assert result.returncode != 0
    assert "DATABASE_REPLICA_URLS needs DATABASE_URL" in result.stderr


@pytest.mark.slow
def test_a_sentinel_redis_url_configures_broker_cache_and_channel_layer(tmp_path):
    result = settings_of(tmp_path, DATABASE_URL=SERVICES, REDIS_URL="redis+sentinel://a:26379,b:26379/prod/2")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["broker"] == "sentinel://a:26379/2;sentinel://b:26379/2"
    assert shown["master"] == "prod"
    assert shown["cache_pool"] == "config.redis_sentinel.SentinelPool"
    assert shown["layer"][0]["master_name"] == "prod" and shown["layer"][0]["sentinels"] == [["a", 26379], ["b", 26379]]
    bad = settings_of(tmp_path, DATABASE_URL=SERVICES, REDIS_URL="redis+sentinel://a:26379")
    assert bad.returncode != 0 and "the path is /<master name>" in bad.stderr


# --- a real Sentinel in front of the test Redis ---------------------------------------------

EXERCISE = """
import django; django.setup()
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from kombu import Connection

cache.set("sentinel-check", 42, 30)
assert cache.get("sentinel-check") == 42
cache.delete("sentinel-check")
with Connection(settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as conn:
    queue = conn.SimpleQueue("sentinel-check")
    queue.put({"n": 1})
    assert queue.get(timeout=5).payload == {"n": 1}
    queue.queue.delete()
    queue.close()
layer = get_channel_layer()
async def roundtrip():
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "check", "n": 2})
    return await layer.receive(channel)
assert async_to_sync(roundtrip)()["n"] == 2
print("ok")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs the services pass's Redis (REDIS_URL)")
@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server (Sentinel mode) on this machine")
def test_broker_cache_and_channel_layer_work_through_a_real_sentinel(tmp_path):
    from redis import Redis

    server = Redis.from_url(os.environ["REDIS_URL"])
    host, port = server.connection_pool.connection_kwargs["host"], server.connection_pool.connection_kwargs["port"]
    db = server.connection_pool.connection_kwargs.get("db", 0)
    sentinel_port = free_port()
    master = f"ct-test-{os.getpid()}"
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {master} {host} {port} 1\nsentinel down-after-milliseconds {master} 60000\n"
    )
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", sentinel_port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Sentinel did not start"
                time.sleep(0.05)
        # Two nodes, as production lists them (the second one down): the node list must
        # reach each client whole (Django's cache splits a string LOCATION on ",").
        url = f"redis+sentinel://127.0.0.1:{sentinel_port},127.0.0.1:{free_port()}/{master}/{db}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_"))}
        clean |= {"REDIS_URL": url, "VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.test_settings"}
        result = subprocess.run(
            [sys.executable, "-c", EXERCISE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"
    finally:
        sentinel.terminate()
        sentinel.wait(timeout=10)
