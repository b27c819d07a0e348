"""T8: the SQL injection and DuckDB escape corpus against POST /v1/sql, with the service's
statement pre-check (exactly one SELECT) turned off, so that DuckDB's own lockdown is what
is tested: ``enable_external_access=false``, ``lock_configuration``, the memory limit and
the watchdog.

The query app runs in this process (its pre-check replaced by a no-op for the run) over a
real small Delta lake, with HOME pointing at a folder of canary files and a canary in the
environment. Every statement must be refused or neutralised: no answer may carry a
canary, /etc/passwd or the Delta log; the lake, HOME and a scratch folder must hold the
same files with the same contents (sha256) afterwards; a runaway query must be stopped
(408, or 422 at the memory limit) within the time limit plus a small margin.

Not in the corpus: one value computed by a single huge call (``UNINTERRUPTIBLE`` in
questlog_chaos.corpus, e.g. ``len(range(10000000))``). DuckDB checks for interrupts
between vectors, not inside one function call, and these ran 20-100 s past the watchdog
and beyond the memory limit; stopping them needs the query in a process that can be killed.
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import time
from pathlib import Path

import pytest

from questlog_chaos.corpus import small_lake, sql_cases, sql_variants
from questlog_chaos.report import Result, spread

pytestmark = [pytest.mark.slow]

TOKEN = "t8-read-token"
TIMEOUT_S = 1.0  # the sandbox's time limit for this run
MARGIN_S = 1.0  # a runaway query must be answered within TIMEOUT_S + MARGIN_S


def _hashes(*folders: Path) -> dict[str, str]:
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() or path.is_symlink():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.sabotage("query_external_access")
def test_sql_escapes_are_refused_and_touch_no_file(scale, record, sabotaged, tmp_path, monkeypatch):
    from questlog_query import create_app, sandbox
    from questlog_query.settings import Settings

    secret = os.urandom(8).hex()
    home, lake, scratch = tmp_path / "home", tmp_path / "lake", tmp_path / "scratch"
    for folder in (home / ".ssh", lake, scratch):
        folder.mkdir(parents=True)
    canaries = {
        home / "canary.txt": f"T8-HOME-CANARY-{secret}\n",
        home / ".ssh" / "id_rsa": f"-----BEGIN T8 FAKE KEY {secret}-----\n",
        home / ".duckdbrc": f"-- T8-RC-CANARY-{secret}\n",
        lake / "LAKE-CANARY.txt": f"T8-LAKE-CANARY-{secret}\n",
    }
    for path, text in canaries.items():
        path.write_text(text)
    small_lake(lake, rows=50, seed=scale.seed)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("T8_ENV_CANARY", f"T8-ENV-CANARY-{secret}")
    # the pre-check off for the run: every statement reaches DuckDB
    monkeypatch.setattr(sandbox, "check_select", lambda sql: None)
    app = create_app(
        Settings(
            lake_root=lake.as_uri(),
            read_token=TOKEN,
            snapshot_ttl_s=0.0,
            sql_timeout_s=TIMEOUT_S,
            duckdb_threads=1,
            duckdb_memory_limit="256MB",
        )
    )
    client = app.test_client()
    leaks = [secret, "root:x:0:", "commitInfo", '"add":{"path"']

    rng = random.Random(scale.seed)
    base = sql_cases(str(home), str(lake), str(scratch))
    before = _hashes(lake, home, scratch)
    outcomes: collections.Counter = collections.Counter()
    problems: list[str] = []
    runaway_s: list[float] = []
    errors_5xx = cases_run = 0
    answered: set[str] = set()  # statements DuckDB ran: each harmless, and no leak in it
    for run in range(scale.runs):
        cases = base + sql_variants(base, rng, scale.pick(20, 400))
        for case in cases:
            started = time.monotonic()
            response = client.post(
                "/v1/sql", json={"sql": case.sql}, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            seconds = time.monotonic() - started
            cases_run += 1
            text = response.get_data(as_text=True)
            body = response.get_json(silent=True) or {}
            error = body.get("error") or {}
            kind = (error.get("details") or {}).get("type") or error.get("code") or "answered"
            outcomes[f"{response.status_code} {kind}"] += 1
            errors_5xx += response.status_code >= 500
            if response.status_code == 200:
                answered.add(case.name.rsplit("/", 1)[-1])
            if any(leak in text for leak in leaks):
                problems.append(f"{case.name}: the answer carries a canary or a file: {text[:200]}")
            if case.runaway:
                runaway_s.append(seconds)
                if response.status_code not in (408, 422) or seconds > TIMEOUT_S + MARGIN_S:
                    problems.append(
                        f"{case.name}: {response.status_code} after {seconds:.2f} s"
                        f" (limit {TIMEOUT_S} s + {MARGIN_S} s)"
                    )
            elif not (400 <= response.status_code < 500 or response.status_code == 200):
                problems.append(f"{case.name}: answered {response.status_code}: {text[:200]}")
        del run
    after = _hashes(lake, home, scratch)
    changed = sorted(
        os.path.relpath(p, tmp_path)
        for p in set(before) | set(after)
        if before.get(p) != after.get(p)
    )
    refused_by_duckdb = sum(
        n for key, n in outcomes.items() if key.split(" ", 1)[1].endswith("Exception")
    )
    ok = sum(n for key, n in outcomes.items() if key.startswith("200"))

    result = Result(
        "T8",
        "SQL injection and DuckDB escapes",
        load=f"{scale.runs} run(s), statement pre-check off",
        faults="-",
        inputs=f"{len(base)} escape statements + {scale.pick(20, 400)} seeded variants per "
        f"run ({cases_run} requests)",
        errors_5xx=errors_5xx,
        figures={
            "refused by DuckDB's lockdown": str(refused_by_duckdb),
            "answered (neutral)": f"{ok} ({', '.join(sorted(answered))})",
            "runaway stopped after": spread(runaway_s, " s"),
            "files hashed": f"{len(before)} (changed {len(changed)})",
        },
    )
    result.check(not changed, f"files created, removed or modified: {changed[:5]}")
    for problem in problems[:10]:
        result.check(False, problem)
    result.check(len(problems) <= 10, f"... and {len(problems) - 10} more problems")
    result.check(len(base) >= 60, f"only {len(base)} escape statements")
    result.check(
        refused_by_duckdb > 0, "nothing was refused by DuckDB itself: the pre-check was not off"
    )
    record(result)
