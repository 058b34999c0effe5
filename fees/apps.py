from django.apps import AppConfig


class FeesConfig(AppConfig):
    name = "fees"
    verbose_name = "Fees"

    def ready(self) -> None:
        from fees.live_hooks import register

        register()  # the default groups follow the live settings' default caps
