"""A trading world for the lifecycle tests: the leader trades through the
portfolio services, mirrors come from the real propagation engine (eager
Celery, dispatched on commit), and followers act through the API."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from copytrading.models import Account
from copytrading.services import wallet_deposit
from followers.services import subscription_create
from tests.copytrading.world import World
from tests.factories import UserFactory

D = Decimal


class FollowerWorld(World):
    def person(self, *, deposit: str = "0"):
        user = UserFactory()
        if D(deposit):
            wallet_deposit(user=user, amount=D(deposit))
        return user

    def subscribe(self, portfolio, *, user=None, deposit: str = "5000", amount: str = "5000", **settings):
        user = user or self.person(deposit=deposit)
        if "template" not in settings and "sizing_model" not in settings:
            settings.setdefault("multiplier", D("0.5"))
        return subscription_create(follower=user, portfolio=portfolio, amount=D(amount), **settings)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def main_wallet(user) -> Account:
    return Account.objects.get(kind="MAIN", user=user)


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return FollowerWorld(instruments, django_capture_on_commit_callbacks)
