"""``call_id`` and ``trace_id`` on every log record written while a call's turn runs.

A turn binds its call's ids in a context variable (each Ray actor call and each asyncio task
has its own context); ``install`` wraps the process's log-record factory so every record
created under that context carries ``record.call_id`` and ``record.trace_id``. Ray's JSON
formatter (``LoggingConfig(encoding="JSON")``, Serve's too) writes every non-standard record
attribute as a field, so they appear in JSON logs without a formatter of our own.

Only ids are bound: a call id is an opaque random token, never a name, date or member id.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("voxray_call_id", default=None)
_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("voxray_trace_id", default=None)
_installed = False


def bind(call_id: str | None, trace_id: str | None = None) -> None:
    """Ids for the records of the current context from here on (the rest of this turn's task)."""
    _call_id.set(call_id)
    _trace_id.set(trace_id)


@contextmanager
def bound(call_id: str | None, trace_id: str | None = None) -> Iterator[None]:
    tokens = (_call_id.set(call_id), _trace_id.set(trace_id))
    try:
        yield
    finally:
        _call_id.reset(tokens[0])
        _trace_id.reset(tokens[1])


def current() -> dict[str, str]:
    ids = {"call_id": _call_id.get(), "trace_id": _trace_id.get()}
    return {k: v for k, v in ids.items() if v}


def install() -> None:
    """Wrap the log-record factory once per process (cheap: two context-variable reads)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        call_id = _call_id.get()
        if call_id is not None:
            record.call_id = call_id
            trace_id = _trace_id.get()
            if trace_id is not None:
                record.trace_id = trace_id
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def ray_logging_config(log_format: str) -> dict[str, Any] | None:
    """Keyword arguments for Ray's ``LoggingConfig`` (``ray.init(logging_config=…)``) and
    Serve's (``@serve.deployment(logging_config=…)``) for ``VOXRAY_LOG_FORMAT``; None = Ray's
    default text logs."""
    if log_format == "text":
        return None
    if log_format != "json":
        raise ValueError(f"log format must be 'text' or 'json', got {log_format!r}")
    return {"encoding": "JSON", "log_level": "INFO"}
