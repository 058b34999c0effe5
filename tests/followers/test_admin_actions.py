"""Staff pause, resume and unfollow copies from the back office through the
same services as the follower's API."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.test import Client

from copytrading.ledger import ledger_check
from followers.models import Subscription
from tests.copytrading.world import ETH_PERP, mirrors_of, wallet
from tests.followers.conftest import main_wallet

D = Decimal
CHANGELIST = "/admin/followers/subscription/"


def staff_client() -> Client:
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "s3cret-pass-word")
    client = Client()
    client.force_login(user)
    return client


def act(client: Client, action: str, *subs) -> None:
    r = client.post(CHANGELIST, {"action": action, "_selected_action": [s.pk for s in subs]})
    assert r.status_code == 302, r.content[:500]


def test_staff_pause_resume_and_unfollow_copies(world):
    portfolio = world.leader()
    user = world.person(deposit="5000")
    sub = world.subscribe(portfolio, user=user)
    other = world.subscribe(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    client = staff_client()

    act(client, "pause_selected", sub, other)
    assert set(Subscription.objects.values_list("status", "pause_reason")) == {("paused", "staff")}
    act(client, "resume_selected", other)
    other.refresh_from_db()
    assert (other.status, other.pause_reason) == ("active", "")

    world.price(ETH_PERP, "3250")
    act(client, "unfollow_selected", sub)
    sub.refresh_from_db()
    assert (sub.status, sub.end_reason) == ("ended", "ended by staff (ops)")
    assert [m.status for m in mirrors_of(sub)] == ["closed"]
    assert (wallet(sub).balance, wallet(sub).is_closed) == (0, True)
    assert main_wallet(user).balance == D("5050")
    assert ledger_check().ok
