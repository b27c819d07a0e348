"""The event API against its ceilings and against the walkthrough's Flask dev server.

Cases: single-event POST on a fresh broker (cold, reported only), the HTTP ceiling (a no-op
route on the same gunicorn config), single-event POST (steady state, the target),
100-event batch POST, the legacy GET (closed loop, and p50/p99 at a fixed 1,000 req/s),
the baseline app's legacy GET, and Kafka's own producer perf tool (broker ceiling).
"""

from __future__ import annotations

import json
import random
import subprocess

from harness import api_server, baseline_api_server, loadgen

from questlog_embedded import jars
from questlog_embedded.process import java_bin
from questlog_embedded.stack import api_server_config
from questlog_loadtest import payloads

JSON = ("Content-Type: application/json",)


def _event(rng: random.Random) -> dict:
    ev = payloads.event("purchase_sword", "bench-player", "bench-session", rng)
    del ev["event_id"]  # the API makes one: the same body can be posted again and again
    return ev


def run(ctx) -> dict:
    secs = ctx.seconds(15, 6)
    rng = random.Random(1)
    single = json.dumps(_event(rng)).encode()
    batch = json.dumps([_event(rng) for _ in range(100)]).encode()
    out: dict = {
        "config": {
            "server": "gunicorn, services/api/gunicorn.conf.py, make run's sizing",
            **api_server_config(),
        }
    }
    ctx.kafka.create_topic("bench-api", partitions=3)
    with api_server(ctx.kafka.bootstrap, "bench-api", ctx.work) as api:
        base = api.ready_url.rsplit("/", 1)[0]
        # First POSTs on a fresh broker: its produce path is not JIT-compiled yet (it used
        # 19% of the machine then, 6% warm). Reported, but the figures below are steady state.
        out["post_single_cold"] = loadgen(
            f"{base}/v1/events", secs, method="POST", body=single, headers=JSON, work=ctx.work
        )
        out["noop_ceiling"] = loadgen(f"{base}/healthz", secs, work=ctx.work)
        out["post_single"] = loadgen(
            f"{base}/v1/events", secs, method="POST", body=single, headers=JSON, work=ctx.work
        )
        out["post_single_at_1000rps"] = loadgen(
            f"{base}/v1/events",
            secs,
            method="POST",
            body=single,
            headers=JSON,
            rate=1000,
            connections=64,
            work=ctx.work,
        )
        out["post_batch100"] = loadgen(
            f"{base}/v1/events",
            secs,
            method="POST",
            body=batch,
            headers=JSON,
            connections=8,
            work=ctx.work,
        )
        out["post_batch100"]["events_per_s"] = round(out["post_batch100"]["ok_per_s"] * 100)
        host = ("Host: user1.comcast.com",)
        out["legacy_get"] = loadgen(f"{base}/purchase_sword", secs, headers=host, work=ctx.work)
        out["legacy_get_at_1000rps"] = loadgen(
            f"{base}/purchase_sword", secs, headers=host, rate=1000, connections=64, work=ctx.work
        )
    with baseline_api_server(ctx.kafka.bootstrap, "bench-api", ctx.work) as base_api:
        base = base_api.ready_url.rsplit("/", 1)[0]
        out["baseline_legacy_get"] = loadgen(
            f"{base}/purchase_sword", secs, headers=("Host: user1.comcast.com",), work=ctx.work
        )
    out["kafka_producer_perf"] = producer_perf(ctx, records=ctx.size(1_000_000, 200_000))
    return out


def producer_perf(ctx, records: int) -> dict:
    """Kafka's own kafka-producer-perf-test against the same broker: the broker ceiling."""
    ctx.kafka.create_topic("bench-perf", partitions=3)
    proc = subprocess.run(
        [
            java_bin(),
            "-Xmx512m",
            "-cp",
            jars.classpath("kafka"),
            "org.apache.kafka.tools.ProducerPerformance",
            "--topic",
            "bench-perf",
            "--num-records",
            str(records),
            "--record-size",
            "400",
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={ctx.kafka.bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            "linger.ms=5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    last = [ln for ln in proc.stdout.splitlines() if "records sent" in ln][-1]
    return {
        "records": records,
        "record_bytes": 400,
        "summary": last.strip(),
        "records_per_s": float(last.split("records sent,")[1].split("records/sec")[0]),
    }


def ratios(r: dict) -> dict:
    single = r["post_single"]["ok_per_s"]
    loads = [v for v in r.values() if isinstance(v, dict) and "failed" in v]
    return {
        "api_workers_x_threads": f"{r['config']['QUESTLOG_API_WORKERS']}x"
        f"{r['config']['QUESTLOG_API_THREADS']}",
        # every non-2xx answer or connection error of every load above (none expected:
        # the no-op and the APIs run far from any limit)
        "api_failed_requests": sum(v["failed"] for v in loads),
        "batch_vs_producer_perf": round(
            r["post_batch100"]["events_per_s"] / r["kafka_producer_perf"]["records_per_s"], 3
        ),
        "post_single_events_per_s": round(single),
        "post_single_vs_noop": round(single / r["noop_ceiling"]["ok_per_s"], 3),
        "post_single_cold_events_per_s": round(r["post_single_cold"]["ok_per_s"]),
        "post_single_p99_ms_at_1000rps": r["post_single_at_1000rps"]["p99_ms"],
        "batch_events_per_s": r["post_batch100"]["events_per_s"],
        "legacy_get_vs_baseline": round(
            r["legacy_get"]["ok_per_s"] / max(r["baseline_legacy_get"]["ok_per_s"], 1e-9), 1
        ),
        "legacy_get_p99_ms_at_1000rps": r["legacy_get_at_1000rps"]["p99_ms"],
        "broker_ceiling_records_per_s": r["kafka_producer_perf"]["records_per_s"],
    }
