"""questlog's event API: validated, durable ingestion of game events into Kafka.

Usage::

    gunicorn -c services/api/gunicorn.conf.py 'questlog_api:create_app()'
    python -m questlog_api            # the same, with the same config

Names are imported lazily: gunicorn's config imports ``questlog_api.gunicorn_config``
and must set PROMETHEUS_MULTIPROC_DIR before prometheus_client is first imported.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfluentSink",
    "MemorySink",
    "Settings",
    "SettingsError",
    "Sink",
    "SinkUnavailable",
    "create_app",
]

_WHERE = {
    "create_app": "questlog_api.app",
    "Settings": "questlog_api.settings",
    "SettingsError": "questlog_api.settings",
    "ConfluentSink": "questlog_api.sink",
    "MemorySink": "questlog_api.sink",
    "Sink": "questlog_api.sink",
    "SinkUnavailable": "questlog_api.sink",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'questlog_api' has no attribute {name!r}")
