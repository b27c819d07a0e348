"""The in-memory sink (``QUESTLOG_API_SINK=memory``): tests and development only.

It encodes records exactly as the Kafka sink does and honours the same in-flight cap, so
the web layer's tests exercise the real refusal paths without a broker.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from questlog_api.sink.base import NOT_PERSISTED, InFlight, SinkUnavailable, encode


class MemorySink:
    """Keeps encoded records in a list; ``fail`` makes the next sends raise."""

    def __init__(self, max_in_flight: int = 10_000) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.fail = False
        self.fail_persistence = NOT_PERSISTED  # what a failing send reports
        self.in_flight = InFlight(max_in_flight)
        self._lock = threading.Lock()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(value) for _, value in self.records]

    def send_many(self, events: Sequence[dict[str, Any]]) -> None:
        if not self.in_flight.try_acquire(len(events)):
            raise SinkUnavailable("too many events in flight", NOT_PERSISTED)
        try:
            if self.fail:
                raise SinkUnavailable("memory sink set to fail", self.fail_persistence)
            encoded = [encode(event) for event in events]
            with self._lock:
                self.records.extend(encoded)
        finally:
            self.in_flight.release(len(events))

    def ready(self) -> tuple[bool, str]:
        return (not self.fail, "memory sink set to fail" if self.fail else "ok")

    def reset(self) -> None:
        pass

    def close(self, timeout_s: float) -> None:
        pass
