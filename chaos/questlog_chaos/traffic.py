"""Traffic as the hostile-input scenarios (T9, T10, T12) send it: one HTTP request with
any headers, answered without raising; batches of events recorded in a load ledger; a
paced flood from one client; the API as its own gunicorn process (for settings the shared
stack does not run with); and every record of a Kafka topic, read back.

Usage::

    answer = request("POST", f"{api}/v1/events", body, {"Cookie": "..."})  # Answer
    with ApiProcess(env, tmp / "api.log", workers=1) as api:             # gunicorn
        shots = flood(f"{api.url}/v1/events", body, headers, rate=120, seconds=4)
    records = topic_records(bootstrap, "events")                          # [(key, value)]
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from questlog_embedded import paths
from questlog_embedded.process import free_port, spawn, stop, wait_until

VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer (connection refused, reset, timeout)
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def error_code(self) -> str | None:
        body = self.json()
        return body.get("error", {}).get("code") if isinstance(body, dict) else None


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    # urlsplit types hostname as optional; the rig's URLs always name one
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)  # type: ignore[arg-type]
    return conn, parts.path + (f"?{parts.query}" if parts.query else "")


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
) -> Answer:
    # skip_host: a Host header the caller gives is sent as given, never a second one
    conn.putrequest(method, target, skip_host="Host" in headers, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    try:
        conn.endheaders(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # a server refusing a large body answers before reading it all: read that
    resp = conn.getresponse()
    return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Answer:
    """One request on a fresh connection; an error status is an answer, not an exception."""
    conn, target = _connection(url, timeout)
    try:
        return _exchange(conn, method, target, body, dict(headers or {}))
    except OSError:
        return Answer(0, {}, b"")
    finally:
        conn.close()


JSON = {"Content-Type": "application/json"}


def post_events(
    api: str, events: list[dict] | dict, headers: dict[str, str] | None = None, ledger=None
) -> Answer:
    """POST /v1/events; with a ``questlog_loadtest`` ledger, each event is recorded as sent
    before the request and with its answer after (the verifier's exact accounting)."""
    batch = events if isinstance(events, list) else [events]
    types = sorted({e["event_type"] for e in batch})
    if ledger is not None:
        for event_type in types:
            ledger.record(
                [e["event_id"] for e in batch if e["event_type"] == event_type], event_type, -1
            )
    answer = request(
        "POST", f"{api}/v1/events", json.dumps(events).encode(), {**JSON, **(headers or {})}
    )
    if ledger is not None:
        for event_type in types:
            ledger.record(
                [e["event_id"] for e in batch if e["event_type"] == event_type],
                event_type,
                answer.status,
            )
    return answer


def event(event_type: str, player_id: str, **properties) -> dict:
    """A valid event of the registered types (client-chosen id, as the SDKs send)."""
    defaults: dict[str, dict[str, Any]] = {
        "purchase_sword": {"sword_type": "katana", "price": 4.99, "currency": "EUR"},
        "join_guild": {"guild_id": "g-wolves"},
    }
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": player_id,
        "properties": {**defaults.get(event_type, {}), **properties},
    }


@dataclass(frozen=True)
class Shot:
    sent_at: float  # time.monotonic() when the request went out
    status: int
    retry_after: str | None


def flood(
    url: str,
    body: Callable[[int], bytes],
    headers: dict[str, str],
    rate: float,
    seconds: float,
    connections: int = 4,
    keep_alive: bool = True,
    timeout: float = 10.0,
) -> list[Shot]:
    """``rate`` POSTs a second for ``seconds`` from one client (request i carries
    ``body(i)``), paced on a shared schedule (request i leaves at start + i/rate) over
    ``connections`` threads. With
    ``keep_alive=False`` each request opens its own connection, as many devices behind
    one key would, so a multi-worker server spreads them over its workers."""
    total = int(rate * seconds)
    start = time.monotonic() + 0.2
    shots: list[Shot] = []
    lock = threading.Lock()
    cursor = iter(range(total))
    headers = {**headers, **({} if keep_alive else {"Connection": "close"})}

    def run() -> None:
        conn = None
        target = ""
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.monotonic()
            if conn is None:
                conn, target = _connection(url, timeout)
            try:
                answer = _exchange(conn, "POST", target, body(i), headers)
            except OSError:
                answer = Answer(0, {}, b"")
                conn.close()
                conn = None
            if conn is not None and (not keep_alive or answer.headers.get("connection") == "close"):
                conn.close()
                conn = None
            with lock:
                shots.append(Shot(sent, answer.status, answer.headers.get("retry-after")))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)
    if any(t.is_alive() for t in threads):
        raise TimeoutError(f"flood of {url} did not finish within {seconds + 60:.0f}s")
    return sorted(shots, key=lambda s: s.sent_at)


class ApiProcess:
    """The event API under gunicorn (its real Kafka sink) with settings of the caller's,
    ready once every worker said so (so keep-alive clients do not all land on the first)."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1, threads: int = 8) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.workers = workers
        prom = log.parent / f"{log.stem}-metrics"
        prom.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "QUESTLOG_API_WORKERS": str(workers),
            "QUESTLOG_API_THREADS": str(threads),
            "PROMETHEUS_MULTIPROC_DIR": str(prom),
            **env,
            "QUESTLOG_API_BIND": f"127.0.0.1:{self.port}",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def _ready(self) -> bool:
        text = self.log.read_bytes() if self.log.exists() else b""
        if text.count(b"worker ready") < self.workers:
            return False
        return request("GET", f"{self.url}/readyz", timeout=2).status == 200

    def __enter__(self) -> ApiProcess:
        self.proc = spawn(
            [
                str(VENV_BIN / "gunicorn"),
                "-c",
                str(paths.REPO_ROOT / "services/api/gunicorn.conf.py"),
                "questlog_api:create_app()",
            ],
            self.log,
            env=self.env,
        )
        try:
            wait_until(self._ready, 90, "questlog api (gunicorn)", self.proc, self.log)
        except BaseException:
            stop(self.proc, timeout=20)
            raise
        return self

    def __exit__(self, *exc) -> None:
        stop(self.proc, timeout=30)


def topic_records(
    bootstrap: str, topic: str, timeout: float = 60.0
) -> list[tuple[bytes | None, bytes | None]]:
    """Every record (key, value) of ``topic`` from the first offset to the end it had when
    asked, every partition; headers are appended to the value so a scan sees them too."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        partitions = sorted(meta.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in partitions
        }
        todo = {p: high for p, (low, high) in ends.items() if high > low}
        consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in todo])
        records: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"topic {topic}: partitions {sorted(todo)} not read to "
                    f"their end within {timeout:.0f}s"
                )
            for msg in consumer.consume(num_messages=5000, timeout=1.0):
                if msg.error():
                    continue
                value = msg.value() or b""
                # confluent-kafka's types are the producer's; a consumed record without error
                # has an offset and headers [(str, bytes | None)]
                headers = cast("list[tuple[str, bytes | None]]", msg.headers() or [])
                for name, raw in headers:
                    value += b"\n" + name.encode() + b": " + (raw or b"")
                records.append((msg.key(), value))
                if cast(int, msg.offset()) + 1 >= todo.get(msg.partition(), 0):
                    todo.pop(msg.partition(), None)
        return records
    finally:
        consumer.close()


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics([NewTopic(topic, partitions, 1)])[topic]
    future.result(timeout=30)
    wait_until(lambda: topic in admin.list_topics(timeout=5).topics, 30, f"topic {topic}")
