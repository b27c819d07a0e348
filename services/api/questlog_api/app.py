"""The Flask app factory.

Usage::

    gunicorn -c services/api/gunicorn.conf.py 'questlog_api:create_app()'
    app = create_app(Settings(sink="memory", ip_hash_key=b"..."), sink=MemorySink())
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from questlog_api import metrics
from questlog_api.openapi import document
from questlog_api.ratelimit import RateLimiter
from questlog_api.routes import events, legacy
from questlog_api.settings import Settings
from questlog_api.sink import Sink, make_sink
from questlog_api.state import EXTENSION, ApiState, state
from questlog_schemas import load_registry
from questlog_service.errors import register_errors
from questlog_service.factory import new_app
from questlog_service.hooks import install_request_hooks
from questlog_service.ops import ops_blueprint

SERVICE = "questlog-api"


def create_app(settings: Settings | None = None, sink: Sink | None = None) -> Flask:
    """Build the app. Settings default to the environment (failing fast when malformed);
    the sink defaults to the one the settings name. No Kafka connection is opened here."""
    app, settings = new_app(__name__, SERVICE, settings, Settings.from_env)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.compact = True  # type: ignore[attr-defined]  # (see new_app)
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)  # type: ignore[method-assign]
    app.extensions[EXTENSION] = ApiState(
        settings=settings,
        sink=sink if sink is not None else make_sink(settings),
        registry=load_registry(),
        limiter=RateLimiter.from_environment(settings.rate_limit, settings.rate_limit_burst),
    )
    register_errors(app, realm="questlog")  # SinkUnavailable is mapped by ingest.py
    app.register_blueprint(events.bp)
    app.register_blueprint(legacy.bp)
    app.register_blueprint(
        ops_blueprint(
            # ready when events sent now can be acknowledged: Kafka reachable, producer up
            ready=lambda: state().sink.ready(),
            openapi=lambda: document(state().registry, state().settings),
            retry_after=lambda: state().settings.retry_after_s,
        )
    )
    # the access log line carries how many events the request handed to Kafka
    install_request_hooks(
        app,
        metrics.REQUESTS,
        "questlog_api.access",
        access_fields=lambda ctx: {"events": ctx.get("accepted", 0)},
    )
    return app
