"""The API's settings: read from ``QUESTLOG_API_*`` environment variables once, typed, and
checked up front so a malformed value stops the process at start, not at the first request.

Usage::

    settings = Settings.from_env()          # raises SettingsError listing every bad value
    settings = Settings(sink="memory", ip_hash_key=b"test-key-0123456789")  # tests
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

PREFIX = "QUESTLOG_API_"
# Used only when QUESTLOG_API_ALLOW_DEV_IP_HASH_KEY=1: pseudonyms made with a public key
# can be reversed by anyone who enumerates IPv4, so production must set its own secret.
DEV_IP_HASH_KEY = b"questlog-dev-ip-hash-key-not-secret"
MIN_IP_HASH_KEY_BYTES = 16
# confluent: confluent-kafka (librdkafka, the default); kafka: kafka-python; memory: tests/dev only
SINKS = ("kafka", "confluent", "memory")


class SettingsError(ValueError):
    """One or more settings are missing or malformed; the message names each of them."""


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic: str = "events"
    sink: Literal["kafka", "confluent", "memory"] = "confluent"
    max_batch_events: int = 500
    max_body_bytes: int = 1_048_576
    write_keys: tuple[str, ...] = ()
    rate_limit: float = 0.0  # requests per second per client, all workers together; 0 = off
    rate_limit_burst: int = 0  # bucket size; 0 = max(1, rate_limit)
    ip_hash_key: bytes = b""
    produce_timeout_s: float = 5.0
    ready_timeout_s: float = 1.0  # /readyz's metadata round trip to Kafka waits this long
    max_in_flight: int = 10_000  # events handed to Kafka but not yet acknowledged, per worker
    linger_ms: int = 1
    retry_after_s: int = 1
    proxy_hops: int = 0  # trusted reverse proxies in front (X-Forwarded-For hops to honour)
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        problems = _check(self)
        if problems:
            raise SettingsError("invalid questlog API settings: " + "; ".join(problems))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for spec in dataclasses.fields(cls):
            raw = env.get(PREFIX + spec.name.upper())
            if raw is None or (raw.strip() == "" and spec.name != "write_keys"):
                continue
            try:
                values[spec.name] = _PARSERS[spec.name](raw.strip())
            except ValueError as exc:
                problems.append(f"{PREFIX}{spec.name.upper()}={raw!r}: {exc}")
        if "ip_hash_key" not in values:
            if _flag(env.get(PREFIX + "ALLOW_DEV_IP_HASH_KEY", "")):
                values["ip_hash_key"] = DEV_IP_HASH_KEY
            else:
                problems.append(
                    f"{PREFIX}IP_HASH_KEY is not set (a secret of at least "
                    f"{MIN_IP_HASH_KEY_BYTES} bytes; for local development only, set "
                    f"{PREFIX}ALLOW_DEV_IP_HASH_KEY=1 to use a public dev key)"
                )
        if problems:
            raise SettingsError("invalid questlog API settings: " + "; ".join(problems))
        return cls(**values)


def _flag(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("not an integer") from None


def _float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def _sink(raw: str) -> str:
    if raw not in SINKS:
        raise ValueError("must be one of " + ", ".join(repr(name) for name in SINKS))
    return raw


def _keys(raw: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in raw.split(",") if key.strip())


_PARSERS: dict[str, Callable[[str], Any]] = {
    "kafka_bootstrap": str,
    "topic": str,
    "sink": _sink,
    "max_batch_events": _int,
    "max_body_bytes": _int,
    "write_keys": _keys,
    "rate_limit": _float,
    "rate_limit_burst": _int,
    "ip_hash_key": lambda raw: raw.encode("utf-8"),
    "produce_timeout_s": _float,
    "ready_timeout_s": _float,
    "max_in_flight": _int,
    "linger_ms": _int,
    "retry_after_s": _int,
    "proxy_hops": _int,
    "log_level": str.upper,
}


def _check(s: Settings) -> list[str]:
    problems = []
    checks = [
        (s.max_batch_events >= 1, "MAX_BATCH_EVENTS must be >= 1"),
        (s.max_body_bytes >= 1024, "MAX_BODY_BYTES must be >= 1024"),
        (s.rate_limit >= 0, "RATE_LIMIT must be >= 0"),
        (s.rate_limit_burst >= 0, "RATE_LIMIT_BURST must be >= 0"),
        (0 < s.produce_timeout_s <= 120, "PRODUCE_TIMEOUT_S must be in (0, 120]"),
        (0 < s.ready_timeout_s <= 30, "READY_TIMEOUT_S must be in (0, 30]"),
        (s.max_in_flight >= s.max_batch_events, "MAX_IN_FLIGHT must be >= MAX_BATCH_EVENTS"),
        (0 <= s.linger_ms <= 1000, "LINGER_MS must be in [0, 1000]"),
        (s.retry_after_s >= 1, "RETRY_AFTER_S must be >= 1"),
        (s.proxy_hops >= 0, "PROXY_HOPS must be >= 0"),
        (s.sink in SINKS, "SINK must be one of " + ", ".join(SINKS)),
        (bool(s.topic), "TOPIC must not be empty"),
        (s.log_level in {"DEBUG", "INFO", "WARNING", "ERROR"}, "LOG_LEVEL is not a level"),
        (len(s.ip_hash_key) >= MIN_IP_HASH_KEY_BYTES,
         f"IP_HASH_KEY must be at least {MIN_IP_HASH_KEY_BYTES} bytes"),
    ]
    for ok, message in checks:
        if not ok:
            problems.append(PREFIX + message)
    bootstrap = [part.strip() for part in s.kafka_bootstrap.split(",")]
    if not all(_host_port(part) for part in bootstrap):
        problems.append(f"{PREFIX}KAFKA_BOOTSTRAP must be host:port[,host:port...]")
    return problems


def _host_port(part: str) -> bool:
    host, sep, port = part.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]]:
    """``[(host, port), ...]`` of a validated bootstrap string."""
    out = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out
