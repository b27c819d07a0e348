"""The bench harness's own logic: targets read from bench/targets.toml, figures summarised
over runs with failures counted, "met" judged on the median, and the load generator
counting failed requests in its percentiles."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (bench/run.py, imported as the harness imports its cases)
from harness import loadgen  # noqa: E402


def test_every_target_is_complete_and_named_once():
    targets = run.load_targets()
    keys = [t["key"] for t in targets]
    assert len(keys) == len(set(keys))
    assert {
        "post_single_events_per_s",
        "extractor_vs_static",
        "query_worst_vs_duckdb_10m",
        "freshness_p95_s",
    } <= set(keys)


def test_a_target_without_a_bound_is_refused(tmp_path):
    bad = tmp_path / "targets.toml"
    bad.write_text('[[target]]\nkey = "x"\nhigher = true\nwhat = "x"\n')
    with pytest.raises(ValueError, match="lacks"):
        run.load_targets(bad)


def test_summaries_keep_the_spread_and_count_failed_runs():
    assert run.summarize([3.0, 1.0, 2.0]) == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "n": 3,
        "missing": 0,
    }
    # a run that failed (None) is counted as missing, not dropped from view
    assert run.summarize([10, None, 30]) == {
        "median": 20.0,
        "min": 10,
        "max": 30,
        "n": 2,
        "missing": 1,
    }
    assert run.summarize([True, False])["median"] is False
    assert run.summarize(["2x8", "2x8"])["median"] == "2x8"
    assert run.summarize([None, None]) is None


def _report(values: list, key: str = "freshness_p95_s") -> dict:
    return {
        "started": "t",
        "quick": False,
        "runs": len(values),
        "machine": {"cpus": 2, "cpu": "x", "git": "abc"},
        "targets": run.load_targets(),
        "cases": {"c": {"runs": [{"figures": {key: v}} for v in values], "failed_runs": 0}},
        "figures": {key: run.summarize(values)},
        "errors": {},
        "seconds": {"c": 1},
    }


def test_met_is_judged_on_the_median_not_the_best_run():
    # one run under the 2 s target, the median over it: not met
    table = run.markdown(_report([1.5, 2.5, 3.0]))
    line = next(ln for ln in table.splitlines() if ln.startswith("| freshness p95 at 1,000 s"))
    assert "2.50 (1.50-3.00, n=3)" in line
    assert line.endswith("| NO |")
    line = next(
        ln
        for ln in run.markdown(_report([1.5, 1.9, 3.0])).splitlines()
        if ln.startswith("| freshness p95 at 1,000 s")
    )
    assert line.endswith("| yes |")
    assert "| API single-event POST, events/s durable (make run's config) | not measured" in table
    assert "- c `freshness_p95_s`: 1.50, 2.50, 3.00" in table  # every run's value


class _Flaky(BaseHTTPRequestHandler):
    """Every other request: a slow 503 (50 ms); the rest a fast 200."""

    count = 0
    lock = threading.Lock()

    def do_GET(self):
        with _Flaky.lock:
            _Flaky.count += 1
            fail = _Flaky.count % 2 == 0
        if fail:
            time.sleep(0.05)
        self.send_response(503 if fail else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_load_generator_counts_failures_in_its_percentiles(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = loadgen(
            f"http://127.0.0.1:{server.server_port}/", 2, connections=2, warmup=0, work=tmp_path
        )
    finally:
        server.shutdown()
    print(json.dumps(out))
    assert out["failed"] == out["by_status"].get("503", 0) > 0
    assert out["ok"] + out["failed"] == out["requests"]
    # half the requests took >= 50 ms: the p90 over every request shows it, the 2xx-only
    # p99 does not
    assert out["p90_ms"] >= 50
    assert out["ok_p99_ms"] < 50
