"""questlog's event contract: the only place an event's fields are defined.

Usage::

    from questlog_schemas import load_registry

    registry = load_registry()
    violations = registry.validate(event)   # [] means valid

Spark schemas live in ``questlog_schemas.spark`` (needs pyspark, imported only there); the
lake's table layout in ``questlog_schemas.lake``.
"""

from questlog_schemas.columns import property_columns
from questlog_schemas.registry import EventType, Registry, UnknownEventType, load_registry
from questlog_schemas.violation import Violation

__all__ = [
    "EventType",
    "Registry",
    "UnknownEventType",
    "Violation",
    "load_registry",
    "property_columns",
]
