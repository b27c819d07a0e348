"""Per-request plumbing of a Flask app: the request id, the request metrics and the
access log, the same in every service.

- Request id: a sane ``X-Request-ID`` (``[A-Za-z0-9._-]``, at most 64 characters: a
  UUID or a trace id fits, a log line cannot be stuffed) is kept, anything else is
  replaced by 32 random hex digits; it is echoed in the response, kept in ``g.request_id``
  and in ``logs.REQUEST_ID`` for every log line of the request.
- Access log: one ``request`` line per answer with ``method``, ``route``, ``status``,
  ``duration_ms`` (plus what ``access_fields`` adds); probes and scrapes only when they
  fail. Never the query string, headers or body: they may hold secrets.

Usage::

    install_request_hooks(app, metrics.REQUESTS, "questlog_api.access",
                          access_fields=lambda g: {"events": g.get("accepted", 0)})
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, g, request

from questlog_service.logs import REQUEST_ID
from questlog_service.metrics import RequestMetrics

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
QUIET_ROUTES = frozenset(("/metrics", "/healthz", "/readyz"))
UNMATCHED = "unmatched"  # the route label of a request no URL rule matched


def install_request_hooks(
    app: Flask,
    metrics: RequestMetrics,
    logger: str,
    access_fields: Callable[[Any], Mapping[str, Any]] | None = None,
) -> None:
    """Register the hooks on ``app``; ``access_fields(g)`` adds fields to each access line."""
    log = logging.getLogger(logger)

    def start() -> None:
        g.started = time.perf_counter()
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        g.request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else os.urandom(16).hex()
        REQUEST_ID.set(g.request_id)

    def finish(response: Response) -> Response:
        # every request pays for this hook: one proxy lookup each for request and g
        req, ctx = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - getattr(ctx, "started", time.perf_counter())
        route = req.url_rule.rule if req.url_rule is not None else UNMATCHED
        status = response.status_code
        metrics.count(route, req.method, status, elapsed)
        response.headers["X-Request-ID"] = getattr(ctx, "request_id", "-")
        if (route not in QUIET_ROUTES or status >= 400) and log.isEnabledFor(logging.INFO):
            fields = {
                "method": req.method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            if access_fields is not None:
                fields.update(access_fields(ctx))
            log.info("request", extra=fields)
        return response

    def clear(_exc: BaseException | None) -> None:
        REQUEST_ID.set(None)  # a worker thread's next log line is not this request's

    app.before_request(start)
    app.after_request(finish)
    app.teardown_request(clear)
