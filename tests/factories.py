"""factory-boy factories shared by the test suites. Keep them small: money is
moved through the services (deposit, fund, subscribe), never by writing rows."""

from functools import cache

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

PASSWORD = "s3cret-pass-word"


@cache
def _password_hash() -> str:
    # Hashing is deliberately slow; one hash shared by every test user keeps
    # suites that create hundreds of users fast while login still works.
    return make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.LazyFunction(_password_hash)


class StaffFactory(UserFactory):
    is_staff = True


def token_for(user) -> str:
    """A fresh API token (the raw key) for ``user``, made by the auth service."""
    from copytrading.auth.services import auth_token_create

    return auth_token_create(user=user)[1]
