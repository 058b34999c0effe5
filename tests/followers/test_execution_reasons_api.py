"""A follower reads why a trade was or was not copied: ``GET
subscriptions/{id}/executions`` carries the reason as a sentence
(``reason_text``) and what the decision saw, read-only."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from copytrading.models import Execution
from copytrading.serializers import ExecutionSerializer
from tests.acceptance.test_bad_input import client_for
from tests.copytrading.world import BTC_PERP, World

D = Decimal
SEEN = ("attempted_quantity", "free_balance", "min_quantity", "min_notional", "quantity_step", "price_used")


@pytest.fixture
def world(settings, instruments, django_capture_on_commit_callbacks):
    settings.PAPER_SPREAD_BPS = D("0")
    return World(instruments, django_capture_on_commit_callbacks)


def test_the_execution_log_says_why_in_a_sentence_with_the_recorded_values(world):
    portfolio = world.leader()
    tiny = world.follower(portfolio, multiplier="0.004")
    (event,) = world.trade(portfolio, BTC_PERP, "buy", "0.1")

    (row,) = client_for(tiny.follower).get(f"/api/v1/subscriptions/{tiny.pk}/executions").json()["results"]

    assert (row["outcome"], row["reason_code"]) == ("SKIPPED", "BELOW_MIN_QUANTITY")
    assert row["reason_text"] == (
        "Your size (0.0004 BTC at your copy ratio) is below the instrument's minimum quantity 0.001."
    )
    stored = Execution.objects.get(event=event, subscription_id=tiny.pk)
    # Amounts as every amount of the API: strings with 8 places.
    assert {name: row[name] for name in SEEN} == {name: f"{getattr(stored, name):.8f}" for name in SEEN}
    assert row["attempted_quantity"] == "0.00040000"
    assert row["reason_detail"] == ""


def test_a_copied_row_has_an_empty_reason_and_its_price(world):
    portfolio = world.leader()
    sub = world.follower(portfolio, multiplier="0.5")
    world.trade(portfolio, BTC_PERP, "buy", "0.1")

    (row,) = client_for(sub.follower).get(f"/api/v1/subscriptions/{sub.pk}/executions").json()["results"]

    assert (row["outcome"], row["reason_text"]) == ("COPIED", "")
    assert row["price_used"] == row["follower_price"] == "64000.00000000"
    assert row["attempted_quantity"] == row["follower_quantity"] == "0.05000000"


def test_the_page_reads_the_sentences_without_a_query_per_row(world):
    portfolio = world.leader()
    sub = world.follower(portfolio, multiplier="0.004")  # every buy below the minimum
    client = client_for(sub.follower)
    url = f"/api/v1/subscriptions/{sub.pk}/executions"

    def queries_for(trades: int) -> int:
        for _ in range(trades):
            world.trade(portfolio, BTC_PERP, "buy", "0.1")
        with CaptureQueriesContext(connection) as ctx:
            rows = client.get(url).json()["results"]
        assert all(r["reason_text"].startswith("Your size (0.0004 BTC") for r in rows)
        return len(ctx.captured_queries)

    assert queries_for(1) == queries_for(4)


def test_the_recorded_values_are_read_only():
    # The endpoint is a GET; the serializer declares every field read-only,
    # so a future write path cannot take them from a client.
    fields = ExecutionSerializer().fields
    assert all(fields[name].read_only for name in (*SEEN, "reason_text", "reason_detail"))
