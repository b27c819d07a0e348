"""Check a load run's ledger against what the query service answers.

Reports sent, accepted, rejected, unavailable, no_answer, stored, lost (accepted but not
stored: must be 0), duplicated (stored more than once: must be 0), phantom (stored in the
run's window and tagged as this run's, but never accepted: must be 0), and, with
--follow, freshness p50/p95/p99 (202 -> visible through the query service).

Usage:
    python -m questlog_loadtest.verify --ledger var/load/ledger.jsonl \
        --query http://127.0.0.1:8000 --wait 60 [--follow-pid PID] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from questlog_schemas import load_registry

from . import ledger

LEGACY_HOSTS = ("user1.comcast.com", "user2.att.com")
SLOWEST_ANSWER_S = 10.0


@dataclass
class Report:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    unavailable: int = 0
    no_answer: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    phantom: int = 0
    untracked_accepted: int = 0
    samples: dict = field(default_factory=dict)
    freshness_s: dict = field(default_factory=dict)
    by_type: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.phantom == 0


def _get(url: str, timeout: float = 30.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own service
        return json.loads(resp.read())


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def stored_rows(query: str, event_type: str, since: float, until: float | None = None):
    """Every row of event_type with received_at >= since, through the REST contract."""
    params = {"since": _iso(since), "limit": "1000"}
    if until:
        params["until"] = _iso(until)
    cursor = None
    while True:
        if cursor:
            params["cursor"] = cursor
        page = _get(f"{query}/v1/events/{event_type}?{urllib.parse.urlencode(params)}")
        yield from page["rows"]
        cursor = page.get("next_cursor")
        if not cursor:
            return


def _belongs_to_run(row: dict, run_ids: set[str]) -> bool:
    pid = str(row.get("player_id") or "")
    return any(pid.startswith(r) for r in run_ids) or row.get("host") in LEGACY_HOSTS


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)


class Follower:
    """Polls the query service while load runs and notes when each event first shows."""

    def __init__(self, query: str, types: tuple[str, ...], since: float,
                 lookback: float = 15.0) -> None:
        self.query, self.types, self.since, self.lookback = query, types, since, lookback
        self.first_seen: dict[str, float] = {}

    def poll(self) -> None:
        start = max(self.since, time.time() - self.lookback)
        for event_type in self.types:
            for row in stored_rows(self.query, event_type, start):
                self.first_seen.setdefault(row["event_id"], time.time())


def verify(ledger_paths: list[Path], query: str, wait: float = 60.0,
           follower: Follower | None = None, log=print) -> Report:
    records = list(ledger.read(ledger_paths))
    if not records:
        raise SystemExit("the ledger is empty: did the load run?")
    run_ids = {r["run"] for r in records}
    # One outcome per event: a SENT line is replaced by its answer; a SENT line with no
    # answer (the run stopped mid-request) counts as no answer, and if that event was
    # stored anyway it is not a phantom: it was sent.
    outcome: dict[str, dict] = {}
    anonymous = []
    for r in records:
        if r["id"] is None:
            anonymous.append(r)
        elif r["status"] != ledger.SENT or r["id"] not in outcome:
            outcome[r["id"]] = r
    finals = [*outcome.values(), *anonymous]
    accepted = {r["id"]: r for r in finals if 200 <= r["status"] < 300 and r["id"]}
    report = Report(sent=len(finals))
    for r in finals:
        s = r["status"]
        if 200 <= s < 300:
            report.accepted += 1
            report.untracked_accepted += r["id"] is None
        elif s == 503:
            report.unavailable += 1
        elif s in (0, ledger.SENT):
            report.no_answer += 1
        else:
            report.rejected += 1
    # the API stamps received_at before it answers: allow for the slowest answer
    since = min(r["t"] for r in records) - SLOWEST_ANSWER_S
    types = load_registry().event_types

    deadline = time.time() + wait
    while True:
        counts: Counter[str] = Counter()
        mine_by_type: Counter[str] = Counter()
        rows_by_id: dict[str, dict] = {}
        for event_type in types:
            for row in stored_rows(query, event_type, since):
                if _belongs_to_run(row, run_ids) or row["event_id"] in accepted:
                    counts[row["event_id"]] += 1
                    mine_by_type[event_type] += 1
                    rows_by_id[row["event_id"]] = row
        missing = [eid for eid in accepted if eid not in counts]
        if not missing or time.time() > deadline:
            break
        log(f"[verify] {len(missing)} accepted events not visible yet; waiting ...")
        if follower:
            follower.poll()
        time.sleep(2)

    report.stored = len(counts)
    report.lost = len(missing)
    report.duplicated = sum(n - 1 for n in counts.values() if n > 1)
    phantoms = ([eid for eid in counts if eid not in accepted
                 and outcome.get(eid, {}).get("status") not in (0, ledger.SENT)]
                if _tracked(finals) else [])
    report.phantom = len(phantoms)
    # a few of each problem, to start an investigation from
    report.samples = {
        "lost": [accepted[e] for e in missing[:5]],
        "duplicated": [rows_by_id[e] for e, n in counts.items() if n > 1][:5],
        "phantom": [rows_by_id[e] for e in phantoms[:5]],
    }
    report.by_type = dict(mine_by_type)
    if follower:
        lags = [follower.first_seen[e] - r["t"] for e, r in accepted.items()
                if e in follower.first_seen]
        report.freshness_s = {"p50": _pct(lags, 50), "p95": _pct(lags, 95),
                              "p99": _pct(lags, 99), "measured": len(lags),
                              "poll_interval_s": 1.0}
    return report


def _tracked(records: list[dict]) -> bool:
    """Phantoms are only countable when every accepted event's id is known."""
    return all(r["id"] for r in records if 200 <= r["status"] < 300)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m questlog_loadtest.verify")
    parser.add_argument("--ledger", type=Path, nargs="+", required=True)
    parser.add_argument("--query", default="http://127.0.0.1:8000")
    parser.add_argument("--wait", type=float, default=60.0,
                        help="seconds to wait for accepted events to become visible")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = verify(args.ledger, args.query.rstrip("/"), args.wait)
    out = asdict(report)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if not report.ok:
        print("LEDGER FAILED: lost, duplicated or phantom events", file=sys.stderr)
        return 1
    print("LEDGER OK: every accepted event stored exactly once, nothing else")
    return 0


if __name__ == "__main__":
    sys.exit(main())
