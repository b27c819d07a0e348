"""From request to envelope: parse the body, fill in the server's fields, validate.

The envelope's fields are defined only in ``questlog_schemas``; this module decides which
of them the server owns (``received_at``, ``context``, ``schema_version``, and
``event_id``/``player_id`` when the client leaves them out) and validates every event
with the registry.

Beyond the schemas, three refusals that no JSON Schema can state: a body with duplicate
keys (parsers disagree on which value wins), strings holding C0 control characters or lone
surrogates (NUL, CR/LF: log and header injection downstream; a surrogate cannot even be
written as UTF-8), and an ``event_time`` outside the window around the server's clock
(``EVENT_TIME_MAX_AHEAD`` / ``EVENT_TIME_MAX_AGE``: a forged far-future time would make
every table look fresh, a reset phone clock says 1970).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from questlog_schemas import Registry, Violation

SCHEMA_VERSION = 1
# The only request metadata that may reach Kafka: header name -> context field.
CONTEXT_HEADERS = {"Host": "host", "User-Agent": "user_agent", "Accept": "accept"}
SERVER_FIELDS = ("received_at", "context")
# event_time is the client's clock, trusted only this far from the server's: ahead for clock
# skew and time-zone mistakes, behind for events a game queued offline and sent late.
EVENT_TIME_MAX_AHEAD = timedelta(days=1)
EVENT_TIME_MAX_AGE = timedelta(days=5 * 365)
# no C0 control character (NUL, CR, LF, TAB...) nor lone surrogate in any client string
FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\ud800-\udfff]")


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
    # surrogate escape), with the same refusals; decoded here as strict UTF-8, since given
    # bytes it would guess UTF-16/32, skip a BOM and pass encoded surrogates
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def parse_body(data: bytes, ndjson: bool) -> list[Any]:
    """The events of a body: one object, an array, or NDJSON lines (blank lines skipped)."""
    try:
        if ndjson:
            lines = [line for line in data.split(b"\n") if line.strip()]
            events = [_loads(line) for line in lines]
        else:
            lines = [data]
            parsed = _loads(data)
            events = parsed if isinstance(parsed, list) else [parsed]
        duplicated = _has_duplicate_keys(data, lines, events)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Malformed(f"body is not valid JSON: {type(exc).__name__}") from None
    except ValueError as exc:
        raise Malformed(str(exc)) from None
    if duplicated:
        raise Malformed("duplicate keys in a JSON object")
    if not ndjson and not isinstance(parsed, list | dict):
        raise Malformed("body must be a JSON object or an array of objects")
    if not events:
        raise Malformed("no events in body")
    return events


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


_SPACE_COLON = (b" :", b"\t:", b"\n:", b"\r:")


def _has_duplicate_keys(data: bytes, lines: list[bytes], parsed: Any) -> bool:
    """Whether an object of the body repeats a key (the parsers keep the last value).

    Fast path, exact: without ``\\u`` escapes and whitespace before a colon, every key and
    every escaped quote followed by a colon reads ``":`` in the body and again in orjson's
    compact re-encoding of what was parsed; a repeated key is in the body but not in the
    re-encoding. Anything else is parsed again with a hook that sees every key.
    """
    if b"\\u" not in data and not any(pattern in data for pattern in _SPACE_COLON):
        try:
            if orjson.dumps(parsed).count(b'":') == data.count(b'":'):
                return False
        except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
            pass
    try:
        for line in lines:
            json.loads(line, object_pairs_hook=_unique_pairs)
    except _DuplicateKey:
        return True
    except ValueError:  # parsed once already; its own errors were reported there
        return False
    return False


def _forbidden_char_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) holding a forbidden character."""
    if isinstance(value, str):
        return path if FORBIDDEN_CHARS.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if FORBIDDEN_CHARS.search(key):
                return where
            found = _forbidden_char_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _forbidden_char_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _may_hold_forbidden_chars(events: list[Any]) -> bool:
    """Cheap test first: orjson writes a control character as an escape and refuses a
    surrogate, so a re-encoding without a backslash holds neither."""
    try:
        return b"\\" in orjson.dumps(events)
    except orjson.JSONEncodeError:
        return True


def _epoch(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 date-time the schema already accepted."""
    text = text.upper()
    if text[17:19] == "60":  # a leap second: the second before is close enough here
        text = text[:17] + "59" + text[19:]
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):
        return None


def event_time_violation(event_time: Any, now: float) -> Violation | None:
    """Refuse an ``event_time`` outside the window around the server's clock ``now``."""
    if not isinstance(event_time, str):
        return None  # the schema names the wrong type
    at = _epoch(event_time)
    if at is None:
        return Violation("event_time", "is not a date-time this server can read")
    if at > now + EVENT_TIME_MAX_AHEAD.total_seconds():
        return Violation(
            "event_time", f"is more than {EVENT_TIME_MAX_AHEAD} ahead of the server's clock"
        )
    if at < now - EVENT_TIME_MAX_AGE.total_seconds():
        return Violation(
            "event_time", f"is more than {EVENT_TIME_MAX_AGE.days} days before the server's clock"
        )
    return None


def _integer_fields(registry: Registry, event_type: Any) -> tuple[str, ...]:
    try:
        schema = registry.get(event_type).properties_schema
    except (KeyError, TypeError):
        return ()
    return tuple(
        name for name, spec in schema.get("properties", {}).items() if spec.get("type") == "integer"
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


def fill(event: dict[str, Any], meta: RequestMeta, random16: bytes | None = None) -> dict[str, Any]:
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


def build(
    registry: Registry, events: list[Any], meta: RequestMeta
) -> tuple[list[dict[str, Any]], list[tuple[int, list[Violation]]]]:
    """Envelopes of all events, and the violations of each invalid one (by index)."""
    envelopes: list[dict[str, Any]] = []
    invalid: list[tuple[int, list[Violation]]] = []
    randoms = os.urandom(16 * len(events))  # one system call for every event's UUID4
    screen = _may_hold_forbidden_chars(events)
    bad_host = bool(meta.host_player and FORBIDDEN_CHARS.search(meta.host_player))
    now = time.time()
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            invalid.append((index, [Violation("", "an event must be a JSON object")]))
            continue
        if screen:
            where = _forbidden_char_path(event)
            if where is not None:
                invalid.append(
                    (index, [Violation(where, "holds a control character or a lone surrogate")])
                )
                continue
        if bad_host and event.get("player_id") is None:
            invalid.append(
                (index, [Violation("player_id", "from a Host header holding a control character")])
            )
            continue
        envelope = fill(event, meta, randoms[16 * index : 16 * index + 16])
        normalise(registry, envelope)
        violations = registry.validate(envelope)
        if not violations and "event_time" in envelope:
            late = event_time_violation(envelope["event_time"], now)
            violations = [late] if late else []
        if violations:
            invalid.append((index, violations))
        else:
            envelopes.append(envelope)
    return envelopes, invalid
