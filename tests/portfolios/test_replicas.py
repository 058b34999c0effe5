"""Read replicas (copytrading/replicas.py): the public catalog, statistics and report
exports read the replica; writes, favorites, transactions and anything after a write
read the primary; without a replica nothing changes.

The replica is the alias ``replica`` of config/test_settings.py: a second connection to
the test database (TEST MIRROR), so it sees what is committed, as a replica would.
Which connection ran a query is read from each connection's query log."""

import io

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from copytrading import replicas
from portfolios.models import Favorite
from tests.factories import UserFactory

WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def with_replica(settings):
    settings.DATABASE_REPLICAS = ["replica"]
    settings.DATABASE_ROUTERS = ["copytrading.replicas.PrimaryWritesRouter"]
    settings.CATALOG_CACHE_SECONDS = 0  # every page read from the database
    cache.clear()
    replicas.reset()
    yield
    replicas.reset()


class Logs:
    """The SQL each connection ran inside ``with logs:``."""

    def __enter__(self):
        self.primary = CaptureQueriesContext(connections[DEFAULT_DB_ALIAS])
        self.replica = CaptureQueriesContext(connections["replica"])
        self.primary.__enter__()
        self.replica.__enter__()
        return self

    def __exit__(self, *exc):
        self.replica.__exit__(*exc)
        self.primary.__exit__(*exc)

    @staticmethod
    def _touching(context, table: str) -> list[str]:
        return [q["sql"] for q in context.captured_queries if f'"{table}"' in q["sql"]]

    def on_primary(self, table: str) -> list[str]:
        return self._touching(self.primary, table)

    def on_replica(self, table: str) -> list[str]:
        return self._touching(self.replica, table)

    def replica_writes(self) -> list[str]:
        return [q["sql"] for q in self.replica.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


pytestmark = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, "replica"])


def test_catalog_list_detail_and_statistics_read_the_replica(with_replica, shelf):
    portfolio = shelf.make("Alpha", score="0.9")
    api = APIClient()
    with Logs() as logs:
        page = api.get("/api/v1/catalog")
        detail = api.get(f"/api/v1/catalog/{portfolio.pk}")
        history = api.get(f"/api/v1/catalog/{portfolio.pk}/scores")
        closed = api.get(f"/api/v1/catalog/{portfolio.pk}/closed-trades")
    assert page.status_code == 200 and [i["name"] for i in page.json()["results"]] == ["Alpha"]
    assert detail.status_code == 200, detail.content
    assert history.status_code == 200, history.content
    assert closed.status_code == 200, closed.content
    for table in ("portfolios_portfoliostats", "portfolios_followerdailystats", "portfolios_portfolioscore"):
        assert logs.on_replica(table), f"{table} not read on the replica"
        assert not logs.on_primary(table), f"{table} read on the primary"
    # The closed trades on the replica; the leader's live equity at the marks stays on the primary.
    assert any('"closed_at"' in sql for sql in logs.on_replica("copytrading_position"))
    assert not any('"closed_at"' in sql for sql in logs.on_primary("copytrading_position"))
    assert logs.on_replica("portfolios_portfolio")  # the public portfolio itself
    assert logs.replica_writes() == []


def test_graphql_catalog_reads_the_replica(with_replica, shelf):
    shelf.make("Alpha", score="0.9")
    with Logs() as logs:
        r = APIClient().post("/graphql/", {"query": "{ catalog { edges { node { name } } } }"}, format="json")
    assert r.status_code == 200, r.content
    assert logs.on_replica("portfolios_portfoliostats")
    assert not logs.on_primary("portfolios_portfoliostats")


def test_writes_and_favorites_use_the_primary(with_replica, shelf):
    portfolio = shelf.make("Alpha", score="0.9")
    api = APIClient()
    api.force_authenticate(UserFactory())
    with Logs() as logs:
        assert api.put(f"/api/v1/favorites/{portfolio.pk}").status_code == 201
        favorites = api.get("/api/v1/favorites")
        detail = api.get(f"/api/v1/catalog/{portfolio.pk}")
    assert [i["name"] for i in favorites.json()["results"]] == ["Alpha"]
    assert detail.json()["is_favorite"] is True
    assert logs.replica_writes() == []
    assert not logs.on_replica("portfolios_favorite")  # one's own marks: read-your-writes
    assert any(sql.startswith("INSERT") for sql in logs.on_primary("portfolios_favorite"))
    assert Favorite.objects.using("replica").count() == 1  # committed, visible everywhere


def test_inside_a_transaction_or_after_a_write_reads_stay_on_the_primary(with_replica, shelf):
    portfolio = shelf.make("Alpha", score="0.9")
    replicas.reset()
    assert replicas.replica_alias() == "replica"
    with transaction.atomic():
        assert replicas.replica_alias() == DEFAULT_DB_ALIAS
    assert replicas.replica_alias() == "replica"
    Favorite.objects.create(user=UserFactory(), portfolio=portfolio)  # a write pins this context
    assert replicas.replica_alias() == DEFAULT_DB_ALIAS
    from portfolios import stats

    with Logs() as logs:
        stats.portfolio_stats(portfolio_id=portfolio.pk)
    assert logs.on_primary("portfolios_portfoliostats") and not logs.on_replica("portfolios_portfoliostats")
    replicas.reset()  # what the next request or task starts with
    assert replicas.replica_alias() == "replica"


def test_a_row_read_on_the_replica_is_saved_on_the_primary(with_replica, shelf):
    portfolio = shelf.make("Alpha", score="0.9")
    row = type(portfolio).objects.using("replica").get(pk=portfolio.pk)
    row.description = "edited"
    with Logs() as logs:
        row.save(update_fields=["description"])
    assert logs.replica_writes() == []
    assert logs.on_primary("portfolios_portfolio")


def test_report_exports_read_the_replica(with_replica, shelf):
    with Logs() as logs:
        call_command(
            "export_report", "executions", "--since", "2026-01-01", "--until", "2026-02-01",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    assert logs.on_replica("copytrading_execution")
    assert not logs.on_primary("copytrading_execution")


def test_without_a_replica_everything_reads_the_primary(settings, shelf):
    assert settings.DATABASE_REPLICAS == [] and settings.DATABASE_ROUTERS == []
    settings.CATALOG_CACHE_SECONDS = 0
    cache.clear()
    portfolio = shelf.make("Alpha", score="0.9")
    assert replicas.replica_alias() == DEFAULT_DB_ALIAS
    with Logs() as logs:
        assert APIClient().get("/api/v1/catalog").status_code == 200
        assert APIClient().get(f"/api/v1/catalog/{portfolio.pk}").status_code == 200
    assert logs.replica.captured_queries == []
    assert logs.on_primary("portfolios_portfoliostats")
