"""The Flask app factory.

Usage::

    gunicorn -c services/api/gunicorn.conf.py 'questlog_api:create_app()'
    app = create_app(Settings(sink="memory", ip_hash_key=b"..."), sink=MemorySink())
"""

from __future__ import annotations

import logging
import os
import re
import time

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from questlog_api import errors, logs, metrics
from questlog_api.ratelimit import RateLimiter
from questlog_api.routes import events, legacy, ops
from questlog_api.settings import Settings
from questlog_api.sink import Sink, make_sink
from questlog_api.state import EXTENSION, ApiState
from questlog_schemas import load_registry

log = logging.getLogger("questlog_api.access")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(settings: Settings | None = None, sink: Sink | None = None) -> Flask:
    """Build the app. Settings default to the environment (failing fast when malformed);
    the sink defaults to the one the settings name. No Kafka connection is opened here."""
    if settings is None:
        settings = Settings.from_env()
        logs.configure(settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.json.compact = True
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = ApiState(
        settings=settings,
        sink=sink if sink is not None else make_sink(settings),
        registry=load_registry(),
        limiter=RateLimiter.from_environment(settings.rate_limit, settings.rate_limit_burst),
    )
    errors.register(app)
    app.register_blueprint(events.bp)
    app.register_blueprint(legacy.bp)
    app.register_blueprint(ops.bp)
    app.before_request(_start)
    app.after_request(_finish)
    return app


def _start() -> None:
    g.started = time.perf_counter()
    incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
    g.request_id = incoming if REQUEST_ID.match(incoming) else os.urandom(16).hex()


QUIET_ROUTES = frozenset(("/metrics", "/healthz", "/readyz"))


def _finish(response):
    # every request pays for this hook: one proxy lookup each for request and g
    req, ctx = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - getattr(ctx, "started", time.perf_counter())
    route = req.url_rule.rule if req.url_rule is not None else "unmatched"
    status = response.status_code
    metrics.count_request(route, req.method, status, elapsed)
    response.headers["X-Request-ID"] = getattr(ctx, "request_id", "-")
    if (route not in QUIET_ROUTES or status >= 400) and log.isEnabledFor(logging.INFO):
        # never the query string, headers or body: they may hold secrets
        log.info("request", extra={
            "method": req.method, "route": route, "status": status,
            "duration_ms": round(elapsed * 1000, 2), "events": getattr(ctx, "accepted", 0),
        })
    return response
