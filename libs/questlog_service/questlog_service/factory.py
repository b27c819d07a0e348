"""The first lines of every web service's app factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from flask import Flask

from questlog_service.logs import configure_logging


class HasLogLevel(Protocol):
    @property
    def log_level(self) -> str: ...


S = TypeVar("S", bound=HasLogLevel)


def new_app(
    import_name: str, service: str, settings: S | None, from_env: Callable[[], S]
) -> tuple[Flask, S]:
    """A Flask app whose JSON keeps the order handlers give, and its settings: those
    given, else ``from_env()`` (which fails fast, naming every bad variable) with the
    process's logging configured from them. Settings given in code leave logging alone
    (tests, embedding)."""
    if settings is None:
        settings = from_env()
        configure_logging(service, settings.log_level)
    app = Flask(import_name)
    # Flask types app.json as the JSONProvider base; its default provider has sort_keys
    app.json.sort_keys = False  # type: ignore[attr-defined]
    return app, settings
