"""Queueing the propagation tasks, by their registered names.

The outbox (``copytrading.events``) and the engine (``copytrading.propagation``)
both queue propagation work, and the tasks (``copytrading.tasks``) run the
engine. Naming the tasks here instead of importing them keeps the imports
one-way (tasks -> propagation -> enqueue; events -> enqueue): Celery resolves
the name when a message is sent, in every process (its app imports the task
modules on first use), and eager mode still runs the task in place.
"""

from celery import current_app

PROPAGATE_EVENT = "copytrading.tasks.propagate_event"
PROPAGATE_CHUNK = "copytrading.tasks.propagate_chunk"


def dispatch(event_id: int) -> None:
    """Queue the propagation of a leader event."""
    current_app.tasks[PROPAGATE_EVENT].delay(event_id)


def dispatch_chunk(chunk_id: int) -> None:
    """Queue one chunk of an event's propagation (a replay, a resume)."""
    current_app.tasks[PROPAGATE_CHUNK].delay(chunk_id)
