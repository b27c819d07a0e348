"""Plumbing every questlog service shares, so that one grep or one dashboard query works
across them: the same log keys, access-log fields, metric labels, error shape, ops
routes and settings errors everywhere.

| module | what | needs |
|---|---|---|
| ``logs`` | JSON log lines, the request id in a contextvar, ``configure_logging`` | - |
| ``env`` | settings from ``<PREFIX>_*`` variables, every problem reported at once | - |
| ``multiproc`` | Prometheus multiprocess mode under gunicorn (config hooks) | - |
| ``metrics`` | the request metrics and ``/metrics``' exposition | prometheus-client |
| ``factory`` | ``new_app``: settings (from the environment by default), logging, Flask | Flask |
| ``hooks`` | request id, access log and request metrics for a Flask app | Flask |
| ``errors`` | ``ApiError`` and the JSON error handlers (``register_errors``) | Flask |
| ``ops`` | ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json`` | Flask |

Nothing is imported here: the extractor has no Flask, and a gunicorn config must set
PROMETHEUS_MULTIPROC_DIR before prometheus_client is first imported.
"""
