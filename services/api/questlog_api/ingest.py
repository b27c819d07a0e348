"""The path every event takes, whichever route it came in by: guards, envelope, validation,
then Kafka. Batches are all-or-nothing: one invalid event and nothing is produced.
"""

from __future__ import annotations

import time
from typing import Any

from flask import g, request

from questlog_api import metrics
from questlog_api.envelope import CONTEXT_HEADERS, RequestMeta, build, request_meta
from questlog_api.guards import check_write_key, presented_key
from questlog_api.sink import NOT_PERSISTED, POSSIBLY_PERSISTED, SinkUnavailable
from questlog_api.state import state
from questlog_service.errors import ApiError


def _type_label(event: Any) -> str:
    registry = state().registry
    event_type = event.get("event_type") if isinstance(event, dict) else None
    return event_type if event_type in registry.event_types else "unknown"


def guard() -> None:
    """401 without a valid write key (when keys are configured), 429 over the rate limit."""
    st = state()
    check_write_key(st.settings.write_keys, request.headers)
    client = presented_key(request.headers) if st.settings.write_keys else None
    st.limiter.check(client or request.remote_addr or "-")


# the WSGI environ keys of the allow-listed headers (a plain dict beats werkzeug's
# case-insensitive header lookups on the hot path)
_CONTEXT_KEYS = {header: "HTTP_" + header.upper().replace("-", "_") for header in CONTEXT_HEADERS}


def meta() -> RequestMeta:
    environ = request.environ
    headers = {header: environ.get(key) for header, key in _CONTEXT_KEYS.items()}
    return request_meta(headers, request.remote_addr, state().settings.ip_hash_key)


def ingest(events: list[Any], meta: RequestMeta) -> list[dict[str, Any]]:
    """Validate and produce ``events``; their envelopes once Kafka acknowledged all."""
    st = state()
    if len(events) > st.settings.max_batch_events:
        _reject(events, "too_many")
        raise ApiError(
            413,
            f"at most {st.settings.max_batch_events} events per request",
            {"max_events": st.settings.max_batch_events, "events": len(events)},
        )
    envelopes, invalid = build(st.registry, events, meta)
    if invalid:
        _reject(events, "invalid")
        details = {
            "events": [
                {
                    "index": index,
                    "violations": [{"path": v.path, "message": v.message} for v in violations],
                }
                for index, violations in invalid
            ]
        }
        raise ApiError(
            422,
            f"{len(invalid)} of {len(events)} events are invalid; none was accepted",
            details,
            code="invalid_event",
        )
    started = time.perf_counter()
    try:
        st.sink.send_many(envelopes)
    except SinkUnavailable as exc:
        _reject(events, "unavailable")
        raise unavailable(
            exc, [e["event_id"] for e in envelopes], st.settings.retry_after_s
        ) from None
    metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
    counts: dict[str, int] = {}
    for envelope in envelopes:
        counts[envelope["event_type"]] = counts.get(envelope["event_type"], 0) + 1
    for event_type, count in counts.items():  # one (multiprocess file) write per type
        metrics.EVENTS_ACCEPTED.labels(event_type).inc(count)
    g.accepted = len(envelopes)
    return envelopes


# the messages of the two persistence states a refusal can be in
UNAVAILABLE_MESSAGES = {
    NOT_PERSISTED: "Kafka refused or never received the events: none was stored "
    "(not_persisted); retry with the same event_id",
    POSSIBLY_PERSISTED: "Kafka did not acknowledge the events; some may still be stored "
    "(possibly_persisted): retry with the same event_id and each is "
    "stored once",
}


def unavailable(exc: SinkUnavailable, event_ids: list[str], retry_after: int) -> ApiError:
    """The 503 of a refused request: whether its events may still land (``persistence``)
    and their ids, so that a retry carrying the same ids is stored once. Single-event
    requests (the legacy routes) also get both in headers."""
    details = {"reason": str(exc), "persistence": exc.persistence, "event_ids": event_ids}
    headers = {"X-Event-Persistence": exc.persistence}
    if len(event_ids) == 1:
        headers["X-Event-Id"] = event_ids[0]
    message = UNAVAILABLE_MESSAGES.get(exc.persistence, UNAVAILABLE_MESSAGES[POSSIBLY_PERSISTED])
    return ApiError(503, message, details, retry_after=retry_after, headers=headers)


def _reject(events: list[Any], reason: str) -> None:
    counts: dict[str, int] = {}
    for event in events:
        label = _type_label(event)
        counts[label] = counts.get(label, 0) + 1
    for label, count in counts.items():
        metrics.EVENTS_REJECTED.labels(label, reason).inc(count)
