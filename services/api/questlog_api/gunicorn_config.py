"""gunicorn settings and hooks for the API (imported by services/api/gunicorn.conf.py).

Worker class ``gthread``: a request spends most of its time waiting for Kafka's ack, so
threads overlap those waits cheaply; measured on the 2-core dev machine against sync
workers (see the README). Settings come from the environment:

| variable | default |
|---|---|
| QUESTLOG_API_BIND | 127.0.0.1:5000 |
| QUESTLOG_API_WORKERS | 2 |
| QUESTLOG_API_THREADS | 32 |
| QUESTLOG_API_WORKER_CLASS | gthread |
| PROMETHEUS_MULTIPROC_DIR | a fresh temp dir, emptied at start |

This module must not import prometheus_client (nor the app) before the multiprocess
directory is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise SystemExit(f"{name} must be >= 1")
    return value


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="questlog-api-metrics-")

bind = [os.environ.get("QUESTLOG_API_BIND", "127.0.0.1:5000")]
workers = _int_env("QUESTLOG_API_WORKERS", 2)
threads = _int_env("QUESTLOG_API_THREADS", 32)
worker_class = os.environ.get("QUESTLOG_API_WORKER_CLASS", "gthread")
backlog = 2048
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = None  # the app logs each request as JSON itself
errorlog = "-"
preload_app = False  # each worker imports the app (and creates its producer) after fork


def on_starting(server) -> None:
    """Check the settings once in the master (a clear message, not a traceback per worker),
    and start with an empty metrics dir: files of a previous run would be summed in."""
    from questlog_api.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"questlog-api: {exc}") from None
    if settings.rate_limit > 0:  # one bucket per client across the workers forked next
        from questlog_api.ratelimit import RATE_STATE_ENV, SharedBuckets

        folder = Path(tempfile.mkdtemp(prefix="questlog-api-rate-"))
        _MADE.append(folder)
        os.environ[RATE_STATE_ENV] = str(SharedBuckets.create(folder / "buckets"))
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_file():
            entry.unlink()
        else:
            shutil.rmtree(entry, ignore_errors=True)


def post_fork(server, worker) -> None:
    """A producer inherited from the master (preload_app) is unusable: drop it."""
    _each_sink(lambda sink: sink.reset())


def post_worker_init(worker) -> None:
    """Logged once a worker has imported the app and accepts connections. Until every
    worker said so, the first ones accept every connection opened meanwhile (keep-alive
    clients then stay on them): load tests wait for all (bench/harness.py)."""
    worker.log.info("worker ready (pid %s)", worker.pid)


def worker_exit(server, worker) -> None:
    """SIGTERM / graceful stop: flush every event handed to Kafka before exiting."""
    _each_sink(lambda sink: sink.close(timeout_s=10.0))


_MADE: list[Path] = []  # folders on_starting made, removed on exit


def on_exit(server) -> None:
    for folder in _MADE:
        shutil.rmtree(folder, ignore_errors=True)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _each_sink(action) -> None:
    import sys

    sink_module = sys.modules.get("questlog_api.sink")
    if sink_module is None:  # the app was never imported in this process
        return
    for sink in list(sink_module.LIVE_SINKS):
        action(sink)
