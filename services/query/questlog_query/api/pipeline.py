"""GET /v1/pipeline: the lake this service reads and what the extractor and the event API
report about themselves (``questlog_query.pipeline``), for the report and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

from questlog_query.catalog import catalog
from questlog_query.state import state

bp = Blueprint("pipeline", __name__)


@bp.get("/v1/pipeline")
def pipeline() -> dict[str, Any]:
    views = state().pipeline.snapshot()
    return {
        "lake": {"root": state().settings.lake_root, "tables": list(catalog())},
        "extractor": views["extractor"],
        "api": views["api"],
        "as_of": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
