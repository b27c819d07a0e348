"""The Flask app factory: settings, lake, engine, SQL sandbox and pipeline view live in one
state object (``state.QueryState``, ``app.extensions["questlog_query"]``).

Usage::

    gunicorn -c services/query/gunicorn.conf.py 'questlog_query:create_app()'
    app = create_app(Settings(lake_root="file:///abs/lake"))
"""

from __future__ import annotations

import logging

from flask import Flask

from questlog_query import metrics
from questlog_query.engine import Engine
from questlog_query.errors import QueryTimeout, SqlFailed, SqlOutOfMemory, SqlRejected
from questlog_query.lake import Lake, LakeUnavailable, Snapshot
from questlog_query.openapi import document
from questlog_query.pipeline import PipelineStatus
from questlog_query.sandbox import SqlSandbox
from questlog_query.settings import Settings
from questlog_query.state import EXTENSION, QueryState, state
from questlog_service.errors import ApiError, register_errors
from questlog_service.factory import new_app
from questlog_service.hooks import install_request_hooks
from questlog_service.ops import ops_blueprint

log = logging.getLogger("questlog_query")
SERVICE = "questlog-query"
LAKE_RETRY_AFTER_S = 5


def create_app(settings: Settings | None = None, lake: Lake | None = None) -> Flask:
    """Build the app. Settings default to the environment (failing fast when malformed);
    the lake defaults to the one the settings name. Nothing is read from it here."""
    app, settings = new_app(__name__, SERVICE, settings, Settings.from_env)
    lake = lake or Lake.from_settings(settings)

    def refresh(name: str) -> Snapshot:  # for a query whose snapshot's files a VACUUM deleted
        return lake.snapshot(name, force=True)

    app.extensions[EXTENSION] = QueryState(
        settings=settings,
        lake=lake,
        engine=Engine.from_settings(settings, refresh),
        sandbox=SqlSandbox.from_settings(settings, refresh),
        pipeline=PipelineStatus(settings.extractor_metrics_url, settings.api_metrics_url),
    )

    from questlog_query.api import dashboard, events, kpis, pipeline, sql, stats, tables
    from questlog_query.catalog import catalog

    metrics.initialize(catalog())
    register_errors(app, realm="questlog-query", domain=DOMAIN_ERRORS)
    for module in (tables, events, stats, kpis, sql, pipeline, dashboard):
        app.register_blueprint(module.bp)
    app.register_blueprint(
        ops_blueprint(
            ready=lambda: _reachable(state().lake),
            openapi=document,
            retry_after=lambda: LAKE_RETRY_AFTER_S,
        )
    )
    install_request_hooks(app, metrics.REQUESTS, "questlog_query.access")
    return app


def _reachable(lake: Lake) -> tuple[bool, str | None]:
    problem = lake.check_reachable()
    return problem is None, problem


def _lake_unavailable(exc: LakeUnavailable) -> ApiError:
    log.warning("lake unavailable", extra={"error": str(exc)})
    return ApiError(
        503,
        "the lake cannot be read",
        {"reason": str(exc)},
        code="lake_unavailable",
        retry_after=LAKE_RETRY_AFTER_S,
    )


# The data layer's domain errors, and the only place they meet HTTP.
DOMAIN_ERRORS = {
    LakeUnavailable: _lake_unavailable,
    QueryTimeout: lambda exc: ApiError(408, exc.message, exc.details, code="query_timeout"),
    SqlRejected: lambda exc: ApiError(400, exc.message, exc.details, code=f"sql_{exc.kind}"),
    SqlFailed: lambda exc: ApiError(400, exc.message, exc.details, code="sql_error"),
    SqlOutOfMemory: lambda exc: ApiError(422, exc.message, exc.details, code="sql_out_of_memory"),
}
