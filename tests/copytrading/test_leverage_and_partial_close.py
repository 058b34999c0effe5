"""Two propagation rules end to end: a follower's leverage override above the
instrument's maximum is accepted at subscribe/settings (the range is the
venue-wide [1, 125]) and capped at the instrument's ``max_leverage`` on every
mirror; and a partial close of 30 % then 50 % of the rest leaves each mirror
at 35 % of its size, each reduce rounded *down* to the quantity step
(decisions/rules.reduce_by), with only closing-side orders."""

from decimal import Decimal

import pytest

from copytrading.ledger import ledger_check
from copytrading.models import Account, Execution, Order
from copytrading.money import floor_to_step
from followers.models import Subscription
from tests.acceptance.test_bad_input import client_for
from tests.copytrading.world import ETH_PERP, World, mirror_orders_of, mirrors_of, wallet
from tests.factories import UserFactory

D = Decimal
SOL_PERP = "SOL/USDT:USDT"  # max_leverage 50, step 0.1, mark 150


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    settings.FANOUT_CHUNK_SIZE = 3
    return World(instruments, django_capture_on_commit_callbacks)


def _subscribe_by_api(world, portfolio, **extra):
    user = UserFactory()
    client = client_for(user)
    r = client.post("/api/v1/wallets/main/deposit", {"amount": "5000"}, format="json")
    assert r.status_code == 201, r.content
    body = {"portfolio": portfolio.pk, "amount": "5000", "multiplier": "0.5", **extra}
    r = client.post("/api/v1/subscriptions", body, format="json")
    assert r.status_code == 201, r.content
    return client, Subscription.objects.get(pk=r.json()["id"])


def test_leverage_override_above_the_instrument_max_is_capped_on_the_mirror(world, instruments):
    assert instruments[SOL_PERP].max_leverage == 50
    portfolio = world.leader()
    _, capped = _subscribe_by_api(world, portfolio, leverage_override=75)
    assert capped.leverage_override == 75  # accepted: the cap is the instrument's, applied per mirror
    plain = world.follower(portfolio)

    world.trade(portfolio, SOL_PERP, "buy", "10", leverage=10)

    (mirror,) = mirrors_of(capped)
    # 10 x 0.5 = 5 SOL at 150, at min(75, 50) = 50x: margin 750 / 50 = 15.
    assert (mirror.quantity, mirror.entry_price, mirror.leverage, mirror.margin) == (D("5"), D("150"), 50, D("15"))
    assert (wallet(capped).balance, wallet(capped).locked) == (D("5000"), D("15"))
    (other,) = mirrors_of(plain)
    assert (other.quantity, other.leverage, other.margin) == (D("5"), 10, D("75"))  # the leader's leverage
    assert ledger_check().ok


def test_leverage_override_set_in_settings_is_capped_per_instrument(world):
    portfolio = world.leader()
    client, sub = _subscribe_by_api(world, portfolio)
    r = client.patch(f"/api/v1/subscriptions/{sub.pk}/settings", {"leverage_override": 80}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["leverage_override"] == 80

    world.trade(portfolio, ETH_PERP, "buy", "1", leverage=10)  # ETH max 100: 80 applies
    limit = world.limit(portfolio, SOL_PERP, "buy", "10", "140", leverage=10)  # SOL max 50: capped

    (eth,) = mirrors_of(sub)
    # 0.5 ETH at 3200 at 80x: 1600 / 80 = 20.
    assert (eth.quantity, eth.leverage, eth.margin) == (D("0.5"), 80, D("20"))
    (mirror_limit,) = mirror_orders_of(sub)
    # 5 SOL at 140 at 50x reserves 700 / 50 = 14.
    assert (mirror_limit.quantity, mirror_limit.price, mirror_limit.leverage, mirror_limit.reserved) == (
        D("5"),
        D("140"),
        50,
        D("14"),
    )
    assert Account.objects.get(pk=sub.copy_account_id).locked == D("34")

    world.price(SOL_PERP, "140")  # the leader's limit fills; the mirror fills at its 50x
    sol = mirrors_of(sub).get(instrument__symbol=SOL_PERP)
    assert (sol.quantity, sol.entry_price, sol.leverage, sol.margin) == (D("5"), D("140"), 50, D("14"))
    assert limit.payload["leverage"] == 10
    assert ledger_check().ok


# Mirror sizes (multiplier x 10 ETH, rounded down to ETH's 0.01 step) chosen so
# that 30 % and then 50 % of the rest do not divide evenly.
MULTIPLIERS = ["0.5", "0.123", "0.0707", "0.0101", "0.0777"]


def _after_rule(size: Decimal) -> tuple[Decimal, Decimal]:
    """What the mirror holds after each close: each reduce is the fraction of
    the mirror rounded down to the step (so the mirror never closes more than
    the leader's share); the rest stays open."""
    step = D("0.01")
    first = size - floor_to_step(size * D("0.3"), step)
    return first, first - floor_to_step(first * D("0.5"), step)


def test_partial_close_30_then_50_percent_leaves_each_mirror_at_35_percent(world):
    portfolio = world.leader()
    subs = [world.follower(portfolio, multiplier=m) for m in MULTIPLIERS]
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "10", leverage=10)
    sizes = [mirrors_of(s).get().quantity for s in subs]
    assert sizes == [D("5"), D("1.23"), D("0.70"), D("0.10"), D("0.77")]

    position_id = opened.payload["leader_position_id"]
    first = world.close(portfolio, position_id, "3")  # 30 %
    second = world.close(portfolio, position_id, "3.5")  # 50 % of the 7 left
    assert (first.payload["fraction"], second.payload["fraction"]) == ("0.3", "0.5")

    # The rule, spelled out:       size   30 % closed        left   50 % closed        left   (35 % exactly)
    #                              5      1.5                3.5    1.75               1.75   1.75
    #                              1.23   0.369  → 0.36      0.87   0.435  → 0.43      0.44   0.4305
    #                              0.70   0.21               0.49   0.245  → 0.24      0.25   0.245
    #                              0.10   0.03               0.07   0.035  → 0.03      0.04   0.035
    #                              0.77   0.231  → 0.23      0.54   0.27               0.27   0.2695
    expected_left = [
        (D("3.5"), D("1.75")),
        (D("0.87"), D("0.44")),
        (D("0.49"), D("0.25")),
        (D("0.07"), D("0.04")),
        (D("0.54"), D("0.27")),
    ]
    assert [_after_rule(size) for size in sizes] == expected_left
    for sub, size, (after_first, after_second) in zip(subs, sizes, expected_left, strict=True):
        (mirror,) = mirrors_of(sub)
        assert (mirror.side, mirror.status, mirror.quantity) == ("long", "open", after_second)
        # Within one step of 35 %, never below it: closes round down.
        assert D("0") <= mirror.quantity - size * D("0.35") < D("0.01")
        executions = Execution.objects.filter(subscription_id=sub.pk, event__in=[first, second]).order_by("pk")
        assert [(e.outcome, e.follower_quantity) for e in executions] == [
            ("COPIED", size - after_first),
            ("COPIED", after_first - after_second),
        ]
        # Only closing-side orders on the close events, each within the mirror it reduced.
        orders = list(
            Order.objects.filter(subscription_id=sub.pk, leader_event__in=[first, second])
            .order_by("pk")
            .values_list("side", "quantity")
        )
        assert orders == [("sell", size - after_first), ("sell", after_first - after_second)]
        assert size - after_first <= size and after_first - after_second <= after_first
    assert (
        not Order.objects.filter(subscription_id__in=[s.pk for s in subs], side="buy")
        .exclude(leader_event=opened)
        .exists()
    )
    assert ledger_check().ok
