"""The end-to-end flow through the API, shared by the eager and the real-worker tests."""

from collections.abc import Callable
from decimal import Decimal

from rest_framework.test import APIClient

from copytrading.ledger import ledger_check
from copytrading.models import Execution, Order, Position, PositionStatus


def register(username: str, deposit: str | None = None) -> APIClient:
    client = APIClient()
    r = client.post("/api/v1/auth/register", {"username": username, "password": "s3cret-pass-word"}, format="json")
    assert r.status_code == 201, r.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {r.json()['token']}")
    if deposit:
        r = client.post("/api/v1/wallets/main/deposit", {"amount": deposit}, format="json")
        assert r.status_code == 201, r.content
    return client


def run_copy_flow(followers: int, wait: Callable[[Callable[[], bool]], None]) -> dict:
    """register → deposit → portfolio → subscribe → leader buys → mirrors →
    leader closes → mirrors closed with PnL in the copy wallets, ledger balanced."""
    staff = register("ops-staff")
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="ops-staff").update(is_staff=True)

    leader = register("leader-one", deposit="50000")
    r = leader.post(
        "/api/v1/portfolios", {"name": "Momentum", "mode": "margin", "min_investment": "100"}, format="json"
    )
    assert r.status_code == 201, r.content
    portfolio_id = r.json()["id"]
    r = leader.post(f"/api/v1/portfolios/{portfolio_id}/fund", {"amount": "20000"}, format="json")
    assert r.status_code == 201, r.content

    subs = []
    for n in range(followers):
        follower = register(f"follower-{n}", deposit="5000")
        r = follower.post(
            "/api/v1/subscriptions",
            {"portfolio": portfolio_id, "amount": "1000", "sizing_model": "progressive", "multiplier": "0.5"},
            format="json",
        )
        assert r.status_code == 201, r.content
        assert r.json()["wallet"]["balance"] == "1000.00000000"
        subs.append((follower, r.json()["id"]))

    r = staff.post("/api/v1/market/prices", {"symbol": "BTC/USDT:USDT", "price": "60000"}, format="json")
    assert r.status_code == 200, r.content
    r = leader.post(
        f"/api/v1/portfolios/{portfolio_id}/orders",
        {"symbol": "BTC/USDT:USDT", "side": "buy", "quantity": "0.1", "leverage": 10},
        format="json",
    )
    assert r.status_code == 201, r.content
    open_event = r.json()["events"][0]
    assert open_event["kind"] == "position_open"
    leader_position_id = open_event["payload"]["leader_position_id"]

    def all_mirrored() -> bool:
        return Execution.objects.filter(event_id=open_event["id"]).count() == followers

    wait(all_mirrored)
    for follower, sub_id in subs:
        positions = follower.get(f"/api/v1/subscriptions/{sub_id}/positions").json()["results"]
        assert len(positions) == 1
        mirror = positions[0]
        assert mirror["side"] == "long"
        assert Decimal(mirror["quantity"]) == Decimal("0.05")  # 0.1 x 0.5
        assert Decimal(mirror["entry_price"]) == Decimal("60000")
        assert mirror["leverage"] == 10
        assert mirror["leader_position"] == leader_position_id
        wallet = follower.get(f"/api/v1/subscriptions/{sub_id}").json()["wallet"]
        assert Decimal(wallet["locked"]) == Decimal("300")  # 0.05 x 60000 / 10
        executions = follower.get(f"/api/v1/subscriptions/{sub_id}/executions").json()["results"]
        assert [(e["outcome"], e["reason_code"]) for e in executions] == [("COPIED", "")]

    r = staff.post("/api/v1/market/prices", {"symbol": "BTC/USDT:USDT", "price": "61000"}, format="json")
    assert r.status_code == 200
    r = leader.post(f"/api/v1/portfolios/{portfolio_id}/positions/{leader_position_id}/close", {}, format="json")
    assert r.status_code == 200, r.content  # an action on an existing position
    close_event = r.json()["events"][0]
    assert close_event["kind"] == "position_close"

    wait(lambda: Execution.objects.filter(event_id=close_event["id"]).count() == followers)
    for follower, sub_id in subs:
        positions = follower.get(f"/api/v1/subscriptions/{sub_id}/positions").json()["results"]
        assert [p["status"] for p in positions] == ["closed"]
        assert Decimal(positions[0]["realized_pnl"]) == Decimal("50")  # 0.05 x 1000
        wallet = follower.get(f"/api/v1/subscriptions/{sub_id}").json()["wallet"]
        assert Decimal(wallet["balance"]) == Decimal("1050")
        assert Decimal(wallet["locked"]) == 0

    assert not Position.objects.filter(status=PositionStatus.OPEN).exists()
    assert Order.objects.filter(leader_event_id=open_event["id"]).count() == followers
    report = ledger_check()
    assert report.ok, report
    return {"portfolio_id": portfolio_id, "open_event": open_event["id"], "close_event": close_event["id"]}
