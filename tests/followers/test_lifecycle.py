"""A copy's lifecycle through the API: subscribe checks, top up, withdraw
(free balance only), pause/resume, unfollow with open mirrors, resting
mirror limits and spot holdings, and a follower's own (partial) close."""

from decimal import Decimal

import pytest

from copytrading.ledger import ledger_check
from copytrading.models import Account, AccountKind, Execution, Holding, Order, Position, PositionStatus
from followers.models import Subscription, SubscriptionStatus
from followers.services import subscription_unfollow
from risk import watchdog
from risk.models import RiskEvent
from risk.services import risk_limits_set
from tests.copytrading.world import BTC_PERP, ETH_PERP, mirror_orders_of, mirrors_of, outcomes, wallet
from tests.followers.conftest import client_for, main_wallet

D = Decimal
SOL_PERP = "SOL/USDT:USDT"


def subscribe_api(client, portfolio, amount="5000", **body):
    body.setdefault("multiplier", "0.5")
    return client.post("/api/v1/subscriptions", {"portfolio": portfolio.pk, "amount": amount, **body}, format="json")


def busy_copy(world):
    """A follower (main 7000, copy 5000) with two open mirrors and a resting
    mirror limit: margin 320 + 320 in use, 140 reserved."""
    portfolio = world.leader()
    user = world.person(deposit="7000")
    client = client_for(user)
    r = subscribe_api(client, portfolio)
    assert r.status_code == 201, r.content
    sub = Subscription.objects.get(pk=r.json()["id"])
    (eth,) = world.trade(portfolio, ETH_PERP, "buy", "2")  # mirror 1 ETH @ 3200, margin 320
    (btc,) = world.trade(portfolio, BTC_PERP, "buy", "0.1")  # mirror 0.05 BTC @ 64000, margin 320
    limit = world.limit(portfolio, SOL_PERP, "buy", "10", "140", leverage=5)  # mirror 5 SOL, reserves 140
    assert (wallet(sub).balance, wallet(sub).locked) == (D("5000"), D("780"))
    return portfolio, user, client, sub, eth, btc, limit


# --- unfollow ----------------------------------------------------------------------


def test_unfollow_closes_mirrors_cancels_limits_returns_the_wallet_and_closes_it(world):
    portfolio, user, client, sub, eth, _btc, limit = busy_copy(world)
    world.price(ETH_PERP, "3300")  # mirror +100
    world.price(BTC_PERP, "63000")  # mirror -50

    r = client.post(f"/api/v1/subscriptions/{sub.pk}/unfollow")
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["closed_positions"], body["cancelled_orders"], body["sold_holdings"]) == (2, 1, 0)
    assert D(body["returned"]) == D("5050")
    assert body["subscription"]["status"] == "ended"
    assert body["subscription"]["end_reason"] == "unfollowed"
    shown = body["subscription"]["wallet"]
    assert (D(shown["balance"]), D(shown["locked"]), shown["is_closed"]) == (0, 0, True)

    account = wallet(sub)
    assert (account.balance, account.locked, account.is_closed) == (0, 0, True)
    assert main_wallet(user).balance == D("2000") + D("5050")
    assert [(m.status, m.realized_pnl) for m in mirrors_of(sub)] == [("closed", D("100")), ("closed", D("-50"))]
    (mirror_limit,) = mirror_orders_of(sub)
    assert (mirror_limit.status, mirror_limit.reserved) == ("cancelled", 0)
    assert not Account.objects.filter(kind=AccountKind.COPY, is_closed=False, balance=0).exists()
    assert ledger_check().ok

    # A retry is a no-op.
    r = client.post(f"/api/v1/subscriptions/{sub.pk}/unfollow")
    assert r.status_code == 200
    assert (r.json()["already_ended"], D(r.json()["returned"])) == (True, 0)
    assert main_wallet(user).balance == D("7050")

    # The leader trading on reaches the ended copy no more.
    close = world.close(portfolio, eth.payload["leader_position_id"])
    assert sub.pk not in outcomes(close)
    assert world.price(SOL_PERP, "140")  # the leader's limit fills; the cancelled mirror does not
    assert Position.objects.filter(account_id=sub.copy_account_id, status=PositionStatus.OPEN).count() == 0
    assert Execution.objects.filter(subscription_id=sub.pk, event_id__gt=limit.pk).count() == 0
    assert ledger_check().ok


def test_unfollow_sells_spot_holdings_and_other_code_can_call_it(world):
    portfolio = world.leader(mode="all")
    user = world.person(deposit="5000")
    sub = world.subscribe(portfolio, user=user, amount="5000")
    world.trade(portfolio, "ETH/USDT", "buy", "1")  # the follower buys 0.5 ETH for 1600
    assert Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").quantity == D("0.5")
    world.price("ETH/USDT", "3400")

    done = subscription_unfollow(subscription=sub, reason="portfolio closing: strategy retired")
    assert (done.sold_holdings, done.returned) == (1, D("5100"))  # 3400 + 100 of profit
    sub.refresh_from_db()
    assert (sub.status, sub.end_reason) == (SubscriptionStatus.ENDED, "portfolio closing: strategy retired")
    assert Holding.objects.get(account_id=sub.copy_account_id, asset="ETH").quantity == 0
    assert main_wallet(user).balance == D("5100")
    assert wallet(sub).is_closed
    assert ledger_check().ok


def test_an_ended_copy_refuses_every_change(world):
    portfolio = world.leader()
    user = world.person(deposit="6000")
    sub = world.subscribe(portfolio, user=user)
    subscription_unfollow(subscription=sub)
    client = client_for(user)
    for path, body in (
        ("top-up", {"amount": "10"}),
        ("withdraw", {"amount": "10"}),
        ("pause", {}),
        ("resume", {}),
    ):
        r = client.post(f"/api/v1/subscriptions/{sub.pk}/{path}", body, format="json")
        assert (r.status_code, r.json()["code"]) == (409, "SUBSCRIPTION_ENDED"), path
    r = client.patch(f"/api/v1/subscriptions/{sub.pk}/settings", {"multiplier": "0.2"}, format="json")
    assert (r.status_code, r.json()["code"]) == (409, "SUBSCRIPTION_ENDED")
    # The follower may copy the portfolio again: a new wallet.
    r = subscribe_api(client, portfolio, amount="1000")
    assert r.status_code == 201, r.content
    assert r.json()["wallet"]["id"] != sub.copy_account_id


# --- money in and out --------------------------------------------------------------


def test_top_up_moves_main_money_into_the_copy_and_never_more_than_main_holds(world):
    _portfolio, user, client, sub, *_ = busy_copy(world)
    r = client.post(f"/api/v1/subscriptions/{sub.pk}/top-up", {"amount": "2000.00000001"}, format="json")
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["field"]) == ("INSUFFICIENT_FUNDS", "amount")
    assert "2000.00000000 available" in r.json()["detail"]

    r = client.post(
        f"/api/v1/subscriptions/{sub.pk}/top-up", {"amount": "1500", "idempotency_key": "k1"}, format="json"
    )
    assert r.status_code == 200, r.content
    assert (D(r.json()["wallet"]["balance"]), D(r.json()["invested"])) == (D("6500"), D("6500"))
    r = client.post(
        f"/api/v1/subscriptions/{sub.pk}/top-up", {"amount": "1500", "idempotency_key": "k1"}, format="json"
    )
    assert r.status_code == 200  # the same request again moves nothing
    assert (wallet(sub).balance, main_wallet(user).balance) == (D("6500"), D("500"))

    summary = client.get("/api/v1/subscriptions/summary").json()
    assert {k: D(summary[k]) for k in ("main_balance", "main_free", "committed", "invested")} == {
        "main_balance": D("500"),
        "main_free": D("500"),
        "committed": D("6500"),
        "invested": D("6500"),
    }
    assert (summary["active"], summary["paused"], summary["ended"]) == (1, 0, 0)
    assert ledger_check().ok


def test_subscribing_beyond_the_main_balance_is_a_clean_400(world):
    portfolio = world.leader()
    client = client_for(world.person(deposit="1000"))
    r = subscribe_api(client, portfolio, amount="1000.00000001")
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["field"]) == ("INSUFFICIENT_FUNDS", "amount")
    assert not Subscription.objects.exists()
    assert not Account.objects.filter(kind=AccountKind.COPY).exists()


def test_withdraw_takes_only_free_balance(world):
    _portfolio, user, client, sub, *_ = busy_copy(world)
    # 5000 - 640 of margin in use - 140 reserved by the mirror limit.
    r = client.post(f"/api/v1/subscriptions/{sub.pk}/withdraw", {"amount": "4220.00000001"}, format="json")
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["field"]) == ("EXCEEDS_FREE_BALANCE", "amount")
    assert "4220.00000000" in r.json()["detail"]

    r = client.post(f"/api/v1/subscriptions/{sub.pk}/withdraw", {"amount": "4220"}, format="json")
    assert r.status_code == 200, r.content
    assert (wallet(sub).balance, wallet(sub).locked) == (D("780"), D("780"))
    assert main_wallet(user).balance == D("6220")
    assert D(r.json()["invested"]) == D("780")
    assert ledger_check().ok


def test_withdrawing_the_whole_wallet_is_an_unfollow(world):
    portfolio = world.leader()
    user = world.person(deposit="1000")
    sub = world.subscribe(portfolio, user=user, amount="1000")
    r = client_for(user).post(f"/api/v1/subscriptions/{sub.pk}/withdraw", {"amount": "1000"}, format="json")
    assert (r.status_code, r.json()["code"]) == (400, "WITHDRAWAL_EMPTIES_WALLET")
    assert wallet(sub).balance == D("1000")


# --- pause and resume --------------------------------------------------------------


def test_a_paused_copy_gets_no_new_copies_but_follows_closes(world):
    portfolio = world.leader()
    user = world.person(deposit="5000")
    sub = world.subscribe(portfolio, user=user)
    client = client_for(user)
    (opened,) = world.trade(portfolio, ETH_PERP, "buy", "2")

    r = client.post(f"/api/v1/subscriptions/{sub.pk}/pause")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["pause_reason"], r.json()["pause_detail"]) == (
        "paused",
        "manual",
        "Paused by you.",
    )
    assert client.post(f"/api/v1/subscriptions/{sub.pk}/pause").json()["status"] == "paused"  # idempotent

    (skipped,) = world.trade(portfolio, BTC_PERP, "buy", "0.1")
    assert outcomes(skipped) == {sub.pk: ("SKIPPED", "SUBSCRIPTION_PAUSED")}
    closed = world.close(portfolio, opened.payload["leader_position_id"])
    assert outcomes(closed) == {sub.pk: ("COPIED", "")}

    r = client.post(f"/api/v1/subscriptions/{sub.pk}/resume")
    assert (r.json()["status"], r.json()["pause_reason"], r.json()["pause_detail"]) == ("active", "", "")
    (copied,) = world.trade(portfolio, SOL_PERP, "buy", "10")
    assert outcomes(copied) == {sub.pk: ("COPIED", "")}


def test_a_copy_paused_by_the_watchdog_says_why(world):
    portfolio = world.leader()
    user = world.person(deposit="5000")
    sub = world.subscribe(portfolio, user=user, daily_loss_limit_unrealized=D("50"))
    world.trade(portfolio, ETH_PERP, "buy", "2")  # mirror 1 ETH
    world.price(ETH_PERP, "3140")  # -60
    report = watchdog.watchdog_tick()
    assert report.paused == [sub.pk]

    body = client_for(user).get(f"/api/v1/subscriptions/{sub.pk}").json()
    assert (body["status"], body["pause_reason"]) == ("paused", "risk:daily_loss_unrealized")
    assert body["risk"]["paused_by_rule"] == "daily_loss_unrealized"
    assert body["risk"]["pause_event"]["measured"] == "60.00000000"
    assert body["risk"]["pause_event"]["threshold"] == "50.00000000"
    assert body["risk"]["pause_event"]["action"] == "pause_and_close"
    assert body["pause_detail"] == (
        "Paused by the risk watchdog: Daily loss limit (unrealized PnL) (measured 60.00000000, limit 50.00000000)."
    )
    assert RiskEvent.objects.filter(subscription_id=sub.pk).count() == 1
    listed = client_for(user).get("/api/v1/subscriptions").json()["results"]
    assert listed[0]["risk"] == body["risk"]


# --- subscribe checks -------------------------------------------------------------


def test_subscribe_refuses_own_portfolio_twice_below_minimum_and_beyond_the_follower_cap(world):
    from fees.models import LimitsGroup
    from fees.services import leader_group_assign

    portfolio = world.leader()
    leader = portfolio.leader
    r = subscribe_api(client_for(leader), portfolio, amount="100")
    assert (r.status_code, r.json()["code"]) == (400, "OWN_PORTFOLIO")

    user = world.person(deposit="5000")
    assert subscribe_api(client_for(user), portfolio, amount="1000").status_code == 201
    r = subscribe_api(client_for(user), portfolio, amount="1000")
    assert (r.status_code, r.json()["code"]) == (409, "ALREADY_SUBSCRIBED")

    portfolio.min_investment = D("500")
    portfolio.save(update_fields=["min_investment"])
    r = subscribe_api(client_for(world.person(deposit="5000")), portfolio, amount="499.99999999")
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (400, "BELOW_MIN_INVESTMENT", "amount")

    group = LimitsGroup.objects.create(name="tiny", max_followers=2, max_profit_share_pct=D("50"))
    leader_group_assign(leader=leader, limits_group=group)
    assert subscribe_api(client_for(world.person(deposit="5000")), portfolio, amount="500").status_code == 201
    r = subscribe_api(client_for(world.person(deposit="5000")), portfolio, amount="500")
    assert (r.status_code, r.json()["code"]) == (409, "FOLLOWER_LIMIT_REACHED")
    # An ended copy frees its slot.
    subscription_unfollow(subscription=Subscription.objects.filter(follower=user).get())
    assert subscribe_api(client_for(world.person(deposit="5000")), portfolio, amount="500").status_code == 201


# --- a follower's own close ----------------------------------------------------------


@pytest.mark.parametrize(("quantity", "left"), [("0.37", D("0.63")), (None, D("0"))])
def test_a_follower_closes_exactly_the_quantity_asked(world, quantity, left):
    portfolio = world.leader()
    user = world.person(deposit="5000")
    sub = world.subscribe(portfolio, user=user)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    (mirror,) = mirrors_of(sub)
    world.price(ETH_PERP, "3300")
    body = {"quantity": quantity} if quantity else {}
    r = client_for(user).post(f"/api/v1/subscriptions/{sub.pk}/positions/{mirror.pk}/close", body, format="json")
    assert r.status_code in (200, 201), r.content
    mirror.refresh_from_db()
    assert mirror.quantity == left
    closed = D("1") - left
    assert mirror.realized_pnl == closed * 100
    assert wallet(sub).balance == D("5000") + closed * 100
    assert Order.objects.filter(account_id=sub.copy_account_id, quantity=closed, side="sell").count() == 1
    assert ledger_check().ok


def test_a_partial_close_off_the_quantity_step_is_refused_with_nothing_changed(world):
    portfolio = world.leader()
    user = world.person(deposit="5000")
    sub = world.subscribe(portfolio, user=user)
    world.trade(portfolio, ETH_PERP, "buy", "2")
    (mirror,) = mirrors_of(sub)
    client = client_for(user)
    for quantity, code in (("0.375", "INVALID_QUANTITY"), ("1.01", "INVALID_QUANTITY"), ("0", "INVALID_QUANTITY")):
        r = client.post(
            f"/api/v1/subscriptions/{sub.pk}/positions/{mirror.pk}/close", {"quantity": quantity}, format="json"
        )
        assert (r.status_code, r.json()["code"]) == (400, code), quantity
    mirror.refresh_from_db()
    assert mirror.quantity == D("1")


def test_risk_limits_given_at_subscribe_are_stored(world):
    portfolio = world.leader()
    sub = world.subscribe(portfolio, max_open_positions=2, max_exposure_pct=D("250"))
    risk_limits_set(subscription_id=sub.pk, max_drawdown_pct=D("12.5"))
    body = client_for(sub.follower).get(f"/api/v1/subscriptions/{sub.pk}").json()
    assert (body["risk"]["max_open_positions"], body["risk"]["max_exposure_pct"], body["risk"]["max_drawdown_pct"]) == (
        2,
        "250.00",
        "12.50",
    )
    assert body["risk"]["margin_call_level_pct_effective"] == "110"


def test_unfollow_charges_the_profit_share_of_the_mirrors_it_closes_once(world):
    from fees.models import FeeAccrual

    portfolio = world.leader()
    portfolio.profit_share_pct = D("20")
    portfolio.save(update_fields=["profit_share_pct"])
    user = world.person(deposit="5000")
    sub = world.subscribe(portfolio, user=user)
    world.trade(portfolio, ETH_PERP, "buy", "2")  # mirror 1 ETH @ 3200
    world.price(ETH_PERP, "3300")  # +100

    done = subscription_unfollow(subscription=sub)
    assert done.returned == D("5080")  # 100 of profit, 20 of it the leader's share
    assert main_wallet(user).balance == D("5080")
    (accrual,) = FeeAccrual.objects.filter(subscription_id=sub.pk)
    assert accrual.fee == D("20")
    assert subscription_unfollow(subscription=sub).already_ended
    assert FeeAccrual.objects.filter(subscription_id=sub.pk).count() == 1
    assert ledger_check().ok
