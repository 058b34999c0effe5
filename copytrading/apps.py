from django.apps import AppConfig


class CopytradingConfig(AppConfig):
    name = "copytrading"
    verbose_name = "Trading core"

    def ready(self) -> None:
        from copytrading import lookups, strict_fields  # noqa: F401  (lookups registers the __any lookup)
        from copytrading.exchanges import redact

        strict_fields.install()
        redact.install()

        from copytrading import candles
        from copytrading.services import register_price_listener
        from copytrading.stream.wiring import register as register_stream

        register_price_listener(candles.candle_record)  # 1-minute candles of every mark
        register_stream()  # the live stream's publishers and core topics

        from copytrading.observability import record

        record.register()  # executions counted per chunk; the outbox lag read at scrape

        from copytrading.exchanges.outcomes import register_applier
        from copytrading.venues import register_venue
        from copytrading.venues.exchange import ExchangeVenue
        from copytrading.venues.exchange_fills import apply_outcomes

        register_venue(ExchangeVenue())  # copies on accounts bound to a linked exchange account
        register_applier(apply_outcomes)  # what the exchange said about them → the engine

        from copytrading import audit
        from copytrading.audit.registry import register_all

        audit.connect()  # each entry keeps its actor's name
        register_all()  # the models the audit trail records (copytrading/audit/registry.py)

        from copytrading import replicas

        replicas.connect()  # read-your-writes: each request and task starts unpinned
