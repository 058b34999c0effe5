"""The ranking run (every 2 h): load each active portfolio's last 30 days,
score them all together (portfolios.ranking, pure), keep the history and put
the new score on the catalog's stats rows."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

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


@transaction.atomic
def ranking_run(*, now: datetime | None = None) -> list[Score]:
    """Score every active portfolio with a trade in the last 30 days, append
    the scores to the history and set the catalog's score (0 for the others).
    Running it twice at the same ``now`` writes nothing new."""
    if not _try_lock():
        return []
    now = now or timezone.now()
    scores = score_portfolios(ranking_inputs(now=now))
    fields = ["win_rate", "follower_health", "profitability", "consistency", "activity", "popularity"]
    PortfolioScore.objects.bulk_create(
        [
            PortfolioScore(
                portfolio_id=s.portfolio_id,
                computed_at=now,
                score=s.score,
                **{name: getattr(s, name) for name in fields},
            )
            for s in scores
        ],
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    this_run = PortfolioScore.objects.filter(portfolio_id=OuterRef("portfolio_id"), computed_at=now).values("score")
    PortfolioStats.objects.update(score=Coalesce(Subquery(this_run[:1]), Value(Decimal(0))))
    return scores
