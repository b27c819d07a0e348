"""Typed settings from the environment (prefix ``QUESTLOG_QUERY_``), read once, failing fast.

Usage::

    settings = Settings.from_env()          # raises SettingsError naming every bad variable

| variable | default | meaning |
|---|---|---|
| ``QUESTLOG_QUERY_LAKE_ROOT`` | (required) | ``file:///abs/path`` or ``hdfs://host:port/path`` |
| ``QUESTLOG_QUERY_READ_TOKEN`` | empty | bearer token for ``POST /v1/sql``; empty disables it |
| ``QUESTLOG_QUERY_SQL_MAX_ROWS`` | 10000 | rows returned by ``/v1/sql`` before truncation |
| ``QUESTLOG_QUERY_SQL_TIMEOUT_S`` | 10 | watchdog limit of one ``/v1/sql`` query |
| ``QUESTLOG_QUERY_QUERY_TIMEOUT_S`` | 30 | watchdog limit of the fixed REST queries |
| ``QUESTLOG_QUERY_DUCKDB_MEMORY_LIMIT`` | 1GB | DuckDB ``memory_limit`` (per process) |
| ``QUESTLOG_QUERY_DUCKDB_THREADS`` | 2 | DuckDB ``threads`` |
| ``QUESTLOG_QUERY_SNAPSHOT_TTL_S`` | 1.0 | how often a table is checked for a new version |
| ``QUESTLOG_QUERY_LOG_LEVEL`` | INFO | log level |
| ``QUESTLOG_QUERY_EXTRACTOR_METRICS_URL`` | empty | extractor ``/metrics`` for ``/v1/pipeline`` |
| ``QUESTLOG_QUERY_API_METRICS_URL`` | empty | event API ``/metrics`` for ``/v1/pipeline`` |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from questlog_service import env
from questlog_service.env import SettingsError

__all__ = ["Settings", "SettingsError"]

SERVICE = "questlog query"
PREFIX = "QUESTLOG_QUERY_"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
_SCHEMES = ("file://", "hdfs://", "viewfs://")


@dataclass(frozen=True)
class Settings:
    lake_root: str  # file://, hdfs:// or viewfs:// root; tables under <root>/tables/
    read_token: str = ""  # bearer token of /v1/sql; empty = /v1/sql off
    sql_max_rows: int = 10_000  # rows one /v1/sql answer carries at most (then truncated)
    sql_timeout_s: float = 10.0  # /v1/sql statements are interrupted after this
    query_timeout_s: float = 30.0  # the fixed endpoints' queries likewise
    duckdb_memory_limit: str = "1GB"  # per worker process, e.g. 512MB, 2GiB
    duckdb_threads: int = 2
    snapshot_ttl_s: float = 1.0  # how long a table's snapshot is reused before re-reading
    log_level: str = "INFO"
    extractor_metrics_url: str = ""  # /v1/pipeline's sources; empty = not shown
    api_metrics_url: str = ""

    def __post_init__(self) -> None:
        env.check(SERVICE, PREFIX, _check(self))

    @property
    def sql_enabled(self) -> bool:
        return bool(self.read_token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return env.from_env(cls, PREFIX, _PARSERS, environ, service=SERVICE)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "lake_root": str,
    "read_token": str,
    "sql_max_rows": env.integer(),
    "sql_timeout_s": env.number(),
    "query_timeout_s": env.number(),
    "duckdb_memory_limit": str,
    "duckdb_threads": env.integer(),
    "snapshot_ttl_s": env.number(),
    "log_level": env.log_level,
    "extractor_metrics_url": str,
    "api_metrics_url": str,
}


def _check(s: Settings) -> list[tuple[bool, str]]:
    """``(ok, problem)`` for each rule; also what a Settings built in code must meet."""
    root = s.lake_root
    return [
        (root.startswith(_SCHEMES), f"LAKE_ROOT must be a file:// or hdfs:// URI, got {root!r}"),
        (
            not root.startswith("file://") or root[7:].startswith("/"),
            "LAKE_ROOT needs an absolute path: file:///abs/path",
        ),
        (
            bool(_MEMORY.match(s.duckdb_memory_limit)),
            f"DUCKDB_MEMORY_LIMIT must look like 512MB or 2GB, got {s.duckdb_memory_limit!r}",
        ),
        (s.sql_max_rows >= 1, "SQL_MAX_ROWS must be >= 1"),
        (s.duckdb_threads >= 1, "DUCKDB_THREADS must be >= 1"),
        (s.sql_timeout_s > 0, "SQL_TIMEOUT_S must be > 0"),
        (s.query_timeout_s > 0, "QUERY_TIMEOUT_S must be > 0"),
        (s.snapshot_ttl_s >= 0, "SNAPSHOT_TTL_S must be >= 0"),
        *(
            (
                not url or url.startswith(("http://", "https://")),
                f"{name.upper()} must be an http(s):// URL, got {url!r}",
            )
            for name, url in (
                ("extractor_metrics_url", s.extractor_metrics_url),
                ("api_metrics_url", s.api_metrics_url),
            )
        ),
        (
            s.log_level.upper() in env.LOG_LEVELS,
            "LOG_LEVEL must be one of " + ", ".join(env.LOG_LEVELS),
        ),
    ]
