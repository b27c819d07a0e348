"""The lake as the poison and maintenance scenarios (T6, T11) drive it: the extractor's
stream running in this process (the session ``spark`` fixture) on a fresh topic and lake,
Kafka records produced straight to the topic with their positions, the real query service
(gunicorn) over the same lake, and a poller that counts every answer that is not a 200.

Usage::

    rig = LakeRig(kafka, spark, tmp_path, vacuum_retain_hours=0).start()
    positions = rig.produce([(b"key", b"value"), ...])   # [(partition, offset), ...]
    rig.produce_events(make_events(100, "t11"))
    rig.wait_for(lambda: rig.stored() >= 100, 120, "rows")
    with QueryService(rig.settings.lake_root, tmp_path / "q.log") as query:
        poller = Poller(query, TABLES).start(); ...; poller.stop()
    rig.stop()
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from kafka import KafkaProducer
    from pyspark.sql.streaming import StreamingQuery

TABLES = ("purchase_sword", "join_guild")
QUARANTINE = "quarantine"
SWORDS = ("longsword", "katana", "rapier", "claymore")
GUILDS = ("g-dragons", "g-wolves", "g-ravens")


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def make_events(n: int, tag: str, start: int = 0) -> list[dict]:
    """Schema-valid events ``start..start+n-1`` (purchase_sword / join_guild in turn),
    ids stable per tag and index, players ``<tag>-p<k>`` so counts can be scoped."""
    now = datetime.now(UTC)
    out = []
    for i in range(start, start + n):
        player = f"{tag}-p{i % 13}"
        if i % 2 == 0:
            event_type = "purchase_sword"
            props: dict = {
                "sword_type": SWORDS[i % len(SWORDS)],
                "price": float(i % 50) + 0.99,
                "currency": "EUR",
                "quantity": 1 + i % 3,
            }
        else:
            event_type = "join_guild"
            props = {"guild_id": GUILDS[i % len(GUILDS)], "role": "member"}
        out.append(
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/{i}")),
                "event_type": event_type,
                "event_time": iso(now - timedelta(seconds=2)),
                "received_at": iso(now),
                "player_id": player,
                "session_id": f"s-{i % 5}",
                "properties": props,
                "context": {"host": f"{player}.example.net", "user_agent": "chaos/1.0"},
                "schema_version": 1,
            }
        )
    return out


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def local_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def parquet_files(uri: str) -> set[str]:
    """Data files on disk under a local table, committed or not (the Delta log aside)."""
    root = local_path(uri)
    return {str(p) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


class LakeRig:
    """The extractor's stream in this process over a fresh topic and lake."""

    def __init__(self, kafka, spark, folder: Path, partitions: int = 3, **overrides) -> None:
        from questlog_extractor.settings import Settings

        self.kafka = kafka
        self.spark = spark
        self.topic = f"chaos-{uuid.uuid4().hex[:8]}"
        kafka.create_topic(self.topic, partitions=partitions)
        lake = Path(folder) / "lake"
        lake.mkdir(parents=True, exist_ok=True)
        self.settings = Settings(
            kafka_bootstrap=kafka.bootstrap,
            lake_root=lake.as_uri(),
            topic=self.topic,
            max_offsets_per_trigger=overrides.pop("max_offsets_per_trigger", 1000),
            trigger_seconds=overrides.pop("trigger_seconds", 1),
            metrics_port=0,
            query_name=f"chaos-{uuid.uuid4().hex[:6]}",
            **overrides,
        )
        self.query: StreamingQuery | None = None
        self._producer: KafkaProducer | None = None

    # -- the stream ---------------------------------------------------------------------
    def start(self) -> LakeRig:
        from questlog_extractor import job

        self.query = job.start(self.spark, self.settings, once=False)
        return self

    def alive(self) -> tuple[bool, str | None]:
        """Whether the stream runs, and its failure if it stopped on one."""
        if self.query is None:
            return False, "not started"
        error = self.query.exception()
        return self.query.isActive and error is None, (str(error)[:500] if error else None)

    def stop(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None
        if self.query is not None and self.query.isActive:
            self.query.stop()

    # -- Kafka --------------------------------------------------------------------------
    def produce(self, records: list[tuple[bytes | None, bytes | None]]) -> list[tuple[int, int]]:
        """Send (key, value) records with acks=all + idempotence, in order; returns each
        one's (partition, offset) once Kafka acknowledged it."""
        from kafka import KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.kafka.bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_request_size=4 * 1024 * 1024,
            )
            assert self._producer.config["enable_idempotence"] is True
        futures = [self._producer.send(self.topic, key=k, value=v) for k, v in records]
        self._producer.flush(timeout=60)
        return [(m.partition, m.offset) for m in (f.get(timeout=30) for f in futures)]

    def produce_events(self, events: list[dict]) -> list[tuple[int, int]]:
        return self.produce([(e["player_id"].encode(), json.dumps(e).encode()) for e in events])

    # -- the lake -----------------------------------------------------------------------
    def uri(self, table: str) -> str:
        return self.settings.table_uri(table)

    def rows(self, table: str, columns: list[str] | None = None):
        """The committed snapshot of ``table`` as Arrow (None before its first commit)."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri(table)).to_pyarrow_table(columns=columns)
        except TableNotFoundError:
            return None

    def count(self, table: str) -> int:
        import pyarrow as pa
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            adds = pa.table(DeltaTable(self.uri(table)).get_add_actions(flatten=True))
        except TableNotFoundError:
            return 0
        if adds.num_rows == 0:
            return 0
        return int(sum(n or 0 for n in adds.column("num_records").to_pylist()))

    def stored(self, tables=TABLES) -> int:
        """Rows in the event tables, from the Delta log's statistics (cheap)."""
        return sum(self.count(t) for t in tables)

    def event_ids(self, tables=TABLES) -> list[str]:
        ids: list[str] = []
        for table in tables:
            rows = self.rows(table, ["event_id"])
            if rows is not None:
                ids.extend(rows.column("event_id").to_pylist())
        return ids


def exactly_once(stored_ids: list[str], expected: set[str]) -> tuple[int, int]:
    """(lost, duplicates) of ``expected`` ids among ``stored_ids``."""
    counts = Counter(stored_ids)
    lost = sum(1 for i in expected if counts[i] == 0)
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    return lost, duplicates


class QueryService:
    """The real query service (gunicorn, as `make run` starts it) over a lake."""

    def __init__(
        self,
        lake_root: str,
        log: Path,
        snapshot_ttl_s: float = 1.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        import os

        from questlog_embedded.process import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.log = Path(log)
        venv_bin = Path(sys.executable).parent
        self.env = {
            **os.environ,
            "PATH": f"{venv_bin}:{os.environ['PATH']}",
            "QUESTLOG_QUERY_LAKE_ROOT": lake_root,
            "QUESTLOG_QUERY_HOST": "127.0.0.1",
            "QUESTLOG_QUERY_PORT": str(self.port),
            "QUESTLOG_QUERY_READ_TOKEN": self.token,
            "QUESTLOG_QUERY_WORKERS": "1",
            "QUESTLOG_QUERY_THREADS": "4",
            "QUESTLOG_QUERY_SNAPSHOT_TTL_S": str(snapshot_ttl_s),
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90.0) -> QueryService:
        import requests

        from questlog_embedded import paths
        from questlog_embedded.process import spawn

        conf = paths.REPO_ROOT / "services" / "query" / "gunicorn.conf.py"
        proc = self.proc = spawn(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                str(conf),
                "questlog_query:create_app()",
            ],
            self.log,
            env=self.env,
        )

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"query service exited; log {self.log}:\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            try:
                return requests.get(self.url + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout_s, "the query service to be ready")
        return self

    def stop(self) -> None:
        from questlog_embedded.process import stop

        stop(self.proc, timeout=20)

    def sql(self, sql: str, timeout_s: float = 30.0):
        import requests

        return requests.post(
            self.url + "/v1/sql",
            json={"sql": sql},
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def __enter__(self) -> QueryService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Poller:
    """Asks the query service, without pause, what a dashboard and an analyst would:
    the table list, counts per type, and SQL counts; every answer that is not a 200 (or
    no answer) is an error, kept with its text."""

    query: QueryService
    tables: tuple[str, ...] = TABLES
    answers: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    errors_5xx: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="query-poller", daemon=True)

    def requests_(self):
        import requests

        base = self.query.url
        gets: list[tuple[str, Callable[..., Any]]] = [
            ("tables", lambda: requests.get(base + "/v1/tables", timeout=30))
        ]
        for t in self.tables:
            gets.append(
                (
                    f"counts {t}",
                    lambda t=t: requests.get(
                        base + "/v1/stats/counts",
                        params={"event_type": t, "group_by": "event_date"},
                        timeout=30,
                    ),
                )
            )
        union = " UNION ALL ".join(f"SELECT event_id FROM {t}" for t in self.tables)
        gets.append(
            (
                "sql",
                lambda: self.query.sql(
                    f"SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM ({union})"
                ),
            )
        )
        return gets

    def _run(self) -> None:
        import requests

        calls = self.requests_()
        while not self._stop.is_set():
            for name, call in calls:
                try:
                    resp = call()
                except requests.RequestException as exc:
                    self.errors.append(f"{name}: no answer ({type(exc).__name__})")
                    continue
                self.answers[resp.status_code] += 1
                if resp.status_code >= 500:
                    self.errors_5xx += 1
                if resp.status_code != 200:
                    self.errors.append(f"{name}: {resp.status_code} {resp.text[:300]}")
            self._stop.wait(0.05)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + sum(1 for e in self.errors if "no answer" in e)
