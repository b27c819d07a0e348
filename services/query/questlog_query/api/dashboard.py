"""GET /dashboard: the live dashboard, a static page that polls the public REST GETs.

The page's files are build output (``make setup``: ``npm ci`` + ``build.mjs`` in
services/query/dashboard) in ``questlog_query/static/dashboard``, never committed; without
them every dashboard route answers 503 naming ``make setup`` rather than a broken page.
Only the names in the build's ``manifest.json`` are served. The page holds no token and
sends no SQL, and its Content-Security-Policy lets it load and call only this origin.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, current_app, redirect, request, send_file
from werkzeug.wrappers import Response as BaseResponse

from questlog_query.api import not_found
from questlog_service.errors import ApiError

bp = Blueprint("dashboard", __name__)

BUILT = Path(__file__).resolve().parents[1] / "static" / "dashboard"
# img-src allows data: because Pico CSS draws its icons as data: SVGs in the stylesheet.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".md": "text/plain; charset=utf-8",
}


def assets_dir() -> Path:
    """The built page; ``app.config["QUESTLOG_DASHBOARD_DIR"]`` overrides it (tests)."""
    return Path(current_app.config.get("QUESTLOG_DASHBOARD_DIR", BUILT))


def _manifest() -> dict[str, str]:
    """The served names -> sha256, or 503 when the build is missing or incomplete."""
    root = assets_dir()
    files: dict[str, str] | None
    try:
        files = json.loads((root / "manifest.json").read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        files = None
    missing = [] if files is None else [n for n in files if not (root / n).is_file()]
    if files is None or missing or "index.html" not in files:
        raise ApiError(
            503,
            "the dashboard's files are not built: run `make setup` (npm ci + the dashboard "
            "build), then reload",
            {"assets_dir": str(root), "missing": missing or ["manifest.json"]},
            code="dashboard_not_built",
        )
    return files


def _file(name: str) -> Response:
    response = send_file(
        assets_dir() / name,
        mimetype=TYPES.get(Path(name).suffix, "application/octet-stream"),
        max_age=0,
        conditional=True,
        etag=True,
    )
    response.headers["Cache-Control"] = "no-cache"  # revalidate: a rebuild shows at once
    return response


@bp.get("/")
def root() -> BaseResponse:
    query = request.query_string.decode("latin-1")  # e.g. ?refresh=5 reaches the page
    return redirect("/dashboard" + (f"?{query}" if query else ""), code=302)


@bp.get("/dashboard")
@bp.get("/dashboard/")
def page() -> Response:
    _manifest()
    return _file("index.html")


@bp.get("/dashboard/<name>")
def asset(name: str) -> Response:
    if name not in _manifest() or name == "index.html":
        raise not_found(f"no dashboard file {name!r}")
    return _file(name)


@bp.after_request
def harden(response: Response) -> Response:
    """Every dashboard answer, errors included, carries the page's security headers."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response
