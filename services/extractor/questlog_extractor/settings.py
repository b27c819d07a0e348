"""The extractor's settings: read once from ``QUESTLOG_EXTRACTOR_*`` variables, typed, and
rejected at start when missing or malformed (never half-way through a stream).

Usage::

    settings = Settings.from_env()          # os.environ
    settings = Settings.from_env({"QUESTLOG_EXTRACTOR_KAFKA_BOOTSTRAP": "...", ...})

``SPARK_MASTER`` and ``SPARK_JARS`` apply only when the extractor starts Spark itself
(``python -m questlog_extractor``: embedded mode, tests). Under spark-submit (the Spark
Operator's driver on Kubernetes) spark-submit's own master and jars rule and these two are
ignored (``job.launch_conf``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

PREFIX = "QUESTLOG_EXTRACTOR_"
_INTERVAL = re.compile(r"^\d+ (second|minute|hour|day)s?$")
_SCHEMES = ("file", "hdfs", "s3a", "abfss", "gs")
_STATE_STORES = {
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
}

WRITERS = ("delta-rs", "spark")


class SettingsError(ValueError):
    """A missing or malformed setting; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    lake_root: str
    topic: str = "events"
    max_offsets_per_trigger: int = 200_000
    trigger_seconds: int = 5
    starting_offsets: str = "earliest"
    watermark: str = "1 hour"
    spark_master: str = "local[2]"
    spark_jars: tuple[str, ...] = ()
    shuffle_partitions: int = 2
    state_store: str = "rocksdb"
    writer: str = "delta-rs"
    metrics_port: int = 9108
    query_name: str = "extractor"
    # maintain's VACUUM: hours a removed file outlives its removal; None = the table's own
    # (Delta's default, 7 days). Set explicitly, it may go below that (down to 0).
    vacuum_retain_hours: int | None = None
    # `compact`'s loop: seconds between passes; None = one pass (``--every`` overrides)
    compact_every_s: int | None = None

    @property
    def tables_root(self) -> str:
        return f"{self.lake_root}/tables"

    def table_uri(self, name: str) -> str:
        return f"{self.tables_root}/{name}"

    @property
    def checkpoint_uri(self) -> str:
        return f"{self.lake_root}/_checkpoints/{self.query_name}"

    @property
    def state_store_class(self) -> str:
        return _STATE_STORES[self.state_store]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 kafka: bool = True) -> Settings:
        """Settings from ``QUESTLOG_EXTRACTOR_*``; ``kafka=False`` for the commands that only
        touch the lake (compact), which then run without ``KAFKA_BOOTSTRAP``."""
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str:
            value = env.get(PREFIX + name, "").strip()
            if value:
                return value
            if default is None:
                raise SettingsError(f"{PREFIX}{name} is not set")
            return default

        def integer(name: str, default: int, minimum: int) -> int:
            raw = get(name, str(default))
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{PREFIX}{name} must be an integer, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"{PREFIX}{name} must be >= {minimum}, got {value}")
            return value

        lake_root = get("LAKE_ROOT").rstrip("/")
        if urlparse(lake_root).scheme not in _SCHEMES:
            raise SettingsError(
                f"{PREFIX}LAKE_ROOT must be a URI ({', '.join(s + '://' for s in _SCHEMES)}),"
                f" got {lake_root!r}")
        watermark = get("WATERMARK", cls.watermark)
        if not _INTERVAL.match(watermark):
            raise SettingsError(
                f"{PREFIX}WATERMARK must look like '1 hour' or '30 minutes', got {watermark!r}")
        starting = get("STARTING_OFFSETS", cls.starting_offsets)
        if starting not in ("earliest", "latest"):
            try:
                json.loads(starting)
            except ValueError:
                raise SettingsError(
                    f"{PREFIX}STARTING_OFFSETS must be earliest, latest or Spark's JSON"
                    f" offsets, got {starting!r}") from None
        state_store = get("STATE_STORE", cls.state_store)
        if state_store not in _STATE_STORES:
            raise SettingsError(
                f"{PREFIX}STATE_STORE must be one of {sorted(_STATE_STORES)}, got {state_store!r}")
        writer = get("WRITER", cls.writer)
        if writer not in WRITERS:
            raise SettingsError(f"{PREFIX}WRITER must be one of {list(WRITERS)}, got {writer!r}")
        query_name = get("QUERY_NAME", cls.query_name)
        if not re.match(r"^[a-z][a-z0-9_-]*$", query_name):
            raise SettingsError(f"{PREFIX}QUERY_NAME must match [a-z][a-z0-9_-]*")
        retain = env.get(PREFIX + "VACUUM_RETAIN_HOURS", "").strip()
        vacuum_retain_hours = integer("VACUUM_RETAIN_HOURS", 0, 0) if retain else None
        every = env.get(PREFIX + "COMPACT_EVERY_S", "").strip()
        compact_every_s = integer("COMPACT_EVERY_S", 1, 1) if every else None
        jars = tuple(j.strip() for j in get("SPARK_JARS", "").split(",") if j.strip())
        return cls(
            kafka_bootstrap=get("KAFKA_BOOTSTRAP", None if kafka else ""),
            lake_root=lake_root,
            topic=get("TOPIC", cls.topic),
            max_offsets_per_trigger=integer("MAX_OFFSETS_PER_TRIGGER",
                                            cls.max_offsets_per_trigger, 1),
            trigger_seconds=integer("TRIGGER_SECONDS", cls.trigger_seconds, 0),
            starting_offsets=starting,
            watermark=watermark,
            spark_master=get("SPARK_MASTER", cls.spark_master),
            spark_jars=jars,
            shuffle_partitions=integer("SHUFFLE_PARTITIONS", cls.shuffle_partitions, 1),
            state_store=state_store,
            writer=writer,
            metrics_port=integer("METRICS_PORT", cls.metrics_port, 0),
            query_name=query_name,
            vacuum_retain_hours=vacuum_retain_hours,
            compact_every_s=compact_every_s,
        )
