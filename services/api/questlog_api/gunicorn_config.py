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
| PROMETHEUS_MULTIPROC_DIR | a fresh temp dir (removed at exit); emptied at start |

This module must not import prometheus_client (nor the app) before the multiprocess
directory is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from questlog_service import env, multiproc  # neither imports prometheus_client

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

try:
    _server = env.read(
        "QUESTLOG_API_",
        {
            "BIND": (str, "127.0.0.1:5000"),
            "WORKERS": (env.integer(minimum=1), 2),
            "THREADS": (env.integer(minimum=1), 32),
            "WORKER_CLASS": (str, "gthread"),
        },
        service="questlog API gunicorn",
    )
except env.SettingsError as exc:
    raise SystemExit(str(exc)) from None
multiproc.prepare("questlog-api")  # after the checks: a refused start leaves no directory

bind = [_server["BIND"]]
workers = _server["WORKERS"]
threads = _server["THREADS"]
worker_class = _server["WORKER_CLASS"]
backlog = 2048
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = None  # the app logs each request as JSON itself
errorlog = "-"
preload_app = False  # each worker imports the app (and creates its producer) after fork


def on_starting(server: Arbiter) -> None:
    """Check the settings once in the master (a clear message, not a traceback per worker),
    and start with an empty metrics dir: files of a previous run would be summed in."""
    from questlog_api.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        multiproc.remove_made()  # on_exit does not run after a refused start
        raise SystemExit(f"questlog-api: {exc}") from None
    if settings.rate_limit > 0:  # one bucket per client across the workers forked next
        from questlog_api.ratelimit import RATE_STATE_ENV, SharedBuckets

        folder = Path(tempfile.mkdtemp(prefix="questlog-api-rate-"))
        _MADE.append(folder)
        os.environ[RATE_STATE_ENV] = str(SharedBuckets.create(folder / "buckets"))
    multiproc.empty()


def post_fork(server: Arbiter, worker: Worker) -> None:
    """A producer inherited from the master (preload_app) is unusable: drop it."""
    from questlog_api.sink import after_fork  # imports neither the app nor a Kafka client

    after_fork()


def post_worker_init(worker: Worker) -> None:
    """Logged once a worker has imported the app and accepts connections. Until every
    worker said so, the first ones accept every connection opened meanwhile (keep-alive
    clients then stay on them): load tests wait for all (bench/harness.py)."""
    worker.log.info("worker ready (pid %s)", worker.pid)


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """SIGTERM / graceful stop: flush every event handed to Kafka before exiting."""
    from questlog_api.sink import before_exit

    before_exit(timeout_s=10.0)


_MADE: list[Path] = []  # folders on_starting made, removed on exit


def on_exit(server: Arbiter) -> None:
    for folder in _MADE:
        shutil.rmtree(folder, ignore_errors=True)
    multiproc.remove_made()


def child_exit(server: Arbiter, worker: Worker) -> None:
    # types-gunicorn types Worker.pid as str (its "[booting]" placeholder); the master's
    # worker objects hold the child's int pid
    multiproc.mark_dead(worker.pid)  # type: ignore[arg-type]
