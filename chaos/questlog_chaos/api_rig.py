"""What the API scenarios (T1 broker outage, T2 partition, T4 API kill) share: a broker of
their own, the API under gunicorn, a load of clients that retry with their event ids, a
probe of /readyz and worker memory, and the tally of what landed in Kafka.

Counting reads Kafka, not the tables: "stored once after the extractor's dedup" is the
number of distinct event ids per logical event, and the extra copies of one id are what
dedup removes (the extractor's dedup itself is proven by T3). Every logical event carries
its own key in a property (``guild_id`` / ``sword_type``), so an event stored under two
different ids (a retry that lost its id) is counted as a duplicate.

Usage::

    broker = rig_broker(request, tmp_path_factory)          # one per pytest process
    with Api(tmp_path, broker.bootstrap, topic, env) as api:
        load = Load(api.port, plan(rng, "t1", 600), clients=8, rate=120).start()
        ...faults...
        load.join(60)
    tally = Tally(load, read_topic(broker.bootstrap, topic, prefix="t1-"))
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from questlog_embedded.kafka import KafkaBroker
from questlog_embedded.process import free_port

REPO = Path(__file__).resolve().parents[2]
GUNICORN_CONF = REPO / "services" / "api" / "gunicorn.conf.py"


class ProxiedBroker(KafkaBroker):
    """A KafkaBroker with a second listener, PROXIED, advertised at ``proxy_port``: clients
    that bootstrap there reach the broker only through the proxy (metadata sends them back
    to it), while the scenario's own clients use the direct listener."""

    def __init__(self, data_dir: Path, **kwargs) -> None:
        super().__init__(data_dir, **kwargs)
        self.inner_port = free_port()
        self.proxy_port = free_port()

    @property
    def proxied_bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy_port}"

    def _write_config(self) -> Path:
        cfg = super()._write_config()
        lines = []
        for line in cfg.read_text().splitlines():
            if line.startswith("listeners="):
                line += f",PROXIED://127.0.0.1:{self.inner_port}"
            elif line.startswith("advertised.listeners="):
                line += f",PROXIED://127.0.0.1:{self.proxy_port}"
            elif line.startswith("listener.security.protocol.map="):
                line += ",PROXIED:PLAINTEXT"
            lines.append(line)
        cfg.write_text("\n".join(lines) + "\n")
        return cfg


_BROKER: list[ProxiedBroker] = []


def rig_broker(request, tmp_path_factory) -> ProxiedBroker:
    """One broker for the API scenarios of this pytest process (started once, stopped at
    the end). Never the session ``kafka`` fixture: T1 kills and freezes this one."""
    if _BROKER and _BROKER[0].running():
        return _BROKER[0]
    if _BROKER:  # a scenario left it dead: start it again on the same ports and data
        _BROKER[0].start()
        return _BROKER[0]
    broker = ProxiedBroker(tmp_path_factory.mktemp("chaos-api-kafka"), default_partitions=3)
    broker.start()
    _BROKER.append(broker)
    request.config.add_cleanup(broker.stop)
    return broker


def new_topic(broker: KafkaBroker, prefix: str, partitions: int = 3) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    broker.create_topic(name, partitions=partitions)
    return name


class Api:
    """The API as deployed (gunicorn, gthread workers, the confluent sink) on a free port."""

    def __init__(
        self,
        workdir: Path,
        bootstrap: str,
        topic: str,
        env: dict[str, str],
        workers: int = 2,
        threads: int = 8,
        produce_timeout_s: float = 2.5,
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.workers = workers
        self.log_path = self.workdir / "gunicorn.log"
        self.env = {
            **os.environ,
            **env,
            "QUESTLOG_API_BIND": f"127.0.0.1:{self.port}",
            "QUESTLOG_API_WORKERS": str(workers),
            "QUESTLOG_API_THREADS": str(threads),
            "QUESTLOG_API_KAFKA_BOOTSTRAP": bootstrap,
            "QUESTLOG_API_TOPIC": topic,
            "QUESTLOG_API_SINK": "confluent",
            "QUESTLOG_API_PRODUCE_TIMEOUT_S": str(produce_timeout_s),
            "QUESTLOG_API_IP_HASH_KEY": "chaos-api-ip-hash-key-0123",
            "QUESTLOG_API_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics"),
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> Api:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    str(GUNICORN_CONF),
                    "questlog_api:create_app()",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}:\n{self.tail()}")
            with open(self.log_path, errors="replace") as f:
                f.seek(offset)
                if f.read().count("worker ready") >= self.workers:
                    return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"gunicorn not ready within {timeout_s} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def worker_pids(self) -> list[int]:
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            return [child.pid for child in psutil.Process(self.proc.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def worker_rss_mb(self) -> float:
        """Largest resident set of the workers now, in MiB."""
        import psutil

        sizes = []
        for pid in self.worker_pids():
            try:
                sizes.append(psutil.Process(pid).memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        return max(sizes, default=0.0)

    def terminate(self, timeout_s: float = 40.0) -> int:
        """SIGTERM to the master: workers finish their requests, flush, exit."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Api:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---- load ------------------------------------------------------------------------------

ROUTES = ("get_header", "get_param", "post")


@dataclass
class Unit:
    """One request's worth of logical events (a batch for ``post``, else one)."""

    route: str
    keys: list[str]
    ids: list[str]


def plan(rng: random.Random, tag: str, events: int, routes=ROUTES, batch: int = 1) -> list[Unit]:
    """``events`` logical events, each with its own key and client id (from ``rng``)."""
    units, n = [], 0
    while n < events:
        route = rng.choice(routes)
        size = min(batch if route == "post" else 1, events - n)
        keys = [f"{tag}-{n + i:06d}" for i in range(size)]
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(size)]
        units.append(Unit(route, keys, ids))
        n += size
    return units


@dataclass
class Attempt:
    unit: int
    t0: float
    t1: float
    status: int  # 0: no HTTP answer (connection refused / reset / timeout)
    persistence: str | None = None
    problem: str | None = None  # a refusal not in the documented shape


@dataclass
class Load:
    """Clients that send every unit until it is acknowledged (2xx), retrying with the same
    ids after a 503 (waiting Retry-After) or a connection failure, until ``give_up_s``."""

    port: int
    units: list[Unit]
    clients: int = 8
    rate: float = 100.0  # units started per second, all clients together
    give_up_s: float = 120.0
    attempts: list[Attempt] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    started: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.t_start = 0.0

    def start(self) -> Load:
        self.t_start = time.monotonic()
        for c in range(self.clients):
            thread = threading.Thread(
                target=self._client, args=(c,), daemon=True, name=f"chaos-load-{c}"
            )
            thread.start()
            self._threads.append(thread)
        return self

    def progress(self) -> float:
        return self.started / max(1, len(self.units))

    def wait_progress(self, fraction: float, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.progress() < fraction:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"load reached {self.progress():.0%} of {fraction:.0%} in {timeout_s} s"
                )
            time.sleep(0.05)

    def join(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _client(self, c: int) -> None:
        mine = range(c, len(self.units), self.clients)
        interval = self.clients / self.rate
        give_up = self.t_start + self.give_up_s
        conn = None
        for j, index in enumerate(mine):
            delay = self.t_start + j * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self._lock:
                self.started += 1
            while time.monotonic() < give_up:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                attempt, wait = self._send(conn, index)
                with self._lock:
                    self.attempts.append(attempt)
                if attempt.status == 0:
                    conn.close()
                    conn = None
                if 200 <= attempt.status < 300:
                    with self._lock:
                        self.acked.add(index)
                    break
                if attempt.status not in (0, 503):
                    break  # not a refusal: no point retrying; counted as a problem
                time.sleep(wait)
        if conn is not None:
            conn.close()

    def _send(self, conn: http.client.HTTPConnection, index: int) -> tuple[Attempt, float]:
        unit = self.units[index]
        headers = {"Host": "chaos-api.test", "Connection": "keep-alive"}
        if unit.route == "get_header":
            method, path, body = "GET", f"/join_guild?guild_id={unit.keys[0]}", None
            headers["X-Event-Id"] = unit.ids[0]
        elif unit.route == "get_param":
            method, body = "GET", None
            path = f"/buy_a_sword?sword_type={unit.keys[0]}&event_id={unit.ids[0]}"
        else:
            method, path = "POST", "/v1/events"
            body = json.dumps(
                [
                    {
                        "event_type": "purchase_sword",
                        "event_id": event_id,
                        "player_id": "chaos-api",
                        "properties": {"sword_type": key},
                    }
                    for key, event_id in zip(unit.keys, unit.ids, strict=True)
                ]
            )
            headers["Content-Type"] = "application/json"
        t0 = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            return Attempt(index, t0, time.monotonic(), 0), 0.3
        t1 = time.monotonic()
        status = response.status
        if 200 <= status < 300:
            echoed = (
                response.getheader("X-Event-Id")
                if unit.route != "post"
                else json.loads(raw).get("event_ids", [None])[0]
            )
            problem = None if echoed == unit.ids[0] else f"2xx echoed id {echoed!r}"
            return Attempt(index, t0, t1, status, problem=problem), 0.0
        if status != 503:
            return Attempt(index, t0, t1, status, problem=f"{status} {raw[:120]!r}"), 0.0
        return self._refusal(index, unit, t0, t1, response, raw)

    @staticmethod
    def _refusal(index, unit, t0, t1, response, raw) -> tuple[Attempt, float]:
        """A 503 must carry Retry-After, the persistence and the ids (header for one)."""
        problem = None
        retry_after = response.getheader("Retry-After")
        try:
            details = json.loads(raw)["error"]["details"]
        except (ValueError, KeyError, TypeError):
            details = {}
        persistence = details.get("persistence")
        if not (retry_after and retry_after.isdigit()):
            problem = "503 without Retry-After"
        elif persistence not in ("not_persisted", "possibly_persisted"):
            problem = f"503 without persistence: {raw[:120]!r}"
        elif details.get("event_ids") != unit.ids:
            problem = "503 without the request's event ids"
        elif unit.route != "post" and response.getheader("X-Event-Id") != unit.ids[0]:
            problem = "legacy 503 without X-Event-Id"
        wait = min(float(retry_after), 2.0) if retry_after and retry_after.isdigit() else 1.0
        return Attempt(index, t0, t1, 503, persistence, problem), wait


class Monitor:
    """Polls /readyz (every ``interval_s``) and the workers' memory while a scenario runs."""

    def __init__(self, api: Api, interval_s: float = 0.25) -> None:
        self.api = api
        self.interval_s = interval_s
        self.ready: list[tuple[float, int]] = []
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos-monitor")

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=5)
                conn.request("GET", "/readyz")
                status = conn.getresponse().status
                conn.close()
            except (OSError, http.client.HTTPException):
                status = 0
            self.ready.append((t, status))
            self.peak_rss_mb = max(self.peak_rss_mb, self.api.worker_rss_mb())
            self._stop.wait(self.interval_s)

    def not_ready_within(self, start: float, end: float) -> tuple[float, float] | None:
        """(first, last) probe time answered 503 in [start, end], or None."""
        times = [t for t, status in self.ready if start <= t <= end and status == 503]
        return (times[0], times[-1]) if times else None

    def ready_after(self, t: float) -> float | None:
        return next((at for at, status in self.ready if at >= t and status == 200), None)


# ---- counting ---------------------------------------------------------------------------


def read_topic(
    bootstrap: str, topic: str, prefix: str, timeout_s: float = 60.0
) -> list[tuple[str, str]]:
    """(event_id, key) of every record of ``topic`` whose key starts with ``prefix``, read
    from the beginning to the end offsets of the moment."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        request_timeout_ms=30000,
    )
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out = []
        deadline = time.monotonic() + timeout_s
        # position() is None only when a timeout_ms given to it runs out
        while any(consumer.position(tp) < ends[tp] for tp in partitions):  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took more than {timeout_s} s")
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    event = json.loads(record.value)
                    props = event.get("properties", {})
                    key = props.get("guild_id") or props.get("sword_type") or ""
                    if key.startswith(prefix):
                        out.append((event["event_id"], key))
        return out
    finally:
        consumer.close()


class Tally:
    """What the load's ledger and Kafka's records say together."""

    def __init__(self, load: Load, records: list[tuple[str, str]]) -> None:
        self.load = load
        copies = Counter(event_id for event_id, _ in records)
        ids_by_key: dict[str, set[str]] = defaultdict(set)
        for event_id, key in records:
            ids_by_key[key].add(event_id)
        attempts_by_unit: dict[int, list[Attempt]] = defaultdict(list)
        for attempt in load.attempts:
            attempts_by_unit[attempt.unit].append(attempt)

        self.events = sum(len(unit.keys) for unit in load.units)
        self.records = len(records)
        self.lost = self.duplicates = self.wrong_id = self.unfinished = 0
        self.once = 0  # events stored under their client's id and no other
        # persistence (or "no answer") -> events refused so at least once, and stored
        self.refused_landed: Counter[str | None] = Counter()
        self.dishonest = 0  # more copies than attempts that were not "not_persisted"
        for index, unit in enumerate(load.units):
            acked = index in load.acked
            tries = attempts_by_unit[index]
            may_land = sum(1 for a in tries if a.persistence != "not_persisted")
            kinds = {
                a.persistence if a.status == 503 else "no answer"
                for a in tries
                if not 200 <= a.status < 300
            }
            if not acked:
                self.unfinished += len(unit.keys)
            for key, event_id in zip(unit.keys, unit.ids, strict=True):
                stored = ids_by_key.get(key, set())
                if acked and not stored:
                    self.lost += 1
                if len(stored) > 1:
                    self.duplicates += len(stored) - 1
                if stored - {event_id}:
                    self.wrong_id += 1
                if stored == {event_id}:
                    self.once += 1
                if stored and kinds:
                    for kind in kinds:
                        self.refused_landed[kind] += 1
                if copies.get(event_id, 0) > may_land:
                    self.dishonest += 1
        self.removed_by_dedup = sum(n - 1 for n in copies.values())
        self.statuses = Counter(a.status for a in load.attempts)
        self.persistence = Counter(a.persistence for a in load.attempts if a.status == 503)
        self.problems = Counter(a.problem for a in load.attempts if a.problem)

    def acked_within(self, start: float, end: float) -> int:
        """2xx answers to requests sent after ``start`` and answered before ``end``."""
        return sum(
            1 for a in self.load.attempts if 200 <= a.status < 300 and a.t0 > start and a.t1 < end
        )

    def refusals_within(self, start: float, end: float) -> tuple[float, float] | None:
        times = [a.t1 for a in self.load.attempts if a.status == 503 and start <= a.t1 <= end]
        return (min(times), max(times)) if times else None

    def check_common(self, result) -> None:
        """The invariants every API scenario holds."""
        result.lost = self.lost
        result.duplicates = self.duplicates
        result.errors_5xx = sum(n for status, n in self.statuses.items() if status >= 500)
        result.check(
            self.wrong_id == 0,
            f"{self.wrong_id} events stored under an id their "
            "client never sent (a retry lost its id)",
        )
        result.check(
            self.unfinished == 0,
            f"{self.unfinished} events never acknowledged before the clients gave up",
        )
        result.check(
            self.dishonest == 0,
            f"{self.dishonest} events stored more often than "
            "their answers allowed (a not_persisted 503 landed)",
        )
        result.check(
            not self.problems,
            "answers outside the contract: "
            + "; ".join(f"{n}x {p}" for p, n in self.problems.most_common(3)),
        )
        result.check(
            self.records >= self.events - self.unfinished,
            f"Kafka holds {self.records} records for {self.events} events",
        )
