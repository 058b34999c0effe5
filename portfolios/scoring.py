"""The ranking run (every 2 h): load each active portfolio's last 30 days,
score them all together (portfolios.ranking, pure), keep the history and put
the new score on the catalog's stats rows."""

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from copytrading import bulk
from copytrading.money import ZERO
from portfolios.models import Portfolio, PortfolioScore, PortfolioStats, PortfolioStatus
from portfolios.ranking import WINDOW_DAYS, RankingInput, Score, score_portfolios
from portfolios.ranking_data import batch_inputs

BATCH = 5000
RANKING_LOCK = 0x52414E4B  # an arbitrary advisory lock key ("RANK")


def _try_lock() -> bool:
    """One ranking at a time (a second run started meanwhile just returns)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RANKING_LOCK])
        return bool(cursor.fetchone()[0])


def ranking_inputs(*, now: datetime) -> list[RankingInput]:
    """What the score needs of every active portfolio, a batch (id range) at a time."""
    since = now - timedelta(days=WINDOW_DAYS)
    ids = list(Portfolio.objects.filter(status=PortfolioStatus.ACTIVE).order_by("pk").values_list("pk", flat=True))
    inputs = []
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        inputs += batch_inputs(batch[0], batch[-1], since=since, window_days=WINDOW_DAYS)
    return inputs


SCORE_FIELDS = ["win_rate", "follower_health", "profitability", "consistency", "activity", "popularity"]


@transaction.atomic
def ranking_run(*, now: datetime | None = None) -> list[Score]:
    """Score every active portfolio with a trade in the last 30 days, append
    the scores to the history and set the catalog's score (0 for the others).
    A run at a time already ranked writes nothing (and returns nothing)."""
    if not _try_lock():
        return []
    now = now or timezone.now()
    if PortfolioScore.objects.filter(computed_at=now).exists():
        return []
    scores = score_portfolios(ranking_inputs(now=now))
    bulk.insert_rows(
        PortfolioScore,
        ["portfolio", "computed_at", "score", *SCORE_FIELDS],
        [(s.portfolio_id, now, s.score, *(getattr(s, name) for name in SCORE_FIELDS)) for s in scores],
    )
    # Only the catalog rows whose score moves are written (each write also
    # moves the row in the score index).
    latest = {s.portfolio_id: s.score for s in scores}
    changed = [
        (pk, latest.get(portfolio_id, ZERO))
        for pk, portfolio_id, score in PortfolioStats.objects.values_list("pk", "portfolio_id", "score")
        if score != latest.get(portfolio_id, ZERO)
    ]
    bulk.update_rows(PortfolioStats, ["score"], changed)
    return scores
