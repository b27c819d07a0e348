"""gunicorn settings for the query service.

Usage::

    gunicorn -c services/query/gunicorn.conf.py 'questlog_query:create_app()'

The app is created in each worker after the fork (no preload), so every worker has its
own DuckDB database and snapshot cache. Set PROMETHEUS_MULTIPROC_DIR for /metrics to
aggregate all workers.
"""

import os
import shutil

_host = os.environ.get("QUESTLOG_QUERY_HOST", "127.0.0.1")
_port = os.environ.get("QUESTLOG_QUERY_PORT", "8000")
bind = f"{_host}:{_port}"
workers = int(os.environ.get("QUESTLOG_QUERY_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("QUESTLOG_QUERY_THREADS", "4"))
timeout = 60
graceful_timeout = 20
keepalive = 5
preload_app = False
accesslog = None  # the app logs each request as JSON, with its request id
errorlog = "-"
loglevel = os.environ.get("QUESTLOG_QUERY_LOG_LEVEL", "info").lower()


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:  # stale files of a previous run would be counted again
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
