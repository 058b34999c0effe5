from django.apps import AppConfig


class CopytradingConfig(AppConfig):
    name = "copytrading"
    verbose_name = "Trading core"
