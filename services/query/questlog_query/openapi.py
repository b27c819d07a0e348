"""OpenAPI 3.1 description of every route (served at /openapi.json)."""

from __future__ import annotations

from functools import cache
from typing import Any

from questlog_query.catalog import catalog, event_types

_TIME = {"type": "string", "format": "date-time"}


def _query(
    name: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


_SINCE = _query("since", _TIME, "inclusive lower bound on received_at (ISO 8601, UTC if no offset)")
_UNTIL = _query("until", _TIME, "exclusive upper bound on received_at")
_FORMAT = _query("format", {"type": "string", "enum": ["json", "csv"]}, "csv for text/csv")


def _limit(default: int, maximum: int) -> dict[str, Any]:
    return _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        "maximum rows",
    )


def _tabular(description: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["rows", "as_of", "freshness_seconds"],
                    "properties": {
                        "rows": {"type": "array", "items": {"type": "object"}},
                        "as_of": {"$ref": "#/components/schemas/AsOf"},
                        "freshness_seconds": {"$ref": "#/components/schemas/Freshness"},
                        **(extra or {}),
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }


def _status(description: str) -> dict[str, Any]:
    """``{"status", "reason"}``, the ops routes' answer (``questlog_service.ops``)."""
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
                }
            }
        },
    }


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad request",
        401: "missing or wrong token",
        403: "disabled",
        404: "unknown table",
        408: "query timed out",
        422: "query too large",
        503: "lake unavailable",
    }
    return {
        str(code): {
            "description": text[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def _get(
    summary: str, parameters: list[dict[str, Any]], ok: dict[str, Any], *errors: int
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {"200": ok, **_errors(400, 503, *errors)},
        }
    }


def _dashboard() -> dict[str, Any]:
    """The live dashboard's page and files (not JSON: built by `make setup`, else 503)."""
    missing = {
        "503": {
            "description": "the dashboard is not built: run `make setup`",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    }
    page = {
        "get": {
            "summary": "the live dashboard (HTML; polls the REST GET endpoints every 2 s)",
            "responses": {
                "200": {
                    "description": "the page",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                **missing,
            },
        }
    }
    return {
        "/": {
            "get": {
                "summary": "redirects to /dashboard",
                "responses": {"302": {"description": "to /dashboard"}},
            }
        },
        "/dashboard": page,
        "/dashboard/": page,
        "/dashboard/{name}": {
            "get": {
                "summary": "a file of the dashboard (its script, stylesheet, vendored chart.js "
                "and Pico CSS)",
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 200},
                    }
                ],
                "responses": {"200": {"description": "the file"}, **_errors(404), **missing},
            }
        },
    }


@cache
def document() -> dict[str, Any]:
    tables = list(catalog())
    types = list(event_types())
    columns = sorted({c for spec in catalog().values() for c in spec.columns})
    kpi = "/v1/kpis"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "questlog query service",
            "version": "0.1.0",
            "description": "Read-only analytics over the committed Delta snapshots. Every "
            "tabular answer carries as_of (table -> Delta version, null while the table "
            "does not exist) and freshness_seconds; ?format=csv or Accept: text/csv gives CSV.",
        },
        "paths": {
            "/v1/tables": _get(
                "every table with rows, columns, version and freshness",
                [_FORMAT],
                {
                    "description": "tables",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["tables", "as_of"],
                                "properties": {
                                    "tables": {"type": "array", "items": {"type": "object"}},
                                    "as_of": {"$ref": "#/components/schemas/AsOf"},
                                },
                            }
                        },
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
            ),
            "/v1/pipeline": {
                "get": {
                    "summary": "the lake read here and what the extractor and the event API "
                    "report (their /metrics, scraped and cached 1 s; counters since each "
                    "process started; available=false with the reason when not reachable)",
                    "parameters": [],
                    "responses": {
                        "200": {
                            "description": "pipeline status",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["lake", "extractor", "api", "as_of"],
                                        "properties": {
                                            "lake": {"type": "object"},
                                            "extractor": {
                                                "type": "object",
                                                "required": ["available", "error"],
                                            },
                                            "api": {
                                                "type": "object",
                                                "required": ["available", "error"],
                                            },
                                            "as_of": {"type": "string", "format": "date-time"},
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/v1/events/{event_type}": _get(
                "raw events, newest-last, keyset paging",
                [
                    {
                        "name": "event_type",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": types},
                    },
                    _query("player_id", {"type": "string", "maxLength": 1024}, "equal to"),
                    _query("host", {"type": "string", "maxLength": 1024}, "equal to"),
                    _SINCE,
                    _UNTIL,
                    _limit(100, 1000),
                    _query(
                        "order",
                        {"type": "string", "enum": ["asc", "desc"]},
                        "by (received_at, event_id)",
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "maxLength": 1024},
                        "next_cursor of the previous page",
                    ),
                    _FORMAT,
                ],
                _tabular("events", {"next_cursor": {"type": ["string", "null"]}}),
                404,
            ),
            "/v1/stats/counts": _get(
                "event counts grouped by columns of the type",
                [
                    _query("event_type", {"type": "string", "enum": tables}, "table", True),
                    _query(
                        "group_by",
                        {"type": "string", "maxLength": 1024},
                        f"comma-separated columns (up to 4) of: {', '.join(columns)}",
                    ),
                    _SINCE,
                    _UNTIL,
                    _limit(1000, 10000),
                    _FORMAT,
                ],
                _tabular("counts", {"truncated": {"type": "boolean"}}),
                404,
            ),
            f"{kpi}/dau": _get(
                "daily active players over all event types",
                [_SINCE, _UNTIL, _FORMAT],
                _tabular("event_date, dau"),
            ),
            f"{kpi}/revenue": _get(
                "purchases, swords and revenue (price * quantity) per currency",
                [
                    _query(
                        "by",
                        {"type": "string", "enum": ["sword_type", "player_id", "host"]},
                        "grouping key",
                    ),
                    _SINCE,
                    _UNTIL,
                    _limit(1000, 10000),
                    _FORMAT,
                ],
                _tabular("revenue", {"by": {"type": "string"}}),
            ),
            f"{kpi}/top-spenders": _get(
                "players by revenue",
                [_SINCE, _UNTIL, _limit(10, 1000), _FORMAT],
                _tabular("player_id, currency, purchases, revenue"),
            ),
            f"{kpi}/guilds": _get(
                "joins and distinct members per guild",
                [_SINCE, _UNTIL, _limit(1000, 10000), _FORMAT],
                _tabular("guild_id, guild_name, joins, members"),
            ),
            f"{kpi}/events-per-minute": _get(
                "events per minute and type (window defaults to the hour before until)",
                [
                    _query("event_type", {"type": "string", "enum": types}, "one type only"),
                    _SINCE,
                    _UNTIL,
                    _FORMAT,
                ],
                _tabular("minute, event_type, events"),
                404,
            ),
            "/v1/sql": {
                "post": {
                    "summary": "one read-only SELECT over the tables (row and time limits)",
                    "security": [{"readToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["sql"],
                                    "properties": {
                                        "sql": {"type": "string", "maxLength": 100000},
                                        "params": {
                                            "oneOf": [{"type": "array"}, {"type": "object"}]
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "parameters": [_FORMAT],
                    "responses": {
                        "200": _tabular(
                            "result",
                            {
                                "columns": {"type": "array"},
                                "row_count": {"type": "integer"},
                                "truncated": {"type": "boolean"},
                                "max_rows": {"type": "integer"},
                            },
                        ),
                        **_errors(400, 401, 403, 408, 422, 503),
                    },
                }
            },
            **_dashboard(),
            "/healthz": {"get": {"summary": "process alive", "responses": {"200": _status("ok")}}},
            "/readyz": {
                "get": {
                    "summary": "lake reachable",
                    "responses": {
                        "200": _status("ready"),
                        "503": _status("unavailable, with the reason and Retry-After"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
        "components": {
            "securitySchemes": {"readToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "AsOf": {"type": "object", "additionalProperties": {"type": ["integer", "null"]}},
                "Freshness": {
                    "type": "object",
                    "additionalProperties": {"type": ["number", "null"]},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "details"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {"type": "object"},
                            },
                        }
                    },
                },
            },
        },
    }
