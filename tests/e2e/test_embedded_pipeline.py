"""`make run`'s stack, end to end: the same Procfile under its supervisor, on free ports in a temp
dir; the original walkthrough's Apache Bench traffic, then a short Locust load whose
ledger must show nothing lost, duplicated or invented.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from questlog_embedded.stack import Stack
from questlog_loadtest import verify

from .pipeline import get, run_ledger, send_walkthrough_traffic

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # compaction every 10 s instead of 5 minutes: it runs under the load below, whose
    # ledger check then covers it too
    s = Stack(
        tmp_path_factory.mktemp("stack"), extra_env={"QUESTLOG_EXTRACTOR_COMPACT_EVERY_S": "10"}
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_walkthrough_traffic_is_answered_per_host(stack):
    send_walkthrough_traffic(stack)

    # the notebook's question: purchases where Host = 'user1.comcast.com'
    _, body, _ = get(f"{stack.query}/v1/events/purchase_sword?host=user1.comcast.com&limit=100")
    rows = json.loads(body)["rows"]
    assert len(rows) == 20
    assert {r["host"] for r in rows} == {"user1.comcast.com"}
    assert {r["user_agent"] for r in rows} == {"Python-urllib/3.11"}
    # the ledger check of the next test counts legacy-host rows from its own window on
    time.sleep(verify.SLOWEST_ANSWER_S)


def test_locust_load_ledger_loses_and_invents_nothing(stack, tmp_path):
    run_ledger(stack, tmp_path)


def test_ctrl_c_stops_every_process_cleanly(stack):
    """Last in this module: what Ctrl-C on `make run` does, and nothing left behind."""
    stack.stop()
    log = stack.log.read_text(errors="replace")
    for name in ("kafka", "api", "query", "extractor", "compact"):
        assert f"supervisor | {name} stopped (exit code 0)" in log, log[-4000:]
    assert "supervisor | every process stopped" in log, log[-4000:]
    passes = [
        json.loads(m[1])
        for m in re.finditer(r"^\S+ compact\s+\| (\{.*\})$", log, re.M)
        if json.loads(m[1])["msg"] == "compaction pass"
    ]
    assert any(p["files_after"] < p["files_before"] for p in passes), passes
    assert "crashed" not in log, log[-4000:]
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    from questlog_embedded.process import port_open

    assert not any(port_open(port) for port in stack.ports.values())
