"""The portfolio's fee model (per trade or high-water mark): the one write
of the fee settings that lives on the portfolio row."""

from django.db import transaction

from copytrading.errors import DomainError
from fees.models import FeeModel
from portfolios.locks import lock_portfolio
from portfolios.models import Portfolio


@transaction.atomic
def portfolio_fee_model_set(*, portfolio: Portfolio, fee_model: str) -> Portfolio:
    """Choose how followers' profit share is measured from the next close on.

    ``per_trade``: every closed mirror with a realized profit pays its share.
    ``high_water_mark``: a subscription pays only on its cumulative realized
    result above its mark: the highest result already charged under this
    model, and never below its result before the close, so profit charged
    per trade (or made at a 0 % share) is not charged again. A mark survives
    a switch away and back, so a follower in drawdown stays protected."""
    if fee_model not in FeeModel.values:
        raise DomainError(
            "INVALID_FEE_MODEL", f"fee_model must be one of {', '.join(FeeModel.values)}.", field="fee_model"
        )
    locked = lock_portfolio(portfolio.pk)
    if locked.fee_model != fee_model:
        locked.fee_model = fee_model
        locked.save(update_fields=["fee_model", "updated_at"])
    return locked
