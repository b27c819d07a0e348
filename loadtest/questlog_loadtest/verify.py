"""Check a load run's ledger against what the query service answers.

Reports sent, accepted, rejected, unavailable, no_answer, stored, lost (accepted but not
stored: must be 0), duplicated (stored more than once: must be 0), phantom (stored in the
run's window and tagged as this run's, but never accepted: must be 0), and, with
--follow, freshness p50/p95/p99 (202 -> visible through the query service).

The stored side is counted with aggregate SQL through ``POST /v1/sql`` (``count(*)``,
``count(distinct event_id)``, the ids stored more than once), never by paging rows: the
REST pages' keyset cursor is a strict ``>`` on (received_at, event_id), so an exact
duplicate row (what a bad replay writes) that falls across a page boundary is skipped.
The run's rows are those tagged as its own (player ids ``<run>-...``, or the walkthrough
hosts) received inside the ledger's time window.

Usage:
    python -m questlog_loadtest.verify --ledger var/load/ledger.jsonl \
        --query http://127.0.0.1:8000 --wait 60 \
        [--read-token-file var/secrets/query_read_token] [--json out.json]

The read token comes from --read-token, --read-token-file, $QUESTLOG_LOAD_READ_TOKEN,
$QUESTLOG_LOAD_READ_TOKEN_FILE, else the embedded mode's
``$QUESTLOG_VAR_DIR/secrets/query_read_token`` (``var/`` by default).
"""

# ruff: noqa: S608 - SQL text holds only registered type names, quoted; values are bound.

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from questlog_schemas import load_registry

from . import ledger

LEGACY_HOSTS = ("user1.comcast.com", "user2.att.com")
SLOWEST_ANSWER_S = 10.0
DUPLICATES_LISTED = 100  # ids stored more than once, named in the report (all are counted)


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


class QueryRefused(RuntimeError):
    """The query service would not run the verifier's SQL (token, disabled, error)."""


@dataclass(frozen=True)
class RunScope:
    """Which stored rows are the run's: tagged as its own, received inside its window."""

    run_ids: tuple[str, ...]
    hosts: tuple[str, ...]
    since: float
    until: float


@dataclass
class Stored:
    """What the lake holds of one run: rows and distinct ids per event type, every
    distinct id, and the ids stored more than once (``copies`` across all types)."""

    rows_by_type: dict[str, int] = field(default_factory=dict)
    ids_by_type: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    distinct: int = 0
    ids: set[str] = field(default_factory=set)
    duplicates: list[dict] = field(default_factory=list)


def _get(url: str, timeout: float = 30.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own service
        return json.loads(resp.read())


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def sql(
    query: str, token: str, text: str, params: dict | None = None, timeout: float = 60.0
) -> dict:
    """One ``POST /v1/sql`` answer (``rows``, ``truncated``, ...)."""
    body = json.dumps({"sql": text, "params": params or {}}).encode()
    req = urllib.request.Request(  # noqa: S310 - the query service's http URL
        f"{query}/v1/sql",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own service
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:2000].decode(errors="replace")
        hint = {
            401: "the read token was refused",
            403: "POST /v1/sql is disabled on the query service (no read token set)",
        }
        raise QueryRefused(
            f"{query}/v1/sql answered {exc.code}: {hint.get(exc.code, 'query failed')}: {detail}"
        ) from None


def stored_rows(query: str, event_type: str, since: float, until: float | None = None):
    """Every row of event_type with received_at >= since, through the REST pages (for the
    freshness follower: an exact duplicate across a page boundary is skipped here)."""
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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run_rows(types: tuple[str, ...], scope: RunScope) -> tuple[str, dict]:
    """SQL of the run's (event_id, event_type) rows over every event table, and its
    bound parameters (run ids and hosts are values, never SQL text)."""
    params: dict = {"since": _iso(scope.since), "until": _iso(scope.until)}
    tags = []
    for i, run in enumerate(scope.run_ids):
        params[f"run{i}"] = f"{run}-"
        tags.append(f"starts_with(player_id, $run{i})")
    for i, host in enumerate(scope.hosts):
        params[f"host{i}"] = host
        tags.append(f"host = $host{i}")
    where = (
        "received_at >= CAST($since AS TIMESTAMPTZ) "
        "AND received_at <= CAST($until AS TIMESTAMPTZ) "
        f"AND ({' OR '.join(tags) or 'false'})"
    )
    for i, event_type in enumerate(types):
        params[f"type{i}"] = event_type
    union = " UNION ALL ".join(
        f"SELECT event_id, $type{i} AS event_type FROM {_quote(t)} WHERE {where}"
        for i, t in enumerate(types)
    )
    return union, params


def count_stored(
    query: str, token: str, types: tuple[str, ...], scope: RunScope, timeout: float = 60.0
) -> Stored:
    """The run's rows counted by the query service with aggregate SQL (no row paging).

    The counts, the duplicates and the pages of ids are separate requests: they are kept
    only when every answer was computed from the same table versions (``as_of``), so a
    commit landing in between never yields counts and ids that disagree.
    """
    deadline = time.monotonic() + timeout
    while True:
        stored, versions = _count_once(query, token, types, scope)
        if len(versions) == 1:
            return stored
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the tables kept changing for {timeout:.0f}s while the run "
                f"was counted (versions seen: {sorted(versions)})"
            )
        time.sleep(0.5)


def _count_once(
    query: str, token: str, types: tuple[str, ...], scope: RunScope
) -> tuple[Stored, set[tuple]]:
    mine, params = _run_rows(types, scope)
    versions: set[tuple] = set()

    def ask(text: str, bound: dict) -> dict:
        answer = sql(query, token, text, bound)
        versions.add(tuple((t, (answer.get("as_of") or {}).get(t)) for t in types))
        return answer

    stored = Stored()
    counts = ask(
        f"WITH mine AS ({mine}) SELECT event_type, count(*) AS n_rows, "
        "count(DISTINCT event_id) AS n_ids FROM mine "
        "GROUP BY GROUPING SETS ((event_type), ())",
        params,
    )
    for row in counts["rows"]:
        if row["event_type"] is None:  # the grand total, across types
            stored.rows, stored.distinct = row["n_rows"], row["n_ids"]
        else:
            stored.rows_by_type[row["event_type"]] = row["n_rows"]
            stored.ids_by_type[row["event_type"]] = row["n_ids"]
    if stored.rows > stored.distinct:
        stored.duplicates = ask(
            f"WITH mine AS ({mine}) SELECT event_id, count(*) AS copies, "
            "string_agg(DISTINCT event_type, ',' ORDER BY event_type) AS event_types "
            "FROM mine GROUP BY event_id HAVING count(*) > 1 "
            f"ORDER BY copies DESC, event_id LIMIT {DUPLICATES_LISTED}",
            params,
        )["rows"]
    # every distinct id, for lost and phantom: pages of a unique key, so none is skipped
    after = ""
    while True:
        page = ask(
            f"WITH mine AS ({mine}) SELECT DISTINCT event_id FROM mine "
            "WHERE event_id > $after ORDER BY event_id",
            dict(params, after=after),
        )
        ids = [row["event_id"] for row in page["rows"]]
        stored.ids.update(ids)
        if not page.get("truncated") or not ids:
            break
        after = ids[-1]
    return stored, versions


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)


class Follower:
    """Polls the query service while load runs and notes when each event first shows."""

    def __init__(
        self, query: str, types: tuple[str, ...], since: float, lookback: float = 15.0
    ) -> None:
        self.query, self.types, self.since, self.lookback = query, types, since, lookback
        self.first_seen: dict[str, float] = {}

    def poll(self) -> None:
        start = max(self.since, time.time() - self.lookback)
        for event_type in self.types:
            for row in stored_rows(self.query, event_type, start):
                self.first_seen.setdefault(row["event_id"], time.time())


def verify(
    ledger_paths: list[Path],
    query: str,
    wait: float = 60.0,
    follower: Follower | None = None,
    log=print,
    *,
    read_token: str,
) -> Report:
    records = list(ledger.read(ledger_paths))
    if not records:
        raise SystemExit("the ledger is empty: did the load run?")
    run_ids = tuple(sorted({r["run"] for r in records}))
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
    # the API stamps received_at after the request left and before it answers: allow for
    # the slowest answer on both sides of the ledger's clock
    scope = RunScope(
        run_ids,
        LEGACY_HOSTS,
        since=min(r["t"] for r in records) - SLOWEST_ANSWER_S,
        until=max(r["t"] for r in records) + SLOWEST_ANSWER_S,
    )
    types = tuple(load_registry().event_types)

    deadline = time.time() + wait
    while True:
        stored = count_stored(query, read_token, types, scope)
        missing = [eid for eid in accepted if eid not in stored.ids]
        if not missing or time.time() > deadline:
            break
        log(f"[verify] {len(missing)} accepted events not visible yet; waiting ...")
        if follower:
            follower.poll()
        time.sleep(2)

    report.stored = stored.distinct
    report.lost = len(missing)
    report.duplicated = stored.rows - stored.distinct
    phantoms = (
        sorted(
            eid
            for eid in stored.ids
            if eid not in accepted and outcome.get(eid, {}).get("status") not in (0, ledger.SENT)
        )
        if _tracked(finals)
        else []
    )
    report.phantom = len(phantoms)
    # a few of each problem, to start an investigation from
    report.samples = {
        "lost": [accepted[e] for e in missing[:5]],
        "duplicated": stored.duplicates[:5],
        "phantom": phantoms[:5],
    }
    report.by_type = dict(stored.rows_by_type)
    if follower:
        lags = [
            follower.first_seen[e] - r["t"] for e, r in accepted.items() if e in follower.first_seen
        ]
        report.freshness_s = {
            "p50": _pct(lags, 50),
            "p95": _pct(lags, 95),
            "p99": _pct(lags, 99),
            "measured": len(lags),
            "poll_interval_s": 1.0,
        }
    return report


def _tracked(records: list[dict]) -> bool:
    """Phantoms are only countable when every accepted event's id is known."""
    return all(r["id"] for r in records if 200 <= r["status"] < 300)


def read_token(
    given: str | None = None, given_file: Path | None = None, environ: dict | None = None
) -> str:
    """The query service's read token: given, from a file, or the embedded mode's."""
    env = os.environ if environ is None else environ
    if given or env.get("QUESTLOG_LOAD_READ_TOKEN"):
        return (given or env["QUESTLOG_LOAD_READ_TOKEN"]).strip()
    path = given_file or Path(
        env.get("QUESTLOG_LOAD_READ_TOKEN_FILE")
        or Path(env.get("QUESTLOG_VAR_DIR", "var")) / "secrets" / "query_read_token"
    )
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise SystemExit(
            f"no read token for POST /v1/sql: cannot read {path} ({exc}); pass "
            "--read-token or --read-token-file"
        ) from None
    if not token:
        raise SystemExit(f"no read token for POST /v1/sql: {path} is empty")
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m questlog_loadtest.verify")
    parser.add_argument("--ledger", type=Path, nargs="+", required=True)
    parser.add_argument("--query", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for accepted events to become visible",
    )
    parser.add_argument("--read-token", help="the query service's read token (POST /v1/sql)")
    parser.add_argument(
        "--read-token-file",
        type=Path,
        help="file holding the read token (default: $QUESTLOG_VAR_DIR/secrets/query_read_token)",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    token = read_token(args.read_token, args.read_token_file)
    try:
        report = verify(args.ledger, args.query.rstrip("/"), args.wait, read_token=token)
    except QueryRefused as exc:
        print(f"LEDGER NOT CHECKED: {exc}", file=sys.stderr)
        return 2
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
