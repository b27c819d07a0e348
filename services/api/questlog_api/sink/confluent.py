"""The default sink (``QUESTLOG_API_SINK=confluent``): confluent-kafka, i.e. librdkafka in
C, so batching, I/O and acks happen outside the GIL.

Each event gets a delivery callback; a per-process thread calls ``poll()`` to serve them,
and each request waits for its own events' callbacks, at most ``produce_timeout_s``. The
callbacks' error codes decide whether a refused request's events may still land
(``DEFINITIVE_DELIVERY_ERRORS``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from questlog_api.settings import Settings
from questlog_api.sink import LIVE_SINKS
from questlog_api.sink.base import (
    NOT_PERSISTED,
    POSSIBLY_PERSISTED,
    InFlight,
    ReadinessProbe,
    SinkUnavailable,
    encode,
    kafka_readiness,
)

log = logging.getLogger(__name__)

# librdkafka delivery errors that mean this message was never written, whichever attempt
# failed: refused for what it is (size, topic, rights), or purged before it was sent.
# Everything else (timeouts, transport, not-enough-replicas after a retry...) may follow
# an attempt the broker wrote without answering. The Python client does not expose
# librdkafka's per-message status (rd_kafka_message_status), so this errs on "possibly".
DEFINITIVE_DELIVERY_ERRORS = frozenset(
    (
        "MSG_SIZE_TOO_LARGE",
        "_MSG_SIZE_TOO_LARGE",
        "INVALID_MSG",
        "INVALID_RECORD",
        "RECORD_LIST_TOO_LARGE",
        "TOPIC_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_TOPIC",
        "_UNKNOWN_PARTITION",
        "TOPIC_EXCEPTION",
        "INVALID_REQUIRED_ACKS",
        "_INVALID_ARG",
        "_PURGE_QUEUE",
        "_QUEUE_FULL",
    )
)

# Producers inherited across a fork: their librdkafka threads do not exist in the child, so
# destroying them could hang. They are kept referenced (never destroyed) instead.
_ORPHANS: list[Any] = []


class _Waiter:
    """One request's events: the delivery callbacks count down, the request waits.

    ``landed_maybe`` turns true once any event was acknowledged or failed without a
    definitive answer: from then on the request's refusal is "possibly persisted".
    """

    __slots__ = ("_done", "error", "landed_maybe", "release", "remaining")

    def __init__(self, remaining: int, release: Callable[[int], None]) -> None:
        self.remaining = remaining
        self.error: Any = None
        self.landed_maybe = False
        self.release = release
        self._done = threading.Lock()
        self._done.acquire()

    def delivered(self, err: Any, _msg: Any) -> None:
        # Called by the one thread serving the producer's callbacks at a time (the poll
        # thread, or close()'s flush once the poll thread has stopped).
        self.release(1)
        if err is None or err.name() not in DEFINITIVE_DELIVERY_ERRORS:
            self.landed_maybe = True
        if err is not None and self.error is None:
            self.error = err
        self.remaining -= 1
        if self.remaining == 0:
            self._done.release()

    def wait(self, timeout_s: float) -> bool:
        return self._done.acquire(timeout=max(timeout_s, 0.001))


class ConfluentSink:
    """confluent-kafka producer behind the ``Sink`` interface; safe to share between threads.

    ``acks=all`` and ``enable.idempotence`` are set explicitly and checked before
    construction; librdkafka refuses to start an idempotent producer with any other
    ``acks``. Messages not acknowledged within ``message.timeout.ms`` fail (and release
    their in-flight slot), so memory stays bounded during an outage. The producer is
    created on the first send in the process that sends (never inherited across gunicorn's
    fork); after a fatal producer error the next request builds a new one.
    """

    POLL_INTERVAL_S = 0.05
    READY_CACHE_S = 1.0  # probes more often than this share one metadata round trip

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.in_flight = InFlight(settings.max_in_flight)
        self._producer: Any = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._fatal: str | None = None
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._atexit = False
        self._probe = ReadinessProbe(self.READY_CACHE_S)
        LIVE_SINKS.add(self)

    def producer_config(self) -> dict[str, Any]:
        timeout_ms = int(self.settings.produce_timeout_s * 1000)
        request_timeout_ms = max(1000, timeout_ms)
        return {
            "bootstrap.servers": self.settings.kafka_bootstrap,
            "client.id": "questlog-api",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": self.settings.linger_ms,
            "socket.nagle.disable": True,
            "request.timeout.ms": request_timeout_ms,
            # A record the client already got a 503 for fails after this, releasing its
            # slot in the in-flight count.
            "message.timeout.ms": request_timeout_ms + self.settings.linger_ms + 5000,
            # the in-flight cap refuses work before librdkafka's queue is full
            "queue.buffering.max.messages": self.settings.max_in_flight + 1000,
            "reconnect.backoff.max.ms": 1000,
            "retry.backoff.ms": 100,
            "topic.metadata.refresh.interval.ms": 30_000,
            "error_cb": self._on_error,
            "logger": logging.getLogger("confluent_kafka"),
        }

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            # e.g. an idempotence sequence the broker can no longer accept: this producer
            # is done; the next request builds a new one.
            self._fatal = err.str()
            log.error("kafka producer fatal error: %s", err.str())
        else:
            log.debug("kafka client error: %s", err.str())

    def _get_producer(self) -> Any:
        producer = self._producer
        if producer is not None and self._pid == os.getpid() and self._fatal is None:
            return producer
        with self._lock:
            if self._pid != os.getpid():
                if self._producer is not None:
                    _ORPHANS.append(self._producer)
                self._producer, self._poller, self._fatal = None, None, None
            if self._fatal is not None and self._producer is not None:
                self._retire_locked()
            if self._producer is not None:
                return self._producer
            from confluent_kafka import KafkaException, Producer

            config = self.producer_config()
            self._check_idempotent(config)
            try:
                producer = Producer(config)
            except KafkaException as exc:
                log.warning("kafka producer could not start: %s", exc)
                raise SinkUnavailable(
                    f"Kafka producer could not start: {exc}", NOT_PERSISTED
                ) from exc
            self._stop = threading.Event()
            poller = threading.Thread(
                target=self._poll,
                args=(producer, self._stop),
                name="questlog-kafka-poll",
                daemon=True,
            )
            poller.start()
            self._producer, self._poller, self._pid = producer, poller, os.getpid()
            if not self._atexit:
                atexit.register(self.close, 10.0)
                self._atexit = True
            log.info(
                "kafka producer started (librdkafka %s, bootstrap %s)",
                _librdkafka_version(),
                self.settings.kafka_bootstrap,
            )
            return producer

    @staticmethod
    def _check_idempotent(config: dict[str, Any]) -> None:
        """librdkafka itself refuses ``enable.idempotence`` with any ``acks`` but all (at
        construction); this guards against a config edit dropping either option."""
        if not (config.get("enable.idempotence") is True and config.get("acks") == "all"):
            raise RuntimeError(
                "kafka producer is not idempotent with acks=all: enable.idempotence="
                f"{config.get('enable.idempotence')} acks={config.get('acks')}"
            )

    def _poll(self, producer: Any, stop: threading.Event) -> None:
        while not stop.is_set():
            producer.poll(self.POLL_INTERVAL_S)

    def _retire_locked(self) -> None:
        """Stop using the current producer (fatal error): flush what it can, off-thread."""
        producer, poller, stop = self._producer, self._poller, self._stop
        self._producer, self._poller, self._fatal = None, None, None
        stop.set()

        def retire() -> None:
            if poller is not None:
                poller.join()
            producer.flush(self.settings.produce_timeout_s)

        threading.Thread(target=retire, name="questlog-kafka-retire", daemon=True).start()

    def send_many(self, events: Sequence[dict[str, Any]]) -> None:
        n = len(events)
        in_flight = self.in_flight
        if not in_flight.try_acquire(n):
            raise SinkUnavailable("too many events in flight", NOT_PERSISTED)
        deadline = time.monotonic() + self.settings.produce_timeout_s
        handed = 0
        waiter = _Waiter(n, in_flight.release)
        try:
            producer = self._get_producer()
            produce, topic, callback = producer.produce, self.settings.topic, waiter.delivered
            for event in events:
                key, value = encode(event)
                produce(topic, value, key, on_delivery=callback)
                handed += 1
        except BufferError as exc:
            raise SinkUnavailable(
                "Kafka producer queue full", POSSIBLY_PERSISTED if handed else NOT_PERSISTED
            ) from exc
        except Exception as exc:
            from confluent_kafka import KafkaException

            if isinstance(exc, KafkaException):
                raise SinkUnavailable(
                    f"Kafka send failed: {exc}", POSSIBLY_PERSISTED if handed else NOT_PERSISTED
                ) from exc
            raise
        finally:
            if handed < n:  # a failed hand-over raises: nobody waits for the waiter
                in_flight.release(n - handed)  # slots of events never handed over
        if not waiter.wait(deadline - time.monotonic()):
            # handed over, no answer yet: the broker may have written some of them
            raise SinkUnavailable("Kafka did not acknowledge in time", POSSIBLY_PERSISTED)
        if waiter.error is not None:
            raise SinkUnavailable(
                f"Kafka did not acknowledge: {waiter.error.name()}",
                POSSIBLY_PERSISTED if waiter.landed_maybe else NOT_PERSISTED,
            )

    def ready(self) -> tuple[bool, str]:
        """Besides ``kafka_readiness``, one metadata round trip through the producer's own
        connections, at most every ``READY_CACHE_S``: a frozen broker still accepts TCP
        connections but answers nothing, and this catches it."""
        ok, reason = kafka_readiness(self)
        if not ok:
            return ok, reason
        return self._probe.check(self._round_trip)

    def _round_trip(self) -> tuple[bool, str]:
        from confluent_kafka import KafkaException

        topic = self.settings.topic
        try:
            metadata = self._get_producer().list_topics(
                topic, timeout=self.settings.ready_timeout_s
            )
        except SinkUnavailable as exc:
            return False, str(exc)
        except KafkaException as exc:
            return False, f"Kafka did not answer a metadata request: {exc.args[0].name()}"
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return False, f"topic {topic!r} is not available"
        return True, "ok"

    def reset(self) -> None:
        with self._lock:
            if self._producer is not None and self._pid != os.getpid():
                _ORPHANS.append(self._producer)
            self._producer, self._poller, self._pid, self._fatal = None, None, None, None
            self._stop = threading.Event()
            self.in_flight = InFlight(self.settings.max_in_flight)
            self._probe = ReadinessProbe(self.READY_CACHE_S)

    def close(self, timeout_s: float) -> None:
        with self._lock:
            producer, poller, stop = self._producer, self._poller, self._stop
            owned = self._pid == os.getpid()
            self._producer, self._poller = None, None
        if producer is None or not owned:
            return
        stop.set()
        if poller is not None:
            poller.join()
        log.info("flushing kafka producer")
        left = producer.flush(timeout_s)  # serves the remaining delivery callbacks
        if left:
            log.warning("kafka producer closed with %d events not acknowledged", left)


def _librdkafka_version() -> str:
    import confluent_kafka

    return confluent_kafka.libversion()[0]
