"""Login throttling: per username and per client address, counted before the
password is compared, for the API and the admin alike; registration per address."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from copytrading.auth.client import client_address
from copytrading.auth.models import LoginThrottle
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture(autouse=True)
def limits(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = 10
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 30
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 900
    settings.LOGIN_LOCKOUT_SECONDS = 900


@pytest.fixture
def alice():
    return User.objects.create_user(username="alice", password=PASSWORD, is_staff=True, is_superuser=True)


def login(username="alice", password=PASSWORD, address="203.0.113.7", **extra):
    return APIClient().post(
        "/api/v1/auth/token", {"username": username, "password": password}, format="json", REMOTE_ADDR=address, **extra
    )


def admin_login(username="alice", password=PASSWORD, address="203.0.113.7"):
    return Client().post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def assert_locked(response, code="LOGIN_LOCKED", upto=900):
    assert response.status_code == 429, response.content
    assert 0 < int(response["Retry-After"]) <= upto
    if response["Content-Type"].startswith("application/json"):
        assert response.json()["code"] == code


def test_ten_wrong_passwords_lock_the_username_even_for_the_right_one(alice):
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        statuses = [login(password=f"wrong-{n}").status_code for n in range(10)]
        assert statuses == [400] * 10
        assert_locked(login(password="wrong-11"))
        assert_locked(login())  # the right password is refused too
        # from another address as well: the lock is on the username
        assert_locked(login(address="198.51.100.1"))
    assert LoginThrottle.objects.get(key="user:alice").attempts == 10
    with time_machine.travel(now + timedelta(seconds=899), tick=False):
        assert_locked(login())
    with time_machine.travel(now + timedelta(seconds=900), tick=False):
        assert login().status_code == 200


def test_retry_after_counts_down(alice):
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        for n in range(10):
            login(password=f"wrong-{n}")
    with time_machine.travel(now + timedelta(seconds=600), tick=False):
        assert int(login()["Retry-After"]) == 300


def test_failures_outside_the_window_are_forgotten(alice):
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        for n in range(9):
            login(password=f"wrong-{n}")
    with time_machine.travel(now + timedelta(seconds=901), tick=False):
        assert [login(password=f"again-{n}").status_code for n in range(9)] == [400] * 9
        assert login().status_code == 200


def test_the_username_is_matched_without_case(alice):
    for n in range(10):
        login(username="ALICE" if n % 2 else "alice", password=f"wrong-{n}")
    assert_locked(login())


def test_a_success_forgets_the_usernames_failures(alice):
    for n in range(9):
        assert login(password=f"wrong-{n}").status_code == 400
    assert login().status_code == 200
    assert [login(password=f"again-{n}").status_code for n in range(10)] == [400] * 10
    assert_locked(login())


def test_one_address_spraying_many_usernames_is_locked_out(alice, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 5
    assert [login(username=f"user{n}", password="guess").status_code for n in range(5)] == [400] * 5
    assert_locked(login(username="someone-else", password="guess"))
    assert_locked(login())  # a real account from that address too
    assert login(address="198.51.100.1").status_code == 200  # alice herself, elsewhere


def test_logging_in_to_your_own_account_does_not_clear_your_address(alice, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 5
    for n in range(4):
        login(username=f"victim{n}", password="guess")
    assert login().status_code == 200  # the attacker's own account
    assert login(username="victim9", password="guess").status_code == 400
    assert_locked(login(username="victim10", password="guess"))


def test_a_forged_forwarded_for_does_not_escape_the_lockout(alice, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 5
    for n in range(5):
        login(username=f"user{n}", password="guess", HTTP_X_FORWARDED_FOR=f"10.9.{n}.1")
    assert_locked(login(username="next", password="guess", HTTP_X_FORWARDED_FOR="10.9.99.1"))


def test_ipv6_clients_are_counted_per_64(alice, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 5
    for n in range(5):
        login(username=f"user{n}", password="guess", address=f"2001:db8:1:2::{n + 1:x}")
    assert_locked(login(username="next", password="guess", address="2001:db8:1:2:ffff::9"))
    assert login(address="2001:db8:1:3::1").status_code == 200


def test_the_admin_login_is_locked_out_the_same_way(alice):
    for n in range(10):
        r = admin_login(password=f"wrong-{n}")
        assert r.status_code == 200  # the form again, with its error
    assert_locked(admin_login(password="wrong-11"))
    assert_locked(admin_login())  # the right password is refused
    assert_locked(login())  # and the API shares the count


def test_api_failures_lock_the_admin_too(alice):
    for n in range(10):
        login(password=f"wrong-{n}")
    assert_locked(admin_login())
    assert admin_login(address="198.51.100.1").status_code == 429


def test_the_admin_logs_in_before_the_limit(alice):
    for n in range(9):
        admin_login(password=f"wrong-{n}")
    r = admin_login()
    assert r.status_code == 302


def test_wrong_old_passwords_on_password_change_count_as_failures(alice):
    token = login().json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = {"old_password": "guess", "new_password": "another-long-pass-99"}
    statuses = [
        client.post("/api/v1/auth/password", body, format="json", REMOTE_ADDR="203.0.113.7").status_code
        for _ in range(11)
    ]
    assert statuses == [400] * 10 + [429]
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_registration_is_throttled_per_address(settings, instruments):
    settings.REGISTER_MAX_PER_ADDRESS = 3
    settings.REGISTER_WINDOW_SECONDS = 3600

    def register(name: str, address: str = "203.0.113.7"):
        return APIClient().post(
            "/api/v1/auth/register", {"username": name, "password": PASSWORD}, format="json", REMOTE_ADDR=address
        )

    now = timezone.now()
    with time_machine.travel(now, tick=False):
        assert [register(f"new{n}").status_code for n in range(3)] == [201] * 3
        r = register("new3")
        assert_locked(r, code="REGISTRATION_THROTTLED", upto=3600)
        assert not User.objects.filter(username="new3").exists()
        assert register("new4", address="198.51.100.1").status_code == 201
    with time_machine.travel(now + timedelta(seconds=3600), tick=False):
        assert register("new5").status_code == 201


def test_staff_lift_a_lockout_from_the_admin(alice, admin_client):
    for n in range(10):
        login(password=f"wrong-{n}")
    assert_locked(login())
    row = LoginThrottle.objects.get(key="user:alice")
    r = admin_client.post(
        "/admin/copytrading/loginthrottle/", {"action": "unlock", "_selected_action": [row.pk]}, follow=True
    )
    assert r.status_code == 200
    assert login().status_code == 200


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.7", "", [], "203.0.113.7"),
        ("203.0.113.7", "1.2.3.4", [], "203.0.113.7"),  # no trusted proxy: the header is ignored
        ("10.0.0.1", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.1", "6.6.6.6, 1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),  # a lie on the left changes nothing
        ("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", ["10.0.0.0/8"], "1.2.3.4"),  # two trusted hops
        ("10.0.0.1", "garbage, 1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.1", "", ["10.0.0.0/8"], "10.0.0.1"),
        ("203.0.113.7", "1.2.3.4", ["10.0.0.0/8"], "203.0.113.7"),  # not from the proxy: REMOTE_ADDR
        ("::ffff:203.0.113.7", "", [], "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "", [], "2001:db8:1:2::/64"),
        ("", "", [], "unknown"),
    ],
)
def test_client_address(settings, remote, forwarded, trusted, expected):
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected
