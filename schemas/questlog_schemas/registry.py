"""Load the packaged JSON Schemas once and validate events against them.

Layout: ``json/<event_type>/<MODEL-REVISION-ADDITION>.json``, plus ``json/envelope/``.
Validators are compiled once per registry; an event of a known type is checked by a
single validator (envelope with that type's properties schema inlined) so the hot path
is one call into Rust.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jsonschema_rs

from questlog_schemas.violation import Violation, to_violations

ENVELOPE = "envelope"
SCHEMAVER = re.compile(r"^(0|[1-9]\d*)-(0|[1-9]\d*)-(0|[1-9]\d*)$")
EVENT_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownEventType(KeyError):
    """Raised for an event type (or version) that has no schema file."""


@dataclass(frozen=True)
class EventType:
    """One version of an event type's ``properties`` schema (treat it as read-only)."""

    name: str
    version: str
    properties_schema: dict[str, Any] = field(hash=False, repr=False)
    property_names: tuple[str, ...]
    required: tuple[str, ...]


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key for SchemaVer strings: ``1-10-0`` is newer than ``1-9-0``."""
    match = SCHEMAVER.match(version)
    if match is None:
        raise ValueError(f"not a SchemaVer MODEL-REVISION-ADDITION version: {version!r}")
    model, revision, addition = (int(part) for part in match.groups())
    return model, revision, addition


def _compile(schema: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
    # Formats (uuid, date-time) are only annotations in 2020-12 unless asked for.
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def _embeddable(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy without the keywords that only belong at a document root."""
    return {k: v for k, v in schema.items() if k not in {"$schema", "$id"}}


class Registry:
    """Every event type and version known to this package, with compiled validators.

    ``validate`` checks against the newest version of each type: ADDITION changes keep
    old events valid, and a MODEL change is expected to come with a new type name or a
    new envelope ``schema_version``.
    """

    def __init__(
        self, envelope: dict[str, Any], types: Mapping[str, Mapping[str, dict[str, Any]]]
    ) -> None:
        self._types: dict[str, dict[str, EventType]] = {}
        for name, versions in types.items():
            if not EVENT_TYPE_NAME.match(name) or name == ENVELOPE:
                raise ValueError(f"invalid event type name: {name!r}")
            if not versions:
                raise ValueError(f"event type {name!r} has no versions")
            ordered = sorted(versions, key=version_key)
            self._types[name] = {v: _event_type(name, v, versions[v]) for v in ordered}
        self.event_types: tuple[str, ...] = tuple(sorted(self._types))

        # The envelope file says "a string"; the registry narrows it to the known types.
        self.envelope_schema: dict[str, Any] = copy.deepcopy(envelope)
        self.envelope_schema["properties"]["event_type"]["enum"] = list(self.event_types)
        self._envelope_validator = _compile(self.envelope_schema)

        self._event_validators: dict[str, jsonschema_rs.Draft202012Validator] = {}
        self._properties_validators: dict[str, jsonschema_rs.Draft202012Validator] = {}
        for name in self.event_types:
            props = _embeddable(self.get(name).properties_schema)
            typed = copy.deepcopy(self.envelope_schema)
            typed["properties"]["event_type"] = {"type": "string", "const": name}
            typed["properties"]["properties"] = props
            self._event_validators[name] = _compile(typed)
            self._properties_validators[name] = _compile(props)

    def versions(self, event_type: str) -> tuple[str, ...]:
        """All versions of ``event_type``, oldest first."""
        try:
            return tuple(self._types[event_type])
        except KeyError:
            raise UnknownEventType(event_type) from None

    def get(self, event_type: str, version: str | None = None) -> EventType:
        """The newest version of ``event_type``, or the given one."""
        versions = self._types.get(event_type)
        if versions is None:
            raise UnknownEventType(event_type)
        if version is None:
            return versions[next(reversed(versions))]
        try:
            return versions[version]
        except KeyError:
            raise UnknownEventType(f"{event_type} {version}") from None

    def validate(self, event: Any) -> list[Violation]:
        """Violations of the envelope and of the type's properties; empty means valid."""
        event_type = event.get("event_type") if isinstance(event, dict) else None
        validator = self._event_validators.get(event_type) if isinstance(event_type, str) else None
        if validator is None:  # unknown or missing type: the envelope reports it
            validator = self._envelope_validator
        if validator.is_valid(event):
            return []
        return to_violations(validator.iter_errors(event))

    def validate_properties(self, event_type: str, properties: Any) -> list[Violation]:
        """Check only ``properties``; paths still start with ``properties.``."""
        validator = self._properties_validators.get(event_type)
        if validator is None:
            return [Violation("event_type", f"unknown event type {event_type!r}"[:200])]
        if validator.is_valid(properties):
            return []
        return to_violations(validator.iter_errors(properties), prefix=("properties",))


def _event_type(name: str, version: str, schema: dict[str, Any]) -> EventType:
    version_key(version)
    return EventType(
        name=name,
        version=version,
        properties_schema=schema,
        property_names=tuple(schema.get("properties", {})),
        required=tuple(schema.get("required", ())),
    )


def read_schema_files() -> dict[str, dict[str, dict[str, Any]]]:
    """``{directory: {version: schema}}`` for every JSON file shipped in the package."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    root = resources.files("questlog_schemas") / "json"
    for directory in root.iterdir():
        if not directory.is_dir():
            continue
        for item in directory.iterdir():
            if item.name.endswith(".json"):
                version = item.name.removesuffix(".json")
                found.setdefault(directory.name, {})[version] = json.loads(item.read_text("utf-8"))
    return found


@functools.cache
def load_registry() -> Registry:
    """The registry of the packaged schemas, read and compiled once per process."""
    files = read_schema_files()
    envelopes = files.pop(ENVELOPE)
    newest = max(envelopes, key=version_key)
    return Registry(envelopes[newest], files)
