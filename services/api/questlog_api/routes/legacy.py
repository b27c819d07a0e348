"""The original walkthrough's GET routes, so its clients (and Apache Bench commands) work
unchanged: query parameters become properties, the player is the Host header, and the
reply bodies are the original ones, sent only after Kafka acknowledged the event.

Defaults make the bare routes valid events: the original app sent no properties at all,
so ``sword_type`` and ``guild_id`` (required by the schemas) default to ``"default"``.

A client that wants to retry safely names its event: ``X-Event-Id: <uuid>`` or
``?event_id=<uuid>`` (never a property). The id comes back in ``X-Event-Id`` on every
answer, the 503 included, so resending it after a refusal stores the event once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypedDict

from flask import Blueprint, request

from questlog_api.ingest import guard, ingest, meta
from questlog_api.state import state
from questlog_service.errors import ApiError

bp = Blueprint("legacy", __name__)

INTEGER = re.compile(r"^[+-]?\d{1,18}$")
UUID = re.compile(r"^[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$")  # compared lower-cased
ID_PARAM = "event_id"
ID_HEADER = "X-Event-Id"


class LegacyRoute(TypedDict):
    """An original route: its URLs, the properties a bare request gets, its reply body."""

    rules: tuple[str, ...]
    defaults: dict[str, str]
    reply: str


ROUTES: dict[str, LegacyRoute] = {
    "purchase_sword": {
        "rules": ("/purchase_sword", "/purchase_a_sword", "/buy_a_sword"),
        "defaults": {"sword_type": "default"},
        "reply": "\nSword Purchased!\n",
    },
    "join_guild": {
        "rules": ("/join_guild", "/join_a_guild"),
        "defaults": {"guild_id": "default"},
        "reply": "\nGuild joined!\n",
    },
}


def coerce(value: str, json_type: Any) -> Any:
    """A query string value as the schema's type; left as text when it does not parse
    (validation then names the field)."""
    if json_type == "integer" and INTEGER.match(value):
        return int(value)
    if json_type == "number":
        if INTEGER.match(value):
            return int(value)
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    if json_type == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def properties_from_query(event_type: str) -> dict[str, Any]:
    spec = ROUTES[event_type]
    fields = state().registry.get(event_type).properties_schema.get("properties", {})
    props: dict[str, Any] = dict(spec["defaults"])
    for name in request.args:
        if name == ID_PARAM:  # the idempotency key, never a property
            continue
        value = request.args.get(name, "")
        props[name] = coerce(value, fields.get(name, {}).get("type"))
    return props


def client_event_id() -> str | None:
    """The client's idempotency key (header or query parameter), lower-cased; 400 when it
    is not a UUID or the two disagree."""
    sent = request.args.getlist(ID_PARAM)
    header = request.headers.get(ID_HEADER)
    if header is not None:
        sent.append(header)
    if not sent:
        return None
    values = {value.strip().lower() for value in sent}
    if len(values) > 1:
        raise ApiError(
            400,
            f"{ID_HEADER} and {ID_PARAM} name different events",
            {"event_ids": sorted(value[:40] for value in values)[:4]},
        )
    [value] = values
    if not UUID.match(value):
        raise ApiError(400, f"{ID_HEADER} / {ID_PARAM} must be a UUID", {"event_id": value[:40]})
    return value


def _view(event_type: str) -> Callable[[], tuple[str, int, dict[str, str]]]:
    def view() -> tuple[str, int, dict[str, str]]:
        if request.method == "HEAD":  # a probe must not create an event
            raise ApiError(405, "use GET")
        guard()
        event: dict[str, Any] = {
            "event_type": event_type,
            "properties": properties_from_query(event_type),
        }
        event_id = client_event_id()
        if event_id is not None:
            event["event_id"] = event_id
        stored = ingest([event], meta())
        # the original body, plus the id so load tests can keep an exact ledger
        return ROUTES[event_type]["reply"], 200, {"X-Event-Id": stored[0]["event_id"]}

    view.__name__ = event_type
    return view


for _type, _spec in ROUTES.items():
    _fn = _view(_type)
    for _rule in _spec["rules"]:
        bp.add_url_rule(
            _rule, endpoint=f"{_type}{_rule.replace('/', '_')}", view_func=_fn, methods=["GET"]
        )
