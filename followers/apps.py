from django.apps import AppConfig


class FollowersConfig(AppConfig):
    name = "followers"
    verbose_name = "Followers"

    def ready(self) -> None:
        from copytrading.propagation import register_target_source
        from followers.risk_hooks import register as register_risk_hooks
        from followers.selectors import SubscriptionTargets

        register_target_source(SubscriptionTargets())
        register_risk_hooks()
