"""Private portfolios: the passcode gate on subscribe, its throttle and lockout."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from copytrading.errors import DomainError
from copytrading.services import wallet_deposit
from followers.models import Subscription
from followers.services import subscription_create
from portfolios.models import PasscodeThrottle
from portfolios.passcodes import Counter, Limits, attempt_give_back, attempt_take
from portfolios.services import portfolio_create
from tests.factories import UserFactory

D = Decimal
PASSCODE = "20260101"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_attempts=3, window=timedelta(minutes=15), lockout=timedelta(minutes=15))


# --- the pure counting rule ------------------------------------------------------


def test_the_attempt_that_reaches_the_limit_is_compared_the_next_is_refused():
    c = Counter(0, None, None)
    for n in (1, 2):
        c = attempt_take(c, now=T0, limits=LIMITS)
        assert (c.attempts, c.locked_until) == (n, None)
    c = attempt_take(c, now=T0, limits=LIMITS)
    assert (c.attempts, c.locked_until) == (3, T0 + LIMITS.lockout)
    assert attempt_take(c, now=T0 + timedelta(minutes=14, seconds=59), limits=LIMITS) == T0 + LIMITS.lockout
    # After the lockout the count starts again.
    after = attempt_take(c, now=T0 + LIMITS.lockout, limits=LIMITS)
    assert (after.attempts, after.locked_until) == (1, None)


def test_old_failures_leave_the_window():
    c = Counter(2, T0, None)
    assert attempt_take(c, now=T0 + LIMITS.window, limits=LIMITS) == Counter(1, T0 + LIMITS.window, None)
    assert attempt_take(c, now=T0 + LIMITS.window - timedelta(seconds=1), limits=LIMITS).attempts == 3


def test_a_right_passcode_gives_its_attempt_back_and_lifts_its_own_lock():
    c = Counter(3, T0, T0 + LIMITS.lockout)  # the third attempt was the right one
    assert attempt_give_back(c, limits=LIMITS) == Counter(2, T0, None)
    assert attempt_give_back(Counter(0, None, None), limits=LIMITS) == Counter(0, None, None)


# --- the gate on subscribe ----------------------------------------------------------


@pytest.fixture
def private(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PASSCODE_MAX_ATTEMPTS_PER_USER = 5
    settings.PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO = 20
    settings.PASSCODE_LOCKOUT_SECONDS = 900
    settings.PASSCODE_WINDOW_SECONDS = 900
    return portfolio_create(leader=UserFactory(), name="Secret", is_public=False, passcode=PASSCODE)


def funded_user(amount: str = "1000"):
    user = UserFactory()
    wallet_deposit(user=user, amount=D(amount))
    return user


def subscribe(user, portfolio, passcode, address=None):
    return subscription_create(
        follower=user,
        portfolio=portfolio,
        amount=D("100"),
        multiplier=D("0.5"),
        passcode=passcode,
        client_address=address,
    )


def code_of(call) -> str:
    with pytest.raises(DomainError) as info:
        call()
    return info.value.code


def test_the_right_passcode_subscribes_and_costs_no_attempt(private):
    user = funded_user()
    assert code_of(lambda: subscribe(user, private, None)) == "PASSCODE_REQUIRED"
    sub = subscribe(user, private, PASSCODE)
    assert sub.portfolio_id == private.pk
    assert set(PasscodeThrottle.objects.values_list("attempts", flat=True)) == {0}


def test_five_wrong_passcodes_lock_the_user_out(private):
    user = funded_user()
    with time_machine.travel(T0, tick=False):
        codes = [code_of(lambda n=n: subscribe(user, private, f"0000000{n}")) for n in range(7)]
        assert codes == ["PASSCODE_INVALID"] * 5 + ["PASSCODE_LOCKED"] * 2
        # Locked means locked: even the right passcode is not compared.
        with pytest.raises(DomainError) as info:
            subscribe(user, private, PASSCODE)
        assert (info.value.code, info.value.status, info.value.retry_after) == ("PASSCODE_LOCKED", 429, 900)
    with time_machine.travel(T0 + timedelta(seconds=899), tick=False):
        assert code_of(lambda: subscribe(user, private, PASSCODE)) == "PASSCODE_LOCKED"
    with time_machine.travel(T0 + timedelta(seconds=900), tick=False):
        assert subscribe(user, private, PASSCODE).follower_id == user.pk
    assert Subscription.objects.filter(follower=user).count() == 1


def test_the_user_lock_covers_every_private_portfolio(private):
    other = portfolio_create(leader=UserFactory(), name="Other secret", is_public=False, passcode="11112222")
    user = funded_user()
    for _ in range(5):
        assert code_of(lambda: subscribe(user, private, "99999999")) == "PASSCODE_INVALID"
    assert code_of(lambda: subscribe(user, other, "11112222")) == "PASSCODE_LOCKED"


def test_twenty_accounts_guessing_do_not_lock_out_a_follower_who_knows_the_code(private):
    # docs/decisions.md §19 let 20 throwaway accounts lock a portfolio for 15
    # minutes; now they only slow it down, and only for themselves.
    outcomes = []
    with time_machine.travel(T0, tick=False):
        for i in range(20):
            guesser = funded_user()
            for n in range(5):
                outcomes.append(
                    code_of(lambda g=guesser, i=i, n=n: subscribe(g, private, f"9{i:05}{n:02}", f"10.0.0.{i}"))
                )
        compared = outcomes.count("PASSCODE_INVALID")
        # 20 wrong attempts slow the portfolio: from then on each account gets
        # one try and each address two; the rest is refused without comparing.
        assert compared == 20 + 16 and outcomes.count("PASSCODE_LOCKED") == 100 - compared
        follower = funded_user()
        assert subscribe(follower, private, PASSCODE, "192.0.2.7").follower_id == follower.pk


def test_a_slowed_portfolio_refuses_repeat_tries_with_retry_after_then_recovers(private, settings):
    settings.PASSCODE_MAX_ATTEMPTS_PER_PORTFOLIO = 4
    guessers = [funded_user() for _ in range(4)]
    with time_machine.travel(T0, tick=False):
        for i, user in enumerate(guessers):
            assert code_of(lambda u=user, i=i: subscribe(u, private, "99999999", f"10.0.1.{i}")) == "PASSCODE_INVALID"
    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        with pytest.raises(DomainError) as info:
            subscribe(guessers[0], private, "99999998", "10.0.1.0")
        assert (info.value.code, info.value.status, info.value.retry_after) == ("PASSCODE_LOCKED", 429, 840)
        # A second account from an address that already tried twice waits too.
        assert code_of(lambda: subscribe(funded_user(), private, "99999997", "10.0.1.1")) == "PASSCODE_INVALID"
        assert code_of(lambda: subscribe(funded_user(), private, PASSCODE, "10.0.1.1")) == "PASSCODE_LOCKED"
        # Anyone else's first try is compared: wrong is 403, right gets in.
        assert code_of(lambda: subscribe(funded_user(), private, "99999996", "10.0.2.1")) == "PASSCODE_INVALID"
        assert subscribe(funded_user(), private, PASSCODE, "10.0.2.2").portfolio_id == private.pk
    with time_machine.travel(T0 + timedelta(seconds=900), tick=False):
        # A new window: the portfolio is at full speed again.
        assert code_of(lambda: subscribe(guessers[0], private, "99999995", "10.0.1.0")) == "PASSCODE_INVALID"
        assert code_of(lambda: subscribe(guessers[0], private, "99999994", "10.0.1.0")) == "PASSCODE_INVALID"


def test_wrong_attempts_are_counted_per_client_address(private, settings):
    settings.PASSCODE_MAX_ATTEMPTS_PER_ADDRESS = 3
    for _ in range(3):
        assert code_of(lambda: subscribe(funded_user(), private, "99999999", "203.0.113.5")) == "PASSCODE_INVALID"
    # A fresh account does not help from the same address (the right code waits too)...
    assert code_of(lambda: subscribe(funded_user(), private, PASSCODE, "203.0.113.5")) == "PASSCODE_LOCKED"
    # ... and an IPv6 host counts as its /64.
    for n in range(3):
        address = f"2001:db8:1:2::{n + 1}"
        assert code_of(lambda a=address: subscribe(funded_user(), private, "99999999", a)) == "PASSCODE_INVALID"
    assert code_of(lambda: subscribe(funded_user(), private, "99999999", "2001:db8:1:2:ffff::9")) == "PASSCODE_LOCKED"
    # Elsewhere, nothing changed.
    assert subscribe(funded_user(), private, PASSCODE, "198.51.100.1").portfolio_id == private.pk


def test_the_api_counts_the_client_address(api, private, settings):
    settings.PASSCODE_MAX_ATTEMPTS_PER_ADDRESS = 2
    body = {"portfolio": private.pk, "amount": "100", "multiplier": "0.5", "passcode": "12341234"}
    for _ in range(2):
        api.force_authenticate(funded_user())
        r = api.post("/api/v1/subscriptions", body, format="json", REMOTE_ADDR="203.0.113.9")
        assert (r.status_code, r.json()["code"]) == (403, "PASSCODE_INVALID")
    api.force_authenticate(funded_user())
    r = api.post("/api/v1/subscriptions", {**body, "passcode": PASSCODE}, format="json", REMOTE_ADDR="203.0.113.9")
    assert (r.status_code, r.json()["code"]) == (429, "PASSCODE_LOCKED") and int(r["Retry-After"]) > 0
    r = api.post("/api/v1/subscriptions", {**body, "passcode": PASSCODE}, format="json", REMOTE_ADDR="203.0.113.10")
    assert r.status_code == 201, r.content


def test_a_refused_subscribe_after_the_right_passcode_costs_nothing(private):
    poor = funded_user("10")  # the passcode is right, the balance is not enough
    assert code_of(lambda: subscribe(poor, private, PASSCODE)) == "INSUFFICIENT_FUNDS"
    assert set(PasscodeThrottle.objects.values_list("attempts", flat=True)) == {0}


def test_the_leader_and_public_portfolios_need_no_passcode(private):
    public = portfolio_create(leader=UserFactory(), name="Open")
    assert subscribe(funded_user(), public, None).portfolio_id == public.pk
    assert not PasscodeThrottle.objects.exists()


def test_the_api_answers_403_then_429_with_retry_after(api, private):
    user = funded_user()
    api.force_authenticate(user)
    body = {"portfolio": private.pk, "amount": "100", "multiplier": "0.5"}
    r = api.post("/api/v1/subscriptions", body, format="json")
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (403, "PASSCODE_REQUIRED", "passcode")
    for _ in range(5):
        r = api.post("/api/v1/subscriptions", {**body, "passcode": "12341234"}, format="json")
        assert (r.status_code, r.json()["code"]) == (403, "PASSCODE_INVALID")
    r = api.post("/api/v1/subscriptions", {**body, "passcode": PASSCODE}, format="json")
    assert (r.status_code, r.json()["code"]) == (429, "PASSCODE_LOCKED")
    assert 0 < int(r["Retry-After"]) <= 900
    assert r.json()["retry_after"] == int(r["Retry-After"])
    assert not Subscription.objects.filter(follower=user).exists()


def test_the_api_subscribes_with_the_right_passcode(api, private):
    api.force_authenticate(funded_user())
    body = {"portfolio": private.pk, "amount": "100", "multiplier": "0.5", "passcode": PASSCODE}
    r = api.post("/api/v1/subscriptions", body, format="json")
    assert r.status_code == 201, r.content
    assert "passcode" not in r.json()
