"""What every benchmark case needs: the load generator, servers started as local
processes, a fast producer, timing helpers. Nothing here asserts a target.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from questlog_embedded import paths
from questlog_embedded.process import free_port, port_open, spawn, stop, wait_until
from questlog_embedded.stack import api_server_config

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
LOADGEN_CORE = "1"  # the load generator gets one core; the system under test gets the rest


def loadgen_bin() -> Path:
    """Build bench/loadgen (Go, stdlib only) once into the cache."""
    out = paths.cache_dir() / "bench" / "loadgen"
    src = BENCH / "loadgen" / "main.go"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "build", "-o", str(out), "."],
            cwd=BENCH / "loadgen",
            check=True,
            env=dict(os.environ, CGO_ENABLED="0"),
        )
    return out


def loadgen(
    url: str,
    seconds: float,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: tuple[str, ...] = (),
    connections: int = 32,
    rate: float = 0,
    warmup: float = 2.0,
    work: Path,
) -> dict:
    """Run the load generator pinned to one core; its JSON result plus its CPU share."""
    cmd = [
        "taskset",
        "-c",
        LOADGEN_CORE,
        str(loadgen_bin()),
        "-url",
        url,
        "-method",
        method,
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "-warmup",
        f"{warmup}s",
        "-rate",
        str(rate),
    ]
    if body is not None:
        body_file = work / f"body-{uuid.uuid4().hex[:6]}"
        body_file.write_bytes(body)
        cmd += ["-body-file", str(body_file)]
    for h in headers:
        cmd += ["-header", h]
    started = time.monotonic()
    before = os.times()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=dict(os.environ, GOMAXPROCS="1"),
        timeout=seconds + warmup + 60,
        check=False,
    )
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed: {proc.stderr[-500:]}")
    result = json.loads(proc.stdout)
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    wall = time.monotonic() - started
    # os.cpu_count() is None only where the CPU count cannot be known
    result["loadgen_cpu_share_of_machine"] = round(cpu / wall / os.cpu_count(), 3)  # type: ignore[operator]
    return result


class Server:
    """A local server process (gunicorn, flask), ready when a URL answers 2xx."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        env: dict,
        ready_url: str,
        log: Path,
        ready_line: bytes = b"",
        ready_count: int = 0,
    ) -> None:
        self.name, self.cmd, self.env, self.ready_url, self.log = name, cmd, env, ready_url, log
        self.ready_line, self.ready_count = ready_line, ready_count
        self.proc: subprocess.Popen[bytes] | None = None

    def _ready(self) -> bool:
        if self.ready_count and self.log.read_bytes().count(self.ready_line) < self.ready_count:
            return False
        return http_ok(self.ready_url)

    def __enter__(self) -> Server:
        self.proc = spawn(self.cmd, self.log, env=self.env)
        wait_until(self._ready, 60, self.name, self.proc, self.log)
        return self

    def __exit__(self, *exc) -> None:
        stop(self.proc, timeout=20)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def http_json(
    url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 60
) -> dict:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def api_env(bootstrap: str, topic: str, port: int, var: Path) -> dict:
    prom = var / f"prom-{port}"
    shutil.rmtree(prom, ignore_errors=True)
    prom.mkdir(parents=True)
    return dict(
        os.environ,
        **api_server_config(),
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        QUESTLOG_API_BIND=f"127.0.0.1:{port}",
        QUESTLOG_API_KAFKA_BOOTSTRAP=bootstrap,
        QUESTLOG_API_TOPIC=topic,
        QUESTLOG_API_IP_HASH_KEY=uuid.uuid4().hex,
        QUESTLOG_API_LOG_LEVEL="WARNING",
        PROMETHEUS_MULTIPROC_DIR=str(prom),
    )


def api_server(bootstrap: str, topic: str, var: Path) -> Server:
    """The API as `make run` serves it (stack.api_server_config: workers x threads),
    ready once every gunicorn worker is: a load generator connecting earlier puts all its
    keep-alive connections on the first worker up (one worker busy, the other idle)."""
    port = free_port()
    env = api_env(bootstrap, topic, port, var)
    return Server(
        "questlog api",
        [
            str(VENV_BIN / "gunicorn"),
            "-c",
            str(paths.REPO_ROOT / "services/api/gunicorn.conf.py"),
            "questlog_api:create_app()",
        ],
        env,
        f"http://127.0.0.1:{port}/healthz",
        var / f"api-{port}.log",
        ready_line=b"worker ready",
        ready_count=int(env.get("QUESTLOG_API_WORKERS", 2)),
    )


def baseline_api_server(bootstrap: str, topic: str, var: Path) -> Server:
    port = free_port()
    env = dict(
        os.environ,
        QUESTLOG_BASELINE_KAFKA=bootstrap,
        QUESTLOG_BASELINE_TOPIC=topic,
        FLASK_APP=str(BENCH / "baselines" / "walkthrough_api.py"),
    )
    return Server(
        "baseline flask dev server",
        [str(VENV_BIN / "flask"), "run", "--host", "127.0.0.1", "--port", str(port)],
        env,
        f"http://127.0.0.1:{port}/join_guild",
        var / f"baseline-api-{port}.log",
    )


def produce_events(bootstrap: str, topic: str, events_bytes: list[tuple[bytes, bytes]]) -> float:
    """Produce (key, value) pairs as fast as kafka-python goes; returns events/s."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=512 * 1024,
    )
    started = time.monotonic()
    for key, value in events_bytes:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=600)
    producer.close()
    return len(events_bytes) / (time.monotonic() - started)


# Which process is which, by a fragment of its command line (first match wins).
COMPONENTS = (  # (name, a fragment of the command line), first match wins
    ("loadgen", "loadgen"),
    ("broker", "kafka.Kafka"),
    ("compact", "questlog_extractor compact"),
    ("extractor_python", "-m questlog_extractor"),  # the driver's Python process
    ("extractor_jvm", "org.apache.spark"),  # the driver JVM (local[2]: executors too)
    ("api", "questlog_api"),  # gunicorn master and workers
    ("query", "questlog_query"),
    ("supervisor", "questlog_embedded.supervise"),
    ("bench", "bench/run.py"),
)


def cmdline(proc: Path) -> str:
    """The command line of a /proc/<pid> entry, "" once the process has ended."""
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each component's live processes."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        line = cmdline(entry)
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        for name, fragment in COMPONENTS:
            if fragment in line:
                totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
                break
    return totals


class CpuBudget:
    """Core-seconds per second each component used between start and stop (read from
    /proc: 1.0 is one core busy all the time), and the machine's capacity in the same unit."""

    def __enter__(self) -> CpuBudget:
        self.before, self.started = _cpu_seconds(), time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        after = _cpu_seconds()
        self.wall_s = time.monotonic() - self.started
        self.cores = {
            name: round((after[name] - self.before.get(name, 0.0)) / self.wall_s, 3)
            for name in sorted(after)
        }
        self.capacity = float(os.cpu_count() or 1)
        self.cores["idle_or_other"] = round(self.capacity - sum(self.cores.values()), 3)


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - started, value


__all__ = [
    "CpuBudget",
    "api_server",
    "baseline_api_server",
    "cmdline",
    "free_port",
    "http_json",
    "http_ok",
    "loadgen",
    "median_ms",
    "port_open",
    "produce_events",
    "timed",
]
