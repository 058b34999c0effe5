"""PostgreSQL, requests in parallel: wrong passcodes get exactly the limit compared,
every other request is locked out, whatever the interleaving."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from copytrading.errors import DomainError
from copytrading.services import wallet_deposit
from followers.models import Subscription
from followers.services import subscription_create
from portfolios.models import PasscodeThrottle
from portfolios.services import portfolio_create
from tests.factories import UserFactory

D = Decimal
PASSCODE = "20260101"


def run_in_parallel(calls) -> list[str]:
    """Start every call at once (one thread and connection each); the error
    code each ended with, or "OK"."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = [""] * len(calls)

    def worker(i: int, call) -> None:
        try:
            barrier.wait(timeout=10)
            call()
            outcomes[i] = "OK"
        except DomainError as exc:
            outcomes[i] = exc.code
        except BaseException as exc:  # noqa: BLE001 - reported in the assertion below
            outcomes[i] = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


@pytest.fixture
def private(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PASSCODE_MAX_ATTEMPTS_PER_USER = 5
    settings.PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO = 8
    return portfolio_create(leader=UserFactory(), name="Secret", is_public=False, passcode=PASSCODE)


def attempt(user, portfolio, passcode, address=None):
    return lambda: subscription_create(
        follower=user,
        portfolio=portfolio,
        amount=D("100"),
        multiplier=D("0.5"),
        passcode=passcode,
        client_address=address,
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_user_guessing_in_parallel_gets_exactly_five_tries(private):
    assert connection.vendor == "postgresql"
    user = UserFactory()
    wallet_deposit(user=user, amount=D("1000"))
    outcomes = run_in_parallel([attempt(user, private, f"{n:08d}") for n in range(16)])
    assert sorted(outcomes) == sorted(["PASSCODE_INVALID"] * 5 + ["PASSCODE_LOCKED"] * 11), outcomes
    assert PasscodeThrottle.objects.get(scope="user", subject_id=user.pk).attempts == 5
    # Still locked for the right passcode; nothing was subscribed.
    assert run_in_parallel([attempt(user, private, PASSCODE)]) == ["PASSCODE_LOCKED"]
    assert not Subscription.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_users_guessing_in_parallel_slow_the_portfolio_never_lock_it(private):
    # Each first try is compared (8 slow the portfolio down, the other 6 are
    # still first tries); a second round by the same accounts is refused whole.
    users = [UserFactory() for _ in range(14)]
    outcomes = run_in_parallel([attempt(user, private, "99999999", f"10.9.0.{i}") for i, user in enumerate(users)])
    assert outcomes == ["PASSCODE_INVALID"] * 14, outcomes
    outcomes = run_in_parallel([attempt(user, private, "99999998", f"10.9.0.{i}") for i, user in enumerate(users)])
    assert outcomes == ["PASSCODE_LOCKED"] * 14, outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_account_on_a_slowed_portfolio_gets_one_try_in_parallel(private):
    for i in range(8):
        run_in_parallel([attempt(UserFactory(), private, "99999999", f"10.8.0.{i}")])
    user = UserFactory()
    outcomes = run_in_parallel([attempt(user, private, f"1111111{n}", f"10.7.0.{n}") for n in range(6)])
    assert sorted(outcomes) == ["PASSCODE_INVALID"] + ["PASSCODE_LOCKED"] * 5, outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_right_passcodes_in_parallel_all_subscribe(private):
    users = [UserFactory() for _ in range(6)]
    for user in users:
        wallet_deposit(user=user, amount=D("1000"))
    outcomes = run_in_parallel([attempt(user, private, PASSCODE) for user in users])
    assert outcomes == ["OK"] * 6
    assert Subscription.objects.filter(portfolio=private).count() == 6
    assert set(PasscodeThrottle.objects.values_list("attempts", flat=True)) == {0}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_creates_never_pass_the_per_leader_cap(settings):
    from portfolios.models import Portfolio

    settings.MAX_PORTFOLIOS_PER_LEADER = 5
    leader = UserFactory()
    outcomes = run_in_parallel([lambda n=n: portfolio_create(leader=leader, name=f"Book {n}") for n in range(9)])
    assert sorted(outcomes) == sorted(["OK"] * 5 + ["PORTFOLIO_LIMIT"] * 4), outcomes
    assert Portfolio.objects.filter(leader=leader).count() == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_creates_of_one_name_make_one_portfolio():
    from portfolios.models import Portfolio

    leader = UserFactory()
    outcomes = run_in_parallel(
        [lambda n=n: portfolio_create(leader=leader, name="Alpha" if n % 2 else "ALPHA") for n in range(4)]
    )
    assert sorted(outcomes) == ["NAME_TAKEN"] * 3 + ["OK"], outcomes
    assert Portfolio.objects.filter(leader=leader).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_keyed_subscribe_does_not_hold_the_passcode_rows_while_it_compares(monkeypatch):
    """With an Idempotency-Key the subscribe runs in one transaction; the
    passcode is checked before it, so while one request compares its passcode
    (slow by design) another follower's count is never queued behind its row
    locks: the portfolio's row can be locked at once (NOWAIT)."""
    from rest_framework.test import APIClient

    from portfolios import passcodes

    portfolio = portfolio_create(leader=UserFactory(), name="Secret", is_public=False, passcode=PASSCODE)
    attacker = UserFactory()
    wallet_deposit(user=attacker, amount=D("1000"))
    comparing, probed = threading.Event(), threading.Event()
    real = passcodes.check_password

    def slow_compare(raw, hashed):
        comparing.set()
        probed.wait(timeout=10)
        return real(raw, hashed)

    monkeypatch.setattr(passcodes, "check_password", slow_compare)
    answers = []

    def attack():
        client = APIClient()
        client.force_authenticate(attacker)
        body = {"portfolio": portfolio.pk, "amount": "100", "passcode": "11111111"}
        answers.append(client.post("/api/v1/subscriptions", body, format="json", HTTP_IDEMPOTENCY_KEY="k1"))
        connection.close()

    thread = threading.Thread(target=attack)
    thread.start()
    try:
        assert comparing.wait(timeout=10)
        with connection.cursor() as cursor:  # would raise "could not obtain lock" if it were held
            cursor.execute(
                "SELECT attempts FROM portfolios_passcodethrottle"
                " WHERE scope = %s AND subject_id = %s FOR UPDATE NOWAIT",
                [PasscodeThrottle.Scope.PORTFOLIO, portfolio.pk],
            )
            assert cursor.fetchone()[0] == 1  # the attempt is counted and committed
    finally:
        probed.set()
        thread.join(timeout=20)
    assert answers[0].status_code == 403 and answers[0].json()["code"] == "PASSCODE_INVALID"
