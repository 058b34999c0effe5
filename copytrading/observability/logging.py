"""Structured logs: structlog for ours, stdlib logging routed through the same
processors (structlog's ProcessorFormatter) so Django's, Celery's and daphne's
lines come out the same way, one JSON object a line or a readable console line
(``LOG_FORMAT``). Context bound with ``structlog.contextvars`` (the request id,
the user, a task's event, chunk and subscription) is on every line, stdlib
loggers' included: ``logging.getLogger(__name__)`` stays the way to log.

Imported by config/settings.py: no Django here.
"""

from __future__ import annotations

from typing import Any

import structlog

JSON, CONSOLE = "json", "console"
FORMATS = (JSON, CONSOLE)


def _shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _drop_celery_trace_data(logger, method_name: str, event_dict: dict) -> dict:
    """Celery's "Task … succeeded" lines pass their figures again as ``extra={"data": …}``;
    the message says it all, and the task's ids are bound."""
    if event_dict.get("logger") == "celery.app.trace":
        event_dict.pop("data", None)
    return event_dict


def _renderer(log_format: str) -> list:
    if log_format == JSON:
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    return [structlog.dev.ConsoleRenderer(colors=False)]


def logging_config(*, log_format: str, level: str) -> dict[str, Any]:
    """Django's ``LOGGING``: one handler on the root logger, formatted by
    structlog. Also configures structlog itself (once per process)."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT is one of {', '.join(FORMATS)}, not {log_format!r}")
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                # A stdlib record's ``extra={...}`` fields are fields of the line.
                "foreign_pre_chain": [
                    *_shared_processors(),
                    structlog.stdlib.ExtraAdder(),
                    _drop_celery_trace_data,
                ],
                "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_renderer(log_format)],
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


# Keys a task's arguments may carry that are worth binding on its lines.
TASK_CONTEXT_KEYS = ("event_id", "chunk_id", "subscription_id", "portfolio_id", "tick_id")
