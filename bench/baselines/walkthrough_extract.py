"""BASELINE, not questlog: the walkthrough's Spark batch job, for `make bench` only.

A json.loads Python UDF filters each event type, then rdd.map(json.loads) + toDF builds
the rows, and each type's Parquet folder is overwritten.

Usage (from bench/cases): run(spark, bootstrap, topic, out_dir); count(spark, out_dir)
-> {event_type: rows}
"""

import json

from pyspark.sql import Row
from pyspark.sql.functions import udf


@udf("boolean")
def is_purchase(event_as_json):
    event = json.loads(event_as_json)
    return event["event_type"] == "purchase_sword"


@udf("boolean")
def is_guild_join(event_as_json):
    event = json.loads(event_as_json)
    return event["event_type"] == "join_guild"


def run(spark, bootstrap, topic, out_dir):
    events_raw = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    raw = events_raw.select(
        events_raw.value.cast("string").alias("raw"), events_raw.timestamp.cast("string")
    )
    for name, keep in (("purchase_sword", is_purchase), ("join_guild", is_guild_join)):
        extracted = (
            raw.filter(keep("raw"))
            .rdd.map(lambda r: Row(timestamp=r.timestamp, **json.loads(r.raw)))
            .toDF()
        )
        extracted.write.mode("overwrite").parquet(f"{out_dir}/{name}")


def count(spark, out_dir):
    """Rows each folder holds (outside the timed run: the bench counts questlog's apart too)."""
    return {
        name: spark.read.parquet(f"{out_dir}/{name}").count()
        for name in ("purchase_sword", "join_guild")
    }
