"""T14 A crashed component in the embedded stack (issue #17).

`make run` supervises its processes (questlog_embedded.supervise over embedded/Procfile).
On a real Stack under a steady load, SIGKILL the extractor's JVM, then the query
service's gunicorn master, then the broker's JVM, one at a time. Each must come back on
its own while the others keep serving: the API keeps accepting into Kafka while the
extractor is down, the extractor catches up when it is back, and every accepted event is
stored exactly once. Figures: the API's availability in each fault window, the time each
component takes to come back, and the extractor's catch-up.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass

import psutil
import pytest

from questlog_chaos.report import Result, spread

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENT_TYPE = "purchase_sword"
VICTIMS = ("extractor", "query", "broker")
# Bounds for a 2-core machine shared with other test runs: there the extractor's JVM alone
# takes 30 s to minutes to start. Only a failure waits that long.
PROCESS_BACK_S = 30  # a new process for the victim (the supervisor restarts within 1-2 s)
SERVING_BACK_S = {"extractor": 420, "query": 120, "broker": 240}
CATCH_UP_S = 480  # from the SIGKILL of the extractor's JVM
START_S = 480


@dataclass(frozen=True)
class Sent:
    at: float  # monotonic time the request was sent
    phase: str
    event_id: str
    outcome: str  # "2xx", "503", "5xx" (other), "4xx", "conn" (refused, reset, timeout)


class Load:
    """Threads posting one event per request, each with its own event_id and a player id
    that names the current phase. A new connection per request: a refused connection is
    then the API's doing, never a stale keep-alive's. Every answer is kept."""

    def __init__(self, api: str, tag: str, rate: float, threads: int) -> None:
        self.host, self.port = api.removeprefix("http://").split(":")
        self.tag, self.interval, self.threads = tag, threads / rate, threads
        self.phase = "warm"
        self.sent: list[Sent] = []
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def prefix(self, phase: str) -> str:
        return f"{self.tag}-{phase}-"

    def _post(self, event: dict) -> str:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=15)
        try:
            conn.request(
                "POST", "/v1/events", json.dumps(event), {"Content-Type": "application/json"}
            )
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return "conn"
        finally:
            conn.close()
        return (
            "2xx"
            if 200 <= status < 300
            else "503"
            if status == 503
            else "5xx"
            if status >= 500
            else "4xx"
        )

    def _run(self, index: int) -> None:
        next_at = time.monotonic() + index * self.interval / self.threads
        while not self._stop.is_set():
            phase, event_id, at = self.phase, str(uuid.uuid4()), time.monotonic()
            outcome = self._post(
                {
                    "event_id": event_id,
                    "event_type": EVENT_TYPE,
                    "player_id": f"{self.prefix(phase)}{index}",
                    "properties": {"sword_type": "katana", "price": 4.99, "currency": "EUR"},
                }
            )
            self.sent.append(Sent(at, phase, event_id, outcome))
            next_at = max(next_at + self.interval, time.monotonic() - 1)
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> Load:
        for w in self._workers:
            w.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for w in self._workers:
            w.join(timeout=30)

    def accepted(self, phases: tuple[str, ...] | None = None) -> set[str]:
        return {
            s.event_id
            for s in list(self.sent)
            if s.outcome == "2xx" and (phases is None or s.phase in phases)
        }

    def window(self, start: float, end: float) -> dict[str, int]:
        counts = {"2xx": 0, "503": 0, "5xx": 0, "4xx": 0, "conn": 0}
        for s in list(self.sent):
            if start <= s.at < end:
                counts[s.outcome] += 1
        return counts


def _get_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Processes:
    """The stack's processes, found in the supervisor's process tree."""

    MARK = {
        "kafka": "questlog-kafka",
        "api": "questlog_api:create_app",
        "extractor": "questlog_extractor",
        "query": "questlog_query:create_app",
    }

    def __init__(self, stack) -> None:
        self.supervisor = psutil.Process(stack.proc.pid)

    def component(self, name: str) -> psutil.Process | None:
        """The supervisor's child for ``name`` (not the shell still waiting for the
        topic before it execs the service)."""
        for child in self.supervisor.children():
            try:
                if child.name() != "sh" and self.MARK[name] in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    def jvm(self, name: str, main_class: str = "") -> psutil.Process | None:
        parent = self.component(name)
        if parent is None:
            return None
        for child in parent.children(recursive=True):
            try:
                if child.name() == "java" and main_class in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        return None


class Scenario:
    def __init__(self, stack, load: Load, result: Result) -> None:
        self.stack, self.load, self.result = stack, load, result
        self.procs = Processes(stack)
        self.token = (stack.var / "secrets" / "query_read_token").read_text().strip()

    def stored(self, prefix: str) -> tuple[int, int] | None:
        """(rows, distinct event ids) of the players ``prefix*`` through POST /v1/sql."""
        sql = (
            "select count(*) as n, count(distinct event_id) as d from "
            f"{EVENT_TYPE} where starts_with(player_id, ?)"
        )
        req = urllib.request.Request(
            f"{self.stack.query}/v1/sql",
            json.dumps({"sql": sql, "params": [prefix]}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                row = json.loads(resp.read())["rows"][0]
        except (OSError, ValueError, KeyError, IndexError):
            return None  # the table may not exist yet, the service may be restarting
        return row["n"], row["d"]

    def wait(self, what: str, predicate, timeout: float, interval: float = 0.2):
        """Seconds until ``predicate()``; None (and a problem) after ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.stack.proc.poll() is not None:
                self.result.check(False, f"{what}: the supervisor itself exited")
                return None
            if predicate():
                return time.monotonic() - start
            time.sleep(interval)
        self.result.check(False, f"{what}: not within {timeout:.0f} s")
        return None

    def visible(self, phases: tuple[str, ...]) -> bool:
        """Every event accepted in ``phases`` is in the table (distinct ids per phase;
        in these phases the API only answered 2xx or nothing, so no phantom counts)."""
        for phase in phases:
            want = len(self.load.accepted((phase,)))
            got = self.stored(self.load.prefix(phase))
            if got is None or got[1] < want:
                return False
        return True

    def kill(self, victim: str, run: int) -> dict | None:
        """SIGKILL one component under load; when it serves again, its figures."""
        procs, stack = self.procs, self.stack
        if victim == "extractor":
            component, target = procs.component("extractor"), procs.jvm("extractor")
        elif victim == "query":
            component = target = procs.component("query")
        else:
            component, target = procs.component("kafka"), procs.jvm("kafka", "kafka.Kafka")
        if component is None or target is None:
            self.result.check(False, f"run {run}: no {victim} process to kill")
            return None
        phase = f"r{run}{victim[0]}"
        self.load.phase = phase
        killed = time.monotonic()
        target.kill()  # SIGKILL
        name = "kafka" if victim == "broker" else victim

        def restarted() -> bool:
            now = procs.component(name)
            return now is not None and now.pid != component.pid

        if (
            self.wait(
                f"run {run}: {victim} process restarted after SIGKILL", restarted, PROCESS_BACK_S
            )
            is None
        ):
            return None
        if victim == "extractor":

            def serving() -> bool:
                return _get_ok(f"http://127.0.0.1:{stack.ports['METRICS']}/metrics")
        elif victim == "query":

            def serving() -> bool:
                return _get_ok(f"{stack.query}/readyz")
        else:  # the broker serves again when the API accepts events again

            def serving() -> bool:
                return any(
                    s.outcome == "2xx" and s.at > killed + 0.5 for s in self.load.sent[-200:]
                )

        if (
            self.wait(
                f"run {run}: {victim} serving again",
                serving,
                SERVING_BACK_S[victim] - (time.monotonic() - killed),
            )
            is None
        ):
            return None
        back = time.monotonic()
        self.load.phase = f"r{run}{victim[0]}b"
        figures = {
            "back_s": back - killed,
            "window": self.load.window(killed, back),
            "phase": phase,
        }
        if victim == "extractor":  # what arrived while it was down, stored
            caught = self.wait(
                f"run {run}: extractor catch-up",
                lambda: self.visible((phase,)),
                CATCH_UP_S - (time.monotonic() - killed),
                interval=0.5,
            )
            if caught is None:
                return None
            figures["catch_up_s"] = time.monotonic() - killed
        return figures


def _share(w: dict[str, int]) -> float:
    total = sum(w.values())
    return w["2xx"] / total if total else 1.0


def _final_check(stack, load: Load, result: Result, tag: str, timeout: float = 60) -> None:
    """Exactly once, from the Delta snapshot itself (delta-rs, no query service). Read
    again for a while if an accepted event is missing: the drain counts phantoms (answered
    503 but stored) too, so it may end a little early."""
    from deltalake import DeltaTable

    accepted = load.accepted()
    deadline = time.monotonic() + timeout
    while True:
        table = DeltaTable(str(stack.var / "lake" / "tables" / EVENT_TYPE)).to_pyarrow_table(
            columns=["event_id", "player_id"]
        )
        ids = [
            e
            for e, p in zip(
                table.column("event_id").to_pylist(),
                table.column("player_id").to_pylist(),
                strict=True,
            )
            if p.startswith(tag + "-")
        ]
        stored = set(ids)
        if not accepted - stored or time.monotonic() > deadline:
            break
        time.sleep(2)
    result.lost = len(accepted - stored)
    result.duplicates = len(ids) - len(stored)
    result.figures["phantoms (stored, not acknowledged)"] = str(len(stored - accepted))


@pytest.mark.sabotage("supervisor_no_restart")
def test_a_killed_component_comes_back_and_the_others_keep_serving(
    scale, record, sabotage_env, tmp_path
):
    from questlog_embedded.stack import Stack

    rng = random.Random(scale.seed)
    rate, threads = scale.pick((50, 4), (200, 8))
    tag = f"t14{uuid.uuid4().hex[:8]}"
    result = Result("T14", "a crashed component (supervised make run)")
    per_run: list[dict[str, dict]] = []
    stack = Stack(tmp_path / "stack", extra_env=sabotage_env)
    try:
        stack.start(timeout=START_S)
        load = Load(stack.api, tag, rate, threads).start()
        scenario = Scenario(stack, load, result)
        started = time.monotonic()
        try:
            # steady state first: one micro-batch through, so the kill hits a running query
            scenario.wait(
                "warm-up: first events stored",
                lambda: (scenario.stored(load.prefix("warm")) or (0, 0))[1] > 0,
                300,
                interval=1.0,
            )
            for run in range(scale.runs):
                figures: dict[str, dict] = {}
                for victim in VICTIMS:
                    if result.problems:
                        break
                    time.sleep(rng.uniform(*scale.pick((2, 4), (5, 15))))  # serve a while
                    got = scenario.kill(victim, run)
                    if got is not None:
                        figures[victim] = got
                per_run.append(figures)
            time.sleep(2)
        finally:
            load.stop()
        elapsed = time.monotonic() - started
        if not result.problems:  # every component is back: everything accepted is stored
            every = tuple(sorted({s.phase for s in load.sent}))
            scenario.wait(
                "drain: every accepted event stored",
                lambda: scenario.visible(every),
                CATCH_UP_S,
                interval=1.0,
            )
            up = {
                "kafka": _port_open(stack.ports["KAFKA"]),
                "api": _get_ok(f"{stack.api}/readyz"),
                "extractor": _get_ok(f"http://127.0.0.1:{stack.ports['METRICS']}/metrics"),
                "query": _get_ok(f"{stack.query}/readyz"),
            }
            result.check(
                all(up.values()) and stack.proc.poll() is None,
                f"stack not fully up after the kills: {up}",
            )
            _final_check(stack, load, result, tag)
    finally:
        stack.stop()
    log = stack.log.read_text(errors="replace")

    crashes = {
        name: len(re.findall(rf"\| {name} crashed \(", log))
        for name in ("kafka", "api", "extractor", "query")
    }
    restarts = {name: len(re.findall(rf"\| {name} restarted \(pid", log)) for name in crashes}
    result.check(crashes["api"] == 0, f"the API crashed {crashes['api']} time(s)")
    for victim, name in (("extractor", "extractor"), ("query", "query"), ("broker", "kafka")):
        done = sum(victim in f for f in per_run)
        result.check(
            crashes[name] >= done and restarts[name] >= done,
            f"{name}: {done} kill(s) but {crashes[name]} crash(es) and "
            f"{restarts[name]} restart(s) logged by the supervisor",
        )

    every_sent = load.sent
    # the 5xx column counts every 5xx, as in T1 and T2: 503 refusals included
    other_5xx = sum(s.outcome == "5xx" for s in every_sent)
    result.errors_5xx = other_5xx + sum(s.outcome == "503" for s in every_sent)
    result.check(other_5xx == 0, f"{other_5xx} 5xx answers other than 503")
    for figures in per_run:
        for victim, f in figures.items():
            w = f["window"]
            result.check(
                w["conn"] == 0,
                f"{victim} down: {w['conn']} requests to the API "
                "failed to connect (the API must keep serving)",
            )
            if victim != "broker":  # the API needs only the broker to accept
                result.check(
                    _share(w) >= 0.99,
                    f"{victim} down: the API accepted only "
                    f"{_share(w):.1%} of {sum(w.values())} requests",
                )

    def values(victim: str, key: str) -> list[float]:
        return [f[victim][key] for f in per_run if victim in f and key in f[victim]]

    def shares(victim: str) -> list[float]:
        return [100 * _share(f[victim]["window"]) for f in per_run if victim in f]

    accepted = sum(s.outcome == "2xx" for s in every_sent)
    result.load = (
        f"{scale.runs} run(s) x 3 kills, {len(every_sent):,} single-event POSTs "
        f"at {rate}/s, {threads} clients, {elapsed:.0f} s"
    )
    result.faults = "SIGKILL extractor JVM, query gunicorn master, broker JVM, one at a time"
    result.inputs = f"{accepted:,} accepted"
    result.figures.update(
        {
            "extractor back": spread(values("extractor", "back_s"), " s", 1),
            "extractor caught up (from SIGKILL)": spread(
                values("extractor", "catch_up_s"), " s", 1
            ),
            "query back": spread(values("query", "back_s"), " s", 1),
            "broker back (API 2xx again)": spread(values("broker", "back_s"), " s", 1),
            "API 2xx share extractor down": spread(shares("extractor"), " %", 1),
            "query down": spread(shares("query"), " %", 1),
            "broker down": spread(shares("broker"), " %", 1),
            "503": str(sum(s.outcome == "503" for s in every_sent)),
            "connection errors": str(sum(s.outcome == "conn" for s in every_sent)),
            "crashes logged": ", ".join(f"{k} {v}" for k, v in crashes.items()),
        }
    )
    record(result)
