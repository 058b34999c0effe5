"""POST /api/v1/portfolios/{id}/simulate: the replay of a hand-built history
gives the numbers worked out by hand; bad input gets its stable code; private
portfolios need the passcode; answers are cached per input until the leader
trades again; a user is throttled."""

from decimal import Decimal

import pytest

from followers.replay import history as replay_history
from portfolios.services import portfolio_create, portfolio_fund
from tests.copytrading.world import ETH_PERP, World
from tests.factories import UserFactory
from tests.followers.conftest import client_for

D = Decimal
# Sized by equity: a 5,000 copy of a 10,000 leader takes half of each of its trades.
AT_HALF = {"sizing_model": "adaptive", "risk_factor": "1"}


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def _portfolio(**kw):
    from copytrading.services import wallet_deposit

    user = UserFactory()
    wallet_deposit(user=user, amount=D("11000"))
    portfolio = portfolio_create(leader=user, name=f"{user.username}'s book", profit_share_pct=D("20"), **kw)
    portfolio_fund(portfolio=portfolio, amount=D("10000"))
    return portfolio


def _open_and_close(world, portfolio, *, to: str) -> None:
    """The leader (equity 10,000) buys 1 ETH at 3,200 (5x), the mark goes to ``to``, the leader closes."""
    world.trade(portfolio, ETH_PERP, "buy", "1", 5)
    world.price(ETH_PERP, to)
    (position,) = portfolio.trading_account.positions.filter(status="open")
    world.close(portfolio, position.pk)


def simulate(user, portfolio, **body):
    return client_for(user).post(f"/api/v1/portfolios/{portfolio.pk}/simulate", body, format="json")


def test_a_profitable_round_trip_at_half_the_leaders_equity(world):
    portfolio = _portfolio()
    _open_and_close(world, portfolio, to="3520")
    answer = simulate(UserFactory(), portfolio, amount="5000", days=7, **AT_HALF)
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    # 5,000 / 10,000 of the leader's 1 ETH = 0.5 ETH; +320 a coin = +160; 20 % of it is the fee.
    assert D(body["pnl"]) == D("128")
    assert D(body["fees"]) == D("32")
    assert D(body["final_equity"]) == D("5128")
    assert D(body["roi_pct"]) == D("2.56")
    # The curve peaks at 5,160 (open at 3,520), then the fee takes 32: 32 / 5,160.
    assert D(body["max_drawdown_pct"]) == D("0.62015504")
    assert (body["events"], body["copied"], body["skipped"], body["rejected"]) == (2, 2, 0, 0)
    assert body["not_copied"] == []
    assert D(body["equity_curve"][-1]["equity"]) == D("5128")
    assert D(body["equity_curve"][0]["equity"]) == D("5000")


def test_trades_too_small_at_your_size_are_counted_with_their_reason(world):
    portfolio = _portfolio()
    _open_and_close(world, portfolio, to="3520")
    body = simulate(UserFactory(), portfolio, amount="50", days=30, **AT_HALF).json()
    # 50 / 10,000 of 1 ETH = 0.005, below the 0.01 minimum; nothing to close after.
    assert (body["copied"], body["skipped"]) == (0, 2)
    assert D(body["pnl"]) == 0
    reasons = {r["reason_code"]: r for r in body["not_copied"]}
    assert reasons["BELOW_MIN_QUANTITY"]["count"] == 1
    assert reasons["BELOW_MIN_QUANTITY"]["message"].startswith("1 trade would have been skipped: ")
    assert reasons["NO_MIRROR_POSITION"]["count"] == 1


def test_a_loss_past_the_unrealized_daily_limit_pauses_and_closes(world):
    portfolio = _portfolio()
    world.trade(portfolio, ETH_PERP, "buy", "1", 5)
    world.price(ETH_PERP, "3000")  # the 0.5 ETH mirror is 100 down
    body = simulate(UserFactory(), portfolio, amount="5000", days=7, daily_loss_limit_unrealized="50", **AT_HALF).json()
    (pause,) = body["pauses"]
    assert (pause["rule"], pause["closed"], D(pause["measured"])) == ("daily_loss_unrealized", True, D("100"))
    assert D(body["final_equity"]) == D("4900")  # closed at 3,000: the loss realized, nothing open
    assert D(body["max_drawdown_pct"]) == D("2")
    assert D(body["fees"]) == 0


def test_a_template_is_taken_as_at_subscribe(world):
    portfolio = _portfolio()
    _open_and_close(world, portfolio, to="3520")
    answer = simulate(UserFactory(), portfolio, amount="5000", template="aggressive")
    assert answer.status_code == 200
    assert answer.json()["days"] == 30
    unknown = simulate(UserFactory(), portfolio, amount="5000", template="nope")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "UNKNOWN_TEMPLATE")


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"amount": "5000", "days": 14}, 400, "INVALID_CHOICE", "days"),
        ({"amount": "-5"}, 400, None, "amount"),
        # 20 whole digits fit the column, but the replay's figures overflowed (a 500 in the copy dialog).
        ({"amount": "99999999999999999999"}, 400, None, "amount"),
        ({"amount": "5000", "multiplier": "7"}, 400, "OUT_OF_RANGE", "multiplier"),
        ({"amount": "5000", "max_drawdown_pct": "101"}, 400, "OUT_OF_RANGE", "max_drawdown_pct"),
        ({"amount": "5000", "bogus": "1"}, 200, None, None),  # unknown keys are ignored, as everywhere
    ],
)
def test_bad_input_gets_its_code(world, body, status, code, field):
    portfolio = _portfolio()
    answer = simulate(UserFactory(), portfolio, **body)
    assert answer.status_code == status, answer.json()
    if status != 200:
        assert answer.json()["field"] == field
        if code:
            assert answer.json()["code"] == code


def test_below_the_minimum_investment(world):
    portfolio = _portfolio(min_investment=D("1000"))
    answer = simulate(UserFactory(), portfolio, amount="999")
    assert (answer.status_code, answer.json()["code"]) == (400, "BELOW_MIN_INVESTMENT")


def test_a_private_portfolio_needs_its_passcode(world):
    portfolio = _portfolio(is_public=False, passcode="12345678")
    user = UserFactory()
    assert simulate(user, portfolio, amount="5000").json()["code"] == "PASSCODE_REQUIRED"
    assert simulate(user, portfolio, amount="5000", passcode="00000000").json()["code"] == "PASSCODE_INVALID"
    assert simulate(user, portfolio, amount="5000", passcode="12345678").status_code == 200


def test_unknown_portfolio_and_anonymous(world, api):
    assert simulate(UserFactory(), type("P", (), {"pk": 999999})(), amount="5000").status_code == 404
    assert api.post("/api/v1/portfolios/1/simulate", {"amount": "5000"}, format="json").status_code == 401


def test_answers_are_cached_until_the_leader_trades_again(world, settings, monkeypatch):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "sim"}}
    portfolio = _portfolio()
    world.trade(portfolio, ETH_PERP, "buy", "1", 5)
    reads = []
    real = replay_history.history
    monkeypatch.setattr(replay_history, "history", lambda *a: reads.append(a) or real(*a))
    user = UserFactory()
    first = simulate(user, portfolio, amount="5000", multiplier="1").json()
    again = simulate(user, portfolio, amount="5000", multiplier="1").json()
    assert len(reads) == 1 and first == again
    simulate(user, portfolio, amount="6000", multiplier="1")  # another input
    assert len(reads) == 2
    world.price(ETH_PERP, "3300")
    (position,) = portfolio.trading_account.positions.filter(status="open")
    world.close(portfolio, position.pk)  # a new event: the old answers are stale
    after = simulate(user, portfolio, amount="5000", multiplier="1").json()
    assert len(reads) == 3 and after["events"] == 2


def test_a_user_is_throttled(world, settings):
    settings.SIMULATE_PER_MINUTE = 2
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "thr"}}
    portfolio = _portfolio()
    user, other = UserFactory(), UserFactory()
    assert [simulate(user, portfolio, amount="5000").status_code for _ in range(2)] == [200, 200]
    refused = simulate(user, portfolio, amount="5000")
    assert (refused.status_code, refused.json()["code"]) == (429, "SIMULATE_THROTTLED")
    assert 0 < int(refused["Retry-After"]) <= 60
    assert simulate(other, portfolio, amount="5000").status_code == 200


def test_a_busy_period_is_refused_rather_than_replayed(world, settings):
    settings.SIMULATE_MAX_EVENTS = 1
    portfolio = _portfolio()
    _open_and_close(world, portfolio, to="3300")
    answer = simulate(UserFactory(), portfolio, amount="5000", days=7)
    assert (answer.status_code, answer.json()["code"], answer.json()["field"]) == (400, "SIMULATION_TOO_LARGE", "days")


@pytest.mark.parametrize("template", ["²", "1²", "⑦"])
def test_a_template_that_only_looks_like_an_id_is_unknown_not_a_crash(world, template):
    portfolio = _portfolio()
    user = UserFactory()
    answer = simulate(user, portfolio, amount="5000", template=template)
    assert (answer.status_code, answer.json()["code"]) == (400, "UNKNOWN_TEMPLATE")
    from copytrading.services import wallet_deposit

    wallet_deposit(user=user, amount=D("5000"))
    subscribe = client_for(user).post(
        "/api/v1/subscriptions", {"portfolio": portfolio.pk, "amount": "5000", "template": template}, format="json"
    )
    assert (subscribe.status_code, subscribe.json()["code"]) == (400, "UNKNOWN_TEMPLATE")


def test_a_portfolio_that_takes_no_followers_is_not_simulated(world):
    from portfolios.lifecycle import portfolio_close

    portfolio = _portfolio()
    portfolio_close(portfolio=portfolio, actor=portfolio.leader, reason="done")
    portfolio.refresh_from_db()
    answer = simulate(UserFactory(), portfolio, amount="5000")
    assert (answer.status_code, answer.json()["code"]) == (409, "PORTFOLIO_NOT_ACTIVE")


def test_too_many_steps_are_refused(world, settings):
    settings.SIMULATE_MAX_STEPS = 1
    portfolio = _portfolio()
    _open_and_close(world, portfolio, to="3300")
    answer = simulate(UserFactory(), portfolio, amount="5000", days=7)
    assert (answer.status_code, answer.json()["code"]) == (400, "SIMULATION_TOO_LARGE")
