"""Load the packaged JSON Schemas once and validate events against them.

Layout: ``json/<event_type>/<MODEL-REVISION-ADDITION>.json``, plus ``json/envelope/``.
Validators are compiled once per registry; an event of a known type is checked by a
single validator (envelope with that type's properties schema inlined) so the hot path
is one call into Rust.

One keyword beyond JSON Schema, ``x-questlog-greaterThan`` (``GREATER_THAN``), because
JSON Schema cannot compare two fields: on a type's properties schema,
``{"to_level": "from_level"}`` says ``to_level`` must be greater than ``from_level``
whenever both are present. Other JSON Schema tools ignore it (an ``x-`` annotation);
every questlog consumer honours it: ``validate`` here, the extractor's quarantine rules,
Locust's payloads.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeGuard

import jsonschema_rs

from questlog_schemas.violation import MAX_VIOLATIONS, Violation, to_violations

ENVELOPE = "envelope"
SCHEMAVER = re.compile(r"^(0|[1-9]\d*)-(0|[1-9]\d*)-(0|[1-9]\d*)$")
EVENT_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# {"greater": "lesser", ...}: each named property, when both are present, is greater
GREATER_THAN = "x-questlog-greaterThan"


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
    # (greater, lesser) property pairs of ``GREATER_THAN``
    greater_than: tuple[tuple[str, str], ...] = ()


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
        # only the types that have GREATER_THAN pairs: the others skip the check
        self._greater_than = {
            name: self.get(name).greater_than
            for name in self.event_types
            if self.get(name).greater_than
        }
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
        violations = (
            [] if validator.is_valid(event) else to_violations(validator.iter_errors(event))
        )
        pairs = self._greater_than.get(event_type) if isinstance(event_type, str) else None
        if pairs:
            violations += _compare(pairs, event.get("properties"))
        return violations[:MAX_VIOLATIONS]

    def validate_properties(self, event_type: str, properties: Any) -> list[Violation]:
        """Check only ``properties``; paths still start with ``properties.``."""
        validator = self._properties_validators.get(event_type)
        if validator is None:
            return [Violation("event_type", f"unknown event type {event_type!r}"[:200])]
        violations = (
            []
            if validator.is_valid(properties)
            else to_violations(validator.iter_errors(properties), prefix=("properties",))
        )
        violations += _compare(self._greater_than.get(event_type, ()), properties)
        return violations[:MAX_VIOLATIONS]


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(pairs: tuple[tuple[str, str], ...], properties: Any) -> list[Violation]:
    """Violations of ``GREATER_THAN``; a missing or mistyped value is the schema's to report."""
    if not pairs or not isinstance(properties, dict):
        return []
    violations: list[Violation] = []
    for greater, lesser in pairs:
        high, low = properties.get(greater), properties.get(lesser)
        if _is_number(high) and _is_number(low) and not high > low:
            violations.append(
                Violation(f"properties.{greater}", f"must be greater than {lesser} ({low})"[:200])
            )
    return violations


def _greater_than(name: str, schema: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The ``GREATER_THAN`` pairs of a properties schema; ``ValueError`` for one that names
    an undeclared or non-numeric property (a rule no consumer could check)."""
    from questlog_schemas.columns import json_type  # columns imports this module

    declared = schema.get(GREATER_THAN, {})
    if not isinstance(declared, dict):
        raise ValueError(f"{name}: {GREATER_THAN} must be an object of property names")
    fields = schema.get("properties", {})
    for pair in declared.items():
        for prop in pair:
            spec = fields.get(prop) if isinstance(prop, str) else None
            if spec is None or json_type(spec) not in ("integer", "number"):
                raise ValueError(
                    f"{name}: {GREATER_THAN} names {prop!r}, which is not a "
                    "numeric property of the type"
                )
    return tuple(declared.items())


def _event_type(name: str, version: str, schema: dict[str, Any]) -> EventType:
    version_key(version)
    return EventType(
        name=name,
        version=version,
        properties_schema=schema,
        property_names=tuple(schema.get("properties", {})),
        required=tuple(schema.get("required", ())),
        greater_than=_greater_than(f"{name} {version}", schema),
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
