"""Every error the API answers with, as JSON ``{"error": {"code", "message", "details"}}``.

Views raise ``ApiError``; the handlers registered in ``register`` turn it (and werkzeug's
own HTTP errors, e.g. 404, 405 or a body over MAX_CONTENT_LENGTH) into that shape.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

CODES = {
    400: "malformed",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_event",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: Any = None,
                 retry_after: int | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.details = details if details is not None else {}
        self.retry_after = retry_after
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details: Any = None,
                   retry_after: int | None = None, headers: dict[str, str] | None = None):
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    response = jsonify(body)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="questlog"'
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.retry_after,
                              exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        if status == 413:
            message = "request body too large"
        else:
            message = exc.description or exc.name
        response = error_response(status, CODES.get(status, "http_error"), message)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error: %s", type(exc).__name__)
        return error_response(500, "internal", "internal server error")
