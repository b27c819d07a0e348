"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from questlog_query import metrics
from questlog_query.api import lake
from questlog_query.errors import ApiError
from questlog_query.openapi import document

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    problem = lake().check_reachable()
    if problem is not None:
        raise ApiError(503, "not_ready", "lake is not reachable", {"reason": problem})
    return jsonify(status="ready")


@bp.get("/metrics")
def prometheus():
    data, content_type = metrics.render()
    return Response(data, content_type=content_type)


@bp.get("/openapi.json")
def openapi():
    return jsonify(document())
