"""Freshness under load: the whole embedded stack while a steady 1,000 events/s arrive,
with probe events timed from the API's 202 to their first appearance through the query
service. Percentiles count every probe: one never seen counts with how long it was waited
for; failed load requests, failed probe posts and query errors are reported as counts.

Probes are cheap to watch on purpose: one poller asks the query service for the counts by
player 5 times a second, whatever the number of probes waiting, so the measurement adds a
dashboard's load, not a query per probe per tick.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from harness import CpuBudget, cmdline, loadgen
from profile_jvm import STACK_DEPTH_OPTION, JfrProfile

from questlog_embedded.stack import Stack

PROBE_EVERY_S = 0.5
POLL_EVERY_S = 0.2
RATE = 1000


class Prober:
    """Posts probe events (each its own player) and notes when each becomes visible."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.run_id = uuid.uuid4().hex[:8]
        self.acked: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.errors: list[str] = []
        self.post_errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def post(self, name: str) -> str:
        player = f"probe-{self.run_id}-{name}"
        req = urllib.request.Request(
            f"{self.stack.api}/v1/events",
            data=json.dumps(
                {
                    "event_type": "purchase_sword",
                    "player_id": player,
                    "properties": {"sword_type": "probe"},
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 202
        with self._lock:
            self.acked[player] = time.time()
        return player

    def _watch(self) -> None:
        url = f"{self.stack.query}/v1/stats/counts?event_type=purchase_sword&group_by=player_id"
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    rows = json.loads(resp.read())["rows"]
                now = time.time()
                with self._lock:
                    for row in rows:
                        player = row["player_id"]
                        if player in self.acked and player not in self.seen:
                            self.seen[player] = now
            except OSError as exc:  # reported; the watcher keeps polling
                self.errors.append(str(exc))
            self._stop.wait(POLL_EVERY_S)

    def wait_visible(self, player: str, deadline_s: float) -> float | None:
        deadline = time.time() + deadline_s
        while time.time() < deadline:
            with self._lock:
                if player in self.seen:
                    return self.seen[player] - self.acked[player]
            time.sleep(0.05)
        return None

    def latencies(self, players: list[str]) -> list[float | None]:
        with self._lock:
            return [self.seen[p] - self.acked[p] if p in self.seen else None for p in players]

    def waited(self, player: str) -> float:
        """How long a probe never seen has been waited for: its latency's lower bound."""
        with self._lock:
            return time.time() - self.acked[player]

    def stop(self) -> None:
        self._stop.set()
        self._watcher.join()


def _body(events_per_request: int) -> bytes:
    event = {
        "event_type": "purchase_sword",
        "player_id": "bench-load",
        "properties": {"sword_type": "katana", "price": 9.99},
    }
    return json.dumps(event if events_per_request == 1 else [event] * events_per_request).encode()


def _load(ctx, stack: Stack, secs: float, events_per_request: int = 1, warmup: float = 0) -> dict:
    """RATE events/s for ``secs``, as requests of ``events_per_request`` events."""
    return loadgen(
        f"{stack.api}/v1/events",
        secs,
        method="POST",
        body=_body(events_per_request),
        headers=("Content-Type: application/json",),
        rate=RATE / events_per_request,
        connections=64,
        warmup=warmup,
        work=ctx.work,
    )


def _measure(ctx, stack: Stack, prober: Prober, events_per_request: int) -> dict:
    """RATE events/s for the case's duration, as requests of ``events_per_request``
    events, with a probe every PROBE_EVERY_S; freshness of the probes."""
    secs = ctx.seconds(120, 30)
    errors_before = len(prober.post_errors)
    players: list[str] = []
    stop = threading.Event()

    def post_probes() -> None:
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures, n = [], 0
            time.sleep(5)  # let the load reach its rate first
            while not stop.is_set():
                futures.append(pool.submit(prober.post, f"{events_per_request}-{n}"))
                n += 1
                time.sleep(PROBE_EVERY_S)
            for f in futures:
                try:
                    players.append(f.result())
                except (OSError, AssertionError) as exc:  # counted, never dropped
                    prober.post_errors.append(repr(exc)[:200])

    poster = threading.Thread(target=post_probes)
    poster.start()
    window_start = time.time()
    with CpuBudget() as cpu:
        load = _load(ctx, stack, secs, events_per_request, warmup=1)
    window_end = time.time()
    stop.set()
    poster.join()
    for player in players[-10:]:  # the last probes get their chance to appear
        prober.wait_visible(player, 60)
    samples = prober.latencies(players)
    # the load generator has exited by the time the budget reads /proc: its own figure
    cpu.cores["loadgen"] = round(load["loadgen_cpu_share_of_machine"] * cpu.capacity, 3)
    cpu.cores["idle_or_other"] = round(
        cpu.capacity - sum(v for k, v in cpu.cores.items() if k != "idle_or_other"), 3
    )
    batches = batch_budget(stack.log, window_start + 5, window_end, cpu.cores)
    requests = load["ok"] + load["failed"]
    seen = [s for s in samples if s is not None]
    # A probe never seen counts with how long it was waited for (a lower bound): left
    # out, a stack that loses or stalls events would look fresher than one that does not.
    counted = sorted(
        seen + [prober.waited(p) for p, s in zip(players, samples, strict=True) if s is None]
    )

    def pct(p):
        return (
            round(counted[min(len(counted) - 1, int(p / 100 * len(counted)))], 2)
            if counted
            else None
        )

    return {
        "events_per_request": events_per_request,
        "seconds": secs,
        "load": load,
        "events_per_s": round(load["ok_per_s"] * events_per_request),
        "probes": len(samples),
        "probes_never_seen": sum(s is None for s in samples),
        "probe_post_errors": prober.post_errors[errors_before:],
        # core-seconds per second of each process over the measured window (2.0 = both
        # cores of this machine); the API's per request
        "cpu_cores": cpu.cores,
        "api_cpu_us_per_request": round(cpu.cores.get("api", 0) * cpu.wall_s / requests * 1e6)
        if requests
        else None,
        "batches": batches,
        "freshness_s": {
            "p50": pct(50),
            "p95": pct(95),
            "p99": pct(99),
            "mean": round(statistics.mean(seen), 2) if seen else None,
        },
    }


PHASES = ("latestOffset", "getBatch", "queryPlanning", "walCommit", "addBatch", "commitOffsets")


def batch_budget(log: Path, start: float, end: float, cores: dict[str, float]) -> dict:
    """The extractor's micro-batches that ended in [start, end], from its own log lines:
    Spark's progress event of each (``durationMs`` per phase, the dedup state store's
    times) and the writer's split of ``addBatch`` (Spark job + Arrow collect, Delta
    commits); medians, and the extractor's core-seconds per batch."""
    progress, written = [], []
    for line in log.read_text(errors="replace").splitlines():
        if " extractor " not in line[:30] or "| {" not in line:
            continue
        try:
            record = json.loads(line.split("| ", 1)[1])
            at = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError):
            continue
        if start <= at <= end and record.get("msg") == "batch progress":
            progress.append(record)
        elif start <= at <= end and record.get("msg") == "batch written":
            written.append(record)
    if not progress:
        return {"batches": 0}

    def med(values):
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 1) if values else None

    per_s = len(progress) / (end - start)
    return {
        "batches": len(progress),
        "batches_per_s": round(per_s, 2),
        "rows_per_batch": med(p["input_rows"] for p in progress),
        "batch_ms": med(p["batch_duration_ms"] for p in progress),
        "phases_ms": {k: med(p["phases_ms"].get(k) for p in progress) for k in PHASES},
        "state_store_ms": {
            k: med((p.get("state_ms") or {}).get(k) for p in progress)
            for k in ("updates", "removals", "commit")
        },
        "writer_ms": {
            k: med(w.get(k) for w in written) for k in ("collect_ms", "split_ms", "commit_ms")
        },
        "core_s_per_batch": {
            k: round(cores.get(k, 0.0) / per_s, 3) for k in ("extractor_jvm", "extractor_python")
        },
    }


def _profile(ctx, stack: Stack) -> dict:
    """The extractor JVM under the single-event load again, with Java Flight Recorder on
    (not during the measured runs: sampling deep stacks costs CPU): where its CPU goes."""
    jvm = next(
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and "org.apache.spark" in (line := cmdline(p))
        and "questlog-extractor" in line
    )
    with JfrProfile(jvm, ctx.work) as profile, CpuBudget() as cpu:
        _load(ctx, stack, ctx.seconds(40, 20))
    return {"samples": profile.samples, "shares": profile.shares, "cpu_cores": cpu.cores}


def run(ctx) -> dict:
    # deep enough JFR stacks to see planning under the stream thread (costs only while
    # a recording runs: the profile segment, after the measured ones)
    deep_stacks = {"JAVA_TOOL_OPTIONS": STACK_DEPTH_OPTION}
    with Stack(ctx.work / "freshness-stack", extra_env=deep_stacks) as stack:
        prober = Prober(stack)
        try:
            # Steady state, not start-up: the extractor's first micro-batches pay for JIT
            # compilation of Spark's generated code. Wait until one event went through,
            # then run the same load unmeasured until a probe is visible again.
            warmup = {"first_event_s": prober.wait_visible(prober.post("warmup-1"), 300)}
            _load(ctx, stack, ctx.seconds(30, 15))
            warmup["catch_up_s"] = prober.wait_visible(prober.post("warmup-2"), 300)
            # Every event its own request (the walkthrough's clients), then 10 per request
            # (how game SDKs flush their queue): the same events/s, a tenth of the requests.
            single = _measure(ctx, stack, prober, 1)
            batched = _measure(ctx, stack, prober, 10)
            profile = _profile(ctx, stack)
        finally:
            prober.stop()
    return {
        "rate_target": RATE,
        "warmup": warmup,
        "single": single,
        "batched": batched,
        "extractor_profile": profile,
        "query_errors_while_probing": len(prober.errors),
        "query_error_sample": prober.errors[:3],
    }


def ratios(r: dict) -> dict:
    single, batched = r["single"], r["batched"]
    return {
        "freshness_p95_s": single["freshness_s"]["p95"],
        "freshness_probes_never_seen": single["probes_never_seen"] + batched["probes_never_seen"],
        "freshness_probe_post_errors": len(single["probe_post_errors"])
        + len(batched["probe_post_errors"]),
        "freshness_load_failed_requests": single["load"]["failed"] + batched["load"]["failed"],
        "freshness_query_errors": r["query_errors_while_probing"],
        "freshness_p50_s": single["freshness_s"]["p50"],
        "sustained_events_per_s": single["events_per_s"],
        "loadgen_cpu_share": single["load"]["loadgen_cpu_share_of_machine"],
        "freshness_batched_p95_s": batched["freshness_s"]["p95"],
        "freshness_batched_p50_s": batched["freshness_s"]["p50"],
        "batched_sustained_events_per_s": batched["events_per_s"],
        "batched_loadgen_cpu_share": batched["load"]["loadgen_cpu_share_of_machine"],
        # the CPU budget at 1,000 single-event POSTs/s (core-seconds per second)
        **{f"cpu_cores_{k}": v for k, v in single["cpu_cores"].items()},
        "api_cpu_us_per_request": single["api_cpu_us_per_request"],
        "batched_api_cpu_us_per_request": batched["api_cpu_us_per_request"],
        # one micro-batch at that load (medians), and the extractor's CPU per batch
        **_batch_figures("batch", single["batches"]),
        **{f"jvm_profile_{k}": v for k, v in r["extractor_profile"]["shares"].items()},
    }


def _batch_figures(prefix: str, b: dict) -> dict:
    if not b.get("batches"):
        return {f"{prefix}es_measured": 0}
    out = {
        f"{prefix}es_per_s": b["batches_per_s"],
        f"{prefix}_rows": b["rows_per_batch"],
        f"{prefix}_ms": b["batch_ms"],
        **{f"{prefix}_{k}_ms": v for k, v in b["phases_ms"].items()},
        **{f"{prefix}_state_store_{k}_ms": v for k, v in b["state_store_ms"].items()},
        **{f"{prefix}_writer_{k}": v for k, v in b["writer_ms"].items()},
        **{f"{prefix}_core_s_{k}": v for k, v in b["core_s_per_batch"].items()},
    }
    return out
