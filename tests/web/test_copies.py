"""My copies (/me/copies/): the API's figures for the same copy, and every
action through the service its API endpoint calls, with the refusals shown
next to their fields and nothing changed."""

import html as html_module
import re
from decimal import Decimal

import pytest
from django.test import Client

from copytrading import ledger
from copytrading.models import Position, PositionStatus
from copytrading.templatetags.web import money, pct, signed_money, signed_pct
from followers.models import SubscriptionStatus
from risk.models import RiskLimits
from tests.copytrading.world import ETH_PERP, mirrors_of, wallet
from tests.factories import UserFactory
from tests.followers.conftest import client_for, main_wallet, world  # noqa: F401 - the fixture

D = Decimal
HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def copy(world):  # noqa: F811 - the fixture imported above
    """A follower (5,000 in, 1,000 left in the main wallet, daily loss limits)
    whose copy mirrors the leader's long 2 ETH at 3200 (0.5x: 1 ETH), then
    ETH moves to 3150: an open loss of 50."""
    portfolio = world.leader()
    sub = world.subscribe(
        portfolio,
        deposit="6000",
        amount="5000",
        daily_loss_limit_realized=D("100"),
        daily_loss_limit_unrealized=D("80"),
    )
    world.trade(portfolio, ETH_PERP, "buy", "2")
    world.price(ETH_PERP, "3150")
    sub.refresh_from_db()
    return sub


def logged_in(client, user):
    client.force_login(user)
    return client


def text_of(html: str, css_class: str, after: str = "") -> str:
    """The text of the first element with ``css_class`` (after ``after``)."""
    start = html.index(after) if after else 0
    match = re.search(rf'class="[^"]*\b{re.escape(css_class)}\b[^"]*"[^>]*>([^<]*)<', html[start:])
    assert match, f".{css_class} not found"
    return html_module.unescape(match.group(1).strip())


def test_anonymous_is_sent_to_log_in(client):
    assert client.get("/me/copies/")["Location"].startswith("/login/?next=/me/copies/")
    assert client.post("/me/copies/1/pause/")["Location"].startswith("/login/")


def test_no_copy_yet_links_to_the_leaderboard(client):
    html = logged_in(client, UserFactory()).get("/me/copies/").content.decode()
    assert 'id="copies-empty"' in html and 'href="/"' in html
    assert "data-live-status" in html


def test_the_card_shows_the_apis_figures(client, copy):
    api = client_for(copy.follower).get(f"/api/v1/subscriptions/{copy.pk}").json()
    f = api["figures"]
    assert D(f["unrealized_pnl"]) == D("-50")  # the scene is what it says
    page = logged_in(client, copy.follower).get("/me/copies/")
    assert page.status_code == 200
    html = page.content.decode()
    card = f'data-subscription-id="{copy.pk}"'
    assert card in html
    assert text_of(html, "portfolio-name", card) == api["portfolio_name"]
    assert text_of(html, "equity", card) == money(f["equity"])
    assert text_of(html, "unrealized", card) == signed_money(f["unrealized_pnl"]) == "\u221250.00 USDT"
    assert text_of(html, "realized", card) == signed_money(f["realized_pnl"])
    assert text_of(html, "total", card) == signed_money(f["total_pnl"])
    assert text_of(html, "roi", card) == signed_pct(f["roi_pct"])
    assert text_of(html, "margin-level", card) == pct(f["margin_level_pct"])
    assert text_of(html, "loss-unrealized", card) == money(f["unrealized_loss"]) == "50.00 USDT"
    assert text_of(html, "headroom-unrealized", card) == money(f["daily_loss_headroom_unrealized"]) == "30.00 USDT"
    assert text_of(html, "limit-realized", card) == "100.00 USDT"
    assert text_of(html, "status", card) == "Active"
    (mirror,) = mirrors_of(copy)
    assert f'data-position-id="{mirror.pk}"' in html
    assert text_of(html, "pnl", f'data-position-id="{mirror.pk}"') == "\u221250.00 USDT"
    assert 'data-action="close-mirror"' in html
    for action in ("pause", "top-up", "withdraw", "settings", "unfollow"):
        assert f'data-action="{action}"' in html
    assert "Copied" in html  # the last executions


def test_pause_and_resume_answer_the_card(client, copy):
    c = logged_in(client, copy.follower)
    answer = c.post(f"/me/copies/{copy.pk}/pause/", **HTMX)
    html = answer.content.decode()
    assert answer.status_code == 200
    assert text_of(html, "status") == "Paused" and "Paused by you." in html
    assert 'data-action="resume"' in html
    copy.refresh_from_db()
    assert (copy.status, copy.pause_reason) == (SubscriptionStatus.PAUSED, "manual")
    answer = c.post(f"/me/copies/{copy.pk}/resume/", **HTMX)
    assert text_of(answer.content.decode(), "status") == "Active"
    copy.refresh_from_db()
    assert copy.status == SubscriptionStatus.ACTIVE
    # Without htmx: back to the list.
    assert c.post(f"/me/copies/{copy.pk}/pause/")["Location"] == "/me/copies/"


def test_a_top_up_moves_money_once_and_a_short_main_wallet_is_said_next_to_the_amount(client, copy):
    c = logged_in(client, copy.follower)
    form = c.get(f"/me/copies/{copy.pk}/top-up/", **HTMX).content.decode()
    assert 'id="id_amount"' in form and 'for="id_amount"' in form and "1,000.00 USDT" in form
    body = {"amount": "250", "idempotency_key": "top-up-1"}
    answer = c.post(f"/me/copies/{copy.pk}/top-up/", body, **HTMX)
    assert answer.status_code == 200
    assert answer["HX-Retarget"] == f"#copy-{copy.pk}" and "copies:done" in answer["HX-Trigger"]
    assert c.post(f"/me/copies/{copy.pk}/top-up/", body, **HTMX).status_code == 200  # a double submit
    assert main_wallet(copy.follower).balance == D("750")
    assert wallet(copy).balance == D("5250")

    answer = c.post(f"/me/copies/{copy.pk}/top-up/", {"amount": "5000", "idempotency_key": "k2"}, **HTMX)
    html = answer.content.decode()
    assert answer.status_code == 400
    assert text_of(html, "field-errors").startswith("") and 'id="errors-amount"' in html
    assert "Your main wallet has 750" in html and 'aria-invalid="true"' in html
    answer = c.post(f"/me/copies/{copy.pk}/top-up/", {"amount": "-3"}, **HTMX)
    assert answer.status_code == 400 and 'id="errors-amount"' in answer.content.decode()
    assert main_wallet(copy.follower).balance == D("750")
    assert wallet(copy).balance == D("5250")


def test_a_withdrawal_takes_only_free_money(client, copy):
    c = logged_in(client, copy.follower)
    free = wallet(copy).free
    answer = c.post(f"/me/copies/{copy.pk}/withdraw/", {"amount": "100", "idempotency_key": "w1"}, **HTMX)
    assert answer.status_code == 200
    assert main_wallet(copy.follower).balance == D("1100")
    answer = c.post(f"/me/copies/{copy.pk}/withdraw/", {"amount": str(free + 1)}, **HTMX)
    html = answer.content.decode()
    assert answer.status_code == 400
    assert 'id="errors-amount"' in html and "can be withdrawn now" in html
    assert main_wallet(copy.follower).balance == D("1100")
    # Without htmx the form is a page of its own, and a success goes back to the list.
    page = c.get(f"/me/copies/{copy.pk}/withdraw/")
    assert page.status_code == 200 and "<html" in page.content.decode()
    assert c.post(f"/me/copies/{copy.pk}/withdraw/", {"amount": "1"})["Location"] == "/me/copies/"


def test_settings_change_through_the_service_and_refusals_name_the_field(client, copy):
    c = logged_in(client, copy.follower)
    form = c.get(f"/me/copies/{copy.pk}/settings/", **HTMX).content.decode()
    assert 'id="id_multiplier"' in form and 'value="0.5"' in form and 'id="id_daily_loss_limit_realized"' in form
    values = dict(re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', form))
    values.update(sizing_model="progressive", copy_margin="true", copy_spot="true")
    values.pop("csrfmiddlewaretoken", None)

    answer = c.post(f"/me/copies/{copy.pk}/settings/", {**values, "multiplier": "0.25"}, **HTMX)
    assert answer.status_code == 200, re.findall(r"<li>[^<]*</li>", answer.content.decode())
    assert answer["HX-Retarget"] == f"#copy-{copy.pk}"
    copy.refresh_from_db()
    assert copy.multiplier == D("0.25")
    assert RiskLimits.objects.get(pk=copy.pk).daily_loss_limit_realized == D("100")

    answer = c.post(
        f"/me/copies/{copy.pk}/settings/", {**values, "multiplier": "0", "slippage_tolerance_pct": "500"}, **HTMX
    )
    html = answer.content.decode()
    assert answer.status_code == 400
    assert 'id="errors-multiplier"' in html and 'id="errors-slippage_tolerance_pct"' in html
    assert re.search(r'id="id_multiplier"[^>]*aria-invalid="true"', html)
    copy.refresh_from_db()
    assert copy.multiplier == D("0.25")

    # A limit emptied is no limit (the API's null).
    answer = c.post(f"/me/copies/{copy.pk}/settings/", {**values, "daily_loss_limit_realized": ""}, **HTMX)
    assert answer.status_code == 200
    assert RiskLimits.objects.get(pk=copy.pk).daily_loss_limit_realized is None

    # Whole-number settings are sent as the API's integers (its fields are strict).
    answer = c.post(
        f"/me/copies/{copy.pk}/settings/", {**values, "max_open_positions": "3", "leverage_override": "5"}, **HTMX
    )
    assert answer.status_code == 200, re.findall(r"<li>[^<]*</li>", answer.content.decode())
    copy.refresh_from_db()
    assert RiskLimits.objects.get(pk=copy.pk).max_open_positions == 3 and copy.leverage_override == 5
    form = c.get(f"/me/copies/{copy.pk}/settings/", **HTMX).content.decode()
    values = {**dict(re.findall(r'name="(\w+)"[^>]*value="([^"]*)"', form)), "copy_margin": "true", "copy_spot": "true"}
    values.pop("csrfmiddlewaretoken", None)
    answer = c.post(f"/me/copies/{copy.pk}/settings/", {**values, "multiplier": "0.3"}, **HTMX)  # prefilled again
    assert answer.status_code == 200, re.findall(r"<li>[^<]*</li>", answer.content.decode())


def test_closing_one_mirror(client, copy):
    c = logged_in(client, copy.follower)
    (mirror,) = mirrors_of(copy)
    answer = c.post(f"/me/copies/{copy.pk}/positions/{mirror.pk}/close/", **HTMX)
    assert answer.status_code == 200
    assert "No open mirrors." in answer.content.decode()
    mirror.refresh_from_db()
    assert mirror.status == PositionStatus.CLOSED
    again = c.post(f"/me/copies/{copy.pk}/positions/{mirror.pk}/close/", **HTMX)
    assert 400 <= again.status_code < 500 and 'id="errors-all"' in again.content.decode()
    assert Position.objects.get(pk=mirror.pk).realized_pnl == mirror.realized_pnl


def test_unfollow_says_what_happens_then_returns_the_money(client, copy):
    c = logged_in(client, copy.follower)
    api = client_for(copy.follower).get(f"/api/v1/subscriptions/{copy.pk}").json()
    dialog = c.get(f"/me/copies/{copy.pk}/unfollow/", **HTMX).content.decode()
    assert "1 open mirror will be closed at the market price" in dialog
    assert money(api["figures"]["equity"]) in dialog and "confirm-unfollow" in dialog
    assert main_wallet(copy.follower).balance == D("1000")

    answer = c.post(f"/me/copies/{copy.pk}/unfollow/", **HTMX)
    assert answer.status_code == 200 and answer["HX-Retarget"] == "#copies-list"
    html = answer.content.decode()
    copy.refresh_from_db()
    assert copy.status == SubscriptionStatus.ENDED
    returned = main_wallet(copy.follower).balance - D("1000")
    assert returned == D("4950")  # 5,000 less the 50 lost on the mirror (no spread)
    assert f"{money(returned)} went back to your main wallet" in html
    assert 'id="ended"' in html and f'data-subscription-id="{copy.pk}"' in html
    assert 'id="copies-empty"' in html
    assert ledger.ledger_check().ok
    # Again: nothing more moves.
    assert c.post(f"/me/copies/{copy.pk}/unfollow/", **HTMX).status_code == 200
    assert main_wallet(copy.follower).balance == D("5950")


ROUTES = [
    ("get", "/me/copies/{pk}/"),
    ("post", "/me/copies/{pk}/pause/"),
    ("post", "/me/copies/{pk}/resume/"),
    ("get", "/me/copies/{pk}/top-up/"),
    ("post", "/me/copies/{pk}/top-up/"),
    ("post", "/me/copies/{pk}/withdraw/"),
    ("post", "/me/copies/{pk}/settings/"),
    ("get", "/me/copies/{pk}/unfollow/"),
    ("post", "/me/copies/{pk}/unfollow/"),
    ("post", "/me/copies/{pk}/positions/{position}/close/"),
]


def test_another_users_copy_is_a_404_for_every_route(client, copy):
    c = logged_in(client, UserFactory())
    (mirror,) = mirrors_of(copy)
    for method, route in ROUTES:
        url = route.format(pk=copy.pk, position=mirror.pk)
        answer = getattr(c, method)(url, {"amount": "10"} if method == "post" else None, **HTMX)
        assert answer.status_code == 404, url
    copy.refresh_from_db()
    assert copy.status == SubscriptionStatus.ACTIVE and wallet(copy).balance == D("5000")


def test_actions_need_the_csrf_token(copy):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(copy.follower)
    assert strict.post(f"/me/copies/{copy.pk}/pause/", **HTMX).status_code == 403
    assert strict.post(f"/me/copies/{copy.pk}/unfollow/", **HTMX).status_code == 403
    copy.refresh_from_db()
    assert copy.status == SubscriptionStatus.ACTIVE


def test_the_list_fragment_and_one_card(client, copy):
    c = logged_in(client, copy.follower)
    listed = c.get("/me/copies/list/").content.decode()
    assert listed.lstrip().startswith('<div id="copies-list">') and f'id="copy-{copy.pk}"' in listed
    card = c.get(f"/me/copies/{copy.pk}/").content.decode()
    assert card.lstrip().startswith("<article") and "<html" not in card


def test_the_page_reads_in_a_constant_number_of_queries(client, copy, world):  # noqa: F811
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from copytrading.services import wallet_deposit

    c = logged_in(client, copy.follower)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert c.get("/me/copies/").status_code == 200
        return len(queries)

    one = count()
    wallet_deposit(user=copy.follower, amount=D("10000"))
    for _ in range(2):
        portfolio = world.leader()
        world.subscribe(portfolio, user=copy.follower, amount="5000")
        world.trade(portfolio, ETH_PERP, "buy", "2")
    html = c.get("/me/copies/").content.decode()
    assert html.count('data-action="close-mirror"') == 3
    assert count() == one
