"""Every error a questlog service answers with, as JSON
``{"error": {"code", "message", "details"}}`` (Flask's InvalidAPIUsage pattern).

Views raise ``ApiError``. Data layers raise their own domain errors, which know nothing
of HTTP; the app maps each to an ``ApiError`` when it registers the handlers, so status
codes live only in the web layer. werkzeug's own HTTP errors (404, 405, a body over
MAX_CONTENT_LENGTH) and anything unexpected (500, logged with its traceback) get the same
shape.

Usage::

    raise ApiError(413, "request body too large", {"max_bytes": limit})
    raise ApiError(503, "the lake cannot be read", code="lake_unavailable", retry_after=5)
    register_errors(app, realm="questlog-query",
                    domain={LakeUnavailable: lambda exc: ApiError(503, str(exc))})
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from questlog_service.logs import REQUEST_ID

log = logging.getLogger(__name__)

# the code of an error raised without one, by status
CODES = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """An error the client can act on: its status, a message, machine-readable details,
    and a ``code`` (default: by status, ``CODES``)."""

    def __init__(
        self,
        status: int,
        message: str,
        details: Any = None,
        *,
        code: str | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.details = details if details is not None else {}
        self.retry_after = retry_after
        self.headers = dict(headers or {})


def error_response(exc: ApiError, realm: str = "questlog") -> Response:
    body = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
    response = jsonify(body)
    response.status_code = exc.status
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    for name, value in exc.headers.items():
        response.headers[name] = value
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer realm="{realm}"'
    return response


def register_errors(
    app: Flask,
    realm: str = "questlog",
    domain: Mapping[type[Exception], Callable[[Any], ApiError]] | None = None,
) -> None:
    """JSON handlers for ``ApiError``, each ``domain`` error (mapped to an ``ApiError`` by
    its function), werkzeug's HTTP errors and anything else. ``realm`` names the service in
    a 401's ``WWW-Authenticate``."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc, realm)

    for kind, to_api_error in (domain or {}).items():
        app.register_error_handler(kind, _mapped(to_api_error, realm))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = "request body too large" if status == 413 else exc.description or exc.name
        response = error_response(
            ApiError(status, message, code=CODES.get(status, "http_error")), realm
        )
        allow = exc.get_response().headers.get("Allow") if status == 405 else None
        if allow:
            response.headers["Allow"] = allow
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error: %s", type(exc).__name__)
        details = {"request_id": REQUEST_ID.get()} if REQUEST_ID.get() else {}
        return error_response(ApiError(500, "internal server error", details), realm)


def _mapped(to_api_error: Callable[[Any], ApiError], realm: str) -> Callable[[Exception], Response]:
    def handler(exc: Exception) -> Response:
        return error_response(to_api_error(exc), realm)

    return handler
