"""The dashboard in a real browser: Debian's headless Chromium, driven by playwright-core
(services/query/dashboard/tests/dashboard_browser.mjs), against the real query service
(werkzeug, in a thread) over real Delta tables written here.

It checks what a person would: the numbers shown are the API's (and the API's are the
rows written here), rows written after the page loaded show within two refresh
intervals, nothing fails or logs an error, nothing but 127.0.0.1 is even asked for, and
an attacker's sword_type is shown as text. A screenshot is kept (its path is printed):
$QUESTLOG_TEST_ARTIFACTS/dashboard.png, default var/test-artifacts/dashboard.png.

Needs `make setup` (npm ci, the dashboard build, /usr/bin/chromium); fails, never skips,
without them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import threading
import time
import types
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from werkzeug.serving import make_server

from questlog_query import create_app
from questlog_query.api.dashboard import BUILT
from questlog_query.catalog import catalog

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "services" / "query" / "dashboard"
SCRIPT = DASHBOARD / "tests" / "dashboard_browser.mjs"
CHROMIUM = Path("/usr/bin/chromium")
REFRESH_S = 2  # the page's default interval
XSS = "<img src=x onerror=alert(1)>"


def require_setup() -> None:
    problems = []
    if shutil.which("node") is None:
        problems.append("node is not on the PATH")
    if not (DASHBOARD / "node_modules" / "playwright-core" / "package.json").is_file():
        problems.append(f"{DASHBOARD / 'node_modules'} has no playwright-core (npm ci)")
    if not (BUILT / "manifest.json").is_file():
        problems.append(f"the dashboard is not built into {BUILT}")
    if not CHROMIUM.is_file():
        problems.append(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    if problems:
        pytest.fail("the dashboard's browser test needs `make setup`: " + "; ".join(problems))


def artifact_path(name: str = "dashboard.png") -> Path:
    folder = Path(os.environ.get("QUESTLOG_TEST_ARTIFACTS", REPO / "var" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def recent(gen, event_type: str, n: int, seed: int, minutes: int = 50) -> list[dict]:
    """Rows of ``event_type`` received within the last ``minutes`` (so the per-minute chart
    has data), made by the same generator the API tests use."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows = gen.make(event_type, n, seed=seed)
    for row in rows:
        at = now - timedelta(seconds=rng.uniform(0, minutes * 60))
        row.update(received_at=at, event_time=at - timedelta(seconds=1), event_date=at.date())
    return rows


def quarantine_rows(reasons: list[str]) -> pa.Table:
    now = datetime.now(UTC)
    rows = [
        {
            "raw_value": f'{{"bad": {i}}}',
            "raw_truncated": False,
            "reason": reason,
            "topic": "events",
            "kafka_partition": 0,
            "kafka_offset": i,
            "kafka_timestamp": now,
            "seen_at": now,
            "seen_date": now.date(),
        }
        for i, reason in enumerate(reasons)
    ]
    return pa.Table.from_pylist(rows, schema=catalog()["quarantine"].schema)


def write_quarantine(lake: Path, reasons: list[str]) -> None:
    write_deltalake(
        (lake / "tables" / "quarantine").as_uri(),
        quarantine_rows(reasons),
        partition_by=["seen_date"],
        mode="append",
    )


class Service:
    """The real query service on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Service:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())


class Browser:
    """The node driver: JSON lines out, commands in."""

    def __init__(self, url: str, screenshot: Path) -> None:
        env = {
            **os.environ,
            "DASHBOARD_URL": url,
            "CHROMIUM": str(CHROMIUM),
            "DASHBOARD_SCREENSHOT": str(screenshot),
            "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
        }
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT)],
            cwd=DASHBOARD,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.cond = threading.Condition()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append("")  # EOF
            self.cond.notify_all()

    def next(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.lines:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the browser driver said nothing in {timeout} s")
                self.cond.wait(left)
            line = self.lines.pop(0)
        if not line:
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise AssertionError(f"the browser driver exited {self.proc.wait(10)}: {err[-3000:]}")
        msg = json.loads(line)
        if msg["event"] == "fatal":
            raise AssertionError(f"the browser driver failed: {msg['error']}")
        return msg

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def api_numbers(service: Service | str) -> dict[str, dict]:
    if isinstance(service, str):
        base = service
        service = types.SimpleNamespace(get=lambda path: get_json(base + path))
    tables = service.get("/v1/tables")["tables"]
    swords = service.get("/v1/stats/counts?event_type=purchase_sword&group_by=sword_type&limit=10")[
        "rows"
    ]
    guilds = service.get("/v1/kpis/guilds?limit=10")["rows"]
    quarantine = service.get("/v1/stats/counts?event_type=quarantine&group_by=reason&limit=20")[
        "rows"
    ]
    return {
        "tables": {t["name"]: t["rows"] for t in tables},
        "swords": {r["sword_type"]: r["count"] for r in swords},
        "guilds": {r["guild_id"]: r["members"] for r in guilds},
        "quarantine": {r["reason"]: r["count"] for r in quarantine},
    }


def test_dashboard_in_chromium_shows_the_api_numbers_live_and_offline(lake_dir, gen):
    require_setup()
    purchases = recent(gen, "purchase_sword", 300, seed=11)
    purchases[7]["sword_type"] = XSS  # event fields are attacker-controlled
    newest = datetime.now(UTC)  # the newest row: in "Recent events" too
    purchases[7].update(received_at=newest, event_date=newest.date())
    joins = recent(gen, "join_guild", 120, seed=12)
    # a type the page names nowhere: its table, chart line and recent rows come by themselves
    levels = recent(gen, "level_up", 60, seed=15)
    levels[3].update(received_at=newest - timedelta(milliseconds=1), event_date=newest.date())
    gen.write(lake_dir, "purchase_sword", purchases)
    gen.write(lake_dir, "join_guild", joins)
    gen.write(lake_dir, "level_up", levels)
    write_quarantine(lake_dir, ["invalid_json"] * 3 + ["schema_violation"] * 5)

    app = create_app(gen.settings(lake_dir))
    screenshot = artifact_path()
    screenshot.unlink(missing_ok=True)
    with Service(app) as service:
        browser = Browser(service.url, screenshot)
        try:
            loaded = browser.next(timeout=90)
            # the page: reached through / (redirect), with the strict headers
            assert loaded["url"] == f"{service.url}/dashboard"
            assert loaded["status"] == 200
            assert "connect-src 'self'" in loaded["headers"]["content-security-policy"]
            first = api_numbers(service)
            # the API answers the rows written here (so the comparison below is not circular)
            assert first["tables"] == {
                "purchase_sword": 300,
                "join_guild": 120,
                "level_up": 60,
                "quarantine": 8,
            }
            by_sword = Counter(r["sword_type"] for r in purchases)
            assert first["swords"] == dict(by_sword)
            assert first["quarantine"] == {"invalid_json": 3, "schema_violation": 5}
            shown = loaded["numbers"]
            assert loaded["page"]["state"] == "ok", loaded["page"]
            assert loaded["page"]["banner"] is None
            status = loaded["page"]["status"]
            assert status.startswith("updated at ")
            assert f"(every {REFRESH_S} s)" in status
            assert "as_of join_guild v0, level_up v0, purchase_sword v0, quarantine v0" in status
            newest_first = [row[0] for row in loaded["page"]["recent"]]
            assert len(newest_first) == 15
            assert newest_first == sorted(newest_first, reverse=True)
            for section in ("tables", "swords", "guilds", "quarantine"):
                assert shown[section] == first[section], section
            # the per-minute chart holds every row written (all within its hour)
            assert loaded["numbers"]["perMinute"] == {
                "purchase_sword": 300,
                "join_guild": 120,
                "level_up": 60,
            }
            level = levels[3]
            assert loaded["page"]["recent"][1][1] == "level_up"
            assert (
                f"from_level={level['from_level']}  to_level={level['to_level']}  "
                f"seconds_played=" in loaded["page"]["recent"][1][4]
            )
            # extractor metrics are not configured here: the page says "unknown"
            assert loaded["page"]["pipeline"]["offsets-behind"] == "unknown"
            assert loaded["page"]["pipeline"]["extractor-state"].startswith("unknown")
            # the attacker's sword_type is text in a cell, never an element
            assert [XSS, "1"] in loaded["page"]["swords"]
            assert f"sword_type={XSS}" in loaded["page"]["recent"][0][4]
            assert loaded["page"]["images"] == 0

            # more rows after the page loaded: shown within two refresh intervals
            gen.write(
                lake_dir, "purchase_sword", recent(gen, "purchase_sword", 40, seed=13, minutes=1)
            )
            gen.write(lake_dir, "join_guild", recent(gen, "join_guild", 15, seed=14, minutes=1))
            gen.write(lake_dir, "level_up", recent(gen, "level_up", 10, seed=16, minutes=1))
            write_quarantine(lake_dir, ["too_large"] * 2 + ["invalid_json"])
            written = time.monotonic()
            second = api_numbers(service)
            assert second["tables"] == {
                "purchase_sword": 340,
                "join_guild": 135,
                "level_up": 70,
                "quarantine": 11,
            }
            assert second["quarantine"] == {
                "invalid_json": 4,
                "schema_violation": 5,
                "too_large": 2,
            }
            budget = 2 * REFRESH_S
            # the chart's call may answer after the tables' in the same refresh: wait for both
            expect = {
                **second,
                "perMinute": {"purchase_sword": 340, "join_guild": 135, "level_up": 70},
            }
            browser.send(
                cmd="wait_for",
                expect=expect,
                timeout_ms=int((budget - (time.monotonic() - written)) * 1000),
            )
            updated = browser.next(timeout=budget + 30)
            took = time.monotonic() - written
            assert updated["event"] == "matched", (
                f"after {took:.1f} s the page shows {updated['numbers']}, the API {second}"
            )
            print(
                f"new rows shown {took:.2f} s after they were committed "
                f"(refresh every {REFRESH_S} s)"
            )
            assert updated["numbers"]["rates"]["purchase_sword"] > 0  # the rows/s column
            assert updated["page"]["state"] == "ok"
            assert updated["numbers"]["perMinute"] == {
                "purchase_sword": 340,
                "join_guild": 135,
                "level_up": 70,
            }

            # a failing call: a banner naming it, the last numbers kept, never a blank page
            browser.send(cmd="break_call", path="/v1/kpis/guilds", timeout_ms=4 * REFRESH_S * 1000)
            broken = browser.next(timeout=8 * REFRESH_S + 30)
            banner = broken["failing"]["banner"]
            assert "GET /v1/kpis/guilds?limit=10: 503 lake_unavailable" in banner
            assert broken["failing"]["state"] == "error"
            assert broken["failing_numbers"]["guilds"] == second["guilds"]
            assert broken["failing_numbers"]["tables"] == second["tables"]
            assert broken["healed"]["banner"] is None
            assert broken["healed"]["state"] == "ok"
            assert broken["bad_responses"]
            assert all("/v1/kpis/guilds" in r for r in broken["bad_responses"])
            assert all("503" in text for text in broken["console_errors"])

            browser.send(cmd="finish")
            done = browser.next(timeout=60)
        finally:
            browser.close()
    seen = done["seen"]
    assert seen["consoleErrors"] == []
    assert seen["pageErrors"] == []
    assert seen["failedRequests"] == []
    assert seen["badResponses"] == []
    assert seen["dialogs"] == []  # no alert(1): the XSS payload never ran
    # offline: nothing but the service was asked for, not even a font or a map file
    assert seen["otherHosts"] == []
    assert seen["requestHosts"] == [service.url.removeprefix("http://")]
    # and the blocker that would have caught it works
    assert done["blocker"]["navigation_failed"] is True
    assert done["blocker"]["recorded"] == ["http://dashboard-test.invalid/"]
    assert screenshot.stat().st_size > 10_000
    print(f"dashboard screenshot: {screenshot}")


def post_events(api: str, events: list[dict]) -> None:
    request = urllib.request.Request(
        f"{api}/v1/events",
        data=json.dumps(events).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202


def wait_for_api(base: str, want: dict[str, int], timeout: float = 180) -> dict[str, dict]:
    """Until the query service answers ``want`` table totals (the extractor's latency)."""
    deadline = time.monotonic() + timeout
    while True:
        got = api_numbers(base)
        if all(got["tables"].get(name) == n for name, n in want.items()):
            return got
        assert time.monotonic() < deadline, f"the lake never reached {want}: {got['tables']}"
        time.sleep(1)


def purchases(n: int, offset: int, swords=("katana", "dagger", "rapier", XSS)) -> list[dict]:
    return [
        {
            "event_type": "purchase_sword",
            "player_id": f"dash-p{(offset + i) % 7}",
            "properties": {
                "sword_type": swords[(offset + i) % len(swords)],
                "price": 4.99,
                "currency": "USD",
            },
        }
        for i in range(n)
    ]


def joins(n: int, offset: int) -> list[dict]:
    return [
        {
            "event_type": "join_guild",
            "player_id": f"dash-p{(offset + i) % 9}",
            "properties": {"guild_id": f"g-{(offset + i) % 3}", "guild_name": "Wolves"},
        }
        for i in range(n)
    ]


@pytest.mark.e2e
@pytest.mark.slow
def test_dashboard_on_the_real_stack(tmp_path):
    """The whole path: events posted to the API, Kafka, the Spark extractor, Delta, the
    query service under gunicorn, the page in Chromium; a raw record the extractor
    quarantines reaches the quarantine panel, and the extractor's lag is a number."""
    require_setup()
    from kafka import KafkaProducer

    from questlog_embedded.stack import Stack

    screenshot = artifact_path("dashboard-stack.png")
    screenshot.unlink(missing_ok=True)
    with Stack(tmp_path / "stack") as stack:
        post_events(stack.api, purchases(24, 0) + joins(9, 0))
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{stack.ports['KAFKA']}", acks="all")
        producer.send("events", b'{"not": "an event"').get(timeout=30)
        producer.close()
        first = wait_for_api(stack.query, {"purchase_sword": 24, "join_guild": 9, "quarantine": 1})
        assert first["swords"] == {"katana": 6, "dagger": 6, "rapier": 6, XSS: 6}
        browser = Browser(stack.query, screenshot)
        try:
            loaded = browser.next(timeout=90)
            assert loaded["page"]["state"] == "ok", loaded["page"]
            for section in ("tables", "swords", "guilds", "quarantine"):
                assert loaded["numbers"][section] == first[section], section
            lag = loaded["page"]["pipeline"]["offsets-behind"]
            assert lag.replace(",", "").isdigit(), f"extractor lag shown as {lag!r}"

            post_events(stack.api, purchases(12, 24) + joins(6, 9))
            second = wait_for_api(stack.query, {"purchase_sword": 36, "join_guild": 15})
            seen_by_api = time.monotonic()
            browser.send(cmd="wait_for", expect=second, timeout_ms=2 * REFRESH_S * 1000)
            updated = browser.next(timeout=2 * REFRESH_S + 30)
            assert updated["event"] == "matched", (updated["numbers"], second)
            print(
                f"stack: page caught up {time.monotonic() - seen_by_api:.2f} s after the "
                "API showed the new rows"
            )
            browser.send(cmd="finish")
            done = browser.next(timeout=60)
        finally:
            browser.close()
    seen = done["seen"]
    assert seen["consoleErrors"] == []
    assert seen["pageErrors"] == []
    assert seen["failedRequests"] == []
    assert seen["badResponses"] == []
    assert seen["dialogs"] == []
    assert seen["otherHosts"] == []
    print(f"dashboard screenshot (stack): {screenshot}")
