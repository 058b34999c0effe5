"""The leader's money page: the API's earnings figures, withdrawals and their
CSV, the webhook secret, closing; each action through the API's service, each
refusal next to its field, nothing of another leader's."""

import csv
import io
import time
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework.test import APIClient

from copytrading import ledger
from copytrading.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_compute
from fees.models import LeaderWithdrawal
from fees.serializers import EarningsSerializer
from fees.services import fees_settle, leader_profit_return
from portfolios.models import Portfolio, PortfolioStatus
from tests.factories import UserFactory
from tests.fees.conftest import FeeWorld, accrue

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def earned(settings, instruments, django_capture_on_commit_callbacks) -> Portfolio:
    """A portfolio whose leader has 9.00 settled: one follower's profitable
    copy paid a 15.00 fee (15 % of 100.00), the platform kept 40 %."""
    settings.PAPER_SPREAD_BPS = D("0")
    world = FeeWorld(django_capture_on_commit_callbacks)
    portfolio = world.leader()
    sub = world.follower(portfolio)
    world.round_trip(portfolio, "3200", "3400")
    accrue(sub)
    fees_settle()
    return portfolio


@pytest.fixture
def leader(client, earned) -> Client:
    client.force_login(earned.leader)
    return client


def url(portfolio: Portfolio, action: str = "") -> str:
    return f"/me/portfolios/{portfolio.pk}/earnings/{action}"


def api_for(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def signed_post(portfolio_id: int, secret: str):
    body = b"{}"
    timestamp = str(int(time.time()))
    headers = {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature_compute(secret=secret, timestamp=timestamp, body=body),
    }
    return APIClient().post(
        f"/api/v1/webhooks/signals/{portfolio_id}", body, content_type="application/json", headers=headers
    )


# --- earnings -----------------------------------------------------------------------


def test_the_page_shows_the_apis_earnings_for_each_period(leader, earned):
    api = api_for(earned.leader).get(f"/api/v1/portfolios/{earned.pk}/earnings").json()
    assert api["total_earned"] == "9.00000000"
    assert api_for(earned.leader).get(f"/api/v1/fees/earnings?portfolio={earned.pk}").json() == api
    for period in ("day", "week", "month"):
        page = leader.get(url(earned), {"period": period})
        assert page.status_code == 200
        # The very figures the API answers, from the same selector.
        assert EarningsSerializer(page.context["earnings"]).data == api
        html = page.content.decode()
        assert '<dd id="earnings-total">9.00 USDT</dd>' in html
        assert '<dd id="earnings-available">9.00 USDT</dd>' in html
        assert '<div id="earnings-chart" data-period="' + period + '"><svg' in html
        (row,) = api[f"by_{period}"]
        assert row["earned"] == "9.00000000"
        assert f'data-period-start="{row["period"]}"' in html
        assert f'data-period="{period}" aria-current="true">' in html
        # Every period of the window is a bar, the ones without fees at zero.
        assert len(page.context["bars"]) == {"day": 91, "week": 27, "month": 1}[period]
        assert [b for b in page.context["bars"] if b[1]] == [(b[0], D("9")) for b in page.context["bars"][-1:]]
        assert html.count("<rect ") == 1
    # The fee model in words.
    assert "15.00 %" in html and "The platform keeps 40.00 %" in html


def test_a_tab_through_htmx_answers_the_earnings_card_only(leader, earned):
    page = leader.get(url(earned), {"period": "week"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="earnings")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.startswith('<section class="card" id="earnings"') and "<html" not in html
    assert 'data-period="week" aria-current="true"' in html and "<svg" in html
    # An unknown period is the default one, not an error.
    assert leader.get(url(earned), {"period": "year"}).context["period"] == "day"


def test_a_portfolio_without_earnings_shows_zeros_and_an_empty_chart(client, instruments):
    world_leader = UserFactory()
    ledger.main_account_for(world_leader)
    from portfolios.services import portfolio_create

    portfolio = portfolio_create(leader=world_leader, name="Quiet book", profit_share_pct=D("10"), mode="margin")
    client.force_login(world_leader)
    page = client.get(url(portfolio))
    html = page.content.decode()
    assert '<dd id="earnings-total">0.00 USDT</dd>' in html
    assert len(page.context["bars"]) == 91 and not any(value for _, value in page.context["bars"])
    assert 'id="earnings-none"' in html and 'id="no-withdrawals"' in html
    assert '<div id="earnings-chart" data-period="day"><svg' in html and "no data yet" in html


# --- withdrawals --------------------------------------------------------------------


def test_a_withdrawal_moves_the_profit_to_the_wallet_once(leader, earned):
    wallet = ledger.main_account_for(earned.leader)
    before = wallet.balance
    form = {"amount": "5.559", "idempotency_key": "page-key-1"}
    answer = leader.post(url(earned, "withdraw/"), form)
    assert (answer.status_code, answer["Location"]) == (302, url(earned))
    assert leader.post(url(earned, "withdraw/"), form).status_code == 302  # a double submit
    (withdrawal,) = LeaderWithdrawal.objects.filter(portfolio_id=earned.pk)
    assert (withdrawal.amount, withdrawal.requested_amount) == (D("5.55"), D("5.559"))
    wallet.refresh_from_db()
    assert wallet.balance - before == D("5.55")
    html = leader.get(url(earned)).content.decode()
    assert "5.55 USDT moved to your wallet." in html
    assert f'data-withdrawal-id="{withdrawal.pk}"' in html
    assert '<dd id="earnings-available">3.45 USDT</dd>' in html


def test_an_empty_amount_withdraws_everything_available(leader, earned):
    assert leader.post(url(earned, "withdraw/"), {"amount": "", "idempotency_key": "all"}).status_code == 302
    assert LeaderWithdrawal.objects.get(portfolio_id=earned.pk).amount == D("9.00")


@pytest.mark.parametrize(
    ("amount", "status", "message"),
    [
        ("0.5", 400, "at least 1.00"),
        ("100", 400, "The profit account has 9.00000000 available."),
        ("abc", 400, "A valid number is required."),
        ("-1", 400, "greater than or equal to 0"),
    ],
)
def test_a_refused_withdrawal_says_why_next_to_the_amount(leader, earned, amount, status, message):
    answer = leader.post(url(earned, "withdraw/"), {"amount": amount, "idempotency_key": f"k-{amount}"})
    html = answer.content.decode()
    assert answer.status_code == status
    errors = html[html.index('id="errors-amount"') :]
    assert message in errors[: errors.index("</ul>")]
    assert 'aria-describedby="errors-amount" aria-invalid="true"' in html
    assert f'value="{amount}"' in html
    assert not LeaderWithdrawal.objects.exists()


def test_nothing_earned_nothing_to_withdraw(client, instruments):
    from portfolios.services import portfolio_create

    user = UserFactory()
    portfolio = portfolio_create(leader=user, name="New book", profit_share_pct=D("10"), mode="margin")
    client.force_login(user)
    answer = client.post(url(portfolio, "withdraw/"), {"amount": "5"})
    assert answer.status_code == 400
    assert "Nothing has been earned on this portfolio yet." in answer.content.decode()
    assert not LeaderWithdrawal.objects.exists()


def test_an_archived_portfolios_profit_was_returned_and_cannot_be_withdrawn(leader, earned):
    # What archiving does to the profit account (portfolios.lifecycle): all of it to the wallet, closed.
    leader_profit_return(portfolio_id=earned.pk)
    answer = leader.post(url(earned, "withdraw/"), {"amount": "2", "idempotency_key": "late"})
    html = answer.content.decode()
    assert answer.status_code == 409
    assert 'id="errors-portfolio"' in html and "This portfolio is archived" in html
    # The return itself is listed, as in the API.
    (returned,) = LeaderWithdrawal.objects.filter(portfolio_id=earned.pk)
    assert returned.amount == D("9") and f'data-withdrawal-id="{returned.pk}"' in html


def test_the_csv_is_the_apis_csv(leader, earned):
    for n, amount in enumerate(("1.25", "2.5")):
        leader.post(url(earned, "withdraw/"), {"amount": amount, "idempotency_key": f"csv-{n}"})
    page = leader.get(url(earned, "withdrawals.csv"))
    api = api_for(earned.leader).get(f"/api/v1/portfolios/{earned.pk}/withdrawals.csv")
    assert page.status_code == api.status_code == 200
    assert page["Content-Type"] == "text/csv"
    assert page["Content-Disposition"] == api["Content-Disposition"]
    body = b"".join(page.streaming_content)
    assert body == b"".join(api.streaming_content)
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert [r[3] for r in rows[1:]] == ["2.50000000", "1.25000000"]
    link = f'href="/me/portfolios/{earned.pk}/earnings/withdrawals.csv" id="withdrawals-csv"'
    assert link in leader.get(url(earned)).content.decode()


# --- the webhook secret --------------------------------------------------------------


def test_rotating_shows_the_new_secret_once_and_the_old_one_stops_verifying(leader, earned):
    answer = leader.post(url(earned, "webhook-secret/"), HTTP_HX_REQUEST="true")
    assert answer.status_code == 200 and answer["Cache-Control"] == "no-store"
    first = Portfolio.objects.get(pk=earned.pk).webhook_secret
    assert first.startswith("whsec_") and f'value="{first}"' in answer.content.decode()
    assert "X-Signature-Timestamp" in answer.content.decode()
    assert answer.content.decode().startswith('<section class="card" id="webhook"')
    assert ">Rotate the secret</button>" in answer.content.decode()
    assert signed_post(earned.pk, first).status_code == 400  # signed right: the empty body is what is refused

    second = leader.post(url(earned, "webhook-secret/"), HTTP_HX_REQUEST="true")
    secret = Portfolio.objects.get(pk=earned.pk).webhook_secret
    assert secret != first and f'value="{secret}"' in second.content.decode()
    old = signed_post(earned.pk, first)
    assert (old.status_code, old.json()["code"]) == (401, "INVALID_SIGNATURE")
    assert signed_post(earned.pk, secret).status_code == 400
    # Shown once: the page itself never holds it.
    assert secret not in leader.get(url(earned)).content.decode()


def test_rotating_without_htmx_shows_the_secret_in_the_page(leader, earned):
    answer = leader.post(url(earned, "webhook-secret/"))
    secret = Portfolio.objects.get(pk=earned.pk).webhook_secret
    assert answer.status_code == 200 and f'value="{secret}"' in answer.content.decode()
    assert "<html" in answer.content.decode()


# --- closing -------------------------------------------------------------------------


def test_closing_starts_the_wind_down_through_the_service(leader, earned):
    html = leader.get(url(earned)).content.decode()
    assert 'id="close-portfolio"' in html and 'data-open="close-dialog"' in html
    assert "closed at market" in html
    answer = leader.post(url(earned, "close/"), {"reason": "  moving   on "})
    assert (answer.status_code, answer["Location"]) == (302, url(earned))
    portfolio = Portfolio.objects.get(pk=earned.pk)
    assert (portfolio.status, portfolio.close_reason, portfolio.closed_by_id) == (
        PortfolioStatus.CLOSING,
        "moving on",
        earned.leader_id,
    )
    html = leader.get(url(earned)).content.decode()
    assert "This portfolio is closing" in html and 'id="close-portfolio"' not in html
    # A second close changes nothing, as in the API.
    assert leader.post(url(earned, "close/"), {"reason": "again"}).status_code == 302
    assert Portfolio.objects.get(pk=earned.pk).close_reason == "moving on"


def test_an_overlong_reason_is_refused_next_to_the_field(leader, earned):
    answer = leader.post(url(earned, "close/"), {"reason": "x" * 501})
    html = answer.content.decode()
    assert answer.status_code == 400
    assert 'id="errors-reason"' in html and "no more than 500 characters" in html
    assert '<dialog id="close-dialog" aria-labelledby="close-dialog-title" open>' in html
    assert Portfolio.objects.get(pk=earned.pk).status == PortfolioStatus.ACTIVE


# --- who may --------------------------------------------------------------------------

ROUTES = [
    ("get", ""),
    ("get", "withdrawals.csv"),
    ("post", "withdraw/"),
    ("post", "webhook-secret/"),
    ("post", "close/"),
]


def test_another_leaders_portfolio_is_not_found_everywhere(client, earned):
    client.force_login(UserFactory())
    for method, action in ROUTES:
        answer = getattr(client, method)(url(earned, action), {"amount": "5"} if method == "post" else None)
        assert answer.status_code == 404, action
    portfolio = Portfolio.objects.get(pk=earned.pk)
    assert (portfolio.status, portfolio.webhook_secret) == (PortfolioStatus.ACTIVE, "")
    assert not LeaderWithdrawal.objects.exists()


def test_anonymous_is_sent_to_log_in(client, earned):
    for method, action in ROUTES:
        answer = getattr(client, method)(url(earned, action))
        assert answer.status_code == 302 and answer["Location"].startswith("/login/?next="), action
    assert Portfolio.objects.get(pk=earned.pk).status == PortfolioStatus.ACTIVE


def test_every_write_needs_the_csrf_token(earned):
    client = Client(enforce_csrf_checks=True)
    client.force_login(earned.leader)
    for action in ("withdraw/", "webhook-secret/", "close/"):
        assert client.post(url(earned, action), {"amount": "5"}).status_code == 403, action
    portfolio = Portfolio.objects.get(pk=earned.pk)
    assert (portfolio.status, portfolio.webhook_secret) == (PortfolioStatus.ACTIVE, "")
    assert not LeaderWithdrawal.objects.exists()
    assert client.get(url(earned)).status_code == 200
