"""JSON log lines on stdout, one object per line, the same keys in every service.

Keys, in this order: ``ts`` (UTC, milliseconds, ``Z``), ``level`` (lower case),
``service``, ``logger``, ``msg``, ``request_id`` (only inside a request), then the
caller's extra fields, and ``exc_type`` + ``traceback`` when an exception is logged.
Extra fields come from ``extra={...}`` or, the extractor's habit, ``extra={"fields":
{...}}`` (which may use names a LogRecord reserves); they never replace a key above.

The request id lives in a contextvar (``REQUEST_ID``, set by ``hooks``), so this module
needs no Flask and any thread of a request logs it. Only what the code passes in is
logged: never headers, bodies or query strings.

Usage::

    configure_logging("questlog-api", "INFO")   # before the app is created; idempotent
    log.info("request", extra={"route": "/v1/events", "status": 202})
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

KEYS = ("ts", "level", "service", "logger", "msg")
REQUEST_ID: ContextVar[str | None] = ContextVar("questlog_request_id", default=None)
# Chatty below WARNING: kafka-python logs broker addresses on every reconnect, py4j every
# call to the JVM.
QUIET = ("kafka", "py4j")

_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "fields"}
# One encoder for every line: json.dumps(..., default=str) builds a new one per call.
_ENCODE = json.JSONEncoder(default=str).encode


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second, self._stamp = -1, ""  # the last whole second formatted, and its text

    def _ts(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._ts(record),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_") and key not in line:
                line[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return _ENCODE(line)


def configure_logging(service_name: str, level: str | int = "INFO", stream: Any = None) -> None:
    """Route the root logger to ``stream`` (stdout) as JSON tagged ``service_name``.
    Idempotent: a JSON handler configured before is replaced, never doubled."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service_name))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old.formatter, JsonFormatter):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    floor = max(logging.WARNING, root.level)
    for name in QUIET:
        logging.getLogger(name).setLevel(floor)
