"""Connect the writers to the stream (called from CopytradingConfig.ready)."""

from copytrading import changes


def register() -> None:
    from copytrading.notifications.services import register_notification_listener
    from copytrading.propagation import register_execution_listener
    from copytrading.stream import (
        publish,
        topics,  # noqa: F401  (registers the core's topics)
    )

    changes.register_change_listener(publish.changes_published)
    register_execution_listener(_executions_touched, queries=False)
    register_notification_listener(_notifications_touched)


def _executions_touched(event, outcomes) -> None:
    # In the chunk's transaction: one notice for the chunk after its commit.
    changes.touch(subscriptions=[o.subscription_id for o in outcomes])


def _notifications_touched(pushed: dict[int, list[int]]) -> None:
    changes.touch(users=pushed.keys())
