"""Prometheus multiprocess mode under gunicorn, for a service's gunicorn config module.

Each worker writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``
sums them (``metrics.render``), so any worker answers for all. The variable must be set
before prometheus_client is first imported, in the master, so that every worker forked
later inherits it: call ``prepare`` at the top of the config module. This module never
imports prometheus_client itself until a worker has died.

Usage (a gunicorn config module)::

    multiproc.prepare("questlog-api")   # a fresh temp dir unless the variable is set

    def on_starting(server): multiproc.empty()      # a previous run's files would be summed
    def child_exit(server, worker): multiproc.mark_dead(worker.pid)
    def on_exit(server): multiproc.remove_made()
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_MADE: list[Path] = []  # directories prepare() made, removed by remove_made()


def prepare(service_name: str) -> Path:
    """The multiprocess directory: ``PROMETHEUS_MULTIPROC_DIR`` if set, else a fresh
    temporary one, which is then set for this process and its workers."""
    if not os.environ.get(ENV):
        made = Path(tempfile.mkdtemp(prefix=f"{service_name}-metrics-"))
        _MADE.append(made)
        os.environ[ENV] = str(made)
    return Path(os.environ[ENV])


def empty() -> None:
    """Create the directory or empty it (keeping the directory itself: it may be a
    mounted volume): the files of a previous run's workers would be summed in."""
    if not os.environ.get(ENV):
        return
    directory = Path(os.environ[ENV])
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_file():
            entry.unlink()
        else:
            shutil.rmtree(entry, ignore_errors=True)


def mark_dead(pid: int) -> None:
    """A worker exited: its live gauges (``livesum``, ``liveall``) stop counting."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def remove_made() -> None:
    """Remove the directories ``prepare`` made (the master is exiting)."""
    while _MADE:
        shutil.rmtree(_MADE.pop(), ignore_errors=True)
