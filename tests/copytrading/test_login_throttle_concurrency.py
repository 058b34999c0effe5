"""PostgreSQL, logins in parallel (one thread and connection each): wrong
passwords get exactly the limit compared, every other request is locked out,
and the right password is refused afterwards."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from copytrading.auth.models import AuthToken, LoginThrottle
from tests.factories import PASSWORD

User = get_user_model()


@pytest.fixture(autouse=True)
def limits(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = 10
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 12


def post_in_parallel(bodies: list[tuple[dict, str]]) -> list[int]:
    """POST auth/token with every (body, address) at once; the statuses."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int | str] = [0] * len(bodies)

    def worker(i: int, body: dict, address: str) -> None:
        try:
            barrier.wait(timeout=10)
            statuses[i] = APIClient().post("/api/v1/auth/token", body, format="json", REMOTE_ADDR=address).status_code
        except BaseException as exc:  # noqa: BLE001 - reported in the assertions
            statuses[i] = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, *pair)) for i, pair in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return statuses


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_get_exactly_the_limit_compared():
    assert connection.vendor == "postgresql"
    User.objects.create_user(username="alice", password=PASSWORD)
    wrong = [({"username": "alice", "password": f"guess-{n}"}, f"198.51.100.{n}") for n in range(30)]
    statuses = post_in_parallel(wrong)
    assert sorted(statuses, key=str) == sorted([400] * 10 + [429] * 20, key=str), statuses
    assert LoginThrottle.objects.get(key="user:alice").attempts == 10
    assert post_in_parallel([({"username": "alice", "password": PASSWORD}, "203.0.113.9")] * 3) == [429] * 3
    assert not AuthToken.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_address_in_parallel_gets_exactly_its_limit():
    bodies = [({"username": f"user{n}", "password": "guess"}, "203.0.113.7") for n in range(25)]
    statuses = post_in_parallel(bodies)
    assert sorted(statuses, key=str) == sorted([400] * 12 + [429] * 13, key=str), statuses
    assert LoginThrottle.objects.get(key="addr:203.0.113.7").attempts == 12


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_right_passwords_in_parallel_all_log_in():
    User.objects.create_user(username="alice", password=PASSWORD)
    statuses = post_in_parallel([({"username": "alice", "password": PASSWORD}, "203.0.113.7")] * 8)
    assert statuses == [200] * 8
    assert AuthToken.objects.count() == 8
    assert set(LoginThrottle.objects.values_list("attempts", flat=True)) == {0}
