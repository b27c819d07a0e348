"""T6: poison records written straight into Kafka (past the API's validation): every one
is quarantined with a reason, the main tables hold only the valid events, each once, and
the stream keeps running (a later batch of valid events lands too).

Sabotage ``poison_drop``: the writer skips the quarantine table.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter

import pytest

from questlog_chaos.lake_rig import (
    QUARANTINE,
    TABLES,
    LakeRig,
    exactly_once,
    make_events,
    wait_for,
)
from questlog_chaos.report import Result

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _dump(event: dict, **changes) -> bytes:
    return json.dumps({**event, **changes}).encode()


def _without(event: dict, *names: str) -> dict:
    return {k: v for k, v in event.items() if k not in names}


def poison_kinds(base: dict, join: dict) -> dict[str, bytes | None]:
    """Kind -> Kafka value; each is a record the event contract refuses. ``base`` is a
    valid purchase_sword, ``join`` a valid join_guild (each with an id of its own)."""
    props = base["properties"]
    text = json.dumps(base)
    deep = 5000
    return {
        "not json": b"not json at all",
        "truncated json": text[: len(text) // 2].encode(),
        "invalid utf-8": b"\xff\xfe\x00\xc3(garbage",
        "utf-8 inside json broken": text.replace(base["player_id"], "p\udcff", 1).encode(
            "utf-8", "surrogateescape"
        ),
        "empty value": b"",
        "null value (tombstone)": None,
        "whitespace only": b"   \n\t ",
        "json null": b"null",
        "json array": b"[1, 2, 3]",
        "array of events": json.dumps([base, join]).encode(),
        "json number": b"42",
        "json string": b'"purchase_sword"',
        "json true": b"true",
        "huge value": _dump(base, filler="x" * 900_000),
        "wrong type price": _dump(base, properties={**props, "price": "cheap"}),
        "wrong type quantity float": _dump(base, properties={**props, "quantity": 1.5}),
        "wrong type received_at": _dump(base, received_at=1700000000),
        "unparseable received_at": _dump(base, received_at="yesterday"),
        "wrong type properties": _dump(base, properties="sword"),
        "wrong type player_id object": _dump(base, player_id={"id": 1}),
        "unknown event_type": _dump(base, event_type="open_chest"),
        "event_type bad pattern": _dump(base, event_type="Purchase Sword"),
        "unknown schema_version": _dump(base, schema_version=2),
        "schema_version as string": _dump(base, schema_version="1"),
        "missing event_id": json.dumps(_without(base, "event_id")).encode(),
        "missing player_id": json.dumps(_without(base, "player_id")).encode(),
        "missing received_at": json.dumps(_without(base, "received_at")).encode(),
        "missing properties": json.dumps(_without(base, "properties")).encode(),
        "missing required property": _dump(join, properties={"role": "member"}),
        "null required field": _dump(base, event_type=None),
        "event_id not a uuid": _dump(base, event_id="not-a-uuid"),
        "negative price": _dump(base, properties={**props, "price": -1.0}),
        "quantity over maximum": _dump(base, properties={**props, "quantity": 10**7}),
        "bad currency": _dump(base, properties={**props, "currency": "eur"}),
        "enum violation": _dump(join, properties={**join["properties"], "role": "king"}),
        "too long sword_type": _dump(base, properties={**props, "sword_type": "s" * 65}),
        "too long player_id": _dump(base, player_id="p" * 10_000),
        "NaN literal": text.replace(
            '"price": ' + json.dumps(props["price"]), '"price": NaN'
        ).encode(),
        "Infinity literal": text.replace(
            '"price": ' + json.dumps(props["price"]), '"price": Infinity'
        ).encode(),
        "NaN as string": _dump(base, properties={**props, "price": "NaN"}),
        "deeply nested": _dump(base, properties={**props, "extra": None}).replace(
            b'"extra": null', b'"extra": ' + b"[" * deep + b"]" * deep
        ),
        "deeply nested value": b"[" * deep + b"]" * deep,
        "duplicate key, last invalid": text.replace(
            '"price": ' + json.dumps(props["price"]),
            '"price": ' + json.dumps(props["price"]) + ', "price": "cheap"',
        ).encode(),
        "duplicate event_id, last invalid": text.replace(
            f'"event_id": "{base["event_id"]}"',
            f'"event_id": "{base["event_id"]}", "event_id": "not-a-uuid"',
            1,
        ).encode(),
        "raw NUL byte in json": text.replace(
            base["player_id"], base["player_id"] + "\x00", 1
        ).encode(),
        "key with NUL": text.replace('"player_id"', '"player_id\\u0000"', 1).encode(),
        "trailing garbage": text.encode() + b" }{",
    }


@pytest.mark.sabotage("poison_drop")
def test_t06_poison_records_are_quarantined_and_the_stream_keeps_running(
    sabotaged, scale, record, kafka, spark, tmp_path
):
    rng = random.Random(scale.seed)
    tag = f"t06-{scale.seed}-{rng.randrange(10**6)}"
    copies = scale.pick(1, 4)
    n_valid = scale.pick(300, 4000)
    valid = make_events(n_valid, tag)
    later = make_events(scale.pick(100, 1000), tag, start=n_valid)
    bases = make_events(2 * copies, f"{tag}-poison-base")
    records: list[tuple[str, bytes | None]] = []
    poison_ids = {e["event_id"] for e in bases}
    for c in range(copies):
        base, join = bases[2 * c], bases[2 * c + 1]
        for k, (kind, value) in enumerate(poison_kinds(base, join).items()):
            # an id of its own per record: one that leaked must show, not be deduplicated
            if value is not None:
                for e in (base, join):
                    own = str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/poison/{c}/{k}/{e['event_id']}")
                    )
                    poison_ids.add(own)
                    value = value.replace(e["event_id"].encode(), own.encode())
            records.append((kind, value))
    rng.shuffle(records)

    # the poison interleaved with valid events, in seeded order, one topic
    stream: list[tuple[str | None, bytes | None, bytes | None]] = []
    queue = list(valid)
    for kind, value in records:
        for _ in range(rng.randrange(0, 2 * len(valid) // len(records) + 1)):
            if queue:
                event = queue.pop(0)
                stream.append((None, event["player_id"].encode(), json.dumps(event).encode()))
        stream.append((kind, f"{tag}-poison".encode(), value))
    stream.extend((None, e["player_id"].encode(), json.dumps(e).encode()) for e in queue)

    result = Result(
        "T6",
        "poison records straight into Kafka",
        load=f"{n_valid + len(later):,} valid events",
        inputs=f"{len(records)} poison records of {len(records) // copies} kinds",
    )
    rig = LakeRig(kafka, spark, tmp_path)
    try:
        rig.start()
        positions = rig.produce([(k, v) for _, k, v in stream])
        poison_at = {
            pos: kind
            for pos, (kind, _, _) in zip(positions, stream, strict=True)
            if kind is not None
        }
        try:
            wait_for(
                lambda: rig.count(QUARANTINE) >= len(records) and rig.stored() >= len(valid),
                240,
                "the poison and the valid events",
            )
        except AssertionError as exc:
            result.check(False, str(exc))
        rig.produce_events(later)
        try:
            wait_for(lambda: rig.stored() >= len(valid) + len(later), 180, "the later valid events")
        except AssertionError as exc:
            result.check(False, str(exc))
        alive, failure = rig.alive()
        result.check(alive, f"the stream stopped: {failure}")
    finally:
        rig.stop()

    expected = {e["event_id"] for e in valid + later}
    ids = rig.event_ids()
    result.lost, result.duplicates = exactly_once(ids, expected)
    stray = set(ids) - expected
    result.check(
        not stray,
        f"{len(stray)} rows in the main tables that are no valid event "
        f"(poison ids among them: {len(stray & poison_ids)})",
    )
    main_positions = set()
    for table in TABLES:
        rows = rig.rows(table, ["kafka_partition", "kafka_offset"])
        if rows is not None:
            main_positions |= set(
                zip(
                    rows.column("kafka_partition").to_pylist(),
                    rows.column("kafka_offset").to_pylist(),
                    strict=True,
                )
            )
    leaked = sorted({poison_at[p] for p in main_positions & set(poison_at)})
    result.check(not leaked, f"poison stored in the main tables: {leaked}")

    quarantine = rig.rows(QUARANTINE)
    rows = [] if quarantine is None else quarantine.to_pylist()
    by_position = {}
    for row in rows:
        if row["topic"] == rig.topic:
            by_position.setdefault((row["kafka_partition"], row["kafka_offset"]), []).append(row)
    missing = sorted({kind for pos, kind in poison_at.items() if pos not in by_position})
    result.check(not missing, f"{len(missing)} poison kinds not quarantined: {missing}")
    doubled = sum(len(v) - 1 for v in by_position.values() if len(v) > 1)
    result.check(doubled == 0, f"{doubled} poison records quarantined more than once")
    no_reason = sorted(
        {
            poison_at.get(p, "?")
            for p, v in by_position.items()
            if not all((r["reason"] or "").strip() for r in v)
        }
    )
    result.check(not no_reason, f"quarantined without a reason: {no_reason}")
    wrongly = sum(1 for p in by_position if p not in poison_at)
    result.check(wrongly == 0, f"{wrongly} valid events quarantined")
    reasons = Counter(v[0]["reason"].split(":")[0] for v in by_position.values() if v[0]["reason"])
    result.figures = {
        "quarantined": f"{len(set(by_position) & set(poison_at))}/{len(poison_at)}",
        "reasons": ", ".join(f"{k} {n}" for k, n in reasons.most_common()),
    }
    record(result)
