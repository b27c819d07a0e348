"""Where accepted events go: a ``Sink`` whose ``send_many`` returns only once Kafka has
acknowledged every event, and otherwise raises ``SinkUnavailable`` saying whether the
events may still land.

``QUESTLOG_API_SINK`` picks the sink (``make_sink``):

- ``confluent``, the default (``confluent.py``): confluent-kafka, librdkafka in C.
- ``memory`` (``memory.py``): keeps records in the process; tests and development only.

``base.py`` holds what they share: the protocol, the refusal and its persistence values,
the record encoding, the in-flight cap and the readiness checks. The Kafka sink produces
with ``acks=all`` and idempotence, caps the events in flight, and creates its producer
lazily, on the first send in the process that sends: gunicorn forks workers after loading
the app, and a producer's I/O thread does not survive a fork.

Usage::

    sink = make_sink(settings)     # or MemorySink() in tests
    sink.send_many(envelopes)      # returns once acknowledged, else raises SinkUnavailable
    after_fork()                   # gunicorn's post_fork: drop inherited producers
    before_exit()                  # gunicorn's worker_exit: flush every live Kafka sink

Names are imported lazily, as in ``questlog_api``: gunicorn's hooks call ``after_fork``
and ``before_exit`` in processes that may never import the app, and there importing this
package must do nothing (neither prometheus_client nor a Kafka client gets imported).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from questlog_api.settings import Settings
    from questlog_api.sink.base import (
        NOT_PERSISTED,
        POSSIBLY_PERSISTED,
        InFlight,
        ReadinessProbe,
        Sink,
        SinkUnavailable,
        encode,
    )
    from questlog_api.sink.confluent import ConfluentSink
    from questlog_api.sink.memory import MemorySink

__all__ = [
    "LIVE_SINKS",
    "NOT_PERSISTED",
    "POSSIBLY_PERSISTED",
    "ConfluentSink",
    "InFlight",
    "MemorySink",
    "ReadinessProbe",
    "Sink",
    "SinkUnavailable",
    "after_fork",
    "before_exit",
    "encode",
    "live_sinks",
    "make_sink",
]

_WHERE = {
    "NOT_PERSISTED": "base",
    "POSSIBLY_PERSISTED": "base",
    "InFlight": "base",
    "ReadinessProbe": "base",
    "Sink": "base",
    "SinkUnavailable": "base",
    "encode": "base",
    "ConfluentSink": "confluent",
    "MemorySink": "memory",
}

# The Kafka sinks of this process (each adds itself), for gunicorn's worker hooks.
LIVE_SINKS: weakref.WeakSet[Sink] = weakref.WeakSet()


def live_sinks() -> list[Sink]:
    """The Kafka sinks created in this process and still referenced; none if the app was
    never imported here."""
    return list(LIVE_SINKS)


def after_fork() -> None:
    """In a fresh worker: producers inherited from the parent are unusable, drop them."""
    for sink in live_sinks():
        sink.reset()


def before_exit(timeout_s: float = 10.0) -> None:
    """Before a worker exits: flush every event handed to Kafka, then close."""
    for sink in live_sinks():
        sink.close(timeout_s=timeout_s)


def make_sink(settings: Settings) -> Sink:
    """The sink ``settings.sink`` names (``QUESTLOG_API_SINK``)."""
    if settings.sink == "memory":
        from questlog_api.sink.memory import MemorySink

        return MemorySink(settings.max_in_flight)
    from questlog_api.sink.confluent import ConfluentSink

    return ConfluentSink(settings)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
