"""Typed settings from the environment (prefix ``QUESTLOG_QUERY_``), read once, failing fast.

Usage::

    settings = Settings.from_env()          # raises SettingsError naming the bad variable

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

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

PREFIX = "QUESTLOG_QUERY_"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
_SCHEMES = ("file://", "hdfs://", "viewfs://")


class SettingsError(ValueError):
    """A missing or malformed environment variable."""


@dataclass(frozen=True)
class Settings:
    lake_root: str
    read_token: str = ""
    sql_max_rows: int = 10_000
    sql_timeout_s: float = 10.0
    query_timeout_s: float = 30.0
    duckdb_memory_limit: str = "1GB"
    duckdb_threads: int = 2
    snapshot_ttl_s: float = 1.0
    log_level: str = "INFO"
    extractor_metrics_url: str = ""
    api_metrics_url: str = ""

    def __post_init__(self) -> None:
        if not self.lake_root.startswith(_SCHEMES):
            raise SettingsError(
                f"{PREFIX}LAKE_ROOT must be a file:// or hdfs:// URI, got {self.lake_root!r}"
            )
        if self.lake_root.startswith("file://") and not self.lake_root[7:].startswith("/"):
            raise SettingsError(f"{PREFIX}LAKE_ROOT needs an absolute path: file:///abs/path")
        if not _MEMORY.match(self.duckdb_memory_limit):
            raise SettingsError(
                f"{PREFIX}DUCKDB_MEMORY_LIMIT must look like 512MB or 2GB, "
                f"got {self.duckdb_memory_limit!r}"
            )
        for name in ("sql_max_rows", "duckdb_threads"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be >= 1")
        for name in ("sql_timeout_s", "query_timeout_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be > 0")
        if self.snapshot_ttl_s < 0:
            raise SettingsError(f"{PREFIX}SNAPSHOT_TTL_S must be >= 0")
        for name in ("extractor_metrics_url", "api_metrics_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                raise SettingsError(
                    f"{PREFIX}{name.upper()} must be an http(s):// URL, got {url!r}")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError(f"{PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")

    @property
    def tables_root(self) -> str:
        return self.lake_root.rstrip("/") + "/tables"

    @property
    def sql_enabled(self) -> bool:
        return bool(self.read_token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str:
            value = env.get(PREFIX + name, default)
            if value is None or (value.strip() == "" and default is None):
                raise SettingsError(f"environment variable {PREFIX}{name} is not set")
            return value.strip()

        def number(name: str, kind: type, default: str) -> int | float:
            raw = get(name, default)
            try:
                return kind(raw)
            except ValueError:
                raise SettingsError(f"{PREFIX}{name} must be a number, got {raw!r}") from None

        return cls(
            lake_root=get("LAKE_ROOT"),
            read_token=get("READ_TOKEN", ""),
            sql_max_rows=number("SQL_MAX_ROWS", int, "10000"),
            sql_timeout_s=number("SQL_TIMEOUT_S", float, "10"),
            query_timeout_s=number("QUERY_TIMEOUT_S", float, "30"),
            duckdb_memory_limit=get("DUCKDB_MEMORY_LIMIT", "1GB"),
            duckdb_threads=number("DUCKDB_THREADS", int, "2"),
            snapshot_ttl_s=number("SNAPSHOT_TTL_S", float, "1"),
            log_level=get("LOG_LEVEL", "INFO").upper(),
            extractor_metrics_url=get("EXTRACTOR_METRICS_URL", ""),
            api_metrics_url=get("API_METRICS_URL", ""),
        )
