"""POST /v1/events: one JSON event, a JSON array of events, or NDJSON."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, request

from questlog_api.envelope import Malformed, parse_body
from questlog_api.guards import read_body
from questlog_api.ingest import guard, ingest, meta
from questlog_api.state import state
from questlog_service.errors import ApiError

bp = Blueprint("events", __name__)

JSON_TYPES = {"application/json"}
NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonlines"}


# merge_slashes=False: "//v1//events" is a 404, not a 308 that invites a re-POST
@bp.post("/v1/events", merge_slashes=False)
def post_events() -> Response:
    guard()
    mimetype = request.mimetype
    if mimetype not in JSON_TYPES | NDJSON_TYPES:
        raise ApiError(
            415,
            "Content-Type must be application/json or application/x-ndjson",
            {"content_type": mimetype[:100]},
        )
    limit = state().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "request body too large", {"max_bytes": limit})
    data = read_body(request)  # 408 for a body that trickles in (slowloris)
    try:
        events = parse_body(data, ndjson=mimetype in NDJSON_TYPES)
    except Malformed as exc:
        raise ApiError(400, str(exc)) from None
    envelopes = ingest(events, meta())
    body = orjson.dumps(
        {"accepted": len(envelopes), "event_ids": [e["event_id"] for e in envelopes]}
    )
    return current_app.response_class(body, status=202, mimetype="application/json")
