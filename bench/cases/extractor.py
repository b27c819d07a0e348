"""The extractor on a pre-filled topic, against the walkthrough's UDF + rdd.map job and
against its own transforms on a static DataFrame.

One denominator for all: each job is timed from its start (the query's, or the batch
job's; the SparkSession already up, the 1M events already in the topic) to its last row
committed, on the same events from the same broker in local[2]. Each runs twice in one
JVM: the first run is "cold" (it pays JIT compilation and code generation), the second
"warm" (a fresh lake and checkpoint, the same session).

- questlog: ``job.start(once=True)`` (availableNow, micro-batches of
  maxOffsetsPerTrigger) until the query ends;
- static (the ceiling for the streaming machinery): the same parse, dedup and BatchWriter
  on ``spark.read`` of the topic, in the same offset ranges as the stream's micro-batches
  (no state store, checkpoint or offset log);
- baseline: the walkthrough's job (bench/baselines/walkthrough_extract.py).
Rows are counted after the timing, for every job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from harness import BENCH, VENV_BIN, produce_events

from questlog_embedded.spark import spark_jars


def make_events(n: int) -> list[tuple[bytes, bytes]]:
    base = datetime.now(UTC) - timedelta(minutes=30)
    swords = ("longsword", "katana", "rapier", "claymore")
    out = []
    for i in range(n):
        at = (base + timedelta(microseconds=i * 500)).isoformat().replace("+00:00", "Z")
        player = f"player-{i % 5000}"
        if i % 3:
            props = {"sword_type": swords[i % 4], "price": 4.99, "currency": "EUR", "quantity": 1}
            event_type = "purchase_sword"
        else:
            props = {"guild_id": f"g-{i % 40}", "role": "member"}
            event_type = "join_guild"
        ev = {
            "event_id": str(uuid.UUID(int=i + 1)),
            "event_type": event_type,
            "event_time": at,
            "received_at": at,
            "player_id": player,
            "properties": props,
            "context": {"host": f"{player}.example.net", "user_agent": "bench/1.0"},
            "schema_version": 1,
        }
        out.append((player.encode(), json.dumps(ev).encode()))
    return out


BASELINE_SCRIPT = """
import json, sys, time
sys.path.insert(0, {bench!r})
from pathlib import Path
from questlog_embedded.spark import local_session
spark = local_session(Path({work!r}), app_name="baseline-extract")
from baselines import walkthrough_extract  # its @udf needs a live session (Spark 4)
runs = []
for i in range(2):  # cold, then warm (the same job again in the same JVM)
    out = {out!r} + f"/run{{i}}"
    t = time.perf_counter()
    walkthrough_extract.run(spark, {bootstrap!r}, {topic!r}, out)
    runs.append({{"seconds": time.perf_counter() - t,
                  "counts": walkthrough_extract.count(spark, out)}})
print("RESULT " + json.dumps(runs))
spark.stop()
"""

QUESTLOG_SCRIPT = """
import dataclasses, json, time
from deltalake import DeltaTable
from questlog_extractor import job, transforms
from questlog_extractor.settings import Settings
from questlog_schemas import load_registry

settings = Settings.from_env()
spark = job.build_session(settings, app_name="bench-extractor")
registry = load_registry()

def stored(s):
    return {{t: DeltaTable(s.table_uri(t)).to_pyarrow_dataset().count_rows()
             for t in ("purchase_sword", "join_guild")}}

out = {{"stream": [], "static": []}}
for i in range(2):  # cold, then warm: a fresh lake and checkpoint in the same session
    s = dataclasses.replace(settings, lake_root=f"{{settings.lake_root}}/stream{{i}}")
    t = time.perf_counter()
    query = job.start(spark, s, once=True)
    query.awaitTermination()
    seconds = time.perf_counter() - t
    progress = [json.loads(x.json) if hasattr(x, "json") else x for x in query.recentProgress]
    batches = [p["numInputRows"] for p in progress if p["numInputRows"]]
    out["stream"].append({{"seconds": seconds, "micro_batches": len(batches),
                           "stored": stored(s)}})
# The static ceiling reads the topic in the stream's micro-batch sizes (a single 1M-row
# batch does not fit the driver's heap, which the stream's batches are sized for): the same
# offset ranges, one spark.read and one BatchWriter call each, with no state store,
# checkpoint or offset log. The partitions' end offsets are read before the timing.
import math
from pyspark.sql import functions as F
kafka = {{"kafka.bootstrap.servers": settings.kafka_bootstrap}}
ends = {{r["partition"]: r["end"] for r in spark.read.format("kafka").options(**kafka)
        .option("subscribe", settings.topic).load()
        .groupBy("partition").agg((F.max("offset") + 1).alias("end")).collect()}}
chunks = math.ceil(sum(ends.values()) / settings.max_offsets_per_trigger)
for i in range(2):
    s = dataclasses.replace(settings, lake_root=f"{{settings.lake_root}}/static{{i}}")
    write = job.BatchWriter(s, registry)
    t = time.perf_counter()
    for k in range(chunks):
        start = {{s.topic: {{str(p): e * k // chunks for p, e in ends.items()}}}}
        end = {{s.topic: {{str(p): e * (k + 1) // chunks for p, e in ends.items()}}}}
        raw = (spark.read.format("kafka").options(**kafka).option("subscribe", s.topic)
               .option("startingOffsets", json.dumps(start))
               .option("endingOffsets", json.dumps(end)).load())
        parsed = transforms.parse(transforms.from_kafka(raw), registry)
        # On a static DataFrame Spark refuses the streaming operator; dropping duplicates
        # by the same key is what it amounts to there (no state, no watermark to keep).
        type(parsed).dropDuplicatesWithinWatermark = type(parsed).dropDuplicates
        write(write.stream(transforms.dedup(parsed, s.watermark, "watermark")), k)
    out["static"].append({{"seconds": time.perf_counter() - t, "batches": chunks,
                           "stored": stored(s)}})
print("RESULT " + json.dumps(out))
spark.stop()
"""


def _result(proc: subprocess.CompletedProcess, what: str):
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        errors = [ln for ln in proc.stderr.splitlines() if "Error" in ln or "Exception" in ln][:5]
        raise RuntimeError(f"{what} failed ({proc.returncode}): {errors} ... {proc.stderr[-1500:]}")
    return json.loads(line[0][7:])


def run(ctx) -> dict:
    n = ctx.size(1_000_000, 200_000)
    topic = f"bench-extract-{uuid.uuid4().hex[:6]}"
    ctx.kafka.create_topic(topic, partitions=2)
    events = make_events(n)
    produce_rate = produce_events(ctx.kafka.bootstrap, topic, events)
    del events
    work = ctx.work / f"extract-{topic}"

    env = dict(
        os.environ,
        QUESTLOG_EXTRACTOR_KAFKA_BOOTSTRAP=ctx.kafka.bootstrap,
        QUESTLOG_EXTRACTOR_TOPIC=topic,
        QUESTLOG_EXTRACTOR_LAKE_ROOT=(work / "lake").as_uri(),
        QUESTLOG_EXTRACTOR_SPARK_JARS=spark_jars(),
        QUESTLOG_EXTRACTOR_METRICS_PORT="0",
    )
    questlog = _result(
        subprocess.run(
            [str(VENV_BIN / "python"), "-c", QUESTLOG_SCRIPT.format()],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        ),
        "questlog extractor",
    )
    script = BASELINE_SCRIPT.format(
        bench=str(BENCH),
        work=str(work / "baseline-spark"),
        bootstrap=ctx.kafka.bootstrap,
        topic=topic,
        out=str(work / "baseline-parquet"),
    )
    baseline = _result(
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
            cwd=str(BENCH),
        ),
        "baseline job",
    )

    def figures(runs: list[dict]) -> dict:
        cold, warm = runs
        return {
            "cold_seconds": round(cold["seconds"], 2),
            "warm_seconds": round(warm["seconds"], 2),
            "cold_events_per_s": round(n / cold["seconds"]),
            "events_per_s": round(n / warm["seconds"]),
            # each run has stored (delta-rs) or counts (Spark)
            "rows": [
                sum((r.get("stored") or r.get("counts")).values())  # type: ignore[union-attr]
                for r in runs
            ],
        }

    return {
        "events": n,
        "produce_events_per_s": round(produce_rate),
        "timed": "job start (session up, events in the topic) to last row committed",
        "questlog": {
            **figures(questlog["stream"]),
            "micro_batches": [r["micro_batches"] for r in questlog["stream"]],
        },
        "static": figures(questlog["static"]),
        "baseline": figures(baseline),
    }


def ratios(r: dict) -> dict:
    q, st, b = r["questlog"], r["static"], r["baseline"]
    return {
        "extractor_events_per_s": q["events_per_s"],
        "extractor_cold_events_per_s": q["cold_events_per_s"],
        "extractor_vs_static": round(q["events_per_s"] / st["events_per_s"], 3),
        "extractor_static_events_per_s": st["events_per_s"],
        "extractor_vs_baseline": round(q["events_per_s"] / b["events_per_s"], 2),
        "extractor_cold_vs_baseline_cold": round(
            q["cold_events_per_s"] / b["cold_events_per_s"], 2
        ),
        "extractor_baseline_events_per_s": b["events_per_s"],
        # every job must have stored every event, in both of its runs
        "extractor_rows_stored_equal_events": all(
            rows == r["events"] for job in (q, st, b) for rows in job["rows"]
        ),
    }
