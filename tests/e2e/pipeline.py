"""What the end-to-end modules share: `ab`-like walkthrough traffic and the Locust
ledger run, against a `Stack` (questlog_embedded.stack) in any of its modes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from questlog_embedded import paths
from questlog_embedded.stack import Stack
from questlog_loadtest import verify

REPO = paths.REPO_ROOT
VENV_BIN = Path(sys.executable).parent
HOSTS = ("user1.comcast.com", "user2.att.com")
# the walkthrough's `ab -n 10 -H "Host: ..." http://localhost:5000/<route>` commands
WALKTHROUGH = [
    (host, route)
    for host in HOSTS
    for route in ("/purchase_a_sword", "/buy_a_sword", "/join_guild")
]
WANT_PURCHASES = {host: 20 for host in HOSTS}  # /purchase_a_sword + /buy_a_sword
WANT_GUILDS = {host: 10 for host in HOSTS}


def get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read(), dict(resp.headers)


def counts_by_host(stack: Stack, event_type: str) -> dict[str, int]:
    _, body, _ = get(f"{stack.query}/v1/stats/counts?event_type={event_type}&group_by=host")
    return {r["host"]: r["count"] for r in json.loads(body)["rows"]}


def send_walkthrough_traffic(stack: Stack) -> None:
    """The walkthrough's ab commands (10 requests per host and route), then wait until
    the query service counts them all per host (asserted)."""

    def ab(host: str, route: str) -> None:  # 10 requests, like `ab -n 10`
        for _ in range(10):
            status, body, headers = get(stack.api + route, {"Host": host})
            assert status == 200
            assert body in (b"\nSword Purchased!\n", b"\nGuild joined!\n")
            assert headers["X-Event-Id"]

    threads = [threading.Thread(target=ab, args=pair) for pair in WALKTHROUGH]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        got = (counts_by_host(stack, "purchase_sword"), counts_by_host(stack, "join_guild"))
        if got == (WANT_PURCHASES, WANT_GUILDS):
            break
        time.sleep(1)
    assert got == (WANT_PURCHASES, WANT_GUILDS)


def run_ledger(stack: Stack, tmp_path: Path) -> verify.Report:
    """A short headless Locust run whose ledger of acknowledged event ids must be stored
    exactly once (asserted); returns the verifier's report."""
    ledger = tmp_path / "ledger.jsonl"
    env = dict(
        stack.env,
        QUESTLOG_LOAD_LEDGER=str(ledger),
        QUESTLOG_LOAD_RUN_ID="e2e-run",
        QUESTLOG_LOAD_QUERY_URL=stack.query,
        QUESTLOG_LOAD_WAIT_MIN="0.05",
        QUESTLOG_LOAD_WAIT_MAX="0.3",
        # CI's 2 cores also run Kafka, Spark and both services: latency is not the
        # point here (make bench measures it), correctness is
        QUESTLOG_LOAD_MAX_P95_MS="5000",
    )
    proc = subprocess.run(
        [
            str(VENV_BIN / "locust"),
            "-f",
            "loadtest/locustfile.py",
            "--headless",
            "-H",
            stack.api,
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            "20s",
            "--stop-timeout",
            "10",
            "--only-summary",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "LOAD PASSED" in proc.stdout

    token = (stack.var / "secrets" / "query_read_token").read_text().strip()
    report = verify.verify([ledger], stack.query, wait=120, log=lambda *_: None, read_token=token)
    assert report.accepted > 200, report
    assert report.untracked_accepted == 0, report
    assert (report.lost, report.duplicated, report.phantom) == (0, 0, 0), report.samples
    # accepted events all stored (lost == 0); besides them only events in flight when
    # Locust stopped (no answer, yet stored) may be there
    assert report.accepted <= report.stored <= report.accepted + report.no_answer
    return report
