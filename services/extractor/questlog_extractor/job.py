"""The streaming job: Kafka -> parse/validate -> dedup on event_id -> Delta, exactly once.

One query reads the topic; ``foreachBatch`` writes every event type's table and the
quarantine table from the same (cached) micro-batch, each write tagged with Delta's
``txnAppId``/``txnVersion`` so a batch replayed after a crash is skipped table by table.

Usage::

    settings = Settings.from_env()
    spark = build_session(settings)
    query = start(spark, settings, once=False)     # once=True: availableNow (backfill)
    monitor(query)                                 # logs progress until it stops
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pyspark import InheritableThread, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from questlog_extractor import metrics, transforms
from questlog_extractor.settings import Settings
from questlog_schemas import load_registry

log = logging.getLogger("questlog_extractor.job")

QUARANTINE = "quarantine"
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# Set by Spark on the thread that runs foreachBatch; survives restarts (checkpoint).
QUERY_ID_PROPERTY = "sql.streaming.queryId"


def session_conf(settings: Settings) -> dict[str, str]:
    conf = {
        **DELTA_CONF,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.sql.streaming.stateStore.providerClass": settings.state_store_class,
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        # Delta rebuilds table state with 50 tasks by default: pure overhead on a few cores.
        "spark.databricks.delta.snapshotPartitions": str(settings.shuffle_partitions),
        # The validation (``transforms.parse``) is one wide expression: fused into one
        # whole-stage method it passes HotSpot's 8000-byte limit and is never JIT-compiled
        # (interpreted bytecode, ~3x slower). Over the limit Spark falls back to per-operator
        # code, which it splits into small methods.
        "spark.sql.codegen.hugeMethodLimit": "8000",
        # Spark 4.1.1's V2 Kafka stream throws an NPE in its progress metrics on the first
        # batch after a restart that replays an uncommitted batch (SPARK-55271), failing
        # the query on every crash recovery. The V1 source has the same offsets/limits.
        "spark.sql.streaming.disabledV2MicroBatchReaders":
            "org.apache.spark.sql.kafka010.KafkaSourceProvider",
    }
    if settings.checkpoint_uri.startswith("file:"):
        # The default manager goes through Hadoop's FileContext, which on a local disk
        # forks `readlink` twice per checkpoint file it renames (offsets, commits, each
        # state partition's changelog: ~70 processes per micro-batch). A rename on a local
        # POSIX file system is atomic either way. HDFS keeps the default.
        conf["spark.sql.streaming.checkpointFileManagerClass"] = LOCAL_CHECKPOINT_MANAGER
    return conf


# Set by spark-submit's PythonRunner in the Python driver it starts (PySpark then joins
# that JVM instead of launching one).
SPARK_SUBMIT_MARK = "PYSPARK_GATEWAY_PORT"


def launch_conf(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """Where Spark runs and with which jars: from the settings when this process starts
    Spark itself (embedded mode, tests), nothing when spark-submit started it. There
    spark-submit's ``--master``/``--jars`` rule (on Kubernetes the Spark Operator's, from
    the SparkApplication); a master set here would override them and run the job as
    ``local[2]`` inside the driver pod."""
    if SPARK_SUBMIT_MARK in environ:
        return {}
    conf = {"spark.master": settings.spark_master}
    if settings.spark_jars:
        conf["spark.jars"] = ",".join(settings.spark_jars)
    return conf


LOCAL_CHECKPOINT_MANAGER = ("org.apache.spark.sql.execution.streaming.checkpointing."
                            "FileSystemBasedCheckpointFileManager")


def build_session(settings: Settings, app_name: str = "questlog-extractor",
                  jvm_ignores_sigterm: bool = False) -> SparkSession:
    """The Spark session of the job. ``jvm_ignores_sigterm``: for a driver that stops
    itself on SIGTERM (``__main__``): a process manager signals the whole process group,
    and a JVM that took SIGTERM itself would tear the batch in flight down under the
    driver. PySpark already starts the JVM with SIGINT ignored, for the same reason; the
    JVM still exits with its driver (end of file on its stdin)."""
    builder = SparkSession.builder.appName(app_name)
    for key, value in {**launch_conf(settings, os.environ), **session_conf(settings)}.items():
        builder = builder.config(key, value)
    with _jvm_ignoring_sigterm() if jvm_ignores_sigterm else contextlib.nullcontext():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextlib.contextmanager
def _jvm_ignoring_sigterm() -> Iterator[None]:
    """Start PySpark's JVM with SIGTERM ignored, in the child only (the driver keeps its
    handler): PySpark's ``preexec_fn`` is chained with one more ``signal`` call. A JVM
    started with a shutdown signal ignored does not install its handler for it."""
    from pyspark import java_gateway

    real_popen = java_gateway.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        inner = kwargs.get("preexec_fn")

        def preexec() -> None:
            if inner is not None:
                inner()
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

        kwargs["preexec_fn"] = preexec
        return real_popen(*args, **kwargs)

    java_gateway.Popen = popen
    try:
        yield
    finally:
        java_gateway.Popen = real_popen


def read_kafka(spark: SparkSession, settings: Settings) -> DataFrame:
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
        .option("subscribe", settings.topic)
        .option("startingOffsets", settings.starting_offsets)
        .option("maxOffsetsPerTrigger", str(settings.max_offsets_per_trigger))
        .option("failOnDataLoss", "true")
        .load()
    )


# Test-only (the kill tests), deliberately not a setting: "<point>@<batch id>" makes the
# writer stop at <point> of the first batch whose id is at least <batch id>, log
# "test pause at <point> batch N" and sleep, so a test can SIGKILL the driver exactly there.
TEST_PAUSE_VARIABLE = "QUESTLOG_EXTRACTOR_TEST_PAUSE_AT"
# between-tables: one table holds the batch, the others not yet;
# after-commits: every table holds it, the checkpoint's commit file is not written yet.
TEST_PAUSE_POINTS = ("between-tables", "after-commits")


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
            raise ValueError(f"{TEST_PAUSE_VARIABLE} must be <point>@<batch id> with <point>"
                             f" one of {list(TEST_PAUSE_POINTS)}, got {raw!r}")
        log.warning("test-only pause hook enabled", extra={"fields": {
            "point": point, "from_batch_id": int(first)}})
        return cls(point, int(first))

    def wants(self, point: str, batch_id: int) -> bool:
        return not self.held and point == self.point and batch_id >= self.from_batch

    def hold(self, point: str, batch_id: int) -> None:
        self.held = True
        log.warning("test pause at %s batch %d", point, batch_id, extra={"fields": {
            "point": point, "batch_id": batch_id}})
        time.sleep(self.hold_s)


class BatchWriter:
    """``foreachBatch`` sink: one idempotent Delta append per table per micro-batch.

    Two writers, both idempotent through Delta's transaction ids (``txn`` actions): a
    replayed batch whose ``(app id, batch id)`` a table already holds is skipped there.

    - ``delta-rs`` (default): Spark computes each table's rows, the driver receives them
      as Arrow and commits with delta-rs. A commit costs ~10 ms instead of ~0.7 s of Spark
      jobs and log work, which is what keeps small micro-batches (and freshness) short.
      Every row passes through the driver: size its memory for ``maxOffsetsPerTrigger``.
    - ``spark``: Spark's own Delta writer, the executors write the files; for clusters
      whose batches are too large for one driver.
    """

    def __init__(self, settings: Settings, registry=None) -> None:
        self.settings = settings
        self.registry = registry or load_registry()
        self._tables: dict[str, Any] = {}  # table name -> deltalake.DeltaTable
        self._schemas: dict[str, Any] = {}  # table name -> pyarrow.Schema of its rows
        self.pause = PauseForKillTest.from_env(os.environ)

    def app_id(self, spark: SparkSession) -> str:
        # The query id lives in the checkpoint: a new checkpoint gets a new id, so its
        # batch ids (starting again at 0) are never mistaken for ones already written.
        query_id = spark.sparkContext.getLocalProperty(QUERY_ID_PROPERTY)
        return f"questlog-extractor/{self.settings.query_name}/{query_id}"

    def write(self, df: DataFrame, table: str, batch_id: int, app_id: str,
              partition_by: str) -> None:
        """Append ``df`` to ``table`` once per (app id, batch id), with this writer."""
        if self.settings.writer == "spark":
            self.write_spark(df, table, batch_id, app_id, partition_by)
        else:
            self.write_arrow(df.toArrow(), table, batch_id, app_id, partition_by)

    def write_spark(self, df: DataFrame, table: str, batch_id: int, app_id: str,
                    partition_by: str) -> None:
        (df.write.format("delta").mode("append")
         .option("txnAppId", app_id).option("txnVersion", batch_id)
         .partitionBy(partition_by)
         .save(self.settings.table_uri(table)))

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

    def write_arrow(self, rows, table: str, batch_id: int, app_id: str,
                    partition_by: str) -> None:
        """Append Arrow ``rows`` to ``table`` with delta-rs unless this batch is there."""
        from deltalake import CommitProperties, Transaction, write_deltalake

        delta = self._open(table)
        if delta is not None:
            done = delta.transaction_version(app_id)
            if done is not None and done >= batch_id:
                metrics.REPLAYS_SKIPPED.labels(table=table).inc()
                log.info("batch already committed, skipped", extra={"fields": {
                    "table": table, "batch_id": batch_id, "committed_batch_id": done}})
                return
        write_deltalake(
            delta if delta is not None else self.settings.table_uri(table), rows,
            mode="append", partition_by=[partition_by],
            commit_properties=CommitProperties(
                app_transactions=[Transaction(app_id=app_id, version=batch_id)]))

    def _side_by_side(self, writes: list[tuple[Any, ...]], write, batch_id: int) -> None:
        """Run ``write(*args)`` for each entry of ``writes`` on its own thread and re-raise
        the first failure: each is a Spark job and/or a Delta commit whose log work (and
        delta-rs's Parquet encoding, which releases the GIL) overlaps the others'."""
        if self.pause and len(writes) > 1 and self.pause.wants("between-tables", batch_id):
            write(*writes[0])
            self.pause.hold("between-tables", batch_id)
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

    def _arrow_schema(self, table: str, rows_of: Callable[[], DataFrame]):
        """The Arrow schema ``rows_of().toArrow()`` would have (what each table was created
        with); worked out once per table: it only depends on the registry."""
        from pyspark.sql.pandas.types import to_arrow_schema

        if table in self._schemas:
            return self._schemas[table]
        df = rows_of()
        large = df.sparkSession.conf.get(
            "spark.sql.execution.arrow.useLargeVarTypes", "false") == "true"
        schema = self._schemas[table] = to_arrow_schema(
            df.schema, error_on_duplicated_field_names_in_struct=True, prefers_large_types=large)
        return schema

    def write_batch_arrow(self, batch: DataFrame, batch_id: int, app_id: str) -> dict[str, int]:
        """delta-rs writer: the batch's rows of every table in ONE Spark job (no cache, no
        count job), split by table with Arrow compute on the driver, then appended."""
        import pyarrow.compute as pc

        started = time.perf_counter()
        # seen_at is stamped here, not by current_timestamp(): Spark inlines that as a
        # literal, so each micro-batch's code would differ, miss the codegen cache and be
        # compiled by Janino and again by the JIT (two compiles per batch; README "Speed").
        rows = transforms.to_tables_frame(batch, self.registry,
                                          seen_at=transforms.seen_later()).toArrow()
        collected = time.perf_counter()
        good = pc.is_null(rows["reason"])
        writes: list[tuple[Any, str, str]] = []
        for event_type in self.registry.event_types:
            mine = rows.filter(pc.and_(good, pc.equal(rows["event_type"], event_type)))
            if mine.num_rows:
                schema = self._arrow_schema(event_type, lambda t=event_type: (
                    transforms.to_event_table(batch, t, self.registry)))
                writes.append((mine.select(schema.names).cast(schema), event_type, "event_date"))
        bad = rows.filter(pc.invert(good))
        if bad.num_rows:
            schema = self._arrow_schema(QUARANTINE, lambda: transforms.to_quarantine(batch))
            bad = stamp_seen(bad.select(schema.names), time.time()).cast(schema)
            writes.append((bad, QUARANTINE, "seen_date"))
        split = time.perf_counter()
        self._side_by_side([(r, t, batch_id, app_id, p) for r, t, p in writes],
                           lambda r, t, *rest: self.write_arrow(r, t, *rest), batch_id)
        log.debug("batch timings", extra={"fields": {
            "batch_id": batch_id, "collect_ms": round((collected - started) * 1000),
            "split_ms": round((split - collected) * 1000),
            "write_ms": round((time.perf_counter() - split) * 1000)}})
        return {table: rows_.num_rows for rows_, table, _ in writes}

    def write_batch_spark(self, batch: DataFrame, batch_id: int, app_id: str) -> dict[str, int]:
        """Spark writer: the batch cached once, counted per table, each table written by
        Spark's Delta writer (the executors write the files)."""
        batch.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            table_of = F.when(F.col("reason").isNull(), F.col("event_type")) \
                .otherwise(F.lit(QUARANTINE))
            counts = {r["t"]: r["n"] for r in
                      batch.groupBy(table_of.alias("t")).agg(F.count("*").alias("n")).collect()}
            good, bad = transforms.split(batch)
            writes = [(transforms.to_event_table(good, event_type, self.registry), event_type,
                       "event_date")
                      for event_type in self.registry.event_types if counts.get(event_type)]
            if counts.get(QUARANTINE):
                writes.append((transforms.to_quarantine(bad), QUARANTINE, "seen_date"))
            self._side_by_side([(df, t, batch_id, app_id, p) for df, t, p in writes],
                               lambda df, t, *rest: self.write_spark(df, t, *rest), batch_id)
        finally:
            batch.unpersist()
        return counts

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        app_id = self.app_id(batch.sparkSession)
        batch = batch.drop(transforms.DEDUP_KEY, transforms.DEDUP_TIME)
        started = time.perf_counter()
        if self.settings.writer == "spark":
            counts = self.write_batch_spark(batch, batch_id, app_id)
        else:
            counts = self.write_batch_arrow(batch, batch_id, app_id)
        for table, n in counts.items():
            metrics.ROWS_WRITTEN.labels(table=table).inc(n)
        if counts:
            log.info("batch written", extra={"fields": {
                "batch_id": batch_id, "rows": counts,
                "ms": round((time.perf_counter() - started) * 1000)}})
            if self.pause and self.pause.wants("after-commits", batch_id):
                self.pause.hold("after-commits", batch_id)


def stamp_seen(rows, seen_at: float):
    """Quarantine rows (Arrow) with ``seen_at`` (unix seconds) and its UTC date set."""
    import pyarrow as pa

    micros = int(seen_at * 1_000_000)
    for name, value in (("seen_at", micros), ("seen_date", micros // 86_400_000_000)):
        index = rows.schema.get_field_index(name)
        field = rows.schema.field(index)
        rows = rows.set_column(index, field, pa.array([value] * rows.num_rows, field.type))
    return rows


class BatchGate:
    """Lets a stop wait for the micro-batch in flight, and keeps the next one from starting.

    Stopping a query cancels the Spark jobs of a batch half way (and Spark logs that as a
    failure); a batch that returned without writing would have its offsets committed (its
    events lost). So after ``close`` a batch that arrives is parked instead: it neither
    writes nor returns, the process exits around it, and the checkpoint replays it on the
    next start, as after a crash.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy: int | None = None  # id of the batch being written
        self._closed = False
        self.parked: int | None = None  # id of the batch that arrived after close()

    def run(self, write: Callable[[DataFrame, int], None], batch: DataFrame,
            batch_id: int) -> None:
        with self._cond:
            park = self._closed
            if park:
                self.parked = batch_id
                self._cond.notify_all()
            else:
                self._busy = batch_id
        if park:
            log.info("stopping: batch left for the next start (checkpoint)",
                     extra={"fields": {"batch_id": batch_id}})
            threading.Event().wait()  # until the process exits
        try:
            write(batch, batch_id)
        finally:
            with self._cond:
                self._busy = None
                self._cond.notify_all()

    def close(self, timeout_s: float) -> bool:
        """Refuse further batches; wait for the one in flight. True if none is."""
        with self._cond:
            self._closed = True
            if self._busy is not None:
                log.info("stopping: waiting for the batch in flight",
                         extra={"fields": {"batch_id": self._busy}})
            return self._cond.wait_for(lambda: self._busy is None, max(timeout_s, 0.0))


class StopIncomplete(Exception):
    """The query could not be stopped between two batches within the time allowed."""


def start(spark: SparkSession, settings: Settings, once: bool = False,
          gate: BatchGate | None = None) -> StreamingQuery:
    """Start the one extractor query (``once``: availableNow, stops when drained).
    With a ``gate``, ``monitor`` can stop it between two batches."""
    registry = load_registry()
    parsed = transforms.parse(transforms.from_kafka(read_kafka(spark, settings)), registry)
    deduped = transforms.dedup(parsed, settings.watermark)
    write: Callable[[DataFrame, int], None] = BatchWriter(settings, registry)
    if gate is not None:
        write = functools.partial(gate.run, write)
    writer = (
        deduped.writeStream.queryName(settings.query_name)
        .foreachBatch(write)
        .option("checkpointLocation", settings.checkpoint_uri)
    )
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{settings.trigger_seconds} seconds")
    query = writer.start()
    log.info("query started", extra={"fields": {
        "query_id": query.id, "run_id": query.runId, "once": once,
        "topic": settings.topic, "lake_root": settings.lake_root,
        "checkpoint": settings.checkpoint_uri}})
    return query


def monitor(query: StreamingQuery, stop: threading.Event | None = None,
            poll_seconds: float = 2.0, gate: BatchGate | None = None,
            stop_within_s: float = 3.5, lag_probe: Any = None) -> None:
    """Log progress until the query ends (or ``stop`` is set); re-raise its failure.

    With ``lag_probe`` (``lag.EndOffsets``) the lag gauge is refreshed from the broker at
    every poll, between batches too.

    On ``stop``, with the query's ``gate``: wait for the batch in flight, then stop the
    query; ``StopIncomplete`` if that takes longer than ``stop_within_s`` (a batch stuck on
    a broker that went down too, say), for the caller to exit without waiting.
    """
    reporter = metrics.ProgressReporter(topic=lag_probe.topic if lag_probe else None)
    stop = stop or threading.Event()
    while query.isActive and not stop.is_set():
        stop.wait(poll_seconds)  # returns at once on a stop signal
        reporter.report(query.recentProgress)
        if lag_probe is not None and not stop.is_set():
            reporter.refresh_lag(lag_probe)
    if stop.is_set() and query.isActive:
        _stop_between_batches(query, gate, stop_within_s)
    reporter.report(query.recentProgress)
    error: Any = query.exception()
    if error is not None:
        raise RuntimeError(f"streaming query failed: {error}")


def _stop_between_batches(query: StreamingQuery, gate: BatchGate | None,
                          within_s: float) -> None:
    deadline = time.monotonic() + within_s
    if gate is not None and not gate.close(within_s * 0.7):
        raise StopIncomplete(f"the batch in flight did not end within {within_s * 0.7:.1f} s")
    if gate is not None and gate.parked is not None:
        # stop() would wait for the parked batch forever
        raise StopIncomplete(f"batch {gate.parked} had started; it is replayed at next start")
    if not within(deadline - time.monotonic(), query.stop):
        raise StopIncomplete("the query did not stop in time")


def within(timeout_s: float, action: Callable[[], Any]) -> bool:
    """Run ``action`` on a daemon thread; whether it ended within ``timeout_s`` (an
    exception it raised counts as ended: the JVM may be gone already)."""
    done = threading.Event()

    def run() -> None:
        try:
            action()
        except Exception as exc:  # reported; the caller only needs timing
            log.debug("%s during stop: %s", getattr(action, "__name__", action), exc)
        finally:
            done.set()

    threading.Thread(target=run, name="questlog-stop", daemon=True).start()
    return done.wait(max(timeout_s, 0.0))
