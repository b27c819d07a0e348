"""The job's writer: one idempotent Delta append per table per micro-batch.

Two strategies, one class each; ``writer_for`` is the one place that picks one, from
``QUESTLOG_EXTRACTOR_WRITER``. Both are idempotent through Delta's transaction ids (``txn``
actions): a replayed batch whose ``(app id, batch id)`` a table already holds is skipped
there, whichever strategy committed it.

- ``DeltaRsWriter`` (``delta-rs``, default): Spark computes each table's rows, the driver
  receives them as Arrow and commits with delta-rs. A commit costs ~10 ms instead of
  ~0.7 s of Spark jobs and log work, which is what keeps small micro-batches (and
  freshness) short. Every row passes through the driver: size its memory for
  ``maxOffsetsPerTrigger``.
- ``SparkWriter`` (``spark``): Spark's own Delta writer, the executors write the files; for
  clusters whose batches are too large for one driver.

``BatchWriter`` is the ``foreachBatch`` sink around the chosen strategy: the app id,
metrics, logs, and the kill tests' pause points (``TEST_PAUSE_VARIABLE``).

Usage::

    sink = BatchWriter(settings, registry)
    sink.stream(deduped).writeStream.foreachBatch(sink)   # the columns it takes, then it
    writer_for(settings).write(df, "purchase_sword", batch_id, app_id, "event_date")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from pyspark import InheritableThread, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from questlog_extractor import metrics, transforms
from questlog_extractor.settings import Settings
from questlog_schemas import Registry, lake, load_registry

log = logging.getLogger("questlog_extractor.writers")

QUARANTINE = lake.QUARANTINE  # the table of records that failed validation
# each table's partition column (the lake contract's)
EVENT_PARTITION = lake.EVENT_DATE.name
QUARANTINE_PARTITION = lake.QUARANTINE_TABLE.partition_column
# Set by Spark on the thread that runs foreachBatch; survives restarts (checkpoint).
QUERY_ID_PROPERTY = "sql.streaming.queryId"

# Test-only (the kill tests), deliberately not a setting: "<point>@<batch id>" makes the
# writer stop at <point> of the first batch whose id is at least <batch id>, log
# "test pause at <point> batch N" and sleep, so a test can SIGKILL the driver exactly there.
TEST_PAUSE_VARIABLE = "QUESTLOG_EXTRACTOR_TEST_PAUSE_AT"
# between-tables: one table holds the batch, the others not yet;
# after-commits: every table holds it, the checkpoint's commit file is not written yet.
TEST_PAUSE_POINTS = ("between-tables", "after-commits")


class BatchWriter:
    """``foreachBatch`` sink: the batch written by the strategy ``writer_for`` picks."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.pause = PauseForKillTest.from_env(os.environ)
        self.strategy = writer_for(settings, registry or load_registry(), self.pause)

    def app_id(self, spark: SparkSession) -> str:
        # The query id lives in the checkpoint: a new checkpoint gets a new id, so its
        # batch ids (starting again at 0) are never mistaken for ones already written.
        query_id = spark.sparkContext.getLocalProperty(QUERY_ID_PROPERTY)
        return f"questlog-extractor/{self.settings.query_name}/{query_id}"

    def stream(self, deduped: DataFrame) -> DataFrame:
        """What each micro-batch hands this sink: ``deduped`` shaped by the strategy, as
        part of the streaming query (planned with it, no per-batch DataFrame building)."""
        return self.strategy.stream(deduped.drop(transforms.DEDUP_KEY, transforms.DEDUP_TIME))

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        app_id = self.app_id(batch.sparkSession)
        started = time.perf_counter()
        counts, timings = self.strategy.write_batch(batch, batch_id, app_id)
        for table, n in counts.items():
            metrics.ROWS_WRITTEN.labels(table=table).inc(n)
        if counts:
            log.info(
                "batch written",
                extra={
                    "fields": {
                        "batch_id": batch_id,
                        "rows": counts,
                        "ms": round((time.perf_counter() - started) * 1000),
                        **timings,
                    }
                },
            )
            if self.pause and self.pause.wants("after-commits", batch_id):
                self.pause.hold("after-commits", batch_id)


def writer_for(
    settings: Settings, registry: Registry | None = None, pause: PauseForKillTest | None = None
) -> DeltaRsWriter | SparkWriter:
    """The strategy ``settings.writer`` names (the only place it is looked at)."""
    strategies: dict[str, type[DeltaRsWriter | SparkWriter]] = {
        "delta-rs": DeltaRsWriter,
        "spark": SparkWriter,
    }
    strategy = strategies[settings.writer]
    return strategy(settings, registry, pause)


class _Strategy:
    """What both strategies are built with."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        pause: PauseForKillTest | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or load_registry()
        self.pause = pause
        self.setup()

    def setup(self) -> None:
        """A strategy's own state, set up once."""

    def stream(self, parsed: DataFrame) -> DataFrame:
        """The columns of the parsed, deduplicated stream this strategy's ``write_batch``
        takes (default: all of them)."""
        return parsed


class DeltaRsWriter(_Strategy):
    """delta-rs strategy: the driver collects the batch as Arrow and commits each table."""

    def setup(self) -> None:
        self._tables: dict[str, Any] = {}  # table name -> deltalake.DeltaTable
        self._schemas: dict[str, Any] = {}  # table name -> pyarrow.Schema of its rows

    def stream(self, parsed: DataFrame) -> DataFrame:
        """Every table's columns side by side (``transforms.to_tables_frame``), projected
        inside the streaming query: each micro-batch is then one ``toArrow`` away from its
        tables, with no DataFrame built, analysed and planned again per batch through Py4J.
        Each table's Arrow schema is worked out here, once."""
        for event_type in self.registry.event_types:
            self._schemas[event_type] = _arrow_schema_of(
                transforms.to_event_table(parsed, event_type, self.registry)
            )
        self._schemas[QUARANTINE] = _arrow_schema_of(transforms.to_quarantine(parsed))
        # seen_at is stamped on the driver, not by current_timestamp(): Spark inlines that
        # as a literal, so each micro-batch's code would differ, miss the codegen cache and
        # be compiled by Janino and again by the JIT (two compiles per batch; README "Speed").
        return transforms.to_tables_frame(parsed, self.registry, seen_at=transforms.seen_later())

    def write_batch(
        self, batch: DataFrame, batch_id: int, app_id: str
    ) -> tuple[dict[str, int], dict[str, int]]:
        """The batch (``stream``'s frame) in ONE Spark job (no cache, no count job), split
        by table with Arrow compute on the driver, then appended; rows per table."""
        import pyarrow.compute as pc

        if not self._schemas:
            raise RuntimeError("DeltaRsWriter.write_batch before stream(): no table schemas")
        started = time.perf_counter()
        rows = batch.toArrow()
        collected = time.perf_counter()
        good = pc.is_null(rows["reason"])
        writes: list[tuple[Any, str, str]] = []
        for event_type in self.registry.event_types:
            # pyarrow-stubs want a Scalar here; pyarrow wraps a Python value itself
            mine = rows.filter(pc.and_(good, pc.equal(rows["event_type"], event_type)))  # type: ignore[call-overload]
            if mine.num_rows:
                schema = self._schemas[event_type]
                writes.append((mine.select(schema.names).cast(schema), event_type, EVENT_PARTITION))
        bad = rows.filter(pc.invert(good))
        if bad.num_rows:
            schema = self._schemas[QUARANTINE]
            bad = stamp_seen(bad.select(schema.names), time.time()).cast(schema)
            writes.append((bad, QUARANTINE, QUARANTINE_PARTITION))
        split = time.perf_counter()
        side_by_side(
            [(r, t, batch_id, app_id, p) for r, t, p in writes],
            self.write_arrow,
            batch_id,
            self.pause,
        )
        timings = {  # where the batch's time went, in its "batch written" line
            "collect_ms": round((collected - started) * 1000),  # the Spark job, Arrow
            "split_ms": round((split - collected) * 1000),
            "commit_ms": round((time.perf_counter() - split) * 1000),  # the Delta commits
        }
        return {table: rows_.num_rows for rows_, table, _ in writes}, timings

    def write(
        self, df: DataFrame, table: str, batch_id: int, app_id: str, partition_by: str
    ) -> None:
        """Append ``df`` to ``table`` once per (app id, batch id)."""
        self.write_arrow(df.toArrow(), table, batch_id, app_id, partition_by)

    def write_arrow(self, rows, table: str, batch_id: int, app_id: str, partition_by: str) -> None:
        """Append Arrow ``rows`` to ``table`` with delta-rs unless this batch is there."""
        from deltalake import CommitProperties, Transaction, write_deltalake

        delta = self._open(table)
        if delta is not None:
            done = delta.transaction_version(app_id)
            if done is not None and done >= batch_id:
                metrics.REPLAYS_SKIPPED.labels(table=table).inc()
                log.info(
                    "batch already committed, skipped",
                    extra={
                        "fields": {"table": table, "batch_id": batch_id, "committed_batch_id": done}
                    },
                )
                return
        write_deltalake(
            delta if delta is not None else self.settings.table_uri(table),
            rows,
            mode="append",
            partition_by=[partition_by],
            commit_properties=CommitProperties(
                app_transactions=[Transaction(app_id=app_id, version=batch_id)]
            ),
        )

    def _open(self, table: str):
        """The table at its latest version, or None before its first commit."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        delta = self._tables.get(table)
        try:
            if delta is None:
                delta = self._tables[table] = DeltaTable(self.settings.table_uri(table))
            else:
                delta.update_incremental()
        except TableNotFoundError:
            return None
        return delta


def _arrow_schema_of(df: DataFrame):
    """The Arrow schema ``df.toArrow()`` has (what each table was created with)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    large = (
        df.sparkSession.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false") == "true"
    )
    return to_arrow_schema(
        df.schema, error_on_duplicated_field_names_in_struct=True, prefers_large_types=large
    )


class SparkWriter(_Strategy):
    """Spark strategy: each table appended by Spark's Delta writer (files by the executors)."""

    def write_batch(
        self, batch: DataFrame, batch_id: int, app_id: str
    ) -> tuple[dict[str, int], dict[str, int]]:
        """The batch cached once, counted per table, each table appended; rows per table
        (and how long the whole took)."""
        started = time.perf_counter()
        batch.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            table_of = F.when(F.col("reason").isNull(), F.col("event_type")).otherwise(
                F.lit(QUARANTINE)
            )
            counts = {
                r["t"]: r["n"]
                for r in batch.groupBy(table_of.alias("t")).agg(F.count("*").alias("n")).collect()
            }
            good, bad = transforms.split(batch)
            writes = [
                (
                    transforms.to_event_table(good, event_type, self.registry),
                    event_type,
                    EVENT_PARTITION,
                )
                for event_type in self.registry.event_types
                if counts.get(event_type)
            ]
            if counts.get(QUARANTINE):
                writes.append((transforms.to_quarantine(bad), QUARANTINE, QUARANTINE_PARTITION))
            side_by_side(
                [(df, t, batch_id, app_id, p) for df, t, p in writes],
                self.write,
                batch_id,
                self.pause,
            )
        finally:
            batch.unpersist()
        return counts, {"commit_ms": round((time.perf_counter() - started) * 1000)}

    def write(
        self, df: DataFrame, table: str, batch_id: int, app_id: str, partition_by: str
    ) -> None:
        """Append ``df`` to ``table`` once per (app id, batch id): Delta's ``txnAppId`` and
        ``txnVersion`` options skip a batch the table holds."""
        (
            df.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", batch_id)
            .partitionBy(partition_by)
            .save(self.settings.table_uri(table))
        )


def side_by_side(
    writes: list[tuple[Any, ...]],
    write: Callable[..., None],
    batch_id: int,
    pause: PauseForKillTest | None,
) -> None:
    """Run ``write(*args)`` for each entry of ``writes`` on its own thread and re-raise
    the first failure: each is a Spark job and/or a Delta commit whose log work (and
    delta-rs's Parquet encoding, which releases the GIL) overlaps the others'."""
    if pause and len(writes) > 1 and pause.wants("between-tables", batch_id):
        write(*writes[0])
        pause.hold("between-tables", batch_id)
        writes = writes[1:]
    errors: list[BaseException] = []

    def run(*args: Any) -> None:
        try:
            write(*args)
        except BaseException as exc:  # re-raised on the foreachBatch thread
            errors.append(exc)

    threads = [InheritableThread(target=run, args=w, name=f"write-{w[1]}") for w in writes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def stamp_seen(rows, seen_at: float):
    """Quarantine rows (Arrow) with ``seen_at`` (unix seconds) and its UTC date set."""
    import pyarrow as pa

    micros = int(seen_at * 1_000_000)
    table = lake.QUARANTINE_TABLE
    day = micros // 86_400_000_000
    for name, value in ((table.time_column, micros), (table.partition_column, day)):
        index = rows.schema.get_field_index(name)
        field = rows.schema.field(index)
        rows = rows.set_column(index, field, pa.array([value] * rows.num_rows, field.type))
    return rows


class PauseForKillTest:
    """The test-only pause of ``TEST_PAUSE_VARIABLE``; holds once per process."""

    def __init__(self, point: str, from_batch: int, hold_s: float = 600.0) -> None:
        self.point, self.from_batch, self.hold_s = point, from_batch, hold_s
        self.held = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PauseForKillTest | None:
        raw = environ.get(TEST_PAUSE_VARIABLE, "").strip()
        if not raw:
            return None
        point, _, first = raw.partition("@")
        if point not in TEST_PAUSE_POINTS or not first.isdigit():
            # a typo must not run a job that looks normal: fail the start
            raise ValueError(
                f"{TEST_PAUSE_VARIABLE} must be <point>@<batch id> with <point>"
                f" one of {list(TEST_PAUSE_POINTS)}, got {raw!r}"
            )
        log.warning(
            "test-only pause hook enabled",
            extra={"fields": {"point": point, "from_batch_id": int(first)}},
        )
        return cls(point, int(first))

    def wants(self, point: str, batch_id: int) -> bool:
        return not self.held and point == self.point and batch_id >= self.from_batch

    def hold(self, point: str, batch_id: int) -> None:
        self.held = True
        log.warning(
            "test pause at %s batch %d",
            point,
            batch_id,
            extra={"fields": {"point": point, "batch_id": batch_id}},
        )
        time.sleep(self.hold_s)
