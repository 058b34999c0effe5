"""The live stream end to end in one process: the real routing and consumer,
the hub fed by the real transport of the pass (Redis channel layer in the
services pass, the notice table embedded), real writes through the services."""

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from copytrading.models import Instrument
from copytrading.notifications.services import Note, notify
from copytrading.services import instruments_seed, price_set
from copytrading.stream import protocol
from tests.factories import UserFactory, token_for
from tests.followers.conftest import FollowerWorld, client_for
from tests.stream.conftest import connect, reset

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
ETH_PERP = "ETH/USDT:USDT"


def run(scenario):
    async def wrapped():
        try:
            await scenario()
        finally:
            await reset()

    async_to_sync(wrapped)()


@database_sync_to_async
def move(symbol: str, price: str) -> None:
    price_set(instrument=Instrument.objects.get(symbol=symbol), price=D(price))


@pytest.fixture
def market(settings):
    settings.PAPER_SPREAD_BPS = D("0")
    instruments_seed()
    return {i.symbol: i for i in Instrument.objects.all()}


class _NoCapture:
    """World helpers expect django_capture_on_commit_callbacks; committed
    transactions run their callbacks themselves here."""

    def __call__(self, execute=False):
        from contextlib import nullcontext

        return nullcontext([])


@pytest.fixture
def world(market):
    return FollowerWorld(market, _NoCapture())


def test_any_other_path_is_closed_with_4404():
    async def scenario():
        client = await connect(path="/ws/other/")
        assert await client.closed() == protocol.CLOSE_NOT_FOUND

    run(scenario)


def test_a_bad_token_is_closed_with_4001_and_a_good_one_by_message_is_welcomed(market):
    user = UserFactory()
    token = token_for(user)

    async def scenario():
        bad = await connect(headers=[(b"authorization", b"Token nope")])
        assert await bad.closed() == protocol.CLOSE_UNAUTHENTICATED
        by_message = await connect(token=token, auth_message=True)
        assert by_message.seen[-1] == {"type": "welcome", "user_id": user.pk}
        unauthenticated = await connect()
        await unauthenticated.send(op="subscribe", topic="prices", instruments=[ETH_PERP])
        refused = await unauthenticated.next()
        assert refused["code"] == "UNAUTHENTICATED"
        await unauthenticated.send(op="auth", token="wrong")
        assert await unauthenticated.closed() == protocol.CLOSE_UNAUTHENTICATED
        await by_message.close()

    run(scenario)


def test_no_auth_message_in_time_closes_4001(settings):
    settings.STREAM_AUTH_SECONDS = 0.2

    async def scenario():
        client = await connect()
        assert await client.closed() == protocol.CLOSE_UNAUTHENTICATED

    run(scenario)


def test_prices_snapshot_then_a_delta_per_tick_with_sequence_numbers(market):
    token = token_for(UserFactory())

    async def scenario():
        client = await connect(token=token)
        snapshot = await client.subscribe("prices", instruments=[ETH_PERP, "BTC/USDT"])
        assert snapshot["seq"] == 1
        rows = {row["key"]: row for row in snapshot["data"]["rows"]}
        assert rows[ETH_PERP]["mark_price"] == "3200.00000000"
        await move(ETH_PERP, "3210.5")
        delta = await client.delta("prices")
        assert delta["seq"] == 2 and delta["stream"] == snapshot["stream"]
        assert [(r["key"], r["mark_price"]) for r in delta["data"]["changed"]] == [(ETH_PERP, "3210.50000000")]
        await move("SOL/USDT:USDT", "151")  # not subscribed: nothing
        await client.quiet("prices")
        await client.close()

    run(scenario)


def test_bad_messages_get_errors_with_codes_then_a_close(market):
    token = token_for(UserFactory())

    async def scenario():
        client = await connect(token=token)
        cases = [
            ("not json", "BAD_MESSAGE"),
            ('{"op": "subscribe", "topic": "nope"}', "UNKNOWN_TOPIC"),
            ('{"op": "subscribe", "topic": "prices"}', "INVALID_INSTRUMENTS"),
            ('{"op": "subscribe", "topic": "prices", "instruments": ["XXX/YYY"]}', "UNKNOWN_INSTRUMENT"),
            ('{"op": "subscribe", "topic": "portfolio:abc"}', "INVALID_TOPIC"),
            ('{"op": "unsubscribe", "topic": "copies"}', "NOT_SUBSCRIBED"),
            ('{"op": "dance"}', "UNKNOWN_OP"),
            ('{"op": "auth", "token": "x"}', "ALREADY_AUTHENTICATED"),
            ("x" * 5000, "MESSAGE_TOO_LARGE"),
        ]
        for text, code in cases:
            await client.ws.send_to(text_data=text)
            assert (await client.next(lambda m: m.get("type") == "error"))["code"] == code, text
        for _ in range(protocol.MAX_BAD_FRAMES - len(cases) + 1):
            await client.ws.send_to(text_data="{}")
        assert await client.closed() == protocol.CLOSE_BAD_FRAMES

    run(scenario)


def test_copies_show_the_live_unrealized_pnl_and_match_the_rest_figures(world):
    portfolio = world.leader(mode="margin")
    sub = world.subscribe(portfolio, daily_loss_limit_unrealized=D("80"))
    world.trade(portfolio, ETH_PERP, "buy", "1")  # the copy mirrors 0.5 ETH at 3200 (x10: margin 160)
    token = token_for(sub.follower)

    async def scenario():
        client = await connect(token=token)
        snapshot = await client.subscribe("copies")
        [row] = snapshot["data"]["rows"]
        assert row["subscription_id"] == sub.pk
        assert D(row["unrealized_pnl"]) == 0
        await move(ETH_PERP, "3100")
        delta = await client.delta("copies")
        [changed] = delta["data"]["changed"]
        # (3100 - 3200) x 0.5 = -50; 80 - 50 = 30 of headroom
        assert changed["unrealized_pnl"] == "-50.00000000"
        assert changed["daily_loss_headroom_unrealized"] == "30.00000000"
        assert changed["equity"] == "4950.00000000"
        await client.close()
        return changed

    run(scenario)
    # The REST API shows the same figures at the same mark.
    figures = client_for(sub.follower).get(f"/api/v1/subscriptions/{sub.pk}").json()["figures"]
    assert figures["unrealized_pnl"] == "-50.00000000" and figures["equity"] == "4950.00000000"


def test_positions_and_executions_follow_a_leader_trade(world):
    portfolio = world.leader(mode="margin")
    sub = world.subscribe(portfolio)
    token = token_for(sub.follower)

    async def scenario():
        client = await connect(token=token)
        assert (await client.subscribe("positions"))["data"]["rows"] == []
        assert (await client.subscribe("executions"))["data"]["items"] == []
        await database_sync_to_async(world.trade)(portfolio, ETH_PERP, "buy", "1")
        executions = await client.delta("executions")
        [item] = executions["data"]["items"]
        assert (item["subscription_id"], item["outcome"], item["reason_text"]) == (sub.pk, "COPIED", "")
        assert item["price_used"] == item["follower_price"]
        positions = await client.delta("positions", lambda m: m["data"]["changed"])
        [row] = positions["data"]["changed"]
        assert (row["instrument"], row["side"], row["quantity"]) == (ETH_PERP, "long", "0.50000000")
        await move(ETH_PERP, "3300")
        moved = await client.delta("positions", lambda m: m["data"]["changed"])
        assert moved["data"]["changed"][0]["unrealized_pnl"] == "50.00000000"
        await client.close()

    run(scenario)


def test_an_execution_item_says_why_in_a_sentence(world):
    portfolio = world.leader(mode="margin")
    sub = world.subscribe(portfolio, multiplier=D("0.001"))  # 1 ETH x 0.001 is below the 0.01 minimum
    token = token_for(sub.follower)

    async def scenario():
        client = await connect(token=token)
        await client.subscribe("executions")
        await database_sync_to_async(world.trade)(portfolio, ETH_PERP, "buy", "1")
        [item] = (await client.delta("executions"))["data"]["items"]
        assert (item["outcome"], item["reason_code"]) == ("SKIPPED", "BELOW_MIN_QUANTITY")
        assert item["reason_text"] == (
            "Your size (0.001 ETH at your copy ratio) is below the instrument's minimum quantity 0.01."
        )
        assert (item["attempted_quantity"], item["min_quantity"]) == ("0.00100000", "0.01000000")
        assert "event__kind" not in item and "symbol" not in item
        await client.close()

    run(scenario)


def test_portfolio_topic_is_its_leaders_only(world):
    portfolio = world.leader(mode="margin")
    world.subscribe(portfolio)
    world.trade(portfolio, ETH_PERP, "buy", "1")
    leader_token, other_token = token_for(portfolio.leader), token_for(UserFactory())

    async def scenario():
        other = await connect(token=other_token)
        await other.send(op="subscribe", topic=f"portfolio:{portfolio.pk}")
        assert (await other.next(lambda m: m.get("type") == "error"))["code"] == "NOT_FOUND"
        leader = await connect(token=leader_token)
        snapshot = await leader.subscribe(f"portfolio:{portfolio.pk}")
        assert snapshot["data"]["followers"] == 1
        [position] = snapshot["data"]["rows"]
        assert position["quantity"] == "1.00000000"
        await move(ETH_PERP, "3100")
        delta = await leader.delta(f"portfolio:{portfolio.pk}")
        assert delta["data"]["unrealized_pnl"] == "-100.00000000"
        await other.close()
        await leader.close()

    run(scenario)


def test_notifications_reach_their_user_only(market):
    alice, bob = UserFactory(), UserFactory()
    alice_token, bob_token = token_for(alice), token_for(bob)

    @database_sync_to_async
    def note(user, key):
        from django.db import transaction

        with transaction.atomic():
            notify([Note(user.pk, "withdrawal_done", key, {"amount": "10"})])

    async def scenario():
        a = await connect(token=alice_token)
        b = await connect(token=bob_token)
        assert (await a.subscribe("notifications"))["data"]["unread"] == 0
        await b.subscribe("notifications")
        await note(alice, "test:1")
        delta = await a.delta("notifications")
        assert delta["data"]["unread"] == 1 and delta["data"]["items"][0]["kind"] == "withdrawal_done"
        await b.quiet("notifications", 0.5)
        await a.close()
        await b.close()

    run(scenario)


def test_a_reconnect_with_its_sequence_number_gets_what_it_missed(market):
    token = token_for(UserFactory())

    async def scenario():
        first = await connect(token=token)
        snapshot = await first.subscribe("prices", instruments=[ETH_PERP])
        await move(ETH_PERP, "3201")
        missed_before = await first.delta("prices")
        await first.close()
        await move(ETH_PERP, "3202")
        await move(ETH_PERP, "3203")
        # Give the hub time to buffer the ticks for the closed socket.
        second = await connect(token=token)
        await second.quiet("prices", 0.5)
        await second.send(
            op="subscribe", topic="prices", instruments=[ETH_PERP],
            resume={"stream": snapshot["stream"], "seq": missed_before["seq"]},
        )  # fmt: skip
        replayed = await second.next(lambda m: m.get("topic") == "prices")
        assert replayed["stream"] == snapshot["stream"] and replayed["type"] == "delta"
        assert replayed["seq"] == missed_before["seq"] + 1
        assert replayed["data"]["changed"][0]["mark_price"] in ("3202.00000000", "3203.00000000")
        if replayed["data"]["changed"][0]["mark_price"] == "3202.00000000":
            last = await second.delta("prices")
            assert last["seq"] == replayed["seq"] + 1 and last["data"]["changed"][0]["mark_price"] == "3203.00000000"
        # An unknown stream: a fresh snapshot, never a silent gap.
        await second.send(op="subscribe", topic="prices", instruments=[ETH_PERP], resume={"stream": "gone", "seq": 9})
        fresh = await second.next(lambda m: m.get("topic") == "prices")
        assert fresh["type"] == "snapshot" and fresh["seq"] == 1 and fresh["stream"] != snapshot["stream"]
        await second.close()

    run(scenario)


def test_a_client_that_does_not_answer_pings_is_closed_4008(market, settings):
    settings.STREAM_PING_SECONDS = 0.1
    settings.STREAM_MAX_LAG_SECONDS = 1.5
    token = token_for(UserFactory())

    async def scenario():
        client = await connect(token=token)
        ping = await client.next(lambda m: m.get("type") == "ping", timeout=3)
        assert isinstance(ping["t"], int)
        assert await client.closed(timeout=5) == protocol.CLOSE_TOO_SLOW

    run(scenario)


def test_a_client_that_answers_pings_stays(market, settings):
    settings.STREAM_PING_SECONDS = 0.1
    settings.STREAM_MAX_LAG_SECONDS = 1.5
    token = token_for(UserFactory())

    async def scenario():
        client = await connect(token=token)
        for _ in range(4):
            ping = await client.next(lambda m: m.get("type") == "ping", timeout=3)
            await client.send(op="pong", t=ping["t"])
        await client.subscribe("prices", instruments=[ETH_PERP])
        await client.close()

    run(scenario)


def test_unsubscribe_stops_the_topic_and_a_resume_with_nothing_missed_says_so(market):
    token = token_for(UserFactory())

    async def scenario():
        client = await connect(token=token)
        snapshot = await client.subscribe("prices", instruments=[ETH_PERP])
        await client.send(op="unsubscribe", topic="prices")
        assert (await client.next(lambda m: m.get("type") == "unsubscribed"))["topic"] == "prices"
        await move(ETH_PERP, "3300")
        await client.quiet("prices", 0.4)
        await client.close()
        # The unsubscribed stream is gone: a resume gets a fresh snapshot.
        again = await connect(token=token)
        resume = {"stream": snapshot["stream"], "seq": 1}
        fresh = await again.subscribe("prices", instruments=[ETH_PERP], resume=resume)
        assert fresh["type"] == "snapshot" and fresh["stream"] != snapshot["stream"]
        await again.close()
        # A socket that closes with nothing missed resumes with "resumed".
        third = await connect(token=token)
        resumed = await third.subscribe("prices", instruments=[ETH_PERP], resume={"stream": fresh["stream"], "seq": 1})
        assert (resumed["type"], resumed["stream"], resumed["seq"]) == ("resumed", fresh["stream"], 1)
        await third.close()

    run(scenario)


def test_too_many_sockets_for_one_user_are_closed_4029(market, settings):
    settings.STREAM_MAX_SOCKETS_PER_USER = 2
    token = token_for(UserFactory())

    async def scenario():
        first, second = await connect(token=token), await connect(token=token)
        third = await connect()
        await third.send(op="auth", token=token)
        assert await third.closed() == protocol.CLOSE_TOO_MANY
        await first.close()
        await second.close()

    run(scenario)


def test_the_browser_session_counts_only_from_our_own_origin(market, settings, client):
    settings.ALLOWED_HOSTS = ["app.example"]
    user = UserFactory()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()

    async def scenario():
        host = (b"host", b"app.example")
        ours = await connect(headers=[(b"cookie", cookie), host, (b"origin", b"https://app.example")])
        welcome = await ours.next(lambda m: m.get("type") == "welcome")
        assert welcome["user_id"] == user.pk
        for origin in (b"https://evil.example", b"https://app.example:8443", None):
            headers = [(b"cookie", cookie), host] + ([(b"origin", origin)] if origin else [])
            theirs = await connect(headers=headers)
            await theirs.send(op="subscribe", topic="copies")
            assert (await theirs.next())["code"] == "UNAUTHENTICATED", origin
            await theirs.close()
        await ours.close()

    run(scenario)


def test_a_failing_read_answers_an_error_and_keeps_the_socket(market, monkeypatch):
    from django.db import OperationalError

    from copytrading.stream import topics

    token = token_for(UserFactory())

    def down(self, initial):
        raise OperationalError("connection refused")

    async def scenario():
        client = await connect(token=token)
        monkeypatch.setattr(topics.PositionsTopic, "read", down)
        await client.send(op="subscribe", topic="positions")
        assert (await client.next(lambda m: m.get("type") == "error"))["code"] == "SERVICE_UNAVAILABLE"
        monkeypatch.undo()
        assert (await client.subscribe("positions"))["type"] == "snapshot"
        await client.close()

    run(scenario)


def test_a_pong_that_does_not_echo_the_ping_does_not_count(market, settings):
    # A client that never reads its frames cannot echo the ping: blind pongs
    # do not keep it alive (the server would buffer for it without bound).
    settings.STREAM_PING_SECONDS = 0.1
    settings.STREAM_MAX_LAG_SECONDS = 1.5
    token = token_for(UserFactory())

    async def scenario():
        client = await connect(token=token)
        for _ in range(60):
            await client.send(op="pong", t=12345)
            await client.send(op="pong")
            try:
                await client.next(lambda m: False, timeout=0.1)
            except AssertionError:
                pass
            except ConnectionError as closed:
                assert closed.args[0] == protocol.CLOSE_TOO_SLOW
                return
        raise AssertionError("a client sending blind pongs was not closed")

    run(scenario)
