"""The extractor's settings: read once from ``QUESTLOG_EXTRACTOR_*`` variables, typed, and
rejected at start when missing or malformed, every bad variable named at once
(``questlog_service.env``), never half-way through a stream.

Usage::

    settings = Settings.from_env()          # os.environ
    settings = Settings.from_env({"QUESTLOG_EXTRACTOR_KAFKA_BOOTSTRAP": "...", ...})

``SPARK_MASTER`` and ``SPARK_JARS`` apply only when the extractor starts Spark itself
(``python -m questlog_extractor``: embedded mode, tests). Under spark-submit (the Spark
Operator's driver on Kubernetes) spark-submit's own master and jars rule and these two are
ignored (``session.launch_conf``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from questlog_schemas import lake
from questlog_service import env
from questlog_service.env import SettingsError

__all__ = ["CODEGEN", "DEDUPS", "WRITERS", "Settings", "SettingsError"]

SERVICE = "questlog extractor"
PREFIX = "QUESTLOG_EXTRACTOR_"
_INTERVAL = re.compile(r"^\d+ (second|minute|hour|day)s?$")
_UNIT_MS = {"second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
_QUERY_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_SCHEMES = ("file", "hdfs", "s3a", "abfss", "gs")
_STATE_STORES = {
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
}

WRITERS = ("delta-rs", "spark")
# How Spark runs the job's one wide validation expression (``session.session_conf``):
# per-operator code (small methods the JIT compiles, generated again by every task) or
# whole-stage code (one huge method, generated once per batch; needs the JVM option
# ``session.JIT_OPTIONS``). Measured trade-off in docs/benchmarks.md, "Freshness budget".
CODEGEN = ("per-operator", "whole-stage")
# How the job keeps the event ids it has seen (``transforms.dedup``): "ttl", each id for
# ``watermark`` of processing time after its first batch (transformWithState, the JVM class
# services/extractor/jvm; its cost per batch does not grow with the ids kept), or
# "watermark", Spark's dropDuplicatesWithinWatermark on received_at (reads every id kept
# at every batch). A checkpoint keeps the one its state was written by
# (``job.dedup_to_use``) until ``migrate-dedup`` moves it to "ttl" (``migrate``).
DEDUPS = ("ttl", "watermark")


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    lake_root: str
    topic: str = "events"
    max_offsets_per_trigger: int = 200_000
    trigger_seconds: int = 5
    starting_offsets: str = "earliest"
    watermark: str = "1 hour"  # the dedup window, whichever ``dedup``
    dedup: str = "ttl"
    spark_master: str = "local[2]"
    spark_jars: tuple[str, ...] = ()
    shuffle_partitions: int = 2
    state_store: str = "rocksdb"
    writer: str = "delta-rs"
    codegen: str = "per-operator"
    metrics_port: int = 9108
    query_name: str = "extractor"
    # maintain's VACUUM: hours a removed file outlives its removal; None = the table's own
    # (Delta's default, 7 days). Set explicitly, it may go below that (down to 0).
    vacuum_retain_hours: int | None = None
    # `compact`'s loop: seconds between passes; None = one pass (``--every`` overrides)
    compact_every_s: int | None = None

    def __post_init__(self) -> None:
        env.check(
            SERVICE,
            PREFIX,
            [
                (
                    self.dedup != "ttl" or self.state_store == "rocksdb",
                    "DEDUP=ttl needs STATE_STORE=rocksdb (transformWithState's state store)",
                )
            ],
        )

    def table_uri(self, name: str) -> str:
        return lake.table_uri(self.lake_root, name)

    @property
    def checkpoint_uri(self) -> str:
        return lake.checkpoint_uri(self.lake_root, self.query_name)

    @property
    def state_store_class(self) -> str:
        return _STATE_STORES[self.state_store]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, kafka: bool = True) -> Settings:
        """Settings from ``QUESTLOG_EXTRACTOR_*``; ``kafka=False`` for the commands that only
        touch the lake (compact), which then run without ``KAFKA_BOOTSTRAP``."""
        return env.from_env(
            cls,
            PREFIX,
            _PARSERS,
            environ,
            service=SERVICE,
            values={} if kafka else {"kafka_bootstrap": ""},
        )


def interval_ms(interval: str) -> int:
    """An interval setting in milliseconds ('1 hour' -> 3600000)."""
    if not _INTERVAL.match(interval):
        raise ValueError(f"{interval!r} does not look like '1 hour' or '30 minutes'")
    count, unit = interval.split()
    return int(count) * _UNIT_MS[unit.rstrip("s")]


def _lake_root(raw: str) -> str:
    if urlparse(raw).scheme not in _SCHEMES:
        raise ValueError(f"must be a URI ({', '.join(s + '://' for s in _SCHEMES)})")
    return raw.rstrip("/")


def _matching(pattern: re.Pattern, what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise ValueError(f"must {what}")
        return raw

    return parse


def _starting_offsets(raw: str) -> str:
    if raw not in ("earliest", "latest"):
        try:
            json.loads(raw)
        except ValueError:
            raise ValueError("must be earliest, latest or Spark's JSON offsets") from None
    return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    "kafka_bootstrap": str,
    "lake_root": _lake_root,
    "topic": str,
    "max_offsets_per_trigger": env.integer(minimum=1),
    "trigger_seconds": env.integer(minimum=0),
    "starting_offsets": _starting_offsets,
    "watermark": _matching(_INTERVAL, "look like '1 hour' or '30 minutes'"),
    "dedup": env.one_of(*DEDUPS),
    "spark_master": str,
    "spark_jars": env.items,
    "shuffle_partitions": env.integer(minimum=1),
    "state_store": env.one_of(*_STATE_STORES),
    "writer": env.one_of(*WRITERS),
    "codegen": env.one_of(*CODEGEN),
    "metrics_port": env.integer(minimum=0),
    "query_name": _matching(_QUERY_NAME, "match [a-z][a-z0-9_-]*"),
    "vacuum_retain_hours": env.integer(minimum=0),
    "compact_every_s": env.integer(minimum=1),
}
