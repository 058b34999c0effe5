from django.apps import AppConfig


class CopytradingConfig(AppConfig):
    name = "copytrading"
    verbose_name = "Trading core"

    def ready(self) -> None:
        from copytrading import lookups  # noqa: F401  (registers the __any lookup)
