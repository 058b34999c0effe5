"""Key rotation: a new key put first still opens what the old one sealed;
``rotate_exchange_secrets`` re-encrypts under it (idempotent, ``--dry-run``,
counts reported); then the old key can go and every account still works."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from copytrading.exchanges import crypto
from copytrading.exchanges.models import ExchangeAccount
from tests.exchange_double.fixtures import API_KEY, API_SECRET
from tests.exchanges.conftest import URL, client_for, link_body
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("accounts_settings")

OLD, NEW, STRANGER = (Fernet.generate_key().decode() for _ in range(3))
COLUMNS = ("api_key_encrypted", "secret_encrypted", "passphrase_encrypted")


def rotate(*args: str) -> str:
    out = StringIO()
    call_command("rotate_exchange_secrets", *args, stdout=out)
    return out.getvalue()


def tokens() -> list[tuple]:
    return list(ExchangeAccount.objects.order_by("pk").values_list(*COLUMNS))


@pytest.fixture
def two_accounts(db, settings, exchange_double):
    settings.EXCHANGE_SECRET_KEYS = [OLD]
    ids = []
    for name in ("ann", "ben"):
        response = client_for(UserFactory(username=name)).post(URL, link_body(), format="json")
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def test_rotation_reencrypts_once_and_the_old_key_can_then_go(two_accounts, settings):
    sealed_by_old = tokens()
    settings.EXCHANGE_SECRET_KEYS = [NEW, OLD]

    out = rotate("--dry-run")
    assert "would be re-encrypted: 2" in out and "already under the newest key: 0" in out
    assert tokens() == sealed_by_old  # a dry run changes nothing

    out = rotate()
    assert "re-encrypted: 2" in out and "unreadable with every configured key: 0" in out
    fresh = tokens()
    assert all(new != old for new, old in zip(fresh, sealed_by_old, strict=True))
    assert all(row[2] == "" for row in fresh)  # no passphrase: nothing encrypted

    out = rotate()  # idempotent
    assert "re-encrypted: 0" in out and "already under the newest key: 2" in out
    assert tokens() == fresh

    settings.EXCHANGE_SECRET_KEYS = [NEW]  # the old key removed
    for account in ExchangeAccount.objects.all():
        assert crypto.decrypt(account.api_key_encrypted) == API_KEY
        assert crypto.decrypt(account.secret_encrypted) == API_SECRET
    owner = ExchangeAccount.objects.get(pk=two_accounts[0]).user
    validated = client_for(owner).post(f"{URL}/{two_accounts[0]}/validate")
    assert validated.status_code == 200 and validated.json()["status"] == "valid"


def test_an_account_no_key_opens_is_reported_and_the_command_fails(two_accounts, settings):
    settings.EXCHANGE_SECRET_KEYS = [STRANGER]  # the old key dropped before rotating
    with pytest.raises(CommandError, match="no longer configured"):
        rotate()
    settings.EXCHANGE_SECRET_KEYS = [STRANGER, OLD]
    assert "re-encrypted: 2" in rotate()


def test_an_account_whose_key_was_removed_too_early_answers_503_not_500(two_accounts, settings):
    settings.EXCHANGE_SECRET_KEYS = [STRANGER]
    owner = ExchangeAccount.objects.get(pk=two_accounts[0]).user
    response = client_for(owner).post(f"{URL}/{two_accounts[0]}/validate")
    assert response.status_code == 503
    assert response.json()["code"] == "EXCHANGE_SECRETS_UNREADABLE"
