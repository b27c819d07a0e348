"""Blueprints, one module per group of routes."""

from __future__ import annotations

from flask import current_app

from questlog_query.catalog import TableSpec, catalog
from questlog_query.engine import Engine
from questlog_query.errors import not_found
from questlog_query.lake import Lake
from questlog_query.sandbox import SqlSandbox
from questlog_query.settings import Settings


def lake() -> Lake:
    return current_app.extensions["questlog_lake"]


def engine() -> Engine:
    return current_app.extensions["questlog_engine"]


def sandbox() -> SqlSandbox:
    return current_app.extensions["questlog_sandbox"]


def settings() -> Settings:
    return current_app.extensions["questlog_settings"]


def table_spec(name: str, allow_quarantine: bool = True) -> TableSpec:
    spec = catalog().get(name)
    if spec is None or (not allow_quarantine and not spec.is_event_table):
        raise not_found(
            f"unknown table {name!r}",
            known=[n for n, s in catalog().items() if allow_quarantine or s.is_event_table],
        )
    return spec
