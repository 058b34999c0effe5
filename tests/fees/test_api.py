"""Fee endpoints: leader earnings and withdrawals (+ CSV), follower fee stats,
caps; each one only for its owner."""

import csv
import io

import pytest

from fees.models import FeeGroup, LeaderWithdrawal
from fees.services import fees_settle, leader_group_assign
from tests.factories import UserFactory
from tests.fees.conftest import D, accrue

pytestmark = pytest.mark.django_db


@pytest.fixture
def earned(fee_world):
    """A portfolio whose leader has 9.00 settled, from one follower's 15.00 fee."""
    portfolio = fee_world.leader()
    sub = fee_world.follower(portfolio)
    fee_world.round_trip(portfolio, "3200", "3400")
    accrue(sub)
    fees_settle()
    return portfolio, sub


def as_user(api, user):
    api.force_authenticate(user)
    return api


def test_leader_sees_the_earnings_of_their_portfolio(api, earned):
    portfolio, sub = earned
    body = as_user(api, portfolio.leader).get(f"/api/v1/portfolios/{portfolio.pk}/earnings").json()
    assert body["total_earned"] == "9.00000000"
    assert (body["settled"], body["pending"], body["available"]) == ("9.00000000", "0.00000000", "9.00000000")
    assert body["by_follower"] == [
        {
            "subscription_id": sub.pk,
            "follower": sub.follower.username,
            "count": 1,
            "earned": "9.00000000",
            "fees": "15.00000000",
        }
    ]
    assert body["by_month"][0]["earned"] == "9.00000000"
    assert [r["earned"] for r in body["by_week"]] == ["9.00000000"]
    assert api.get("/api/v1/fees/earnings").json()["total_earned"] == "9.00000000"
    assert api.get(f"/api/v1/fees/earnings?portfolio={portfolio.pk}").json()["accruals"] == 1


def test_another_user_cannot_see_or_touch_a_portfolios_earnings(api, earned):
    portfolio, sub = earned
    intruder = as_user(api, sub.follower)
    for path in ("earnings", "withdrawals", "withdrawals.csv"):
        response = intruder.get(f"/api/v1/portfolios/{portfolio.pk}/{path}")
        assert response.status_code == 404, path
    response = intruder.post(f"/api/v1/portfolios/{portfolio.pk}/withdrawals", {"amount": "5"}, format="json")
    assert response.status_code == 404
    assert not LeaderWithdrawal.objects.exists()
    # The leader-wide view names a foreign portfolio not found too (it answered zeros).
    foreign = intruder.get(f"/api/v1/fees/earnings?portfolio={portfolio.pk}")
    assert (foreign.status_code, foreign.json()["code"], foreign.json()["field"]) == (404, "NOT_FOUND", "portfolio")


def test_withdrawals_create_list_and_replay(api, earned):
    portfolio, _ = earned
    client = as_user(api, portfolio.leader)
    url = f"/api/v1/portfolios/{portfolio.pk}/withdrawals"

    first = client.post(url, {"amount": "5.559"}, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    assert first.status_code == 201
    assert (first.json()["amount"], first.json()["requested_amount"]) == ("5.55000000", "5.55900000")
    replay = client.post(url, {"amount": "5.559"}, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]
    rest = client.post(url, {}, format="json")  # everything left
    assert rest.json()["amount"] == "3.45000000"

    page = client.get(url, {"limit": 1}).json()
    assert [r["id"] for r in page["results"]] == [rest.json()["id"]]
    page = client.get(url, {"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [r["id"] for r in page["results"]] == [first.json()["id"]]
    assert page["next_cursor"] is None
    assert LeaderWithdrawal.objects.count() == 2


@pytest.mark.parametrize(
    ("amount", "code"),
    [("0.5", "BELOW_MIN_WITHDRAWAL"), ("100", "INSUFFICIENT_FUNDS"), ("abc", "INVALID"), ("-1", "INVALID_MIN_VALUE")],
)
def test_a_refused_withdrawal_says_why(api, earned, amount, code):
    portfolio, _ = earned
    response = as_user(api, portfolio.leader).post(
        f"/api/v1/portfolios/{portfolio.pk}/withdrawals", {"amount": amount}, format="json"
    )
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["field"]) == (code, "amount")


def test_an_overlong_idempotency_key_is_refused_not_truncated(api, earned):
    portfolio, _ = earned
    response = as_user(api, portfolio.leader).post(
        f"/api/v1/portfolios/{portfolio.pk}/withdrawals", {"amount": "2"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 101
    )
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_IDEMPOTENCY_KEY")
    assert not LeaderWithdrawal.objects.exists()


def test_withdrawals_export_as_csv(api, earned):
    portfolio, _ = earned
    client = as_user(api, portfolio.leader)
    for amount in ("1.25", "2.5"):
        client.post(f"/api/v1/portfolios/{portfolio.pk}/withdrawals", {"amount": amount}, format="json")

    response = client.get(f"/api/v1/portfolios/{portfolio.pk}/withdrawals.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["id", "created_at", "portfolio_id", "amount", "requested_amount", "currency"]
    assert [(r[2], r[3], r[5]) for r in rows[1:]] == [
        (str(portfolio.pk), "2.50000000", "USDT"),
        (str(portfolio.pk), "1.25000000", "USDT"),
    ]


def test_a_follower_sees_the_fees_their_subscription_paid(api, earned):
    _, sub = earned
    body = as_user(api, sub.follower).get(f"/api/v1/subscriptions/{sub.pk}/fees").json()
    assert body["total"] == {"count": 1, "fees": "15.00000000", "fees_due": "15.00000000"}
    assert [r["fees"] for r in body["by_day"]] == ["15.00000000"]
    assert [r["fees"] for r in body["by_month"]] == ["15.00000000"]
    # Nobody else's.
    assert as_user(api, UserFactory()).get(f"/api/v1/subscriptions/{sub.pk}/fees").status_code == 404


def test_a_leader_reads_their_caps(api, db):
    leader = UserFactory()
    client = as_user(api, leader)
    assert client.get("/api/v1/fees/caps").json() == {
        "max_profit_share_pct": "50.00",
        "platform_cut_pct": "20.00",
        "max_followers": 1000,
    }
    group = FeeGroup.objects.create(name="vip", max_profit_share_pct=D("35.00"), platform_cut_pct=D("12.50"))
    leader_group_assign(leader=leader, fee_group=group)
    body = client.get("/api/v1/fees/caps").json()
    assert (body["max_profit_share_pct"], body["platform_cut_pct"]) == ("35.00", "12.50")


def test_bad_query_parameter_is_a_400_not_a_500(api, db):
    response = as_user(api, UserFactory()).get("/api/v1/fees/earnings?portfolio=abc")
    assert response.status_code == 400
    assert response.json()["field"] == "portfolio"


def test_an_integer_that_is_no_portfolio_is_a_404(api, db):
    # Schema-valid (the OpenAPI type is integer), found by the schema fuzzer.
    client = as_user(api, UserFactory())
    for value in ("-137438953472", "0", str(2**63)):
        response = client.get(f"/api/v1/fees/earnings?portfolio={value}")
        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND"), value


def test_anonymous_users_are_refused(api, db):
    assert api.get("/api/v1/fees/caps").status_code in (401, 403)


def test_a_leader_reads_and_sets_the_fee_model(api, fee_world):
    portfolio = fee_world.leader(share="15.00")
    leader = as_user(api, portfolio.leader)
    url = f"/api/v1/portfolios/{portfolio.pk}/fee-model"
    assert leader.get(url).json() == {"fee_model": "per_trade", "profit_share_pct": "15.00"}

    response = leader.put(url, {"fee_model": "high_water_mark"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"fee_model": "high_water_mark", "profit_share_pct": "15.00"}
    portfolio.refresh_from_db()
    assert portfolio.fee_model == "high_water_mark"

    response = leader.put(url, {"fee_model": "monthly"}, format="json")
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["field"]) == ("INVALID_CHOICE", "fee_model")
    portfolio.refresh_from_db()
    assert portfolio.fee_model == "high_water_mark"


def test_another_user_cannot_read_or_set_a_portfolios_fee_model(api, fee_world):
    portfolio = fee_world.leader()
    intruder = as_user(api, UserFactory())
    url = f"/api/v1/portfolios/{portfolio.pk}/fee-model"
    assert intruder.get(url).status_code == 404
    assert intruder.put(url, {"fee_model": "high_water_mark"}, format="json").status_code == 404
    portfolio.refresh_from_db()
    assert portfolio.fee_model == "per_trade"
