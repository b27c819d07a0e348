"""gunicorn settings for the query service.

Usage::

    gunicorn -c services/query/gunicorn.conf.py 'questlog_query:create_app()'

The app is created in each worker after the fork (no preload), so every worker has its
own DuckDB database and snapshot cache. /metrics sums every worker's samples: unless
PROMETHEUS_MULTIPROC_DIR is set, a fresh temporary directory is used (removed at exit).

| variable | default |
|---|---|
| QUESTLOG_QUERY_HOST | 127.0.0.1 |
| QUESTLOG_QUERY_PORT | 8000 |
| QUESTLOG_QUERY_WORKERS | 2 |
| QUESTLOG_QUERY_THREADS | 4 |
| QUESTLOG_QUERY_LOG_LEVEL | INFO (gunicorn's own messages) |
"""

from questlog_service import env, multiproc  # neither imports prometheus_client

try:
    _server = env.read(
        "QUESTLOG_QUERY_",
        {
            "HOST": (str, "127.0.0.1"),
            "PORT": (env.integer(minimum=1, maximum=65535), 8000),
            "WORKERS": (env.integer(minimum=1), 2),
            "THREADS": (env.integer(minimum=1), 4),
            "LOG_LEVEL": (env.log_level, "INFO"),
        },
        service="questlog query gunicorn",
    )
except env.SettingsError as exc:
    raise SystemExit(str(exc)) from None
multiproc.prepare("questlog-query")  # after the checks: a refused start leaves no directory

bind = f"{_server['HOST']}:{_server['PORT']}"
workers = _server["WORKERS"]
worker_class = "gthread"
threads = _server["THREADS"]
timeout = 60
graceful_timeout = 20
keepalive = 5
preload_app = False
accesslog = None  # the app logs each request as JSON, with its request id
errorlog = "-"
loglevel = _server["LOG_LEVEL"].lower()


def on_starting(server):
    multiproc.empty()  # stale files of a previous run would be counted again


def child_exit(server, worker):
    multiproc.mark_dead(worker.pid)


def on_exit(server):
    multiproc.remove_made()
