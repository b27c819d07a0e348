"""The embedded pipeline as one product: the settings of every process of `make run`,
readiness waits, the banner, and `make status`.

Usage:
    python -m questlog_embedded.stack env > var/run.env   # settings for embedded/Procfile
    python -m questlog_embedded.stack wait-topic          # block until Kafka has the topic
    python -m questlog_embedded.stack wait-lake           # block until the lake's storage answers
    python -m questlog_embedded.stack banner              # wait for all, print where they are, exit
    python -m questlog_embedded.stack status              # what runs, lag and freshness
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import paths
from .process import free_port, port_open

API_PORT = int(os.environ.get("QUESTLOG_API_PORT", "5000"))
QUERY_PORT = int(os.environ.get("QUESTLOG_QUERY_PORT", "8000"))
KAFKA_PORT = int(os.environ.get("QUESTLOG_KAFKA_PORT", "9092"))
EXTRACTOR_METRICS_PORT = int(os.environ.get("QUESTLOG_EXTRACTOR_METRICS_PORT", "9108"))
TOPIC = os.environ.get("QUESTLOG_API_TOPIC", "events")
# The optional parts (`make run LAKE=hdfs TRINO=1`): HDFS's usual NameNode ports, and
# Trino's usual port.
HDFS_PORT = int(os.environ.get("QUESTLOG_HDFS_PORT", "8020"))
HDFS_HTTP_PORT = int(os.environ.get("QUESTLOG_HDFS_HTTP_PORT", "9870"))
TRINO_PORT = int(os.environ.get("QUESTLOG_TRINO_PORT", "8080"))
HDFS_LAKE_PATH = "/questlog/lake"


class StackError(ValueError):
    """A switch of `make run` with a value it does not know."""


def lake_on_hdfs() -> bool:
    """QUESTLOG_LAKE (make run LAKE=...): "" or "local" keeps the lake on the local disk,
    "hdfs" puts tables and checkpoints on the embedded HDFS. Inside a running stack (and
    in `make status`, which reads var/run.env) QUESTLOG_LAKE_HDFS says what it chose."""
    if os.environ.get("QUESTLOG_LAKE_HDFS") in ("0", "1"):
        return os.environ["QUESTLOG_LAKE_HDFS"] == "1"
    value = os.environ.get("QUESTLOG_LAKE", "").strip().lower()
    if value not in ("", "local", "hdfs"):
        raise StackError(f"LAKE={value!r}: use LAKE=local (the default) or LAKE=hdfs")
    return value == "hdfs"


def trino_enabled() -> bool:
    """QUESTLOG_TRINO (make run TRINO=1): start Trino and keep the tables registered;
    QUESTLOG_TRINO_ENABLED inside a running stack."""
    if os.environ.get("QUESTLOG_TRINO_ENABLED") in ("0", "1"):
        return os.environ["QUESTLOG_TRINO_ENABLED"] == "1"
    value = os.environ.get("QUESTLOG_TRINO", "").strip().lower()
    if value not in ("", "0", "1"):
        raise StackError(
            f"TRINO={value!r}: use TRINO=1 to start Trino, TRINO=0 (the default) not to"
        )
    return value == "1"


def lake_root(var: Path) -> str:
    if lake_on_hdfs():
        return f"hdfs://127.0.0.1:{HDFS_PORT}{HDFS_LAKE_PATH}"
    (var / "lake").mkdir(parents=True, exist_ok=True)
    return (var / "lake").as_uri()


def _secret(name: str) -> str:
    """A per-install secret under var/secrets, made on first use (never in git)."""
    folder = paths.var_dir() / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def api_server_config() -> dict[str, str]:
    """The API's gunicorn sizing in `make run`; `make bench` serves the API with exactly
    this too. 8 threads per worker, not the service's 32: on one machine shared with Spark
    and Kafka, fewer threads contend less for the GIL and the CPU (docs/benchmarks.md)."""
    return {
        "QUESTLOG_API_WORKERS": os.environ.get("QUESTLOG_API_WORKERS", "2"),
        "QUESTLOG_API_THREADS": os.environ.get("QUESTLOG_API_THREADS", "8"),
    }


def environment(var: Path | None = None) -> dict[str, str]:
    """Every process's settings for one machine, all on 127.0.0.1."""
    from .spark import spark_jars

    var = (var or paths.var_dir()).resolve()
    lake = lake_root(var)
    bootstrap = f"127.0.0.1:{KAFKA_PORT}"
    return {
        "QUESTLOG_VAR": str(var),
        # which optional processes of embedded/Procfile run (`# if ...`)
        "QUESTLOG_LAKE_HDFS": "1" if lake_on_hdfs() else "0",
        "QUESTLOG_TRINO_ENABLED": "1" if trino_enabled() else "0",
        "QUESTLOG_LAKE_ROOT": lake,
        "QUESTLOG_HDFS_PORT": str(HDFS_PORT),
        "QUESTLOG_HDFS_HTTP_PORT": str(HDFS_HTTP_PORT),
        "QUESTLOG_TRINO_PORT": str(TRINO_PORT),
        "QUESTLOG_TRINO_URL": f"http://127.0.0.1:{TRINO_PORT}",
        "QUESTLOG_TRINO_LAKE_ROOT": lake,
        "QUESTLOG_KAFKA_PORT": str(KAFKA_PORT),
        "QUESTLOG_KAFKA_PARTITIONS": os.environ.get("QUESTLOG_KAFKA_PARTITIONS", "3"),
        "QUESTLOG_API_BIND": f"127.0.0.1:{API_PORT}",
        "QUESTLOG_API_KAFKA_BOOTSTRAP": bootstrap,
        "QUESTLOG_API_TOPIC": TOPIC,
        "QUESTLOG_API_IP_HASH_KEY": _secret("api_ip_hash_key"),
        **api_server_config(),
        "QUESTLOG_EXTRACTOR_KAFKA_BOOTSTRAP": bootstrap,
        "QUESTLOG_EXTRACTOR_TOPIC": TOPIC,
        "QUESTLOG_EXTRACTOR_LAKE_ROOT": lake,
        "QUESTLOG_EXTRACTOR_SPARK_JARS": spark_jars(),
        "QUESTLOG_EXTRACTOR_TRIGGER_SECONDS": os.environ.get(
            "QUESTLOG_EXTRACTOR_TRIGGER_SECONDS", "1"
        ),
        "QUESTLOG_EXTRACTOR_METRICS_PORT": str(EXTRACTOR_METRICS_PORT),
        # Micro-batches of ~1,000 events a second: whole-stage code costs them ~20% less
        # CPU each (a catch-up's large batches ~20% more): docs/benchmarks.md.
        "QUESTLOG_EXTRACTOR_CODEGEN": os.environ.get("QUESTLOG_EXTRACTOR_CODEGEN", "whole-stage"),
        # The `compact` process. At one micro-batch a second each table partition gains a
        # file a second; a pass every 5 minutes keeps that to a few hundred, while a pass
        # (it rewrites the day's partition) stays rare next to the stream's own work.
        "QUESTLOG_EXTRACTOR_COMPACT_EVERY_S": os.environ.get(
            "QUESTLOG_EXTRACTOR_COMPACT_EVERY_S", "300"
        ),
        # Removed files stay an hour: far longer than a query service snapshot lives (see
        # questlog_extractor.compact); `maintain` by hand uses it too.
        "QUESTLOG_EXTRACTOR_VACUUM_RETAIN_HOURS": os.environ.get(
            "QUESTLOG_EXTRACTOR_VACUUM_RETAIN_HOURS", "1"
        ),
        "QUESTLOG_QUERY_HOST": "127.0.0.1",
        "QUESTLOG_QUERY_PORT": str(QUERY_PORT),
        "QUESTLOG_QUERY_LAKE_ROOT": lake,
        "QUESTLOG_QUERY_READ_TOKEN": _secret("query_read_token"),
        # A local disk answers "is there a new version" in microseconds: check 4x a second
        # (the service's default, 1 s, spares a remote store), so answers are fresher.
        "QUESTLOG_QUERY_SNAPSHOT_TTL_S": os.environ.get("QUESTLOG_QUERY_SNAPSHOT_TTL_S", "0.25"),
        # /v1/pipeline relays what only these two know (dedup, lag, refusals)
        "QUESTLOG_QUERY_EXTRACTOR_METRICS_URL": f"http://127.0.0.1:{EXTRACTOR_METRICS_PORT}/metrics",
        "QUESTLOG_QUERY_API_METRICS_URL": f"http://127.0.0.1:{API_PORT}/metrics",
        "PYTHONUNBUFFERED": "1",
    }


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return 200 <= resp.status < 300
    except OSError:
        return False


def _http_json(url: str, timeout: float = 5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def topic_exists(bootstrap: str, topic: str) -> bool:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    except KafkaError:
        return False
    try:
        return topic in admin.list_topics()
    except KafkaError:
        return False
    finally:
        admin.close()


def wait_topic(timeout: float = 180.0) -> int:
    bootstrap = f"127.0.0.1:{KAFKA_PORT}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(KAFKA_PORT) and topic_exists(bootstrap, TOPIC):
            return 0
        time.sleep(1)
    print(f"Kafka topic {TOPIC!r} on {bootstrap} not there after {timeout:.0f}s", file=sys.stderr)
    return 1


def hdfs_ready() -> bool:
    """The NameNode answers WebHDFS for the lake's parent (it is out of safe mode once the
    DataNode reported)."""
    return _http_json(f"http://127.0.0.1:{HDFS_HTTP_PORT}/webhdfs/v1/?op=GETFILESTATUS") is not None


def wait_lake(timeout: float = 180.0) -> int:
    if not lake_on_hdfs():
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hdfs_ready():
            return 0
        time.sleep(1)
    print(f"HDFS on 127.0.0.1:{HDFS_HTTP_PORT} not answering after {timeout:.0f}s", file=sys.stderr)
    return 1


def trino_ready() -> bool:
    from .trino import ready  # started, and a table scan answers

    return ready(f"http://127.0.0.1:{TRINO_PORT}")


def checks() -> dict:
    """What `make status` and the banner check: the four processes, and the optional ones
    this run started."""
    found = {
        "kafka": lambda: port_open(KAFKA_PORT),
        "api": lambda: _http_ok(f"http://127.0.0.1:{API_PORT}/readyz"),
        "extractor": lambda: _http_ok(f"http://127.0.0.1:{EXTRACTOR_METRICS_PORT}/metrics"),
        "query": lambda: _http_ok(f"http://127.0.0.1:{QUERY_PORT}/readyz"),
    }
    if lake_on_hdfs():
        found["hdfs"] = hdfs_ready
    if trino_enabled():
        found["trino"] = trino_ready
    return found


def banner(timeout: float = 300.0) -> int:
    started = time.monotonic()
    wanted = checks()
    pending = set(wanted)
    while pending and time.monotonic() - started < timeout:
        for name in sorted(pending):
            if wanted[name]():
                print(f"{name} is ready ({time.monotonic() - started:.0f}s)", flush=True)
                pending.discard(name)
        time.sleep(1)
    if pending:
        print(
            f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))} "
            "(see its log lines above)",
            flush=True,
        )
        return 1
    var = paths.var_dir()
    every = os.environ.get("QUESTLOG_EXTRACTOR_COMPACT_EVERY_S", "?")
    retain = os.environ.get("QUESTLOG_EXTRACTOR_VACUUM_RETAIN_HOURS", "?")
    lake = os.environ.get("QUESTLOG_LAKE_ROOT") or (var / "lake").as_uri()
    optional = ""
    if lake_on_hdfs():
        optional += (
            f"  HDFS            {lake.split('/questlog')[0]}  (NameNode UI "
            f"http://127.0.0.1:{HDFS_HTTP_PORT})\n"
        )
    if trino_enabled():
        optional += (
            f"  Trino           http://127.0.0.1:{TRINO_PORT}  catalog questlog, schema "
            f"default: bin/trino --catalog questlog --schema default\n"
        )
    print(
        f"""
questlog is running (Ctrl-C stops everything)
  event API       http://127.0.0.1:{API_PORT}      POST /v1/events, GET /purchase_sword, /join_guild
  query service   http://127.0.0.1:{QUERY_PORT}      GET /v1/tables, /v1/stats/counts, /v1/kpis/...
  Kafka           127.0.0.1:{KAFKA_PORT}          topic "{TOPIC}"
  extractor       metrics on http://127.0.0.1:{EXTRACTOR_METRICS_PORT}/metrics
  compaction      every {every} s (process "compact"), removed files kept {retain} h
  lake            {lake}
{optional}  read token      {var / "secrets" / "query_read_token"} (for POST /v1/sql)
try:  curl -H 'Host: user1.comcast.com' http://127.0.0.1:{API_PORT}/purchase_sword
      curl 'http://127.0.0.1:{QUERY_PORT}/v1/stats/counts?event_type=purchase_sword&group_by=host'
""",
        flush=True,
    )
    return 0  # a one-shot (`# once` in the Procfile): the supervisor does not restart it


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            try:
                return float(line.rsplit(" ", 1)[1])
            except ValueError:
                return None
    return None


def status() -> int:
    up = {name: check() for name, check in checks().items()}
    for name, ok in up.items():
        print(f"{name:10s} {'up' if ok else 'DOWN'}")
    print(
        f"lake       {os.environ.get('QUESTLOG_LAKE_ROOT') or lake_root(paths.var_dir())}"
        + ("  (HDFS, make run LAKE=hdfs)" if lake_on_hdfs() else "  (local disk)")
    )
    if up["extractor"]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{EXTRACTOR_METRICS_PORT}/metrics", timeout=3
            ) as r:
                text = r.read().decode()
            behind = _metric(text, "questlog_extractor_offsets_behind_latest")
            last = _metric(text, "questlog_extractor_last_progress_timestamp_seconds")
            ago = f"{time.time() - last:.0f}s ago" if last else "never"
            print(
                f"extractor lag: {behind if behind is not None else '?'} records behind; "
                f"last micro-batch {ago}"
            )
        except OSError as exc:
            print(f"extractor metrics unreadable: {exc}")
    if up["query"]:
        tables = _http_json(f"http://127.0.0.1:{QUERY_PORT}/v1/tables") or {}
        for t in tables.get("tables", []):
            fresh = t.get("freshness_seconds")
            print(
                f"table {t['name']:16s} rows {t.get('rows', 0):>10}  version "
                f"{t.get('version')}  freshness {fresh if fresh is not None else '-'} s"
            )
    return 0 if all(up.values()) else 1


class Stack:
    """The whole `make run` stack (embedded/Procfile under questlog_embedded.supervise) on
    free ports with its state in ``var``: for the end-to-end tests, the benchmarks and the
    chaos scenarios. ``proc`` is the supervisor; ``log`` its one prefixed stream."""

    READY_LINE = b"questlog is running"

    def __init__(self, var: Path, extra_env: dict[str, str] | None = None) -> None:
        self.var = Path(var)
        self.ports = {
            name: free_port()
            for name in ("API", "QUERY", "KAFKA", "METRICS", "HDFS", "HDFS_HTTP", "TRINO")
        }
        venv_bin = Path(sys.executable).parent
        self.env = dict(
            os.environ,
            PATH=f"{venv_bin}:{os.environ['PATH']}",
            QUESTLOG_VAR_DIR=str(self.var),
            QUESTLOG_API_PORT=str(self.ports["API"]),
            QUESTLOG_QUERY_PORT=str(self.ports["QUERY"]),
            QUESTLOG_KAFKA_PORT=str(self.ports["KAFKA"]),
            QUESTLOG_EXTRACTOR_METRICS_PORT=str(self.ports["METRICS"]),
            QUESTLOG_HDFS_PORT=str(self.ports["HDFS"]),
            QUESTLOG_HDFS_HTTP_PORT=str(self.ports["HDFS_HTTP"]),
            QUESTLOG_TRINO_PORT=str(self.ports["TRINO"]),
            **(extra_env or {}),
        )
        self.trino = f"http://127.0.0.1:{self.ports['TRINO']}"
        self.api = f"http://127.0.0.1:{self.ports['API']}"
        self.query = f"http://127.0.0.1:{self.ports['QUERY']}"
        self.log = self.var / "run.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240.0) -> Stack:
        self.var.mkdir(parents=True, exist_ok=True)
        env_file = self.var / "run.env"
        env_file.write_text(
            subprocess.run(
                [sys.executable, "-m", "questlog_embedded.stack", "env"],
                env=self.env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "questlog_embedded.supervise",
                    "-f",
                    str(paths.REPO_ROOT / "embedded" / "Procfile"),
                    "-d",
                    str(paths.REPO_ROOT),
                    "-e",
                    str(env_file),
                    "--colour",
                    "never",
                ],
                cwd=paths.REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self.READY_LINE not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the stack did not come up; log {self.log}:\n"
                    + self.log.read_text(errors="replace")[-6000:]
                )
            time.sleep(1)
        return self

    def stop(self) -> None:
        """What Ctrl-C does: SIGINT to the supervisor, which stops every process (a
        supervisor killed after 60 s still takes them along: each gets SIGTERM when it
        dies)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m questlog_embedded.stack")
    parser.add_argument("command", choices=("env", "wait-topic", "wait-lake", "banner", "status"))
    args = parser.parse_args(argv)
    try:
        if args.command == "env":
            for key, value in environment().items():
                print(f"{key}={value}")
            return 0
    except StackError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    if args.command == "wait-topic":
        return wait_topic()
    if args.command == "wait-lake":
        return wait_lake()
    if args.command == "banner":
        return banner()
    return status()


if __name__ == "__main__":
    sys.exit(main())
