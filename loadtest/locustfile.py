"""questlog load: players with sessions, weighted tasks, and the original walkthrough's
Apache Bench clients, every event recorded in a ledger for the verifier.

Usage:
    locust -f loadtest/locustfile.py --headless -u 20 -r 10 -t 60s -H http://127.0.0.1:5000
    (make load / make load-ui wrap this; settings below come from the environment)

QUESTLOG_LOAD_LEDGER    ledger file (default var/load/ledger.jsonl)
QUESTLOG_LOAD_RUN_ID    tags this run's players and sessions (default: time-based)
QUESTLOG_LOAD_QUERY_URL query service, for the players' leaderboard reads (optional)
QUESTLOG_LOAD_MAX_FAIL_RATIO / QUESTLOG_LOAD_MAX_P95_MS   pass/fail thresholds
QUESTLOG_LOAD_WAIT_MIN / QUESTLOG_LOAD_WAIT_MAX           think time per player (seconds)
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path

from locust import FastHttpUser, between, events, task

from questlog_loadtest import payloads
from questlog_loadtest.ledger import SENT, Ledger
from questlog_schemas import load_registry

RUN_ID = os.environ.get("QUESTLOG_LOAD_RUN_ID") or f"load-{int(time.time())}"
LEDGER = Ledger(Path(os.environ.get("QUESTLOG_LOAD_LEDGER", "var/load/ledger.jsonl")), RUN_ID)
QUERY_URL = os.environ.get("QUESTLOG_LOAD_QUERY_URL", "").rstrip("/")
MAX_FAIL_RATIO = float(os.environ.get("QUESTLOG_LOAD_MAX_FAIL_RATIO", "0.01"))
MAX_P95_MS = float(os.environ.get("QUESTLOG_LOAD_MAX_P95_MS", "250"))
WAIT = (
    float(os.environ.get("QUESTLOG_LOAD_WAIT_MIN", "0.2")),
    float(os.environ.get("QUESTLOG_LOAD_WAIT_MAX", "1.0")),
)
LEGACY_HOSTS = ("user1.comcast.com", "user2.att.com")
REGISTRY = load_registry()
_players = itertools.count(1)
JSON = {"Content-Type": "application/json"}


def _post_events(user, batch: list[dict], name: str) -> None:
    for event_type in {e["event_type"] for e in batch}:
        LEDGER.record(
            [e["event_id"] for e in batch if e["event_type"] == event_type], event_type, SENT
        )
    with user.client.post(
        "/v1/events",
        data=json.dumps(batch if len(batch) > 1 else batch[0]),
        headers=JSON,
        name=name,
        catch_response=True,
    ) as resp:
        status = resp.status_code or 0
        for event_type in {e["event_type"] for e in batch}:
            LEDGER.record(
                [e["event_id"] for e in batch if e["event_type"] == event_type], event_type, status
            )
        if status == 202:
            resp.success()
        else:
            resp.failure(f"HTTP {status}")


class Player(FastHttpUser):
    """A game client: one session per user, events batched like a mobile SDK sometimes does."""

    weight = 9
    wait_time = between(*WAIT)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.player_id = f"{RUN_ID}-p{next(_players)}"
        self.session_id = f"{RUN_ID}-s{uuid.uuid4().hex[:12]}"
        self.guild = None
        self.level, self.level_since = 1, time.monotonic()

    def _event(self, event_type: str, **overrides) -> dict:
        ev = payloads.event(event_type, self.player_id, self.session_id, self.rng, REGISTRY)
        ev["properties"].update(overrides)
        return ev

    def _level_up(self) -> dict:
        """The player's next level (usually one up), after the time it played for it."""
        now = time.monotonic()
        reached = self.level + self.rng.choice((1, 1, 1, 1, 2))
        ev = self._event(
            "level_up",
            from_level=self.level,
            to_level=reached,
            seconds_played=round(now - self.level_since, 3),
        )
        self.level, self.level_since = reached, now
        return ev

    @task(4)
    def buy_sword(self) -> None:
        _post_events(self, [self._event("purchase_sword")], "POST /v1/events purchase_sword")

    @task(2)
    def join_guild(self) -> None:
        ev = self._event("join_guild")
        self.guild = ev["properties"]["guild_id"]
        _post_events(self, [ev], "POST /v1/events join_guild")

    @task(1)
    def level_up(self) -> None:
        _post_events(self, [self._level_up()], "POST /v1/events level_up")

    @task(1)
    def leave_guild(self) -> None:
        if self.guild and "leave_guild" in REGISTRY.event_types:
            ev = self._event("leave_guild", guild_id=self.guild)
            self.guild = None
            _post_events(self, [ev], "POST /v1/events leave_guild")

    @task(1)
    def offline_batch(self) -> None:
        """A phone back online sends what it queued."""
        kinds = ("purchase_sword", "join_guild", "level_up")
        batch = [
            self._level_up() if kind == "level_up" else self._event(kind)
            for kind in (self.rng.choice(kinds) for _ in range(self.rng.randint(2, 20)))
        ]
        _post_events(self, batch, "POST /v1/events batch")

    @task(2)
    def browse(self) -> None:
        """The shop's leaderboard, read from the query service when one is configured."""
        if QUERY_URL:
            self.client.get(
                f"{QUERY_URL}/v1/kpis/top-spenders?limit=10", name="GET query /v1/kpis/top-spenders"
            )


class WalkthroughClient(FastHttpUser):
    """The original walkthrough's Apache Bench traffic on the legacy GET routes."""

    weight = 1
    wait_time = between(*WAIT)

    def _get(self, path: str, event_type: str, host: str) -> None:
        # One connection per request, as `ab` without -k does. It also matters for the
        # ledger: an HTTP client may silently resend a GET whose keep-alive connection
        # the server just closed, and each GET here creates an event (a phantom).
        headers = {"Host": host, "Connection": "close"}
        with self.client.get(
            path, headers=headers, name=f"GET {path.split('?')[0]}", catch_response=True
        ) as resp:
            status = resp.status_code or 0
            LEDGER.record(
                [resp.headers.get("X-Event-Id") if resp.headers else None], event_type, status
            )
            if status == 200:
                resp.success()
            else:
                resp.failure(f"HTTP {status}")

    @task(1)
    def purchase(self) -> None:
        self._get("/purchase_a_sword", "purchase_sword", random.choice(LEGACY_HOSTS))

    @task(1)
    def purchase_with_type(self) -> None:
        self._get(
            "/purchase_sword?sword_type=katana", "purchase_sword", random.choice(LEGACY_HOSTS)
        )

    @task(1)
    def guild(self) -> None:
        self._get("/join_guild", "join_guild", random.choice(LEGACY_HOSTS))


@events.quitting.add_listener
def _thresholds(environment, **_kw) -> None:
    LEDGER.close()
    stats = environment.stats.total
    p95 = stats.get_response_time_percentile(0.95) or 0
    problems = []
    if stats.fail_ratio > MAX_FAIL_RATIO:
        problems.append(f"failure ratio {stats.fail_ratio:.2%} > {MAX_FAIL_RATIO:.2%}")
    if p95 > MAX_P95_MS:
        problems.append(f"p95 {p95:.0f} ms > {MAX_P95_MS:.0f} ms")
    if stats.num_requests == 0:
        problems.append("no request was made")
    if problems:
        print("LOAD FAILED: " + "; ".join(problems))
        environment.process_exit_code = 1
    else:
        print(
            f"LOAD PASSED: {stats.num_requests} requests, failure ratio "
            f"{stats.fail_ratio:.2%}, p95 {p95:.0f} ms (ledger {LEDGER.path})"
        )
        environment.process_exit_code = 0
