"""GET /v1/pipeline: the lake this service reads and what the extractor and the event API
report about themselves (``questlog_query.pipeline``), for the report and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app

from questlog_query.api import settings
from questlog_query.catalog import catalog
from questlog_query.pipeline import PipelineStatus

bp = Blueprint("pipeline", __name__)


def status() -> PipelineStatus:
    ext = current_app.extensions
    if "questlog_pipeline" not in ext:
        s = settings()
        ext["questlog_pipeline"] = PipelineStatus(s.extractor_metrics_url, s.api_metrics_url)
    return ext["questlog_pipeline"]


@bp.get("/v1/pipeline")
def pipeline():
    views = status().snapshot()
    return {
        "lake": {"root": settings().lake_root, "tables": list(catalog())},
        "extractor": views["extractor"],
        "api": views["api"],
        "as_of": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
