"""Encryption at rest of exchange credentials: MultiFernet under
EXCHANGE_SECRET_KEYS (first encrypts, all decrypt), the key file of a
development machine, and the start-up refusal of a malformed key."""

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from config.env import env_fernet_keys
from copytrading.errors import DomainError
from copytrading.exchanges import crypto
from tests.copytrading.test_deploy_settings import PRODUCTION, ROOT

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_a_secret_round_trips_and_no_token_shows_it(settings):
    settings.EXCHANGE_SECRET_KEYS = [NEW]
    token = crypto.encrypt("my-very-secret-value")
    assert "my-very-secret-value" not in token
    assert crypto.decrypt(token) == "my-very-secret-value"
    assert crypto.encrypt("my-very-secret-value") != token  # a random IV per token
    assert crypto.encrypt("") == "" and crypto.decrypt("") == ""


def test_the_first_key_encrypts_and_every_key_decrypts(settings):
    settings.EXCHANGE_SECRET_KEYS = [OLD]
    old_token = crypto.encrypt("s3cret-under-the-old-key")
    settings.EXCHANGE_SECRET_KEYS = [NEW, OLD]
    assert crypto.decrypt(old_token) == "s3cret-under-the-old-key"
    assert not crypto.is_current(old_token)
    fresh = crypto.reencrypt(old_token)
    assert crypto.is_current(fresh)
    settings.EXCHANGE_SECRET_KEYS = [NEW]  # the old key removed
    assert crypto.decrypt(fresh) == "s3cret-under-the-old-key"
    with pytest.raises(crypto.UndecryptableSecret):
        crypto.decrypt(old_token)


def test_no_keys_refuses_with_a_stable_code(settings):
    settings.EXCHANGE_SECRET_KEYS = []
    with pytest.raises(DomainError) as refused:
        crypto.encrypt("anything-at-all")
    assert (refused.value.code, refused.value.status) == ("EXCHANGE_SECRETS_NOT_CONFIGURED", 503)


def test_mask_and_fingerprint():
    assert crypto.mask("abcdEFGHijklMNOPwxyz") == "abcd…wxyz"
    assert crypto.mask("short-key") == "…ey"
    one = crypto.fingerprint("binanceusdm", "abcdEFGHijklMNOPwxyz")
    assert len(one) == 64 and "abcd" not in one
    assert one != crypto.fingerprint("binance", "abcdEFGHijklMNOPwxyz")


def test_a_development_machine_generates_one_key_file(tmp_path):
    path = tmp_path / "exchange_secret_key"
    first = env_fernet_keys("UNSET_IN_THIS_TEST_EXCHANGE_KEYS", generated=path)
    again = env_fernet_keys("UNSET_IN_THIS_TEST_EXCHANGE_KEYS", generated=path)
    assert first == again == [path.read_text().strip()]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    Fernet(first[0].encode())  # a usable key
    assert env_fernet_keys("UNSET_IN_THIS_TEST_EXCHANGE_KEYS", generated=None) == []


def _start(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings", "VAR_DIR": str(tmp_path)} | env
    code = "import django; django.setup(); from django.conf import settings; print(settings.EXCHANGE_SECRET_KEYS)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


@pytest.mark.slow  # a subprocess with its own environment: runs once, in the services pass
def test_a_malformed_key_stops_the_process_at_start(tmp_path):
    result = _start(tmp_path, EXCHANGE_SECRET_KEYS=f"{NEW},not-a-fernet-key")
    assert result.returncode != 0
    assert "EXCHANGE_SECRET_KEYS: key #2 is not a Fernet key" in result.stderr
    assert "not-a-fernet-key" not in result.stderr.replace("EXCHANGE_SECRET_KEYS=", "")


@pytest.mark.slow  # subprocesses with their own environment: runs once, in the services pass
def test_services_mode_generates_no_key_and_embedded_mode_does(tmp_path):
    services = _start(tmp_path, **PRODUCTION)
    assert services.returncode == 0, services.stderr
    assert services.stdout.strip() == "[]"
    assert not (tmp_path / "exchange_secret_key").exists()
    embedded = _start(tmp_path)
    assert embedded.returncode == 0, embedded.stderr
    assert (tmp_path / "exchange_secret_key").read_text().strip() in embedded.stdout
