"""Catalog fixtures: portfolios made through the service, their precomputed
stats rows written directly (they are the refresh's output, tested apart)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portfolios.models import Portfolio, PortfolioStats, StatsLine
from portfolios.services import portfolio_create
from tests.exchange_double.fixtures import exchange_double, exchange_settings  # noqa: F401
from tests.factories import UserFactory

D = Decimal
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Shelf:
    """Makes catalog entries: ``make("alpha", score="0.5", roi="12")``."""

    def __init__(self):
        self.count = 0

    def make(
        self,
        name: str,
        *,
        mode: str = "margin",
        min_investment: str = "0",
        profit_share: str = "0",
        is_public: bool = True,
        score: str = "0",
        roi: str = "0",
        pnl: str = "0",
        win_rate: str = "0",
        followers: int = 0,
        max_followers: int = 1000,
        age_days: int | None = None,
        lines: dict | None = None,
    ) -> Portfolio:
        self.count += 1
        extra = {} if is_public else {"passcode": "12345678"}
        portfolio = portfolio_create(
            leader=UserFactory(),
            name=name,
            mode=mode,
            min_investment=D(min_investment),
            profit_share_pct=D(profit_share),
            is_public=is_public,
            **extra,
        )
        created = EPOCH + timedelta(days=self.count if age_days is None else -age_days)
        Portfolio.objects.filter(pk=portfolio.pk).update(created_at=created)
        base = {
            "score": D(score),
            "roi_pct": D(roi),
            "pnl": D(pnl),
            "win_rate_pct": D(win_rate),
            "follower_count": followers,
            "max_followers": max_followers,
        }
        for line in StatsLine.values:
            values = {**base, **(lines or {}).get(line, {})}
            PortfolioStats.objects.update_or_create(
                portfolio=portfolio, line=line, defaults={**values, "refreshed_at": timezone.now()}
            )
        portfolio.refresh_from_db()
        return portfolio


@pytest.fixture
def shelf(db):
    return Shelf()
