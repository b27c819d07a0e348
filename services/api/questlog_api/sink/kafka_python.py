"""The kafka-python sink (``QUESTLOG_API_SINK=kafka``): a pure-Python alternative to the
default ``confluent`` sink, slower (services/api/README.md, "Kafka client").

It produces with ``acks='all'`` and idempotence, both set explicitly and checked after
construction: kafka-python silently turns idempotence off when other options conflict.
kafka-python's send buffer is unbounded, so the sink counts the events it has handed over
and not yet seen acknowledged or failed, and refuses new work beyond ``max_in_flight``:
during an outage memory stays bounded and clients get a fast 503.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from questlog_api.settings import Settings
from questlog_api.sink import LIVE_SINKS
from questlog_api.sink.base import (
    NOT_PERSISTED,
    POSSIBLY_PERSISTED,
    InFlight,
    SinkUnavailable,
    encode,
    kafka_readiness,
)

log = logging.getLogger(__name__)


class KafkaSink:
    """kafka-python producer behind the ``Sink`` interface; safe to share between threads.

    The producer is created on the first send in the process that sends (never inherited
    across gunicorn's fork).
    """

    # After a failed producer construction, fail fast for this long instead of letting
    # every request wait out another bootstrap timeout.
    RECONNECT_BACKOFF_S = 1.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.in_flight = InFlight(settings.max_in_flight)
        self._producer: Any = None
        self._lock = threading.Lock()
        self._failed_at = 0.0
        self._pid: int | None = None
        LIVE_SINKS.add(self)

    def producer_config(self) -> dict[str, Any]:
        timeout_ms = int(self.settings.produce_timeout_s * 1000)
        request_timeout_ms = max(1000, timeout_ms)
        return {
            "bootstrap_servers": [
                part.strip() for part in self.settings.kafka_bootstrap.split(",")
            ],
            "client_id": "questlog-api",
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": self.settings.linger_ms,
            # send() waits for metadata at most this long; a request never waits longer
            # than produce_timeout_s in total.
            "max_block_ms": min(timeout_ms, 2000),
            "bootstrap_timeout_ms": min(timeout_ms, 2000),
            "request_timeout_ms": request_timeout_ms,
            # A record the client already got a 503 for is dropped by the producer after
            # this, releasing its slot in the in-flight count.
            "delivery_timeout_ms": request_timeout_ms + self.settings.linger_ms + 5000,
            "reconnect_backoff_max_ms": 1000,
            "retry_backoff_ms": 100,
        }

    def _get_producer(self) -> Any:
        if self._producer is not None and self._pid == os.getpid():
            return self._producer
        with self._lock:
            if self._pid != os.getpid():  # inherited across fork: unusable, never close it
                self._producer = None
            if self._producer is not None:
                return self._producer
            if time.monotonic() - self._failed_at < self.RECONNECT_BACKOFF_S:
                raise SinkUnavailable("Kafka unreachable (backing off)", NOT_PERSISTED)
            from kafka import KafkaProducer
            from kafka.errors import KafkaError

            try:
                producer = KafkaProducer(**self.producer_config())
            except KafkaError as exc:
                self._failed_at = time.monotonic()
                log.warning("kafka producer could not start: %s", type(exc).__name__)
                raise SinkUnavailable(f"Kafka unreachable: {type(exc).__name__}",
                                      NOT_PERSISTED) from exc
            config = producer.config
            if not (config["enable_idempotence"] is True and config["acks"] == -1):
                producer.close(timeout=0)
                raise RuntimeError(
                    "kafka producer is not idempotent with acks=all: "
                    f"enable_idempotence={config['enable_idempotence']} acks={config['acks']}"
                )
            self._producer = producer
            self._pid = os.getpid()
            atexit.register(self.close, 10.0)
            log.info("kafka producer started (bootstrap %s)", self.settings.kafka_bootstrap)
            return producer

    def send_many(self, events: Sequence[dict[str, Any]]) -> None:
        from kafka.errors import KafkaError

        n = len(events)
        if not self.in_flight.try_acquire(n):
            raise SinkUnavailable("too many events in flight", NOT_PERSISTED)
        deadline = time.monotonic() + self.settings.produce_timeout_s
        handed = 0
        futures = []
        try:
            producer = self._get_producer()
            for event in events:
                key, value = encode(event)
                future = producer.send(self.settings.topic, key=key, value=value)
                handed += 1
                future.add_both(self._released)
                futures.append(future)
        except KafkaError as exc:
            raise SinkUnavailable(f"Kafka send failed: {type(exc).__name__}",
                                  POSSIBLY_PERSISTED if handed else NOT_PERSISTED) from exc
        finally:
            self.in_flight.release(n - handed)  # slots of events never handed over
        for future in futures:
            remaining = deadline - time.monotonic()
            try:
                future.get(timeout=max(remaining, 0.001))
            except KafkaError as exc:
                # kafka-python does not say whether a failed batch was ever sent
                raise SinkUnavailable(f"Kafka did not acknowledge: {type(exc).__name__}",
                                      POSSIBLY_PERSISTED) from exc

    def _released(self, _result: Any) -> None:
        self.in_flight.release(1)

    def ready(self) -> tuple[bool, str]:
        return kafka_readiness(self)

    def reset(self) -> None:
        with self._lock:
            self._producer = None
            self._pid = None
            self._failed_at = 0.0
            self.in_flight = InFlight(self.settings.max_in_flight)

    def close(self, timeout_s: float) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
            owned = self._pid == os.getpid()
        if producer is not None and owned:
            log.info("flushing kafka producer")
            producer.close(timeout=timeout_s)
