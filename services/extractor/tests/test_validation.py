"""The quarantine rules agree with the registry on ``x-questlog-greaterThan``, the one rule
that is not plain JSON Schema (the other rules: test_transforms.py's poison cases)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from questlog_extractor import transforms
from questlog_schemas import Registry
from questlog_schemas.registry import ENVELOPE, GREATER_THAN, read_schema_files

STAGE = {
    "type": "object",
    "properties": {"low": {"type": "integer", "minimum": 1}, "high": {"type": "number"}},
    "required": ["low"],
    "additionalProperties": False,
    GREATER_THAN: {"high": "low"},
}
CASES = [  # properties, the quarantine reason (None: stored)
    ({"low": 1, "high": 2}, None),
    ({"low": 1, "high": 1.5}, None),
    ({"low": 3}, None),  # nothing to compare
    ({"low": 3, "high": 3}, "invalid_value: properties.high"),
    ({"low": 3, "high": 2.5}, "invalid_value: properties.high"),
    ({"low": 0, "high": 2}, "invalid_value: properties.low"),  # the field's own rule first
    ({"low": "3", "high": 2}, "wrong_type: properties.low"),
]


@pytest.fixture(scope="module")
def registry() -> Registry:
    files = read_schema_files()
    envelope = files.pop(ENVELOPE)["1-0-0"]
    return Registry(envelope, {**files, "stage": {"1-0-0": STAGE}})


def event(i: int, properties: dict) -> bytes:
    return json.dumps(
        {
            "event_id": f"00000000-0000-4000-8000-{i:012d}",
            "event_type": "stage",
            "received_at": "2026-11-01T12:00:00Z",
            "player_id": "p1",
            "schema_version": 1,
            "properties": properties,
        }
    ).encode()


def test_the_extractor_quarantines_what_the_registry_refuses(spark, registry):
    rows = [
        (event(i, props), "events", 0, i, dt.datetime(2026, 11, 1, 12))
        for i, (props, _) in enumerate(CASES)
    ]
    kafka = spark.createDataFrame(
        rows, "value binary, topic string, partition int, offset long, timestamp timestamp"
    )
    parsed = transforms.parse(transforms.from_kafka(kafka), registry)
    reasons = {r.kafka_offset: r.reason for r in parsed.select("kafka_offset", "reason").collect()}
    assert reasons == {i: reason for i, (_, reason) in enumerate(CASES)}
    for i, (props, reason) in enumerate(CASES):
        refused = [v.path for v in registry.validate(json.loads(event(i, props)))]
        assert (reason is None) == (refused == []), (props, refused)
        if reason is not None:
            assert reason.split(": ")[1] in refused
