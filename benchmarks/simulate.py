"""Simulator benchmark: ``POST /api/v1/portfolios/{id}/simulate`` for 30 days
of a portfolio with 200 leader events (margin and spot, spread over the
period) and a 1-minute candle for every minute of it on each instrument
traded, on PostgreSQL, through the API (Django's test client: routing,
authentication, validation, the replay, the serializer), cache off.

Prints:
    simulate events=200 days=30 candles=… median_ms=… p90_ms=…
    simulate cached median_ms=…
"""

import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from benchmarks.setup import prepare_database

EVENTS = int(os.environ.get("BENCH_SIMULATE_EVENTS", "200"))
DAYS = 30
REPETITIONS = int(os.environ.get("BENCH_SIMULATE_REPETITIONS", "15"))
ETH_PERP, BTC_PERP, ETH_SPOT = "ETH/USDT:USDT", "BTC/USDT:USDT", "ETH/USDT"


def _trade(portfolio, rng: random.Random) -> None:
    """One leader action: open or add, reduce, close, or a spot buy or sell."""
    from copytrading.errors import DomainError
    from copytrading.models import Holding, Position, PositionStatus
    from portfolios.services import portfolio_order_place, portfolio_position_close

    symbol = rng.choice([ETH_PERP, BTC_PERP, ETH_SPOT])
    account = portfolio.trading_account_id
    try:
        if symbol == ETH_SPOT:
            held = Holding.objects.filter(account_id=account, asset="ETH").first()
            if held and held.quantity >= Decimal("0.2") and rng.random() < 0.5:
                portfolio_order_place(portfolio=portfolio, symbol=symbol, side="sell", quantity=Decimal("0.1"))
            else:
                portfolio_order_place(portfolio=portfolio, symbol=symbol, side="buy", quantity=Decimal("0.2"))
            return
        position = Position.objects.filter(
            account_id=account, instrument__symbol=symbol, status=PositionStatus.OPEN
        ).first()
        unit = Decimal("0.1") if symbol == ETH_PERP else Decimal("0.01")
        roll = rng.random()
        if position is None or roll < 0.4:
            side = position.side if position else rng.choice(["long", "short"])
            order_side = "buy" if side == "long" else "sell"
            portfolio_order_place(portfolio=portfolio, symbol=symbol, side=order_side, quantity=unit * 2, leverage=5)
        elif roll < 0.7 and position.quantity > unit:
            portfolio_position_close(portfolio=portfolio, position_id=position.pk, quantity=unit)
        else:
            portfolio_position_close(portfolio=portfolio, position_id=position.pk)
    except DomainError:
        pass


def _seed(now: datetime):
    from config.celery import app
    from copytrading import bulk
    from copytrading.models import Instrument, LeaderEvent, PriceCandle
    from copytrading.services import instruments_seed, price_set, wallet_deposit
    from portfolios.services import portfolio_create, portfolio_fund
    from tests.factories import UserFactory

    app.conf.task_always_eager = True  # no followers: each event completes in-process
    instruments_seed()
    leader = UserFactory(username="bench-leader")
    wallet_deposit(user=leader, amount=Decimal("101000"))
    portfolio = portfolio_create(leader=leader, name="Bench book", mode="all", profit_share_pct=Decimal("10"))
    portfolio_fund(portfolio=portfolio, amount=Decimal("100000"))
    rng = random.Random(7)
    instruments = {i.symbol: i for i in Instrument.objects.filter(symbol__in=[ETH_PERP, BTC_PERP, ETH_SPOT])}
    while LeaderEvent.objects.filter(portfolio_id=portfolio.pk).count() < EVENTS:
        _trade(portfolio, rng)
        symbol = rng.choice(list(instruments))
        mark = Instrument.objects.get(symbol=symbol).mark_price
        price_set(instrument=instruments[symbol], price=(mark * Decimal(1 + rng.uniform(-0.01, 0.01))).quantize(
            instruments[symbol].price_tick))  # fmt: skip
    # Spread the events over the period, as a month of trading would.
    start = now - timedelta(days=DAYS) + timedelta(minutes=5)
    events = list(LeaderEvent.objects.filter(portfolio_id=portfolio.pk).order_by("seq").values_list("pk", flat=True))
    step = (now - start) / (len(events) + 1)
    bulk.update_rows(LeaderEvent, ["created_at"], [(pk, start + step * (n + 1)) for n, pk in enumerate(events)])
    # A candle for every minute of the period on every instrument traded.
    PriceCandle.objects.all().delete()
    rows = []
    for instrument in instruments.values():
        price = instrument.mark_price
        minute = (now - timedelta(days=DAYS)).replace(second=0, microsecond=0)
        while minute < now:
            price = max(
                instrument.price_tick, (price * Decimal(1 + rng.gauss(0, 0.0005))).quantize(instrument.price_tick)
            )
            rows.append((instrument.pk, minute, price, price, price, price, minute, minute + timedelta(seconds=59), 1))
            minute += timedelta(minutes=1)
    fields = ["instrument", "minute", "open", "high", "low", "close", "first_at", "last_at", "ticks"]
    bulk.insert_rows(PriceCandle, fields, rows)
    return portfolio, len(rows)


def main() -> int:
    prepare_database()
    from django.conf import settings
    from django.db import connection
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    now = datetime.now(UTC)
    portfolio, candles = _seed(now)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    settings.SIMULATE_PER_MINUTE = 0
    client = APIClient()
    client.force_authenticate(UserFactory(username="bench-follower"))
    body = {"amount": "10000", "days": DAYS, "sizing_model": "adaptive", "risk_factor": "1"}
    url = f"/api/v1/portfolios/{portfolio.pk}/simulate"

    def timed(runs: int) -> list[float]:
        timings = []
        for n in range(runs):
            started = time.perf_counter()
            answer = client.post(url, {**body, "amount": str(10000 + n)}, format="json")
            timings.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.content
        return timings

    settings.SIMULATE_CACHE_SECONDS = 0
    timed(2)  # warm-up: imports, connections
    cold = timed(REPETITIONS)
    replayed = client.post(url, body, format="json").json()
    assert replayed["events"] >= EVENTS, replayed["events"]
    settings.SIMULATE_CACHE_SECONDS = 300
    client.post(url, body, format="json")
    cached = []
    for _ in range(REPETITIONS):
        started = time.perf_counter()
        client.post(url, body, format="json")
        cached.append((time.perf_counter() - started) * 1000)
    p90 = sorted(cold)[int(0.9 * (len(cold) - 1))]
    print(
        f"simulate events={replayed['events']} days={DAYS} candles={candles} "
        f"median_ms={statistics.median(cold):.0f} p90_ms={p90:.0f}",
        flush=True,
    )
    print(f"simulate cached median_ms={statistics.median(cached):.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
