from django.apps import AppConfig


class FollowersConfig(AppConfig):
    name = "followers"
    verbose_name = "Followers"

    def ready(self) -> None:
        from followers.stream import register as register_stream_topics

        register_stream_topics()
        from copytrading.propagation import register_target_source
        from followers.fee_hooks import register as register_fee_hooks
        from followers.risk_hooks import register as register_risk_hooks
        from followers.selectors import SubscriptionTargets

        register_target_source(SubscriptionTargets())
        from followers.stats_source import SubscriptionFollowers
        from portfolios.stats_data import register_follower_source

        register_follower_source(SubscriptionFollowers())
        register_risk_hooks()
        from followers.portfolio_hooks import register as register_portfolio_hooks

        register_portfolio_hooks()
        register_fee_hooks()
        from followers.notify_hooks import register as register_notify_hooks

        register_notify_hooks()
        from copytrading.venues.exchange_fills import register_settled_listener
        from followers.lifecycle import unfollows_finish

        register_settled_listener(unfollows_finish)  # an unfollow waiting for its exchange closes
        from followers.drift_hooks import register as register_drift_hooks

        register_drift_hooks()
        from followers.halt_hooks import register as register_halt_hooks

        register_halt_hooks()  # the kill switch's notification of the copies it halts
