"""Linked exchange accounts in the back office: the key masked, no encrypted
column on any page, read-only, and the one action (unlink) wipes through the
service."""

import pytest
from django.urls import reverse
from django.utils import timezone

from copytrading.exchanges import crypto
from copytrading.exchanges.models import ExchangeAccount, ExchangeAccountStatus
from tests.factories import UserFactory

API_KEY = "abcdEFGH-admin-test-key-wxyz"
SECRET = "admin-test-secret-never-shown"
PASSPHRASE = "admin-test-passphrase"


def exchange_account_row(user) -> ExchangeAccount:
    """A linked account as the link service stores it, without asking an
    exchange (the admin only reads rows)."""
    now = timezone.now()
    return ExchangeAccount.objects.create(
        user=user,
        exchange="okx",
        label="main futures",
        api_key_encrypted=crypto.encrypt(API_KEY),
        secret_encrypted=crypto.encrypt(SECRET),
        passphrase_encrypted=crypto.encrypt(PASSPHRASE),
        api_key_hint=crypto.mask(API_KEY),
        api_key_fingerprint=crypto.fingerprint("okx", API_KEY),
        status=ExchangeAccountStatus.VALID,
        permissions=None,
        created_at=now,
        last_validated_at=now,
    )


@pytest.fixture
def account(db):
    return exchange_account_row(UserFactory(username="owner"))


def _pages(admin_client, account) -> list[str]:
    urls = [
        reverse("admin:copytrading_exchangeaccount_changelist"),
        reverse("admin:copytrading_exchangeaccount_changelist") + "?q=owner",
        reverse("admin:copytrading_exchangeaccount_change", args=[account.pk]),
    ]
    pages = []
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        pages.append(response.content.decode())
    return pages


def test_pages_show_the_masked_key_and_no_secret_or_ciphertext(admin_client, account):
    for page in _pages(admin_client, account):
        assert "abcd…wxyz" in page
        for hidden in (API_KEY, SECRET, PASSPHRASE, account.api_key_encrypted, account.secret_encrypted,
                       account.passphrase_encrypted, account.api_key_fingerprint):  # fmt: skip
            assert hidden not in page


def test_unlink_wipes_and_deletes_through_the_service(admin_client, account):
    changelist = reverse("admin:copytrading_exchangeaccount_changelist")
    response = admin_client.post(changelist, {"action": "unlink", "_selected_action": [account.pk]})
    assert response.status_code == 302
    assert not ExchangeAccount.objects.exists()


def test_staff_without_the_delete_permission_cannot_unlink(client, account):
    staff = UserFactory(username="support", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_exchangeaccount"))
    client.force_login(staff)
    changelist = reverse("admin:copytrading_exchangeaccount_changelist")
    page = client.get(changelist)
    assert page.status_code == 200 and "abcd…wxyz" in page.content.decode()
    assert 'value="unlink"' not in page.content.decode()
    client.post(changelist, {"action": "unlink", "_selected_action": [account.pk]})
    assert ExchangeAccount.objects.filter(pk=account.pk).exists()
