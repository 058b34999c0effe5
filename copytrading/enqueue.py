"""Queueing the propagation tasks, by their registered names.

The outbox (``copytrading.events``) and the engine (``copytrading.propagation``)
both queue propagation work, and the tasks (``copytrading.tasks``) run the
engine. Naming the tasks here instead of importing them keeps the imports
one-way (tasks -> propagation -> enqueue; events -> enqueue): the name is
resolved when a message is sent, in every process, and eager mode still runs
the task in place.
"""

from celery import current_app

PROPAGATE_EVENT = "copytrading.tasks.propagate_event"
PROPAGATE_CHUNK = "copytrading.tasks.propagate_chunk"


def task(name: str):
    """The registered task ``name``. A process that has not loaded the task
    modules yet (a web process, a management command; a worker loads them at
    start) loads them the way a worker does: Celery's autodiscovery of every
    app's ``tasks.py`` plus the app's ``include`` list."""
    registry = current_app.tasks
    if name not in registry:
        current_app.loader.import_default_modules()
    return registry[name]


def dispatch(event_id: int) -> None:
    """Queue the propagation of a leader event."""
    task(PROPAGATE_EVENT).delay(event_id)


def dispatch_chunk(chunk_id: int) -> None:
    """Queue one chunk of an event's propagation (a replay, a resume)."""
    task(PROPAGATE_CHUNK).delay(chunk_id)
