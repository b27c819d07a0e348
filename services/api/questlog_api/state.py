"""The per-app objects views need, kept in ``app.extensions["questlog_api"]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import current_app

from questlog_api.ratelimit import RateLimiter
from questlog_api.settings import Settings
from questlog_api.sink import Sink
from questlog_schemas import Registry

EXTENSION = "questlog_api"


@dataclass
class ApiState:
    settings: Settings
    sink: Sink
    registry: Registry
    limiter: RateLimiter


def state() -> ApiState:
    return cast(ApiState, current_app.extensions[EXTENSION])
