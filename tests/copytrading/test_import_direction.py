"""The outbox, the engine and the tasks import one way (docs/decisions.md
§64): nothing below ``copytrading.tasks`` imports it, at module level or
inside a function; the outbox and the engine queue the tasks by name."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from celery import current_app

from copytrading import enqueue, tasks

CORE = Path(__file__).resolve().parents[2] / "copytrading"


def _imports_tasks(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module in ("copytrading.tasks",):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "copytrading"
            and any(alias.name == "tasks" for alias in node.names)
        ):
            return True
        if isinstance(node, ast.Import) and any(alias.name == "copytrading.tasks" for alias in node.names):
            return True
    return False


def test_no_core_module_imports_the_tasks():
    offenders = [
        str(path.relative_to(CORE))
        for path in CORE.rglob("*.py")
        if path.name != "tasks.py" and "migrations" not in path.parts and _imports_tasks(path)
    ]
    assert offenders == []


@pytest.mark.slow  # a subprocess with its own environment: runs once, in the services pass
def test_the_outbox_and_the_engine_load_without_the_tasks_and_find_them_by_name():
    """In a fresh process (a web process): the engine's modules do not load
    the tasks; the first dispatch finds them by name (Celery's autodiscovery)."""
    code = (
        "import sys, django; django.setup(); "
        "import copytrading.events, copytrading.propagation, copytrading.matching; "
        "print('copytrading.tasks' in sys.modules); "
        "from copytrading import enqueue; "
        "print(enqueue.task(enqueue.PROPAGATE_EVENT).name, enqueue.task(enqueue.PROPAGATE_CHUNK).name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"DJANGO_SETTINGS_MODULE": "config.settings", "PATH": "/usr/bin:/bin", "VAR_DIR": "/tmp"},
        cwd=CORE.parent,
    )
    assert out.stdout.split("\n")[:2] == ["False", f"{enqueue.PROPAGATE_EVENT} {enqueue.PROPAGATE_CHUNK}"]


def test_the_names_the_engine_queues_are_the_tasks():
    assert current_app.tasks[enqueue.PROPAGATE_EVENT] is tasks.propagate_event._get_current_object()
    assert current_app.tasks[enqueue.PROPAGATE_CHUNK] is tasks.propagate_chunk._get_current_object()
