"""API tokens: a new one per login, stored hashed, expiring, revocable one by
one or all at once, and dead after any password change (API, admin or shell)."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from copytrading.auth.models import AuthToken
from tests.factories import PASSWORD, StaffFactory, UserFactory, token_for

pytestmark = pytest.mark.django_db
User = get_user_model()
NEW_PASSWORD = "another-long-pass-99"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def login(username: str, password: str = PASSWORD):
    return APIClient().post("/api/v1/auth/token", {"username": username, "password": password}, format="json")


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def me_status(token: str) -> int:
    return client_with(token).get("/api/v1/me").status_code


def make_user(username: str = "alice"):
    user = User.objects.create_user(username=username, password=PASSWORD)
    return user


def test_each_login_returns_a_new_token_and_every_one_works():
    make_user()
    bodies = [login("alice").json() for _ in range(3)]
    tokens = [b["token"] for b in bodies]
    assert len(set(tokens)) == 3
    assert all(me_status(t) == 200 for t in tokens)
    assert AuthToken.objects.filter(user__username="alice").count() == 3


def test_the_raw_key_is_never_stored():
    make_user()
    key = login("alice").json()["token"]
    row = AuthToken.objects.get()
    stored = [str(getattr(row, f.attname)) for f in AuthToken._meta.concrete_fields]
    assert not any(key in value for value in stored)
    assert row.prefix == key[:8]


def test_a_token_expires_after_its_lifetime(settings):
    settings.AUTH_TOKEN_LIFETIME_SECONDS = 3600
    make_user()
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        body = login("alice").json()
    assert body["expires_at"].startswith((now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    with time_machine.travel(now + timedelta(seconds=3599), tick=False):
        assert me_status(body["token"]) == 200
    with time_machine.travel(now + timedelta(seconds=3600), tick=False):
        r = client_with(body["token"]).get("/api/v1/me")
        assert r.status_code == 401
        assert r.json()["code"] == "AUTHENTICATION_FAILED"
        assert r["WWW-Authenticate"] == "Token"


def test_logout_revokes_only_the_current_token():
    make_user()
    first, second = login("alice").json()["token"], login("alice").json()["token"]
    r = client_with(first).post("/api/v1/auth/logout")
    assert r.status_code == 204
    assert me_status(first) == 401
    assert me_status(second) == 200
    assert client_with(first).post("/api/v1/auth/logout").status_code == 401


def test_logout_all_revokes_every_token_of_the_user_only():
    make_user()
    make_user("bob")
    mine = [login("alice").json()["token"] for _ in range(3)]
    theirs = login("bob").json()["token"]
    r = client_with(mine[0]).post("/api/v1/auth/logout-all")
    assert r.status_code == 200
    assert r.json() == {"revoked": 3}
    assert [me_status(t) for t in mine] == [401, 401, 401]
    assert me_status(theirs) == 200


def test_logout_through_the_session_is_refused_with_a_code(client):
    user = StaffFactory()
    client.force_login(user)
    r = client.post("/api/v1/auth/logout")
    assert r.status_code == 400
    assert r.json()["code"] == "NOT_TOKEN_AUTHENTICATED"


def test_password_change_revokes_every_token_and_returns_a_new_one():
    make_user()
    old = [login("alice").json()["token"] for _ in range(2)]
    r = client_with(old[0]).post(
        "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )
    assert r.status_code == 200, r.content
    assert [me_status(t) for t in old] == [401, 401]
    assert me_status(r.json()["token"]) == 200
    assert login("alice").status_code == 400
    assert login("alice", NEW_PASSWORD).status_code == 200
    # the password change's token and the last login's; the old ones are gone
    assert AuthToken.objects.filter(user__username="alice", revoked_at__isnull=True).count() == 2


def test_password_change_with_a_wrong_old_password_changes_nothing():
    user = make_user()
    token = login("alice").json()["token"]
    r = client_with(token).post(
        "/api/v1/auth/password", {"old_password": "wrong-guess-1", "new_password": NEW_PASSWORD}, format="json"
    )
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["field"]) == ("WRONG_PASSWORD", "old_password")
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert me_status(token) == 200


def test_a_weak_new_password_is_refused():
    make_user()
    token = login("alice").json()["token"]
    r = client_with(token).post(
        "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "123"}, format="json"
    )
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "WEAK_PASSWORD", "new_password")
    assert me_status(token) == 200


def test_a_password_changed_in_the_admin_kills_the_users_tokens(admin_client):
    user = make_user()
    token = login("alice").json()["token"]
    r = admin_client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert r.status_code == 302, r.content
    assert me_status(token) == 401


def test_a_password_set_anywhere_else_kills_the_tokens_too():
    user = make_user()
    token = login("alice").json()["token"]
    user.set_password(NEW_PASSWORD)
    user.save(update_fields=["password"])
    assert me_status(token) == 401


def test_a_deactivated_users_token_is_refused():
    user = make_user()
    token = login("alice").json()["token"]
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert me_status(token) == 401


def test_graphql_refuses_a_revoked_token():
    make_user()
    token = login("alice").json()["token"]
    query = {"query": "{ mySubscriptions { id } }"}
    assert client_with(token).post("/graphql/", query, format="json").status_code == 200
    client_with(token).post("/api/v1/auth/logout")
    assert client_with(token).post("/graphql/", query, format="json").status_code == 401


def test_register_and_me_answer_their_typed_bodies(instruments):
    r = APIClient().post(
        "/api/v1/auth/register", {"username": "newbie", "password": PASSWORD, "email": "n@example.com"}, format="json"
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "username", "token", "expires_at"}
    me = client_with(body["token"]).get("/api/v1/me").json()
    assert set(me) == {"id", "username", "email", "is_staff", "main_wallet"}
    assert (me["id"], me["username"], me["email"], me["is_staff"]) == (body["id"], "newbie", "n@example.com", False)
    assert set(me["main_wallet"]) == {"id", "kind", "currency", "balance", "locked", "free"}


def test_a_login_drops_the_users_dead_tokens():
    user = make_user()
    stale = AuthToken.objects.get(
        pk=AuthToken.objects.create(
            user=user,
            key_hash="x" * 64,
            prefix="x",
            session_hash="",
            created_at=timezone.now(),
            expires_at=timezone.now() - timedelta(seconds=1),
        ).pk
    )
    login("alice")
    assert not AuthToken.objects.filter(pk=stale.pk).exists()
    assert AuthToken.objects.filter(user=user).count() == 1


def test_the_schema_types_register_token_and_me(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]

    def response_schema(path: str, method: str, status: str) -> dict:
        content = schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
        return components[content["$ref"].rsplit("/", 1)[1]]

    assert set(response_schema("/api/v1/auth/register", "post", "201")["properties"]) == {
        "id",
        "username",
        "token",
        "expires_at",
    }
    assert set(response_schema("/api/v1/auth/token", "post", "200")["properties"]) == {"token", "expires_at"}
    assert set(response_schema("/api/v1/me", "get", "200")["properties"]) == {
        "id",
        "username",
        "email",
        "is_staff",
        "main_wallet",
    }
    assert "/api/v1/auth/logout-all" in schema["paths"]


def test_staff_revoke_tokens_from_the_admin(admin_client):
    user = UserFactory()
    token = token_for(user)
    row = AuthToken.objects.get(user=user)
    r = admin_client.post(
        "/admin/copytrading/authtoken/", {"action": "revoke", "_selected_action": [row.pk]}, follow=True
    )
    assert r.status_code == 200
    assert me_status(token) == 401
