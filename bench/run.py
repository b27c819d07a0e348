"""`make bench` / `make bench-quick`: every case in one session on this machine, each
figure next to its baseline or ceiling measured in the same run.

Writes bench/results/latest.json (everything) and bench/results/latest.md (the table
docs/benchmarks.md quotes). Exits 1 if a case errors; targets are reported, not asserted.

Usage:
    python bench/run.py [--quick] [--only api,extractor,query,freshness,report]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import api, extractor, freshness, query
from cases import report as report_case

from questlog_embedded import paths
from questlog_embedded.kafka import KafkaBroker

CASES = {"api": api, "extractor": extractor, "query": query, "freshness": freshness,
         "report": report_case}
RESULTS = Path(__file__).resolve().parent / "results"

# (ratio key, target, higher is better, what it means)
TARGETS = [
    ("post_single_events_per_s", 2500, True, "API single-event POST, events/s durable"),
    ("post_single_vs_noop", 0.5, True, "API POST vs no-op route, same server config"),
    ("post_single_p99_ms_at_1000rps", 25, False, "API POST p99 at 1,000 req/s, ms"),
    ("batch_events_per_s", 20000, True, "API 100-event batches, events/s"),
    ("legacy_get_vs_baseline", 20, True, "legacy GET vs the walkthrough's Flask dev server, x"),
    ("extractor_events_per_s", 50000, True,
     "extractor, Kafka -> Delta, sustained events/s (local[2])"),
    ("extractor_vs_baseline", 3, True, "extractor vs the walkthrough's UDF job, both warm, x"),
    ("counts_by_host_rest_warm_median_ms", 100, False,
     "counts by host via REST, warm median ms (largest table)"),
    ("counts_by_host_vs_spark_sql", 20, True, "counts by host: REST vs Spark SQL, x"),
    ("freshness_p95_s", 5, False, "freshness p95 at 1,000 events/s, one per request, s"),
    ("freshness_batched_p95_s", 5, False,
     "freshness p95 at 1,000 events/s, 10 per request, s"),
]


class Context:
    def __init__(self, quick: bool, work: Path, kafka: KafkaBroker) -> None:
        self.quick, self.work, self.kafka = quick, work, kafka

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    size = seconds

    def sizes(self, full: list[int], quick: list[int]) -> list[int]:
        return quick if self.quick else full


def machine() -> dict:
    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  timeout=10).stdout.strip() or "?"
        except OSError:
            return "?"

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    versions = {}
    for pkg in ("pyspark", "delta-spark", "deltalake", "duckdb", "kafka-python", "flask",
                "gunicorn", "locust"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "java": out(["java", "-version"]) or "?", "kernel": platform.release(),
            "git": out(["git", "-C", str(paths.REPO_ROOT), "rev-parse", "--short", "HEAD"]),
            "versions": versions}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(report: dict) -> str:
    lines = [f"# questlog benchmarks — {report['started']}", "",
             f"Mode: {'quick' if report['quick'] else 'full'} · machine: "
             f"{report['machine']['cpus']} cores, {report['machine']['cpu']} · "
             f"commit {report['machine']['git']}", "",
             "| figure | measured | target | met |", "|---|---|---|---|"]
    ratios = report["ratios"]
    for key, target, higher, what in TARGETS:
        if key not in ratios or ratios[key] is None:
            lines.append(f"| {what} | not measured | {_fmt(target)} | — |")
            continue
        value = ratios[key]
        met = value >= target if higher else value <= target
        lines.append(f"| {what} | {_fmt(value)} | {'≥' if higher else '≤'} {_fmt(target)} "
                     f"| {'yes' if met else 'NO'} |")
    lines += ["", "Other figures of this run:", ""]
    for key, value in ratios.items():
        if key not in {t[0] for t in TARGETS}:
            lines.append(f"- `{key}`: {_fmt(value)}")
    if report["errors"]:
        lines += ["", "Errors:", ""] + [f"- {k}: {v.splitlines()[-1]}"
                                        for k, v in report["errors"].items()]
    lines += ["", "Every number above comes from `bench/results/latest.json` of the same run."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    parser.add_argument("--only", default=",".join(CASES))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {sorted(unknown)}; known: {list(CASES)}")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = paths.var_dir() / "bench" / stamp
    work.mkdir(parents=True)
    report = {"started": stamp, "quick": args.quick, "machine": machine(), "cases": {},
              "ratios": {}, "errors": {}, "seconds": {}}
    with KafkaBroker(work / "kafka", heap="1g") as kafka:
        ctx = Context(args.quick, work, kafka)
        for name in names:
            print(f"[bench] {name} ...", flush=True)
            started = time.monotonic()
            try:
                result = CASES[name].run(ctx)
                report["cases"][name] = result
                report["ratios"].update(CASES[name].ratios(result))
            except Exception:  # a case error fails the run but not the others
                report["errors"][name] = traceback.format_exc()
                print(report["errors"][name], file=sys.stderr)
            report["seconds"][name] = round(time.monotonic() - started, 1)
            print(f"[bench] {name} done in {report['seconds'][name]}s: "
                  f"{json.dumps({k: v for k, v in report['ratios'].items()})}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if set(names) == set(CASES) else "-partial"
    (RESULTS / f"latest{suffix}.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / f"latest{suffix}.md").write_text(markdown(report))
    print(markdown(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
