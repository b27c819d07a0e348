"""Blueprints, one module per group of routes, and the helpers views share. The objects
views need (settings, lake, engine, sandbox) come from ``questlog_query.state.state()``."""

from __future__ import annotations

from typing import Any

from questlog_query.catalog import TableSpec, catalog
from questlog_service.errors import ApiError


def bad_request(message: str, **details: Any) -> ApiError:
    return ApiError(400, message, details, code="bad_request")


def not_found(message: str, **details: Any) -> ApiError:
    return ApiError(404, message, details)


def table_spec(name: str, allow_quarantine: bool = True) -> TableSpec:
    spec = catalog().get(name)
    if spec is None or (not allow_quarantine and not spec.is_event_table):
        raise not_found(
            f"unknown table {name!r}",
            known=[n for n, s in catalog().items() if allow_quarantine or s.is_event_table],
        )
    return spec
