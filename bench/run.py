"""`make bench` / `make bench-quick`: every case in one session on this machine, each
figure next to its baseline or ceiling measured in the same run.

Each case runs 3 times in a full run (once with --quick); every figure is reported as the
median with its spread (min-max, n), and a run that fails is counted, never dropped.
Targets come from bench/targets.toml and are judged on the median. Writes
bench/results/latest.json (every run's raw results) and bench/results/latest.md (the
table docs/benchmarks.md quotes). Exits 1 if any run of a case errors; targets are
reported, not asserted.

Usage:
    python bench/run.py [--quick] [--runs N] [--only api,extractor,query,day,freshness,report,trino]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tomllib
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import api, day, extractor, freshness, query
from cases import report as report_case
from cases import trino as trino_case

from questlog_embedded import paths
from questlog_embedded.kafka import KafkaBroker

CASES = {
    "api": api,
    "extractor": extractor,
    "query": query,
    "day": day,
    "freshness": freshness,
    "report": report_case,
    "trino": trino_case,
}
RESULTS = Path(__file__).resolve().parent / "results"

TARGETS_FILE = Path(__file__).resolve().parent / "targets.toml"
FULL_RUNS = 3  # every case, every full run: "met" is judged on the median of these


def load_targets(path: Path = TARGETS_FILE) -> list[dict]:
    """bench/targets.toml: [[target]] key, bound, higher, what."""
    targets = tomllib.loads(path.read_text())["target"]
    for t in targets:
        missing = {"key", "bound", "higher", "what"} - set(t)
        if missing:
            raise ValueError(f"{path}: target {t.get('key', '?')} lacks {sorted(missing)}")
    return targets


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
            return (
                subprocess.run(
                    cmd, capture_output=True, text=True, check=False, timeout=10
                ).stdout.strip()
                or "?"
            )
        except OSError:
            return "?"

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in open("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        "?",
    )
    versions: dict[str, str | None] = {}
    for pkg in (
        "pyspark",
        "delta-spark",
        "deltalake",
        "duckdb",
        "kafka-python",
        "flask",
        "gunicorn",
        "locust",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "java": out(["java", "-version"]) or "?",
        "kernel": platform.release(),
        "git": out(["git", "-C", str(paths.REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "versions": versions,
    }


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def summarize(values: list) -> dict | None:
    """Median, min, max and n of one figure over the runs that measured it (None values,
    from a run that could not compute it, are counted as missing, not dropped silently)."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    words = [v for v in values if isinstance(v, str)]
    if words and not numbers:  # a label (a config): the one most runs had
        return {
            "median": max(set(words), key=words.count),
            "min": None,
            "max": None,
            "n": len(words),
            "missing": len(values) - len(words),
        }
    if not numbers:
        flags = [v for v in values if isinstance(v, bool)]
        if flags:  # a yes/no figure: yes only if every run said yes
            return {
                "median": all(flags),
                "min": all(flags),
                "max": any(flags),
                "n": len(flags),
                "missing": len(values) - len(flags),
            }
        return None
    return {
        "median": round(statistics.median(numbers), 3),
        "min": min(numbers),
        "max": max(numbers),
        "n": len(numbers),
        "missing": len(values) - len(numbers),
    }


def _figure(stats: dict) -> str:
    text = _fmt(stats["median"])
    if (
        stats["n"] > 1
        and isinstance(stats["median"], (int, float))
        and not isinstance(stats["median"], bool)
    ):
        text += f" ({_fmt(stats['min'])}-{_fmt(stats['max'])}, n={stats['n']})"
    if stats["missing"]:
        text += f", not computed in {stats['missing']} run(s)"
    return text


def markdown(report: dict) -> str:
    lines = [
        f"# questlog benchmarks — {report['started']}",
        "",
        f"Mode: {'quick' if report['quick'] else 'full'} · runs per case: "
        f"{report['runs']} · machine: {report['machine']['cpus']} cores, "
        f"{report['machine']['cpu']} · commit {report['machine']['git']}",
        "",
        "Figures: median (min-max, n runs). Targets from bench/targets.toml, judged on the median.",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
    ]
    figures = report["figures"]
    targets = report["targets"]
    for t in targets:
        stats = figures.get(t["key"])
        bound = f"{'≥' if t['higher'] else '≤'} {_fmt(t['bound'])}"
        if stats is None:
            lines.append(f"| {t['what']} | not measured | {bound} | — |")
            continue
        median = stats["median"]
        met = median >= t["bound"] if t["higher"] else median <= t["bound"]
        lines.append(f"| {t['what']} | {_figure(stats)} | {bound} | {'yes' if met else 'NO'} |")
    lines += ["", "| case | runs | failed runs | seconds (all runs) |", "|---|---|---|---|"]
    for name, case in report["cases"].items():
        lines.append(
            f"| {name} | {len(case['runs'])} | {case['failed_runs']} | {report['seconds'][name]} |"
        )
    lines += ["", "Every figure of this run:", ""]
    keys = {t["key"] for t in targets}
    for key, stats in figures.items():
        if key not in keys:
            lines.append(f"- `{key}`: {_figure(stats)}")
    lines += ["", "Raw runs (each figure, run by run; x = the run failed):", ""]
    for name, case in report["cases"].items():
        run_keys = list(dict.fromkeys(k for run in case["runs"] for k in run.get("figures", {})))
        for key in run_keys:
            values = [
                _fmt(run["figures"].get(key)) if "figures" in run else "x" for run in case["runs"]
            ]
            lines.append(f"- {name} `{key}`: {', '.join(values)}")
    if report["errors"]:
        lines += ["", "Errors (each failed run is counted above):", ""]
        lines += [
            f"- {name} run {i + 1}: {text.strip().splitlines()[-1]}"
            for name, runs in report["errors"].items()
            for i, text in runs.items()
        ]
    lines += [
        "",
        "Every number above comes from `bench/results/latest.json` of the same run "
        "(raw results of every run under `cases.<case>.runs`).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"runs of each case (default {FULL_RUNS}; --quick: 1)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {sorted(unknown)}; known: {list(CASES)}")
    runs = args.runs or (1 if args.quick else FULL_RUNS)
    if runs < 1:
        parser.error("--runs must be >= 1")
    targets = load_targets()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = paths.var_dir() / "bench" / stamp
    work.mkdir(parents=True)
    report = {
        "started": stamp,
        "quick": args.quick,
        "runs": runs,
        "machine": machine(),
        "targets": targets,
        "cases": {},
        "figures": {},
        "errors": {},
        "seconds": {},
    }
    with KafkaBroker(work / "kafka", heap="1g") as kafka:
        ctx = Context(args.quick, work, kafka)
        for name in names:
            module = CASES[name]
            # a case that repeats itself inside (the report: cold then warm) runs once
            case_runs = 1 if getattr(module, "REPEATS_INSIDE", False) else runs
            case: dict[str, Any] = {"runs": [], "failed_runs": 0}
            per_figure: dict[str, list] = {}
            started = time.monotonic()
            for i in range(case_runs):
                print(f"[bench] {name} run {i + 1}/{case_runs} ...", flush=True)
                try:
                    result = module.run(ctx)
                    figures = module.ratios(result)
                except Exception:  # counted, shown, and the other runs and cases go on
                    case["failed_runs"] += 1
                    case["runs"].append({"error": traceback.format_exc()})
                    report["errors"].setdefault(name, {})[i] = traceback.format_exc()
                    print(traceback.format_exc(), file=sys.stderr)
                    continue
                case["runs"].append({"result": result, "figures": figures})
                for key, value in figures.items():
                    per_figure.setdefault(key, []).append(value)
                print(f"[bench] {name} run {i + 1}: {json.dumps(figures, default=str)}", flush=True)
            report["seconds"][name] = round(time.monotonic() - started, 1)
            report["cases"][name] = case
            for key, values in per_figure.items():
                # a failed run is a missing value of every figure of the case
                stats = summarize(values + [None] * case["failed_runs"])
                if stats is not None:
                    report["figures"][key] = stats
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if set(names) == set(CASES) else "-partial"
    (RESULTS / f"latest{suffix}.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / f"latest{suffix}.md").write_text(markdown(report))
    print(markdown(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
