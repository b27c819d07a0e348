"""The API's settings: read from ``QUESTLOG_API_*`` environment variables once, typed, and
checked up front so a malformed value stops the process at start, not at the first request
(``questlog_service.env``: every bad variable named at once).

Usage::

    settings = Settings.from_env()          # raises SettingsError listing every bad value
    settings = Settings(sink="memory", ip_hash_key=b"test-key-0123456789")  # tests
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from questlog_service import env
from questlog_service.env import SettingsError

__all__ = ["Settings", "SettingsError", "bootstrap_addresses"]

SERVICE = "questlog API"
PREFIX = "QUESTLOG_API_"
# Used only when QUESTLOG_API_ALLOW_DEV_IP_HASH_KEY=1: pseudonyms made with a public key
# can be reversed by anyone who enumerates IPv4, so production must set its own secret.
DEV_IP_HASH_KEY = b"questlog-dev-ip-hash-key-not-secret"
MIN_IP_HASH_KEY_BYTES = 16
# confluent: confluent-kafka (librdkafka, the default); memory: tests/dev only
SINKS = ("confluent", "memory")


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic: str = "events"
    sink: Literal["confluent", "memory"] = "confluent"
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
        env.check(SERVICE, PREFIX, _check(self))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        if env.flag(environ.get(PREFIX + "ALLOW_DEV_IP_HASH_KEY", "").strip()):
            values["ip_hash_key"] = DEV_IP_HASH_KEY  # unless IP_HASH_KEY is set too
        return env.from_env(cls, PREFIX, _PARSERS, environ, service=SERVICE, values=values)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "kafka_bootstrap": str,
    "topic": str,
    "sink": env.one_of(*SINKS),
    "max_batch_events": env.integer(),
    "max_body_bytes": env.integer(),
    "write_keys": env.items,
    "rate_limit": env.number(),
    "rate_limit_burst": env.integer(),
    "ip_hash_key": lambda raw: raw.encode("utf-8"),
    "produce_timeout_s": env.number(),
    "ready_timeout_s": env.number(),
    "max_in_flight": env.integer(),
    "linger_ms": env.integer(),
    "retry_after_s": env.integer(),
    "proxy_hops": env.integer(),
    "log_level": env.log_level,
}


def _check(s: Settings) -> list[tuple[bool, str]]:
    """``(ok, problem)`` for each rule; also what a Settings built in code must meet."""
    return [
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
        (s.log_level in env.LOG_LEVELS, "LOG_LEVEL must be one of " + ", ".join(env.LOG_LEVELS)),
        (
            bool(s.ip_hash_key),
            f"IP_HASH_KEY is not set (a secret of at least {MIN_IP_HASH_KEY_BYTES} bytes; for "
            f"local development only, set {PREFIX}ALLOW_DEV_IP_HASH_KEY=1 to use a public dev key)",
        ),
        (
            not s.ip_hash_key or len(s.ip_hash_key) >= MIN_IP_HASH_KEY_BYTES,
            f"IP_HASH_KEY must be at least {MIN_IP_HASH_KEY_BYTES} bytes",
        ),
        (
            all(_host_port(part.strip()) for part in s.kafka_bootstrap.split(",")),
            "KAFKA_BOOTSTRAP must be host:port[,host:port...]",
        ),
    ]


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
