"""Operational routes, the same in every web service: ``/healthz`` (the process answers:
nothing else is checked, so an outage downstream never restarts it), ``/readyz``
(whether it can serve now), ``/metrics`` (every gunicorn worker's) and ``/openapi.json``.

Readiness answers ``200 {"status": "ready"}`` or ``503 {"status": "unavailable",
"reason": ...}`` with ``Retry-After``: a probe needs only the status, a person the reason.

Usage::

    app.register_blueprint(ops_blueprint(
        ready=lambda: state().sink.ready(),            # (ok, reason or None)
        openapi=lambda: document(state().registry),
        retry_after=lambda: state().settings.retry_after_s))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify

from questlog_service.metrics import render


def ops_blueprint(
    *,
    ready: Callable[[], tuple[bool, str | None]],
    openapi: Callable[[], dict[str, Any]],
    retry_after: Callable[[], int],
) -> Blueprint:
    """A fresh blueprint ``ops`` whose readiness and document are this service's."""
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @bp.get("/readyz")
    def readyz() -> Response:
        ok, reason = ready()
        if ok:
            return jsonify(status="ready")
        response = jsonify(status="unavailable", reason=reason)
        response.status_code = 503
        response.headers["Retry-After"] = str(retry_after())
        return response

    @bp.get("/metrics")
    def metrics() -> Response:
        body, content_type = render()
        return Response(body, content_type=content_type)

    @bp.get("/openapi.json")
    def openapi_document() -> Response:
        return jsonify(openapi())

    return bp
