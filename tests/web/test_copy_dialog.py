"""The copy dialog (/portfolios/<id>/copy/) and its preview: the API's
serializer and subscribe's service, each refusal next to its field with
nothing created; the preview is the simulate API's answer for the same input,
throttled like it; a private portfolio asks for its passcode and says its
lockout."""

from decimal import Decimal
from html import escape

import pytest
from django.test import Client

from copytrading import ledger
from copytrading.services import wallet_deposit
from fees.models import LimitsGroup
from fees.services import leader_group_assign
from followers.models import Subscription
from portfolios.copy_templates import copy_template_create
from portfolios.lifecycle import portfolio_close
from portfolios.models import PasscodeThrottle
from portfolios.services import portfolio_create, portfolio_fund, portfolio_update
from tests.copytrading.world import ETH_PERP, World
from tests.factories import UserFactory
from tests.followers.conftest import client_for

D = Decimal
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def make_portfolio(**kw):
    leader = UserFactory()
    wallet_deposit(user=leader, amount=D("11000"))
    portfolio = portfolio_create(leader=leader, name=f"{leader.username}'s book", profit_share_pct=D("20"), **kw)
    portfolio_fund(portfolio=portfolio, amount=D("10000"))
    return portfolio


def traded_portfolio(world, **kw):
    """A leader (equity 10,000) buys 1 ETH at 3,200 and closes it at 3,520."""
    portfolio = make_portfolio(**kw)
    world.trade(portfolio, ETH_PERP, "buy", "1", 5)
    world.price(ETH_PERP, "3520")
    (position,) = portfolio.trading_account.positions.filter(status="open")
    world.close(portfolio, position.pk)
    return portfolio


def follower(client, deposit: str = "5000"):
    user = UserFactory()
    if D(deposit):
        wallet_deposit(user=user, amount=D(deposit))
    client.force_login(user)
    return user


def main_balance(user) -> Decimal:
    return ledger.main_account_for(user).balance


def url(portfolio) -> str:
    return f"/portfolios/{portfolio.pk}/copy/"


def preview_url(portfolio) -> str:
    return f"/portfolios/{portfolio.pk}/copy/preview/"


# --- the form ---------------------------------------------------------------------------


def test_anonymous_is_sent_to_log_in(client, world):
    portfolio = make_portfolio()
    answer = client.get(url(portfolio))
    assert answer.status_code == 302 and answer["Location"].startswith(f"/login/?next={url(portfolio)}")
    assert client.post(preview_url(portfolio), {"amount": "100"})["Location"].startswith("/login/")


def test_the_form_lists_the_templates_and_every_setting_the_api_takes(client, world):
    portfolio = make_portfolio()
    copy_template_create(portfolio=portfolio, name="Steady", multiplier=D("0.2"))
    follower(client)
    html = client.get(url(portfolio)).content.decode()
    assert '<form id="copy-form"' in html and "<html" in html
    for name in ("Conservative", "Balanced", "Aggressive", "Steady"):
        assert f">{name}</option>" in html
    assert '<option value="">Custom settings</option>' in html
    from followers.serializers import SettingsSerializer

    for name in SettingsSerializer().fields:
        assert f'id="id_{name}"' in html and f'<label for="id_{name}">' in html
    for days in (7, 30, 90):
        assert f'<option value="{days}"' in html
    assert 'id="id_passcode"' not in html  # public
    fragment = client.get(url(portfolio), **HTMX).content.decode()
    assert '<form id="copy-form"' in fragment and "<html" not in fragment


def test_an_unknown_portfolio_is_a_404(client, world):
    follower(client)
    assert client.get("/portfolios/999999/copy/").status_code == 404
    assert client.post("/portfolios/999999/copy/", {"amount": "100"}).status_code == 404
    assert client.post("/portfolios/999999/copy/preview/", {"amount": "100"}).status_code == 404


def test_copy_with_a_template(client, world):
    portfolio = make_portfolio()
    user = follower(client)
    answer = client.post(url(portfolio), {"amount": "1000", "template": "aggressive", "days": "30"})
    assert answer.status_code == 302 and answer["Location"] == "/me/copies/"
    subscription = Subscription.objects.get(follower=user, portfolio=portfolio)
    assert subscription.template_ref == "aggressive" and subscription.invested == D("1000")
    assert main_balance(user) == D("4000")
    assert escape(f"You now copy {portfolio.name}.") in client.get("/me/wallet/").content.decode()


def test_copy_with_custom_settings_and_htmx_redirects(client, world):
    portfolio = make_portfolio()
    user = follower(client)
    form = {
        "amount": "1000",
        "template": "",
        "sizing_model": "fixed",
        "fixed_notional": "150",
        "slippage_tolerance_pct": "0.5",
        "daily_loss_limit_realized": "80",
        "copy_spot": "false",
        "max_open_positions": "3",
    }
    answer = client.post(url(portfolio), form, **HTMX)
    assert answer.status_code == 200 and answer["HX-Redirect"] == "/me/copies/"
    s = Subscription.objects.get(follower=user, portfolio=portfolio)
    assert (s.sizing_model, s.fixed_notional, s.slippage_tolerance_pct, s.copy_spot) == ("fixed", 150, D("0.5"), False)
    assert s.template_ref == ""
    from risk.models import RiskLimits

    limits = RiskLimits.objects.get(pk=s.pk)
    assert (limits.daily_loss_limit_realized, limits.max_open_positions) == (D("80"), 3)


def test_a_template_chosen_ignores_the_hidden_custom_fields(client, world):
    portfolio = make_portfolio()
    user = follower(client)
    client.post(url(portfolio), {"amount": "1000", "template": "conservative", "multiplier": "7"})
    s = Subscription.objects.get(follower=user, portfolio=portfolio)
    assert s.template_ref == "conservative" and s.multiplier != D("7")


def test_a_double_submit_makes_one_subscription(client, world):
    portfolio = make_portfolio()
    user = follower(client)
    form = {"amount": "1000", "template": "balanced", "idempotency_key": "same-form"}
    assert client.post(url(portfolio), form)["Location"] == "/me/copies/"
    assert client.post(url(portfolio), form)["Location"] == "/me/copies/"
    assert Subscription.objects.filter(follower=user).count() == 1
    assert main_balance(user) == D("4000")
    # Another form (a new key) is refused by the one-live-copy rule.
    again = client.post(url(portfolio), {**form, "idempotency_key": "another"})
    assert again.status_code == 409 and "You already copy this portfolio." in again.content.decode()
    assert '<a href="/me/copies/">See your copies</a>' in again.content.decode()


def _refusal(client, portfolio, user, form, status, field, text, *, before=None):
    before = main_balance(user) if before is None else before
    count = Subscription.objects.filter(follower=user).count()
    answer = client.post(url(portfolio), form)
    html = answer.content.decode()
    assert answer.status_code == status, html
    assert f'id="errors-{field}"' in html, html
    assert text in html
    assert Subscription.objects.filter(follower=user).count() == count
    assert main_balance(user) == before
    return html


def test_refusals_are_said_next_to_their_fields_and_change_nothing(client, world):
    portfolio = make_portfolio(min_investment=D("500"))
    user = follower(client, deposit="800")
    _refusal(client, portfolio, user, {"amount": "abc"}, 400, "amount", "A valid number is required.")
    html = _refusal(client, portfolio, user, {"amount": "499"}, 400, "amount", "This portfolio needs at least 500")
    assert 'aria-invalid="true"' in html and 'aria-describedby="errors-amount"' in html
    html = _refusal(client, portfolio, user, {"amount": "900"}, 400, "amount", "Your main wallet has")
    assert '<a href="/me/wallet/" id="to-wallet">' in html
    _refusal(
        client, portfolio, user, {"amount": "600", "template": "", "multiplier": "7"}, 400, "multiplier", "multiplier"
    )
    _refusal(client, portfolio, user, {"amount": "600", "template": "nope"}, 400, "template", "There is no template")


def test_already_copying_no_slots_and_a_closed_portfolio(client, world):
    portfolio = make_portfolio()
    user = follower(client)
    client.post(url(portfolio), {"amount": "1000", "template": "balanced"})
    _refusal(client, portfolio, user, {"amount": "1000"}, 409, "portfolio", "You already copy this portfolio.")

    group = LimitsGroup.objects.create(name="tiny", max_followers=1, max_profit_share_pct=D("50"))
    leader_group_assign(leader=portfolio.leader, limits_group=group)
    other = follower(client)
    _refusal(client, portfolio, other, {"amount": "1000"}, 409, "portfolio", "no open follower slots")

    closed = make_portfolio()
    portfolio_close(portfolio=closed, actor=closed.leader)
    _refusal(client, closed, other, {"amount": "1000"}, 409, "portfolio", "does not take new followers")

    client.force_login(portfolio.leader)
    _refusal(client, portfolio, portfolio.leader, {"amount": "100"}, 400, "portfolio", "your own portfolio")


def test_the_csrf_token_is_required(world):
    portfolio = make_portfolio()
    client = Client(enforce_csrf_checks=True)
    user = follower(client)
    assert client.post(url(portfolio), {"amount": "1000"}).status_code == 403
    assert client.post(preview_url(portfolio), {"amount": "1000"}).status_code == 403
    assert not Subscription.objects.filter(follower=user).exists()


# --- a private portfolio -----------------------------------------------------------------


def test_a_private_portfolio_asks_for_its_passcode_and_says_the_lockout(client, world, settings):
    settings.PASSCODE_MAX_ATTEMPTS_PER_USER = 2
    portfolio = make_portfolio(is_public=False, passcode="12345678")
    copy_template_create(portfolio=portfolio, name="Secret sauce", multiplier=D("0.2"))
    user = follower(client)
    html = client.get(url(portfolio)).content.decode()
    assert 'id="id_passcode"' in html
    # As the API reads it: neither its name nor its own templates without the passcode.
    assert "Copy a private portfolio" in html and escape(portfolio.name) not in html and "Secret sauce" not in html
    form = {"amount": "1000", "template": "balanced"}
    _refusal(client, portfolio, user, form, 403, "passcode", "This portfolio is private")
    _refusal(client, portfolio, user, {**form, "passcode": "00000000"}, 403, "passcode", "The passcode is not right.")
    _refusal(client, portfolio, user, {**form, "passcode": "00000001"}, 403, "passcode", "The passcode is not right.")
    _refusal(client, portfolio, user, {**form, "passcode": "12345678"}, 429, "passcode", "Too many wrong passcodes")

    other = follower(client)
    assert client.post(url(portfolio), {**form, "passcode": "12345678"})["Location"] == "/me/copies/"
    assert Subscription.objects.filter(follower=other, portfolio=portfolio).exists()


def attempts(scope: str, subject_id: int) -> int:
    """Wrong passcodes counted against a counter (portfolios/passcodes.py)."""
    row = PasscodeThrottle.objects.filter(scope=scope, subject_id=subject_id).first()
    return row.attempts if row else 0


def test_the_form_sends_the_passcode_only_on_its_own_change(client, world):
    """The contract the view relies on: the preview leaves the passcode out;
    the passcode's field sends it when it changes; its leader has no such field."""
    portfolio = make_portfolio(is_public=False, passcode="12345678")
    follower(client)
    html = client.get(url(portfolio), **HTMX).content.decode()
    preview = html[html.index('<section id="preview"') :]
    assert 'hx-params="not passcode"' in preview[: preview.index(">")]
    assert "change[target.name!='passcode'] from:#copy-form" in preview
    passcode = html[html.index('<input id="id_passcode"') :]
    passcode = passcode[: passcode.index(">")]
    assert f'hx-post="{preview_url(portfolio)}"' in passcode and 'hx-trigger="change changed delay:200ms"' in passcode
    client.force_login(portfolio.leader)
    assert 'id="id_passcode"' not in client.get(url(portfolio)).content.decode()


def test_the_preview_without_a_right_passcode_counts_nothing_and_says_so(client, world):
    portfolio = traded_portfolio(world, is_public=False, passcode="12345678")
    user = follower(client)
    for amount in ("5000", "5001", "5002", "5003", "5004", "5005", "5006"):
        answer = client.post(preview_url(portfolio), {"amount": amount, "template": "balanced"}, **HTMX)
        html = answer.content.decode()
        assert answer.status_code == 200, html
        assert '<p class="hint" id="preview-passcode">Enter the passcode to see the preview.</p>' in html
        assert 'id="preview-roi"' not in html
        assert 'id="msgs-passcode"' not in html  # its messages are left as they are
    assert attempts(PasscodeThrottle.Scope.USER, user.pk) == 0
    assert attempts(PasscodeThrottle.Scope.PORTFOLIO, portfolio.pk) == 0
    # Its leader, and anyone on a public portfolio, need none.
    client.force_login(portfolio.leader)
    html = client.post(preview_url(portfolio), {"amount": "5000", "template": "balanced"}).content.decode()
    assert 'id="preview-roi"' in html


def test_a_mistyped_passcode_is_counted_once_not_on_every_preview(client, world):
    """The reviewer's case: one digit wrong, then the amount changed four times
    and the period once. Each preview resent the passcode: five 403s, then 429
    for the right one; four such readers slowed the portfolio for everyone."""
    portfolio = traded_portfolio(world, is_public=False, passcode="12345678")
    user = follower(client)
    form = {"amount": "1000", "template": "balanced", "days": "30"}
    # The passcode's own change: checked, refused, said next to it.
    answer = client.post(preview_url(portfolio), {**form, "passcode": "12345670"}, **HTMX)
    html = answer.content.decode()
    assert answer.status_code == 403
    assert (
        'id="msgs-passcode" data-for="passcode" hx-swap-oob="true"><ul class="field-errors" id="errors-passcode"'
        in html
    )
    assert "The passcode is not right." in html
    # The other fields' changes (as the form sends them: no passcode).
    for change in ({"amount": "2000"}, {"amount": "3000"}, {"amount": "4000"}, {"amount": "5000"}, {"days": "7"}):
        form.update(change)
        answer = client.post(preview_url(portfolio), form, **HTMX)
        assert answer.status_code == 200 and 'id="preview-passcode"' in answer.content.decode()
    assert attempts(PasscodeThrottle.Scope.USER, user.pk) == 1
    assert attempts(PasscodeThrottle.Scope.PORTFOLIO, portfolio.pk) == 1
    # The right one: the preview runs, the passcode's message is cleared...
    answer = client.post(preview_url(portfolio), {**form, "passcode": "12345678"}, **HTMX)
    html = answer.content.decode()
    assert answer.status_code == 200 and 'id="preview-roi"' in html
    assert 'id="msgs-passcode" data-for="passcode" hx-swap-oob="true"></div>' in html
    # ...and keeps running on the other fields' changes without it.
    answer = client.post(preview_url(portfolio), {**form, "amount": "2500"}, **HTMX)
    assert answer.status_code == 200 and 'id="preview-roi"' in answer.content.decode()
    assert attempts(PasscodeThrottle.Scope.USER, user.pk) == 1
    # Subscribe still checks it, as the API does.
    answer = client.post(url(portfolio), {**form, "amount": "2500"})
    assert answer.status_code == 403 and "This portfolio is private: send its passcode." in answer.content.decode()
    assert not Subscription.objects.filter(follower=user).exists()
    answer = client.post(url(portfolio), {**form, "amount": "2500", "passcode": "12345678"})
    assert answer.status_code == 302 and answer["Location"] == "/me/copies/"
    assert Subscription.objects.get(follower=user, portfolio=portfolio).invested == D("2500")
    assert attempts(PasscodeThrottle.Scope.USER, user.pk) == 1
    assert attempts(PasscodeThrottle.Scope.PORTFOLIO, portfolio.pk) == 1


def test_a_right_passcode_is_remembered_per_portfolio_and_per_user(client, world):
    portfolio = traded_portfolio(world, is_public=False, passcode="12345678")
    other_portfolio = traded_portfolio(world, is_public=False, passcode="12345678")
    user = follower(client)
    form = {"amount": "5000", "template": "balanced"}

    def previews(c, p) -> bool:
        html = c.post(preview_url(p), form, **HTMX).content.decode()
        assert ('id="preview-roi"' in html) != ('id="preview-passcode"' in html), html
        return 'id="preview-roi"' in html

    assert client.post(preview_url(portfolio), {**form, "passcode": "12345678"}).status_code == 200
    assert previews(client, portfolio)
    assert not previews(client, other_portfolio)  # the same passcode, another portfolio
    # The session keeps which portfolio was let in, never the passcode.
    assert "12345678" not in repr(dict(client.session.items()))
    # Another reader, in another browser or after a log-in in this one.
    stranger = Client()
    stranger.force_login(UserFactory())
    assert not previews(stranger, portfolio)
    client.force_login(UserFactory())
    assert not previews(client, portfolio)
    client.force_login(user)
    assert not previews(client, portfolio)  # a new session
    # A new passcode asks again; a wrong one given later forgets the right one.
    client.post(preview_url(portfolio), {**form, "passcode": "12345678"})
    assert previews(client, portfolio)
    portfolio_update(portfolio=portfolio, passcode="87654321")
    assert not previews(client, portfolio)
    client.post(preview_url(portfolio), {**form, "passcode": "87654321"})
    assert previews(client, portfolio)
    assert client.post(preview_url(portfolio), {**form, "passcode": "87654320"}).status_code == 403
    assert not previews(client, portfolio)


def test_a_passcode_too_long_is_refused_by_the_apis_field_and_not_counted(client, world):
    portfolio = traded_portfolio(world, is_public=False, passcode="12345678")
    user = follower(client)
    answer = client.post(preview_url(portfolio), {"amount": "5000", "passcode": "1" * 33}, **HTMX)
    assert answer.status_code == 400 and 'id="errors-passcode"' in answer.content.decode()
    assert attempts(PasscodeThrottle.Scope.USER, user.pk) == 0


# --- the preview --------------------------------------------------------------------------


def test_the_preview_shows_the_simulate_apis_numbers(client, world):
    portfolio = traded_portfolio(world)
    user = follower(client)
    body = {"amount": "5000", "days": "7", "template": "", "sizing_model": "adaptive", "risk_factor": "1"}
    api = client_for(user).post(f"/api/v1/portfolios/{portfolio.pk}/simulate", body, format="json").json()
    assert D(api["pnl"]) == D("128")  # the simulate API's own test works this out by hand
    answer = client.post(preview_url(portfolio), body, **HTMX)
    html = answer.content.decode()
    assert answer.status_code == 200, html
    assert 'id="preview-roi" class="up">+2.56 %<' in html
    assert 'id="preview-pnl" class="up">+128.00 USDT<' in html
    assert 'id="preview-fees">32.00 USDT<' in html
    assert 'id="preview-equity">5,128.00 USDT<' in html
    assert 'id="preview-drawdown">0.62 %<' in html
    assert "2 copied, 0 skipped, 0 rejected." in html
    assert "<svg" in html


def test_the_preview_says_why_trades_would_not_be_copied(client, world):
    portfolio = traded_portfolio(world)
    follower(client)
    body = {"amount": "50", "days": "30", "template": "", "sizing_model": "adaptive", "risk_factor": "1"}
    html = client.post(preview_url(portfolio), body).content.decode()
    assert "0 copied, 2 skipped, 0 rejected." in html
    assert 'data-reason="BELOW_MIN_QUANTITY">1 trade would have been skipped: ' in html


def test_the_preview_puts_bad_settings_next_to_their_fields(client, world):
    portfolio = traded_portfolio(world)
    follower(client)
    answer = client.post(preview_url(portfolio), {"amount": "5000", "template": "", "multiplier": "7"})
    html = answer.content.decode()
    assert answer.status_code == 400
    assert (
        'id="msgs-multiplier" data-for="multiplier" hx-swap-oob="true"><ul class="field-errors" id="errors-multiplier"'
        in html
    )
    assert 'id="msgs-amount" data-for="amount" hx-swap-oob="true"></div>' in html  # cleared
    assert 'id="preview-roi"' not in html
    empty = client.post(preview_url(portfolio), {"template": "balanced"})
    assert empty.status_code == 200 and 'id="preview-empty"' in empty.content.decode()


def test_the_preview_is_throttled_like_the_api(client, world, settings):
    settings.SIMULATE_PER_MINUTE = 1
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "web-b"}}
    portfolio = traded_portfolio(world)
    follower(client)
    assert client.post(preview_url(portfolio), {"amount": "5000", "template": "balanced"}).status_code == 200
    answer = client.post(preview_url(portfolio), {"amount": "5001", "template": "balanced"})
    assert answer.status_code == 429
    assert "Too many simulations; try again in" in answer.content.decode()
    assert 0 < int(answer["Retry-After"]) <= 60
