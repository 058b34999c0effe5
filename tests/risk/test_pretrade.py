"""The pre-trade gate the propagation engine loads per chunk: limits and books
read set-based, then one pure check per copy."""

from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from risk import rules, selectors, services
from tests.risk.conftest import BTC_PERP, ETH_PERP, open_mirrors

D = Decimal


def test_the_gate_checks_open_positions_and_exposure_against_the_wallet(world):
    portfolio = world.leader()
    limited = world.follower(portfolio)
    free = world.follower(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    world.trade(portfolio, BTC_PERP, "buy", "0.1")
    mirrors = open_mirrors(limited)
    exposure = sum(m.quantity * m.instrument.mark_price for m in mirrors)  # marks unchanged since the fills
    equity = D("5000")  # no price move yet: equity is what was paid in
    room = equity * 3 - exposure  # 300 % of equity
    services.risk_limits_set(subscription_id=limited.pk, max_open_positions=2, max_exposure_pct=D("300"))

    with CaptureQueriesContext(connection) as ctx:
        check = selectors.pretrade_gate([(limited.pk, limited.copy_account_id), (free.pk, free.copy_account_id)])
    assert len(ctx.captured_queries) <= (2 if connection.vendor == "postgresql" else 6)

    assert check(limited.pk, opens_position=True, notional=D("1")) == rules.MAX_OPEN_POSITIONS_REACHED
    assert check(limited.pk, opens_position=False, notional=room) is None
    assert check(limited.pk, opens_position=False, notional=room + D("0.00000001")) == rules.MAX_EXPOSURE_EXCEEDED
    assert check(free.pk, opens_position=True, notional=D("1000000")) is None
    assert len(mirrors) == 2
