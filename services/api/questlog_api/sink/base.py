"""What every sink shares: the ``Sink`` protocol, refusals, the record encoding, the
in-flight cap, and the readiness check of the Kafka sink.

Every refusal says whether the events may still land (``SinkUnavailable.persistence``):
``not_persisted`` when none of them reached a broker or the broker refused them for good,
``possibly_persisted`` when any was handed over and no definitive answer came back in
time (the broker may have written it). Clients retry with the same ``event_id`` either way;
the extractor stores each id once.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from questlog_api import metrics
from questlog_api.settings import bootstrap_addresses

NOT_PERSISTED = "not_persisted"
POSSIBLY_PERSISTED = "possibly_persisted"


class SinkUnavailable(Exception):
    """The events were not acknowledged in time (or could not be handed over at all).

    ``persistence`` is ``NOT_PERSISTED`` only when no event of the request can be in
    Kafka; otherwise ``POSSIBLY_PERSISTED``: some may be written later, so clients retry
    with the same ``event_id`` and the extractor deduplicates on it.
    """

    def __init__(self, message: str, persistence: str = POSSIBLY_PERSISTED) -> None:
        super().__init__(message)
        self.persistence = persistence


def encode(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """Kafka key (player_id) and value (the JSON envelope, compact UTF-8) of one event.

    orjson when it can (about 20x faster); the standard library for what orjson refuses
    (integers beyond 64 bits), so every envelope that validated can still be written.
    Envelopes never hold NaN/Infinity: the parser rejects them.
    """
    try:
        value = orjson.dumps(event)
    except orjson.JSONEncodeError:
        value = json.dumps(
            event, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    return event["player_id"].encode("utf-8"), value


class Sink(Protocol):
    def send_many(self, events: Sequence[dict[str, Any]]) -> None:
        """Block until every event is acknowledged, or raise ``SinkUnavailable``."""

    def ready(self) -> tuple[bool, str]:
        """Whether new events can be expected to be acknowledged, and why not."""

    def reset(self) -> None:
        """Forget any producer inherited from a parent process (call after fork)."""

    def close(self, timeout_s: float) -> None:
        """Flush what was handed over, then release resources."""


class InFlight:
    """A counting limit that, unlike a semaphore, never waits: full means refuse now.

    Its count is also the ``questlog_api_events_in_flight`` gauge (every InFlight of the
    process adds to it), so a dashboard shows how close the workers are to refusing.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()
        metrics.IN_FLIGHT_LIMIT.set(limit)

    def try_acquire(self, n: int) -> bool:
        with self._lock:
            if self._used + n > self.limit:
                return False
            self._used += n
        metrics.IN_FLIGHT.inc(n)
        return True

    def release(self, n: int = 1) -> None:
        with self._lock:
            freed = min(n, self._used)
            self._used -= freed
        if freed:
            metrics.IN_FLIGHT.dec(freed)

    @property
    def used(self) -> int:
        return self._used


class ReadinessProbe:
    """One check shared by concurrent and frequent probes: its answer is kept for
    ``cache_s``, and while one probe runs the check, the others get the last answer
    instead of waiting (a probe must stay cheap when the broker is slow)."""

    def __init__(self, cache_s: float) -> None:
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._answer: tuple[bool, str] = (False, "not checked yet")
        self._at = -float("inf")

    def check(self, run: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
        if time.monotonic() - self._at < self.cache_s:
            return self._answer
        if not self._lock.acquire(blocking=False):
            return self._answer if self._at > -float("inf") else (False, "being checked")
        try:
            self._answer = run()
            self._at = time.monotonic()
            return self._answer
        finally:
            self._lock.release()


def kafka_readiness(sink: Any) -> tuple[bool, str]:
    """The Kafka sink's basic check: a broker answers, a producer exists, room in flight."""
    if not _any_bootstrap_reachable(sink.settings.kafka_bootstrap):
        return False, "no bootstrap server reachable"
    try:
        sink._get_producer()
    except SinkUnavailable as exc:
        return False, str(exc)
    if sink.in_flight.used >= sink.in_flight.limit:
        return False, "in-flight limit reached"
    return True, "ok"


def _any_bootstrap_reachable(bootstrap: str) -> bool:
    for host, port in bootstrap_addresses(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            continue
    return False
