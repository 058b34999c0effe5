"""Seed the outage tests' own database (run in a subprocess with the stack's
environment): instruments and a price, a staff user, a leader with a funded
portfolio and a webhook secret. Prints what the tests need as JSON."""

import json

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from copytrading.services import instruments_seed  # noqa: E402

PASSWORD = "s3cret-pass-word"


def _ok(response, status=(200, 201)):
    assert response.status_code in status, response.content
    return response.json()


def seed() -> dict:
    instruments_seed()
    client = APIClient()
    staff = _ok(client.post("/api/v1/auth/register", {"username": "ops", "password": PASSWORD}, format="json"))
    get_user_model().objects.filter(username="ops").update(is_staff=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {staff['token']}")
    _ok(client.post("/api/v1/market/prices", {"symbol": "BTC/USDT:USDT", "price": "60000"}, format="json"))

    leader = _ok(client.post("/api/v1/auth/register", {"username": "leader", "password": PASSWORD}, format="json"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {leader['token']}")
    _ok(client.post("/api/v1/wallets/main/deposit", {"amount": "50000"}, format="json"))
    portfolio = _ok(
        client.post("/api/v1/portfolios", {"name": "Outage", "mode": "margin", "min_investment": "100"}, format="json")
    )
    _ok(client.post(f"/api/v1/portfolios/{portfolio['id']}/fund", {"amount": "20000"}, format="json"))
    secret = _ok(client.post(f"/api/v1/portfolios/{portfolio['id']}/webhook-secret", format="json"))
    return {
        "username": "leader",
        "password": PASSWORD,
        "token": leader["token"],
        "portfolio_id": portfolio["id"],
        "webhook_secret": secret["secret"],
    }


if __name__ == "__main__":
    print(json.dumps(seed()))
