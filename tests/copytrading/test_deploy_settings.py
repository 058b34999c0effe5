"""Start-up safety: no server signs with a guessable key, and `check --deploy`
is clean under the production settings README documents. Each case runs
Django in a subprocess with exactly the environment it names."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A subprocess with exactly its own environment: the pass (services or embedded)
# cannot change the outcome, so it runs once, in the services pass.
SUBPROCESS = pytest.mark.slow
SERVICES = "postgres://nobody@127.0.0.1:1/nothing"  # never connected to: settings only
START = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
# The production settings documented in README.md ("Production").
PRODUCTION = {
    "DJANGO_SECRET_KEY": "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",
    "DJANGO_ALLOWED_HOSTS": "copy.example.com",
    "DJANGO_HTTPS": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https",
    "DATABASE_URL": SERVICES,
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))}
    clean |= {"DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path)} | env
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


@SUBPROCESS
def test_services_mode_without_a_key_refuses_to_start(tmp_path):
    result = run(["-c", START], tmp_path, DATABASE_URL=SERVICES, DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set: refusing to start" in result.stderr
    assert not (tmp_path / "secret_key").exists()


@SUBPROCESS
def test_the_web_server_refuses_too(tmp_path):
    result = run(["manage.py", "check"], tmp_path, DATABASE_URL=SERVICES)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


@SUBPROCESS
def test_embedded_mode_makes_its_own_key_once(tmp_path):
    first = run(["-c", START], tmp_path)
    second = run(["-c", START], tmp_path)
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "secret_key").read_text().strip()
    assert first.stdout.strip() == second.stdout.strip() == key
    assert len(key) >= 50
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    other = tmp_path / "other"
    other.mkdir()
    assert run(["-c", START], other).stdout.strip() != key  # each machine its own


@SUBPROCESS
def test_debug_in_services_mode_starts_with_a_local_key(tmp_path):
    result = run(["-c", START], tmp_path, DATABASE_URL=SERVICES, DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (tmp_path / "secret_key").read_text().strip()


@SUBPROCESS
def test_a_given_key_is_used(tmp_path):
    result = run(["-c", START], tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == PRODUCTION["DJANGO_SECRET_KEY"]


@SUBPROCESS
def test_check_deploy_is_clean_under_the_documented_production_settings(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@SUBPROCESS
def test_each_protection_can_be_turned_off_by_environment(tmp_path):
    # e.g. behind a proxy that redirects and sets HSTS itself
    overrides = {
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        "DJANGO_SESSION_COOKIE_SECURE": "false",
        "DJANGO_CSRF_COOKIE_SECURE": "false",
    }
    result = run(["manage.py", "check", "--deploy"], tmp_path, **(PRODUCTION | overrides))
    output = result.stdout + result.stderr
    assert {w for w in ("W004", "W008", "W012", "W016") if f"security.{w}" in output} == {
        "W004",
        "W008",
        "W012",
        "W016",
    }


def test_https_settings_redirect_plain_http_but_not_the_health_check(settings, client, db):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    r = client.get("/api/v1/market/instruments")
    assert r.status_code == 301
    assert r["Location"].startswith("https://")
    assert client.get("/api/v1/market/instruments", HTTP_X_FORWARDED_PROTO="https").status_code != 301
    assert client.get("/healthz").status_code != 301
