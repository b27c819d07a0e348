"""Freshness under load: the whole embedded stack while a steady 1,000 events/s arrive,
with probe events timed from the API's 202 to their first appearance through the query
service.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from harness import loadgen

from questlog_embedded.stack import Stack

PROBE_EVERY_S = 0.5
RATE = 1000


def _post(url: str, event: dict) -> float:
    req = urllib.request.Request(url, data=json.dumps(event).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 202
    return time.time()


ERRORS: list[str] = []


def _visible(query: str, player: str) -> bool:
    url = f"{query}/v1/events/purchase_sword?player_id={player}&limit=1"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return bool(json.loads(resp.read())["rows"])
    except OSError as exc:  # an error answer is reported, and the probe keeps polling
        ERRORS.append(str(exc))
        return False


def probe(stack: Stack, n: int, deadline_s: float = 60) -> float | None:
    player = f"probe-{uuid.uuid4().hex[:10]}-{n}"
    acked = _post(f"{stack.api}/v1/events", {
        "event_type": "purchase_sword", "player_id": player,
        "properties": {"sword_type": "probe"}})
    deadline = acked + deadline_s
    while time.time() < deadline:
        if _visible(stack.query, player):
            return time.time() - acked
        time.sleep(0.1)
    return None


def run(ctx) -> dict:
    secs = ctx.seconds(120, 30)
    body = json.dumps({"event_type": "purchase_sword", "player_id": "bench-load",
                       "properties": {"sword_type": "katana", "price": 9.99}}).encode()
    with Stack(ctx.work / "freshness-stack") as stack:
        # Steady state, not start-up: the extractor's first micro-batches pay for JIT
        # compilation of Spark's generated code. Wait until one event went through, then
        # run the same load unmeasured until a probe is visible again.
        warmup = {"first_event_s": probe(stack, -1, deadline_s=300)}
        loadgen(f"{stack.api}/v1/events", ctx.seconds(30, 15), method="POST", body=body,
                headers=("Content-Type: application/json",), rate=RATE, connections=64,
                warmup=0, work=ctx.work)
        warmup["catch_up_s"] = probe(stack, -2, deadline_s=300)
        samples: list[float | None] = []
        stop = threading.Event()

        def prober() -> None:
            with ThreadPoolExecutor(max_workers=64) as pool:
                futures, n = [], 0
                time.sleep(5)  # let the load reach its rate first
                while not stop.is_set():
                    futures.append(pool.submit(probe, stack, n))
                    n += 1
                    time.sleep(PROBE_EVERY_S)
                samples.extend(f.result() for f in futures)

        t = threading.Thread(target=prober)
        t.start()
        load = loadgen(f"{stack.api}/v1/events", secs, method="POST", body=body,
                       headers=("Content-Type: application/json",), rate=RATE,
                       connections=64, warmup=1, work=ctx.work)
        stop.set()
        t.join()
    seen = sorted(s for s in samples if s is not None)
    def pct(p):
        return (round(seen[min(len(seen) - 1, int(p / 100 * len(seen)))], 2)
               if seen else None)
    return {"rate_target": RATE, "seconds": secs, "warmup": warmup, "load": load,
            "probes": len(samples),
            "probes_never_seen": sum(s is None for s in samples),
            "query_errors_while_probing": len(ERRORS), "query_error_sample": ERRORS[:3],
            "freshness_s": {"p50": pct(50), "p95": pct(95), "p99": pct(99),
                            "mean": round(statistics.mean(seen), 2) if seen else None}}


def ratios(r: dict) -> dict:
    return {"freshness_p95_s": r["freshness_s"]["p95"],
            "freshness_p50_s": r["freshness_s"]["p50"],
            "sustained_events_per_s": round(r["load"]["ok_per_s"]),
            "loadgen_cpu_share": r["load"]["loadgen_cpu_share_of_machine"]}
