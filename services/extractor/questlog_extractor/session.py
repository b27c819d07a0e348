"""The job's Spark session: where Spark runs (``launch_conf``) and how (``session_conf``).

Usage::

    spark = build_session(Settings.from_env())
    spark = build_session(settings, jvm_ignores_sigterm=True)   # a driver that stops itself
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Mapping
from typing import Any

from pyspark.sql import SparkSession

from questlog_extractor.settings import Settings

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# Set by spark-submit's PythonRunner in the Python driver it starts (PySpark then joins
# that JVM instead of launching one).
SPARK_SUBMIT_MARK = "PYSPARK_GATEWAY_PORT"
# The JVM option whole-stage code needs (``Settings.codegen``): compile methods over 8000
# bytes of bytecode too. Given by ``launch_conf`` to a JVM this process starts; under
# spark-submit it belongs in the driver's and executors' extraJavaOptions.
JIT_OPTIONS = "-XX:-DontCompileHugeMethods"
LOCAL_CHECKPOINT_MANAGER = (
    "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
)


def query_conf(settings: Settings) -> dict[str, str]:
    """What the streaming query itself depends on; ``job.start`` sets it on whichever
    session it is given (also one ``build_session`` did not build: tests, bench)."""
    return {
        # the dedup's state store (recorded in the checkpoint at its first batch)
        "spark.sql.streaming.stateStore.providerClass": settings.state_store_class,
        # No batch without new records: the TTL dedup in processing time would otherwise
        # run an empty batch every trigger to expire ids, and availableNow would never end.
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
    }


def session_conf(settings: Settings) -> dict[str, str]:
    conf = {
        **DELTA_CONF,
        **query_conf(settings),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        # Delta rebuilds table state with 50 tasks by default: pure overhead on a few cores.
        "spark.databricks.delta.snapshotPartitions": str(settings.shuffle_partitions),
        # The monitor reads recentProgress every 2 s (``shutdown.monitor``): Spark's 100
        # entries were 100 progress JSONs parsed per poll; 20 cover 2 s of the shortest
        # batches.
        "spark.sql.streaming.numRecentProgressUpdates": "20",
        # Spark 4.1.1's V2 Kafka stream throws an NPE in its progress metrics on the first
        # batch after a restart that replays an uncommitted batch (SPARK-55271), failing
        # the query on every crash recovery. The V1 source has the same offsets/limits.
        "spark.sql.streaming.disabledV2MicroBatchReaders": (
            "org.apache.spark.sql.kafka010.KafkaSourceProvider"
        ),
    }
    if settings.codegen == "per-operator":
        # The validation (``transforms.parse``) is one wide expression: fused into one
        # whole-stage method it passes HotSpot's 8000-byte limit and is never JIT-compiled
        # (interpreted bytecode, ~3x slower). Over the limit Spark falls back to per-operator
        # code, which it splits into small methods; every task of every batch generates it
        # again (a quarter of a small batch's JVM time). "whole-stage" keeps Spark's limit
        # and has the JVM compile huge methods (``launch_conf``): cheaper small batches,
        # ~20% less throughput on large ones (docs/benchmarks.md, "Freshness budget").
        conf["spark.sql.codegen.hugeMethodLimit"] = "8000"
    if settings.checkpoint_uri.startswith("file:"):
        # The default manager goes through Hadoop's FileContext, which on a local disk
        # forks `readlink` twice per checkpoint file it renames (offsets, commits, each
        # state partition's changelog: ~70 processes per micro-batch). A rename on a local
        # POSIX file system is atomic either way. HDFS keeps the default.
        conf["spark.sql.streaming.checkpointFileManagerClass"] = LOCAL_CHECKPOINT_MANAGER
    return conf


def launch_conf(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """Where Spark runs and with which jars: from the settings when this process starts
    Spark itself (embedded mode, tests), nothing when spark-submit started it. There
    spark-submit's ``--master``/``--jars`` rule (on Kubernetes the Spark Operator's, from
    the SparkApplication); a master set here would override them and run the job as
    ``local[2]`` inside the driver pod."""
    if SPARK_SUBMIT_MARK in environ:
        return {}
    conf = {"spark.master": settings.spark_master}
    if settings.codegen == "whole-stage":
        conf["spark.driver.extraJavaOptions"] = JIT_OPTIONS
    if settings.spark_jars:
        conf["spark.jars"] = ",".join(settings.spark_jars)
    return conf


def build_session(
    settings: Settings, app_name: str = "questlog-extractor", jvm_ignores_sigterm: bool = False
) -> SparkSession:
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

    # mypy refuses to rebind a class name: py4j's module-level Popen, patched for this start
    java_gateway.Popen = popen  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        java_gateway.Popen = real_popen  # type: ignore[misc]
