"""A local SparkSession wired to the pinned Kafka source and Delta jars (no download at
start: `spark.jars` points into the jar cache, never `spark.jars.packages`).

Services do not call this: the extractor reads its Spark settings from its environment,
and the embedded mode fills that environment from `spark_jars()`.
"""

from __future__ import annotations

from pathlib import Path

from . import jars

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def spark_jars() -> str:
    """Comma-separated jar paths for `spark.jars`: the pinned ones and the extractor's own
    classes (its dedup operator)."""
    if not jars.extractor_jar_is_fresh():
        raise jars.SetupError(
            f"the extractor's JVM classes are missing or stale ({jars.extractor_jar()}):"
            " run `make setup`"
        )
    return ",".join(str(j) for j in [*jars.jars("spark"), jars.extractor_jar()])


def local_session(
    work_dir: Path, cores: int = 2, app_name: str = "questlog-test", driver_memory: str = "1g"
):
    from pyspark.sql import SparkSession

    work_dir = Path(work_dir)
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.jars", spark_jars())
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.sql.warehouse.dir", str(work_dir / "warehouse"))
        .config("spark.local.dir", str(work_dir / "local"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={work_dir}")
        # the embedded HDFS has one DataNode: write one replica, never retry elsewhere
        .config("spark.hadoop.dfs.replication", "1")
        .config("spark.hadoop.dfs.client.block.write.replace-datanode-on-failure.enable", "false")
    )
    for key, value in DELTA_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
