"""The extractor as the kill and disk-full scenarios (T3, T13) drive it: real driver
processes (``python -m questlog_extractor``, Python driver + JVM in one process group),
a steady producer, and the counts that decide "exactly once".

Usage::

    producer = Producer(kafka.bootstrap, topic, seed=17).start()
    driver = Driver(extractor_env(kafka.bootstrap, topic, lake), tmp / "x.log").start()
    batch = driver.wait_for_pause(timeout_s=120)    # with TEST_PAUSE_VARIABLE set
    driver.kill()                                   # SIGKILL to the whole group
    producer.stop()
    sql = sql_counts(lake, TABLES)                  # through the query service
    delta = delta_counts(lake, TABLES)              # independently, with deltalake
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlparse

from questlog_schemas import lake as layout

TABLES = ("purchase_sword", "join_guild")
QUARANTINE = "quarantine"
# job.TEST_PAUSE_VARIABLE: the test-only pause point of the writer
PAUSE_VARIABLE = "QUESTLOG_EXTRACTOR_TEST_PAUSE_AT"
PAUSE_LINE = re.compile(r"test pause at (?P<point>[a-z-]+) batch (?P<batch>\d+)")
SKIPPED = "batch already committed, skipped"
SKIP_METRIC = "questlog_extractor_replayed_writes_skipped_total"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_topic(kafka, partitions: int = 3) -> str:
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    kafka.create_topic(name, partitions=partitions)
    return name


def extractor_env(
    bootstrap: str,
    topic: str,
    lake: Path,
    *,
    max_offsets: int = 2000,
    trigger_seconds: int = 1,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    from questlog_embedded.spark import spark_jars

    return {
        **os.environ,
        "QUESTLOG_EXTRACTOR_KAFKA_BOOTSTRAP": bootstrap,
        "QUESTLOG_EXTRACTOR_TOPIC": topic,
        "QUESTLOG_EXTRACTOR_LAKE_ROOT": lake.as_uri(),
        "QUESTLOG_EXTRACTOR_SPARK_JARS": spark_jars(),
        "QUESTLOG_EXTRACTOR_MAX_OFFSETS_PER_TRIGGER": str(max_offsets),
        "QUESTLOG_EXTRACTOR_TRIGGER_SECONDS": str(trigger_seconds),
        "QUESTLOG_EXTRACTOR_METRICS_PORT": "0",
        **(extra or {}),
    }


class DriverFailed(AssertionError):
    """The driver exited or stayed silent where the scenario needed it to go on."""


class Driver:
    """One extractor driver process in its own session: a SIGKILL to the group takes the
    Python driver and its JVM together, as an OOM kill or a node loss would."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.env, self.log, self.args = env, log, args
        self.proc: subprocess.Popen | None = None
        self.metrics_port = int(env.get("QUESTLOG_EXTRACTOR_METRICS_PORT", "0"))

    def start(self) -> Driver:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "questlog_extractor", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, n: int = 3000) -> str:
        return f"\n--- {self.log} (tail) ---\n{self.text()[-n:]}"

    def records(self) -> list[dict]:
        """The driver's own JSON log lines (Spark's and py4j's plain lines left out)."""
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def skipped(self) -> list[tuple[str, int]]:
        """(table, batch id) of each write this driver skipped as already committed."""
        return [(r["table"], r["batch_id"]) for r in self.records() if r.get("msg") == SKIPPED]

    def wait_for_pause(self, timeout_s: float) -> tuple[str, int]:
        """Until the writer reports its test pause: (point, batch id)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = PAUSE_LINE.search(self.text())
            if found:
                return found["point"], int(found["batch"])
            if self.poll() is not None:
                raise DriverFailed(
                    f"driver exited ({self.poll()}) before its test pause" + self.tail()
                )
            time.sleep(0.2)
        raise DriverFailed(f"no test pause within {timeout_s:.0f} s" + self.tail())

    def metric(self, name: str) -> float:
        """Sum of a metric's samples on the driver's /metrics (its METRICS_PORT)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            body = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        )

    def kill(self) -> None:
        """SIGKILL the whole process group and reap the driver."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise DriverFailed(
                f"driver did not exit within {timeout_s:.0f} s" + self.tail()
            ) from None


class Supervisor:
    """Restarts the driver whenever it exits, like honcho or a pod's restartPolicy; each
    life logs to its own file."""

    def __init__(self, env: dict[str, str], folder: Path, backoff_s: float = 1.0) -> None:
        self.env, self.folder, self.backoff_s = env, folder, backoff_s
        self.lives: list[Driver] = []
        self.exits: list[tuple[float, int]] = []  # (monotonic time, exit code)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            driver = Driver(self.env, self.folder / f"extractor-{len(self.lives)}.log").start()
            self.lives.append(driver)
            while driver.poll() is None and not self._stop.is_set():
                time.sleep(0.2)
            if (code := driver.poll()) is not None:
                self.exits.append((time.monotonic(), code))
                self._stop.wait(self.backoff_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for driver in self.lives:
            if driver.poll() is None:
                driver.kill()

    def text(self) -> str:
        return "".join(d.text() for d in self.lives)


def make_event(rng: random.Random, i: int, tag: str) -> dict:
    """A schema-valid event, alternating the two types (every batch holds both)."""
    player = f"{tag}-player-{i % 23}"
    if i % 2 == 0:
        event_type = "purchase_sword"
        properties = {
            "sword_type": rng.choice(("longsword", "katana", "rapier")),
            "price": round(rng.uniform(1, 50), 2),
            "currency": "EUR",
            "quantity": 1,
        }
    else:
        event_type = "join_guild"
        properties = {"guild_id": rng.choice(("g-dragons", "g-wolves")), "role": "member"}
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": event_type,
        "event_time": now,
        "received_at": now,
        "player_id": player,
        "session_id": f"s-{i % 7}",
        "properties": properties,
        "context": {"host": f"{player}.example.net", "user_agent": "chaos/1.0"},
        "schema_version": 1,
    }


class Producer:
    """Sends ``chunk`` events every ``every_s`` (acks=all, idempotent) until stopped; a
    few are sent again, as a client retrying after a lost answer would. ``accepted``: the
    distinct event ids Kafka acknowledged."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        seed: int,
        tag: str = "chaos",
        chunk: int = 200,
        every_s: float = 0.5,
        resend: float = 0.02,
        limit: int | None = None,
    ) -> None:
        self.bootstrap, self.topic, self.tag = bootstrap, topic, tag
        self.chunk, self.every_s, self.resend, self.limit = chunk, every_s, resend, limit
        self.rng = random.Random(seed)
        self.accepted: set[str] = set()
        self.sent = 0  # records acknowledged, resends included
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def _run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        try:
            i = 0
            while not self._stop.is_set() and (self.limit is None or i < self.limit):
                events = [make_event(self.rng, n, self.tag) for n in range(i, i + self.chunk)]
                i += self.chunk
                again = self.rng.sample(events, int(len(events) * self.resend))
                futures = [
                    (
                        e["event_id"],
                        producer.send(
                            self.topic, key=e["player_id"].encode(), value=json.dumps(e).encode()
                        ),
                    )
                    for e in events + again
                ]
                producer.flush(timeout=30)
                for event_id, future in futures:
                    try:
                        future.get(timeout=0)
                    except Exception as exc:  # counted, never dropped silently
                        self.errors.append(repr(exc))
                        continue
                    self.accepted.add(event_id)
                    self.sent += 1
                self._stop.wait(self.every_s)
        finally:
            producer.close(timeout=10)

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        assert not self._thread.is_alive(), "the producer did not stop"

    def wait_done(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)
        assert not self._thread.is_alive(), f"the producer did not finish in {timeout_s} s"


@dataclass
class Counts:
    rows: int
    distinct: int

    @property
    def duplicates(self) -> int:
        return self.rows - self.distinct


def sql_counts(lake: Path, tables: tuple[str, ...] = TABLES) -> Counts:
    """count(*) and count(distinct event_id) over the tables, asked through the query
    service's POST /v1/sql (its app in this process, a read token of its own)."""
    from questlog_query import create_app
    from questlog_query.settings import Settings

    token = secrets.token_urlsafe(16)
    client = create_app(
        Settings(lake_root=lake.as_uri(), read_token=token, snapshot_ttl_s=0)
    ).test_client()
    union = " UNION ALL ".join(f"SELECT event_id FROM {t}" for t in tables)
    response = client.post(
        "/v1/sql",
        headers={"Authorization": f"Bearer {token}"},
        json={"sql": f"SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM ({union}) AS e"},
    )
    body = response.get_json()
    assert response.status_code == 200, body
    row = body["rows"][0]
    return Counts(row["n"], row["d"])


def check_exactly_once(
    result, sql: Counts, delta: Counts, stored: set[str], accepted: set[str]
) -> None:
    """Stored = accepted, each once, by SQL through the query service and by deltalake."""
    result.check(
        sql.rows == sql.distinct == len(accepted),
        f"SQL count(*) {sql.rows} / count(distinct) {sql.distinct} != accepted {len(accepted)}",
    )
    result.check(
        delta.rows == delta.distinct == len(accepted),
        f"deltalake count {delta.rows} / distinct {delta.distinct} != accepted {len(accepted)}",
    )
    result.check(stored <= accepted, f"{len(stored - accepted)} stored ids never accepted")


def table_uri(lake: Path, table: str) -> str:
    return layout.table_uri(lake.as_uri(), table)


def event_ids(lake: Path, tables: tuple[str, ...] = TABLES) -> list[str]:
    """Every event_id of the tables' committed snapshots (deltalake, no query service)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    ids: list[str] = []
    for table in tables:
        try:
            ids += cast(
                "list[str]",
                DeltaTable(table_uri(lake, table))
                .to_pyarrow_table(columns=["event_id"])
                .column("event_id")
                .to_pylist(),
            )  # event_id is never null
        except TableNotFoundError:
            continue
    return ids


def delta_counts(lake: Path, tables: tuple[str, ...] = TABLES) -> Counts:
    ids = event_ids(lake, tables)
    return Counts(len(ids), len(set(ids)))


def versions(lake: Path, tables: tuple[str, ...] = TABLES) -> dict[str, int]:
    """Each table's latest version (-1 before its first commit)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    out = {}
    for table in tables:
        try:
            out[table] = DeltaTable(table_uri(lake, table)).version()
        except TableNotFoundError:
            out[table] = -1
    return out


def every_version_reads(lake: Path, table: str) -> int:
    """Load each version's snapshot and count its rows (reads every file it names);
    raises on the first version that does not load. Returns how many were checked."""
    from deltalake import DeltaTable

    latest = DeltaTable(table_uri(lake, table)).version()
    for version in range(latest + 1):
        DeltaTable(table_uri(lake, table), version=version).to_pyarrow_dataset().count_rows()
    return latest + 1


@dataclass
class Naive:
    rows: int
    files: int
    orphans: int  # Parquet files no committed snapshot names
    unreadable: int


def uri_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def naive_count(lake: Path, tables: tuple[str, ...] = TABLES) -> Naive:
    """What a directory reader would count: every Parquet file under the table folders
    (``_delta_log`` left out), orphans of killed or failed batches included."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    rows = files = orphans = unreadable = 0
    for table in tables:
        folder = Path(uri_path(table_uri(lake, table)))
        if not folder.exists():
            continue
        named = {os.path.normpath(uri_path(u)) for u in DeltaTable(folder.as_uri()).file_uris()}
        for path in folder.rglob("*.parquet"):
            if "_delta_log" in path.parts:
                continue
            files += 1
            orphans += os.path.normpath(str(path)) not in named
            try:
                rows += ds.dataset(str(path), format="parquet").count_rows()
            except (OSError, ValueError):
                unreadable += 1
    return Naive(rows, files, orphans, unreadable)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The topic's end offset per partition."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: n for tp, n in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def kafka_lag(bootstrap: str, topic: str, lake: Path, tables: tuple[str, ...] = TABLES) -> int:
    """Records between the topic's end offsets and the highest offset committed to the
    tables, summed over partitions (what the extractor has yet to store)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    ends = end_offsets(bootstrap, topic)
    done: dict[int, int] = {}
    for table in tables:
        try:
            rows = DeltaTable(table_uri(lake, table)).to_pyarrow_table(
                columns=["kafka_partition", "kafka_offset"]
            )
        except TableNotFoundError:
            continue
        for group in (
            rows.group_by("kafka_partition").aggregate([("kafka_offset", "max")]).to_pylist()
        ):
            part = group["kafka_partition"]
            done[part] = max(done.get(part, 0), group["kafka_offset_max"] + 1)
    return sum(max(0, end - done.get(part, 0)) for part, end in ends.items())
