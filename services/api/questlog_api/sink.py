"""Where accepted events go: a ``Sink`` that returns only once every event is durable.

Every refusal says whether the events may still land (``SinkUnavailable.persistence``):
``not_persisted`` when none of them reached a broker or the broker refused them for good,
``possibly_persisted`` when any was handed over and no definitive answer came back in
time (the broker may have written it). Clients retry with the same ``event_id`` either way;
the extractor stores each id once.

``KafkaSink`` produces with ``acks='all'`` and idempotence (both set explicitly and checked
after construction: kafka-python silently turns idempotence off when other options
conflict). kafka-python's send buffer is unbounded, so the sink counts the events it has
handed over and not yet seen acknowledged or failed, and refuses new work beyond
``max_in_flight``: during an outage memory stays bounded and clients get a fast 503.

The producer is created lazily, on the first send in the process that sends: gunicorn
forks workers after loading the app, and a producer's I/O thread does not survive a fork.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from questlog_api import metrics
from questlog_api.settings import Settings, bootstrap_addresses

log = logging.getLogger(__name__)

# Kafka sinks of this process, for gunicorn's post_fork/worker_exit hooks.
LIVE_SINKS: weakref.WeakSet[KafkaSink | ConfluentSink] = weakref.WeakSet()


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


# librdkafka delivery errors that mean this message was never written, whichever attempt
# failed: refused for what it is (size, topic, rights), or purged before it was sent.
# Everything else (timeouts, transport, not-enough-replicas after a retry...) may follow
# an attempt the broker wrote without answering. The Python client does not expose
# librdkafka's per-message status (rd_kafka_message_status), so this errs on "possibly".
DEFINITIVE_DELIVERY_ERRORS = frozenset((
    "MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_MSG", "INVALID_RECORD",
    "RECORD_LIST_TOO_LARGE", "TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
    "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION", "TOPIC_EXCEPTION",
    "INVALID_REQUIRED_ACKS", "_INVALID_ARG", "_PURGE_QUEUE", "_QUEUE_FULL",
))


def encode(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """Kafka key (player_id) and value (the JSON envelope, compact UTF-8) of one event.

    orjson when it can (about 20x faster); the standard library for what orjson refuses
    (integers beyond 64 bits), so every envelope that validated can still be written.
    Envelopes never hold NaN/Infinity: the parser rejects them.
    """
    try:
        value = orjson.dumps(event)
    except orjson.JSONEncodeError:
        value = json.dumps(event, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False).encode("utf-8")
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


class KafkaSink:
    """kafka-python producer behind the ``Sink`` interface; safe to share between threads."""

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
        return _readiness(self)

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


class _Waiter:
    """One request's events: the delivery callbacks count down, the request waits.

    ``landed_maybe`` turns true once any event was acknowledged or failed without a
    definitive answer: from then on the request's refusal is "possibly persisted".
    """

    __slots__ = ("_done", "error", "landed_maybe", "release", "remaining")

    def __init__(self, remaining: int, release: Any) -> None:
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


# Producers inherited across a fork: their librdkafka threads do not exist in the child, so
# destroying them could hang. They are kept referenced (never destroyed) instead.
_ORPHANS: list[Any] = []


class ConfluentSink:
    """confluent-kafka (librdkafka, in C: batching, I/O and acks happen outside the GIL)
    behind the ``Sink`` interface; safe to share between threads.

    Each event gets a delivery callback; a per-process thread calls ``poll()`` to serve
    them, and each request waits for its own events' callbacks, at most
    ``produce_timeout_s``. ``acks=all`` and ``enable.idempotence`` are set explicitly and
    checked after construction; librdkafka refuses to start an idempotent producer with
    any other ``acks``. Messages not acknowledged within ``message.timeout.ms`` fail
    (and release their in-flight slot), so memory stays bounded during an outage.
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
                raise SinkUnavailable(f"Kafka producer could not start: {exc}",
                                      NOT_PERSISTED) from exc
            self._stop = threading.Event()
            poller = threading.Thread(target=self._poll, args=(producer, self._stop),
                                      name="questlog-kafka-poll", daemon=True)
            poller.start()
            self._producer, self._poller, self._pid = producer, poller, os.getpid()
            if not self._atexit:
                atexit.register(self.close, 10.0)
                self._atexit = True
            log.info("kafka producer started (librdkafka %s, bootstrap %s)",
                     _librdkafka_version(), self.settings.kafka_bootstrap)
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
            raise SinkUnavailable("Kafka producer queue full",
                                  POSSIBLY_PERSISTED if handed else NOT_PERSISTED) from exc
        except Exception as exc:
            from confluent_kafka import KafkaException

            if isinstance(exc, KafkaException):
                raise SinkUnavailable(f"Kafka send failed: {exc}",
                                      POSSIBLY_PERSISTED if handed else NOT_PERSISTED) from exc
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
                POSSIBLY_PERSISTED if waiter.landed_maybe else NOT_PERSISTED)

    def ready(self) -> tuple[bool, str]:
        """Besides the shared checks, one metadata round trip through the producer's own
        connections, at most every ``READY_CACHE_S``: a frozen broker still accepts TCP
        connections but answers nothing, and this catches it."""
        ok, reason = _readiness(self)
        if not ok:
            return ok, reason
        return self._probe.check(self._round_trip)

    def _round_trip(self) -> tuple[bool, str]:
        from confluent_kafka import KafkaException

        topic = self.settings.topic
        try:
            metadata = self._get_producer().list_topics(
                topic, timeout=self.settings.ready_timeout_s)
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


class ReadinessProbe:
    """One check shared by concurrent and frequent probes: its answer is kept for
    ``cache_s``, and while one probe runs the check, the others get the last answer
    instead of waiting (a probe must stay cheap when the broker is slow)."""

    def __init__(self, cache_s: float) -> None:
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._answer: tuple[bool, str] = (False, "not checked yet")
        self._at = -float("inf")

    def check(self, run: Any) -> tuple[bool, str]:
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


def _readiness(sink: Any) -> tuple[bool, str]:
    """Shared by both Kafka sinks: a broker answers, a producer exists, room in flight."""
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


def _librdkafka_version() -> str:
    import confluent_kafka

    return confluent_kafka.libversion()[0]


def make_sink(settings: Settings) -> Sink:
    if settings.sink == "memory":
        return MemorySink(settings.max_in_flight)
    if settings.sink == "confluent":
        return ConfluentSink(settings)
    return KafkaSink(settings)
