"""Log in, register, log out and the wallet page: the API's checks, shown
next to the fields; the session the other pages and the stream use."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from copytrading import ledger
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_register_logs_in_and_opens_the_wallet(client):
    answer = client.post("/register/", {"username": "newfollower", "password": "a-long-pass-phrase-9"})
    assert answer.status_code == 302 and answer["Location"] == "/me/wallet/"
    page = client.get("/me/wallet/")
    assert page.status_code == 200
    assert "Welcome, newfollower." in page.content.decode()
    assert "0.00 USDT" in page.content.decode()


def test_register_shows_each_refusal_next_to_its_field(client):
    UserFactory(username="taken")
    answer = client.post("/register/", {"username": "a b", "password": "x", "email": "nope"})
    html = answer.content.decode()
    assert answer.status_code == 400
    assert 'id="errors-username"' in html and 'id="errors-email"' in html
    answer = client.post("/register/", {"username": "taken", "password": "a-long-pass-phrase-9"})
    assert answer.status_code == 409
    assert "This username is taken." in answer.content.decode()
    answer = client.post("/register/", {"username": "fresh1", "password": "password"})
    assert answer.status_code == 400 and 'id="errors-password"' in answer.content.decode()
    assert not get_user_model().objects.filter(username="fresh1").exists()


def test_registrations_are_throttled_per_address_like_the_api(client, settings):
    settings.REGISTER_MAX_PER_ADDRESS = 1
    assert client.post("/register/", {"username": "first1", "password": "a-long-pass-phrase-9"}).status_code == 302
    client.post("/logout/")
    answer = client.post("/register/", {"username": "second2", "password": "a-long-pass-phrase-9"})
    assert answer.status_code == 429
    assert "Too many registrations" in answer.content.decode()


def test_invalid_registrations_count_against_the_address_too(client, settings):
    """As the API's throttle: every attempt counts, so a script cannot probe
    usernames or passwords without limit."""
    settings.REGISTER_MAX_PER_ADDRESS = 2
    for _ in range(2):
        assert client.post("/register/", {"username": "a b", "password": "x"}).status_code == 400
    answer = client.post("/register/", {"username": "valid3", "password": "a-long-pass-phrase-9"})
    assert answer.status_code == 429
    assert not get_user_model().objects.filter(username="valid3").exists()


def test_login_goes_back_where_it_was_asked_and_never_elsewhere(client):
    user = UserFactory()
    answer = client.post("/login/", {"username": user.username, "password": PASSWORD, "next": "/me/copies/"})
    assert answer["Location"] == "/me/copies/"
    client.post("/logout/")
    answer = client.post("/login/", {"username": user.username, "password": PASSWORD, "next": "https://evil.example/"})
    assert answer["Location"] == "/"


def test_a_wrong_password_and_the_lockout_are_said_on_the_form(client, settings):
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = 2
    user = UserFactory()
    answer = client.post("/login/", {"username": user.username, "password": "wrong"})
    assert answer.status_code == 400 and "Wrong username or password." in answer.content.decode()
    client.post("/login/", {"username": user.username, "password": "wrong"})
    answer = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert answer.status_code == 429
    assert "_auth_user_id" not in client.session


def test_logout_is_a_post(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/me/wallet/")["Location"].startswith("/login/?next=/me/wallet/")


def test_a_deposit_and_its_double_submit_count_once(client):
    user = UserFactory()
    client.force_login(user)
    form = {"amount": "1500.50", "idempotency_key": "k1"}
    assert client.post("/me/wallet/", form).status_code == 302
    assert client.post("/me/wallet/", form).status_code == 302
    assert ledger.main_account_for(user).balance == Decimal("1500.50")
    assert "1,500.50 USDT" in client.get("/me/wallet/").content.decode()


@pytest.mark.parametrize("amount", ["-5", "abc", "0", "1e9999", "99999999999999"])
def test_a_bad_deposit_is_refused_next_to_the_amount(client, amount):
    user = UserFactory()
    client.force_login(user)
    answer = client.post("/me/wallet/", {"amount": amount})
    assert answer.status_code == 400
    assert 'id="errors-amount"' in answer.content.decode()
    assert ledger.main_account_for(user).balance == 0


def test_pages_need_the_csrf_token(client):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    user = UserFactory()
    strict.force_login(user)
    assert strict.post("/me/wallet/", {"amount": "10"}).status_code == 403
    assert ledger.main_account_for(user).balance == 0
