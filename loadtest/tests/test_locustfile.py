"""The Locust player model, run by Locust itself (a subprocess: locust patches the process
with gevent) against the real event API served in-process on the in-memory sink: every
event type the players send is accepted, and a player's levels climb one event at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from questlog_api import MemorySink, Settings, create_app
from questlog_loadtest import ledger
from questlog_schemas import load_registry

pytestmark = pytest.mark.slow  # a few seconds of real load
REPO = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).parent / "locust"


@pytest.fixture
def api():
    sink = MemorySink()
    app = create_app(Settings(sink="memory", ip_hash_key=b"locustfile-test-ip-key-0123"), sink=sink)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", sink
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_players_send_every_kind_of_event_and_level_up_in_order(api, tmp_path):
    url, sink = api
    ledger_file = tmp_path / "ledger.jsonl"
    env = dict(
        os.environ,
        QUESTLOG_LOAD_LEDGER=str(ledger_file),
        QUESTLOG_LOAD_RUN_ID="lf",
        QUESTLOG_LOAD_WAIT_MIN="0.01",
        QUESTLOG_LOAD_WAIT_MAX="0.05",
        QUESTLOG_LOAD_MAX_P95_MS="5000",
    )
    proc = subprocess.run(
        [
            str(LOCUST),
            "-f",
            "loadtest/locustfile.py",
            "--headless",
            "-H",
            url,
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "6s",
            "--stop-timeout",
            "5",
            "--only-summary",
            "Player",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "LOAD PASSED" in proc.stdout

    registry = load_registry()
    events = sink.events
    assert [registry.validate(e) for e in events] == [[]] * len(events)
    by_type = defaultdict(list)
    for e in events:
        by_type[e["event_type"]].append(e)
    assert {"purchase_sword", "join_guild", "level_up"} <= set(by_type)

    climbs = defaultdict(list)  # each player's level_ups, in the order the API took them
    for e in by_type["level_up"]:
        climbs[e["player_id"]].append(e["properties"])
    for player, steps in climbs.items():
        assert steps[0]["from_level"] == 1, player
        assert all(a["to_level"] == b["from_level"] for a, b in pairwise(steps)), steps
        assert all(s["seconds_played"] >= 0 for s in steps)
    assert sum(len(steps) for steps in climbs.values()) >= 5

    accepted = {
        r["id"]
        for r in ledger.read([ledger_file])
        if r["type"] == "level_up" and r["status"] == 202
    }
    assert accepted == {e["event_id"] for e in by_type["level_up"]}
    assert json.loads(ledger_file.read_text().splitlines()[0])["run"] == "lf"
