"""``manage.py sync_instruments --exchange binanceusdm [--dry-run]``: load the
exchange's markets through ccxt and create, update, halt or resume our
instruments to match (copytrading/exchanges/instruments.py)."""

import ccxt
from django.core.management.base import BaseCommand, CommandError

from copytrading.errors import DomainError
from copytrading.exchanges.instruments import instruments_sync, markets_load


class Command(BaseCommand):
    help = "Sync instruments (precision, limits, listing) from a ccxt exchange."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. binanceusdm, bybit, okx")
        parser.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")

    def handle(self, *args, exchange: str, dry_run: bool, **options) -> None:
        try:
            markets, precision_mode = markets_load(exchange)
        except DomainError as error:
            raise CommandError(error.detail) from error
        except ccxt.BaseError as error:
            raise CommandError(f"{exchange}: loading markets failed: {type(error).__name__}: {error}") from error
        report = instruments_sync(exchange_id=exchange, markets=markets, precision_mode=precision_mode, dry_run=dry_run)
        for line in report.lines():
            self.stdout.write(line)
