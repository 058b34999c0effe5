"""The catalog score (SPEC.md §7). Pure: no Django.

score = 0.25 win rate + 0.25 follower health + 0.20 profitability
      + 0.20 consistency + 0.05 activity + 0.05 popularity

Every component is in [0, 1]:
- win rate: closed trades in profit ÷ closed trades, over the window (30 d);
- follower health: followers whose copy wallet is in profit ÷ followers;
- profitability: the window's realized PnL in % of the portfolio's capital,
  min-max normalized over the ranked portfolios;
- consistency: the Sharpe ratio of the window's daily returns (mean ÷ population
  standard deviation; 0 when flat), min-max normalized over the ranked portfolios;
- activity: log(1 + trades) ÷ log(1 + most trades among the ranked);
- popularity: log(1 + followers) ÷ log(1 + most followers among the ranked).
A min-max over equal values gives 1 when they are positive, else 0. Only a
portfolio with at least one trade in the window is ranked.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

WEIGHTS = {
    "win_rate": Decimal("0.25"),
    "follower_health": Decimal("0.25"),
    "profitability": Decimal("0.20"),
    "consistency": Decimal("0.20"),
    "activity": Decimal("0.05"),
    "popularity": Decimal("0.05"),
}
SCORE_PLACES = Decimal("0.000001")
WINDOW_DAYS = 30


@dataclass(frozen=True, slots=True)
class RankingInput:
    portfolio_id: int
    trades: int  # filled orders of the leader in the window
    closed: int  # trades closed in the window (margin positions, spot sells)
    wins: int  # of which in profit
    pnl: Decimal  # realized PnL in the window
    capital: Decimal  # money the leader put into the trading account
    daily_pnl: Sequence[Decimal]  # realized PnL per day of the window (0 for a quiet day)
    followers: int
    followers_in_profit: int


@dataclass(frozen=True, slots=True)
class Score:
    portfolio_id: int
    score: Decimal
    win_rate: Decimal
    follower_health: Decimal
    profitability: Decimal
    consistency: Decimal
    activity: Decimal
    popularity: Decimal


def ratio(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


def roi(pnl: Decimal, capital: Decimal) -> float:
    return float(pnl / capital) if capital > 0 else 0.0


def sharpe(daily_pnl: Sequence[Decimal], capital: Decimal) -> float:
    """Mean daily return over its population standard deviation (0 when flat)."""
    if capital <= 0 or len(daily_pnl) < 2:
        return 0.0
    returns = [float(p / capital) for p in daily_pnl]
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / len(returns)
    if variance <= 1e-24:
        return 0.0
    return mean / math.sqrt(variance)


def min_max(value: float, low: float, high: float) -> float:
    if high - low <= 1e-12:
        return 1.0 if value > 0 else 0.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


def log_share(count: int, most: int) -> float:
    if most <= 0:
        return 0.0
    return min(1.0, math.log1p(max(count, 0)) / math.log1p(most))


def _q(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(SCORE_PLACES)


def rankable(inputs: Sequence[RankingInput]) -> list[RankingInput]:
    return [i for i in inputs if i.trades >= 1]


def score_portfolios(inputs: Sequence[RankingInput]) -> list[Score]:
    """Score every portfolio with a trade in the window; the others are left out."""
    ranked = rankable(inputs)
    if not ranked:
        return []
    rois = [roi(i.pnl, i.capital) for i in ranked]
    sharpes = [sharpe(i.daily_pnl, i.capital) for i in ranked]
    most_trades = max(i.trades for i in ranked)
    most_followers = max(i.followers for i in ranked)
    roi_low, roi_high = min(rois), max(rois)
    sharpe_low, sharpe_high = min(sharpes), max(sharpes)
    scores = []
    for item, item_roi, item_sharpe in zip(ranked, rois, sharpes, strict=True):
        parts = {
            "win_rate": _q(ratio(item.wins, item.closed)),
            "follower_health": _q(ratio(item.followers_in_profit, item.followers)),
            "profitability": _q(min_max(item_roi, roi_low, roi_high)),
            "consistency": _q(min_max(item_sharpe, sharpe_low, sharpe_high)),
            "activity": _q(log_share(item.trades, most_trades)),
            "popularity": _q(log_share(item.followers, most_followers)),
        }
        total = sum((WEIGHTS[name] * value for name, value in parts.items()), Decimal(0))
        scores.append(Score(portfolio_id=item.portfolio_id, score=total.quantize(SCORE_PLACES), **parts))
    return scores
