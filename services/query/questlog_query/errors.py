"""The query service's domain errors: what its data layer (engine, sandbox) raises when a
query cannot be answered. They know nothing of HTTP: the app maps each to a status and an
error code (``questlog_query.app``), as it maps ``lake.LakeUnavailable``.

Usage::

    raise QueryTimeout(30.0)
    raise SqlRejected("not_select", "only SELECT statements are allowed")
"""

from __future__ import annotations

from typing import Any


class QueryError(Exception):
    """A query that cannot be answered; ``details`` says why, for the client."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class QueryTimeout(QueryError):
    """The watchdog interrupted the query at its time limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"query stopped after the {seconds:g} s limit", timeout_s=seconds)


class SqlRejected(QueryError):
    """An analyst's statement refused before it ran; ``kind`` names the rule it broke
    (too_long, parse_error, not_single_statement, not_select)."""

    def __init__(self, kind: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.kind = kind


class SqlFailed(QueryError):
    """An analyst's statement failed in DuckDB: their mistake, not the service's."""


class SqlOutOfMemory(QueryError):
    """An analyst's statement needed more than the memory limit."""
