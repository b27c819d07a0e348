"""From request to envelope: parse the body, fill in the server's fields, validate.

The envelope's fields are defined only in ``questlog_schemas``; this module decides which
of them the server owns (``received_at``, ``context``, ``schema_version``, and
``event_id``/``player_id`` when the client leaves them out) and validates every event
with the registry.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from questlog_schemas import Registry, Violation

SCHEMA_VERSION = 1
# The only request metadata that may reach Kafka: header name -> context field.
CONTEXT_HEADERS = {"Host": "host", "User-Agent": "user_agent", "Accept": "accept"}
SERVER_FIELDS = ("received_at", "context")


class Malformed(ValueError):
    """The body is not JSON / NDJSON of the accepted shape."""


@dataclass(frozen=True)
class RequestMeta:
    """What the server knows about the request, gathered once per request."""

    received_at: str
    context: dict[str, str]
    host_player: str | None


_SECOND: tuple[int, str] = (0, "")  # (epoch second, its "YYYY-MM-DDTHH:MM:SS." text)


def now_rfc3339() -> str:
    """The server clock in UTC with milliseconds, e.g. ``2026-11-26T17:40:01.123Z``."""
    global _SECOND
    now = time.time()
    second = int(now)
    cached = _SECOND
    if cached[0] != second:  # formatted once per second, not once per request
        cached = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{cached[1]}{int((now - second) * 1000):03d}Z"


def ip_pseudonym(key: bytes, ip: str | None) -> str | None:
    """HMAC-SHA256 of the client IP, first 32 hex chars: stable per key, not reversible."""
    if not ip:
        return None
    return _pseudonym(key, ip)


@functools.lru_cache(maxsize=65_536)
def _pseudonym(key: bytes, ip: str) -> str:
    # clients send many requests from one address: one HMAC per address, not per request
    return hmac.new(key, ip.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def player_from_host(host: str | None) -> str | None:
    """``user1.comcast.com:5000`` -> ``user1.comcast.com`` (the original clients' player)."""
    if not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and name else host


def request_meta(headers: Any, remote_ip: str | None, ip_key: bytes) -> RequestMeta:
    context: dict[str, str] = {}
    for header, field in CONTEXT_HEADERS.items():
        value = headers.get(header)
        if value:
            context[field] = value
    pseudonym = ip_pseudonym(ip_key, remote_ip)
    if pseudonym:
        context["client_ip_hash"] = pseudonym
    return RequestMeta(now_rfc3339(), context, player_from_host(headers.get("Host")))


def _reject_constant(name: str) -> Any:
    raise Malformed(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Malformed("number out of range")
    return value


def _loads(text: str | bytes) -> Any:
    try:  # orjson refuses NaN, Infinity, numbers overflowing a double, invalid UTF-8
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    # the standard library names what is wrong (or takes what orjson cannot, e.g. a lone
    # surrogate escape), with the same refusals
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def parse_body(data: bytes, ndjson: bool) -> list[Any]:
    """The events of a body: one object, an array, or NDJSON lines (blank lines skipped)."""
    try:
        if ndjson:
            events = [_loads(line) for line in data.split(b"\n") if line.strip()]
        else:
            parsed = _loads(data)
            events = parsed if isinstance(parsed, list) else [parsed]
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Malformed(f"body is not valid JSON: {type(exc).__name__}") from None
    except ValueError as exc:
        raise Malformed(str(exc)) from None
    if not ndjson and not isinstance(parsed, list | dict):
        raise Malformed("body must be a JSON object or an array of objects")
    if not events:
        raise Malformed("no events in body")
    return events


def _integer_fields(registry: Registry, event_type: Any) -> tuple[str, ...]:
    try:
        schema = registry.get(event_type).properties_schema
    except (KeyError, TypeError):
        return ()
    return tuple(
        name for name, spec in schema.get("properties", {}).items()
        if spec.get("type") == "integer"
    )


def normalise(registry: Registry, event: dict[str, Any]) -> None:
    """Whole-number floats (``2.0``) in integer fields become ints, as JSON means them."""
    props = event.get("properties")
    if isinstance(props, dict):
        for name in _integer_fields(registry, event.get("event_type")):
            value = props.get(name)
            if isinstance(value, float) and value.is_integer():
                props[name] = int(value)
    version = event.get("schema_version")
    if isinstance(version, float) and version.is_integer():
        event["schema_version"] = int(version)


def fill(event: dict[str, Any], meta: RequestMeta, random16: bytes | None = None
         ) -> dict[str, Any]:
    """The envelope of one client event: server fields set, client fields kept as sent.

    Client-sent ``received_at`` and ``context`` are replaced (the server owns them);
    unknown top-level fields are kept so validation rejects them rather than dropping
    them silently.
    """
    envelope = dict(event)
    event_id = envelope.get("event_id")
    if event_id is None:
        # a UUID4 (from ``random16`` when the caller drew random bytes for a whole batch)
        envelope["event_id"] = str(uuid.UUID(bytes=random16 or os.urandom(16), version=4))
    elif isinstance(event_id, str):
        envelope["event_id"] = event_id.lower()
    envelope["received_at"] = meta.received_at
    if envelope.get("player_id") is None and meta.host_player:
        envelope["player_id"] = meta.host_player
    envelope.setdefault("properties", {})
    envelope["context"] = dict(meta.context)
    envelope.setdefault("schema_version", SCHEMA_VERSION)
    return envelope


def build(registry: Registry, events: list[Any], meta: RequestMeta
          ) -> tuple[list[dict[str, Any]], list[tuple[int, list[Violation]]]]:
    """Envelopes of all events, and the violations of each invalid one (by index)."""
    envelopes: list[dict[str, Any]] = []
    invalid: list[tuple[int, list[Violation]]] = []
    randoms = os.urandom(16 * len(events))  # one system call for every event's UUID4
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            invalid.append((index, [Violation("", "an event must be a JSON object")]))
            continue
        envelope = fill(event, meta, randoms[16 * index:16 * index + 16])
        normalise(registry, envelope)
        violations = registry.validate(envelope)
        if violations:
            invalid.append((index, violations))
        else:
            envelopes.append(envelope)
    return envelopes, invalid
