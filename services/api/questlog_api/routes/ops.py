"""Operational routes: liveness, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from questlog_api import metrics
from questlog_api.openapi import document
from questlog_api.state import state

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers: nothing else is checked (a Kafka outage must not restart us)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Whether events sent now can be acknowledged: Kafka reachable, producer up."""
    ok, reason = state().sink.ready()
    if ok:
        return jsonify(status="ready")
    response = jsonify(status="unavailable", reason=reason)
    response.status_code = 503
    response.headers["Retry-After"] = str(state().settings.retry_after_s)
    return response


@bp.get("/metrics")
def prometheus():
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi():
    return jsonify(document(state().registry, state().settings))
