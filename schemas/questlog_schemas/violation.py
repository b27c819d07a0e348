"""Turn jsonschema-rs errors into small, bounded, JSON-friendly violations.

Errors echo the offending value and can list every unexpected key, so a hostile event
could make an error report as large as the event itself: messages are truncated and the
number of violations per event is capped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jsonschema_rs

MAX_VIOLATIONS = 50
MAX_MESSAGE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason an event is invalid; ``path`` is dotted, e.g. ``properties.price``."""

    path: str
    message: str


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _join(parts: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in parts)


def to_violations(
    errors: Iterable[jsonschema_rs.ValidationError], prefix: tuple[str, ...] = ()
) -> list[Violation]:
    """Point each violation at the field it concerns, not at the object that holds it.

    jsonschema-rs reports a missing or an extra key at the parent object; callers (and
    API clients) want ``properties.sword_type``, so those errors are re-targeted, one
    violation per key.
    """
    violations: list[Violation] = []
    for error in errors:
        path = (*prefix, *error.instance_path)
        kind = error.kind.name
        if kind == "required":
            name = str(error.kind.value)
            violations.append(Violation(_truncate(_join((*path, name))), "is required"))
        elif kind == "additionalProperties":
            for name in error.kind.value:
                violations.append(
                    Violation(_truncate(_join((*path, name))), "is not an allowed property")
                )
        else:
            violations.append(Violation(_join(path), _truncate(error.message)))
        if len(violations) >= MAX_VIOLATIONS:
            return violations[:MAX_VIOLATIONS]
    return violations
