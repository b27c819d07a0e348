"""The per-app objects views need, kept in ``app.extensions["questlog_query"]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import current_app

from questlog_query.engine import Engine
from questlog_query.lake import Lake
from questlog_query.pipeline import PipelineStatus
from questlog_query.sandbox import SqlSandbox
from questlog_query.settings import Settings

EXTENSION = "questlog_query"


@dataclass
class QueryState:
    settings: Settings
    lake: Lake
    engine: Engine  # the service's own fixed queries
    sandbox: SqlSandbox  # analysts' POST /v1/sql
    pipeline: PipelineStatus  # the other services' /metrics, for GET /v1/pipeline


def state() -> QueryState:
    return cast(QueryState, current_app.extensions[EXTENSION])
