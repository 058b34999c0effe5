"""The process identifier in prometheus_client's multiprocess file names.

prometheus_client names a process's files ``<type>_<pid>.db``. In containers
every main process is PID 1 and prefork children reuse small PIDs, so
processes of different containers sharing one directory (docker-compose.yml's
``metrics`` volume) would write the same files. The identifier here is
``<pid>-<host>``: the host name (a container's id) has no ``_``, which
prometheus_client splits file names on. ``install`` must run before any metric
is created (django-prometheus's, ours): config/settings.py calls it once the
directory is known, and metrics.py before its own metrics (a process importing
them without Django). Imports nothing of Django's or ours.
"""

from __future__ import annotations

import os
import re
import socket

from prometheus_client import values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def process_identifier(pid: int | None = None) -> str:
    """This process's identifier (or that of ``pid``, a process of this host)."""
    return f"{os.getpid() if pid is None else pid}-{HOST}"


def install() -> None:
    """Host-qualified files when ``PROMETHEUS_MULTIPROC_DIR`` is set (not
    empty); in-process values otherwise. Once installed, later calls change
    nothing (the metrics already made keep their class). prometheus_client
    re-reads the identifier on every write, so a forked child gets its own files."""
    if getattr(values.ValueClass, "_host_qualified", False):
        return
    if os.environ.get(MULTIPROC_ENV):
        value_class = values.MultiProcessValue(process_identifier=process_identifier)
        value_class._host_qualified = True
        values.ValueClass = value_class
    else:
        values.ValueClass = values.MutexValue
