"""Moving a checkpoint from the watermark dedup to the TTL dedup:
``python -m questlog_extractor migrate-dedup``, with the extractor stopped.

A checkpoint written by ``dropDuplicatesWithinWatermark`` keeps that dedup (its state
cannot be handed to the TTL operator; ``job.dedup_to_use``), and with it an eviction that
reads every id of the window at every micro-batch. Migrating:

1. reads the offsets of the checkpoint's last committed micro-batch (``offsets/<N>`` for
   the highest ``commits/<N>``): every record before them is in the tables;
2. renames the checkpoint to ``<checkpoint>.watermark-<UTC time>`` (kept: moving it back
   undoes the migration, as long as no new checkpoint was written meanwhile);
3. writes those offsets to ``<checkpoint>/questlog-starting-offsets.json``; the next start
   finds no offset log there, so Spark starts the Kafka source at those offsets
   (``source.read_kafka``), exactly where the old query stopped.

What it costs: the TTL dedup starts empty, so a repeat (a client's retry) of an event
stored within the last dedup window before the migration is stored again. Run it when no
client is retrying, or accept that window. Nothing is read twice and nothing is skipped.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from questlog_extractor.hadoopfs import HadoopFs
from questlog_extractor.settings import Settings

log = logging.getLogger(__name__)

MARKER = "questlog-starting-offsets.json"


class MigrationError(Exception):
    """The checkpoint cannot be migrated as it is (the message says why)."""


def migrate_dedup(spark: Any, settings: Settings) -> str | None:
    """Migrate ``settings.checkpoint_uri`` to the TTL dedup; the path the old checkpoint
    was moved to, or None when there was nothing to migrate (logged either way)."""
    from questlog_extractor.job import checkpoint_dedup

    checkpoint = settings.checkpoint_uri.rstrip("/")
    if settings.dedup != "ttl":
        raise MigrationError(
            f"QUESTLOG_EXTRACTOR_DEDUP is {settings.dedup!r}: migrating moves a checkpoint to"
            " the ttl dedup, set DEDUP=ttl (the default) first"
        )
    held = checkpoint_dedup(spark, checkpoint)
    if held != "watermark":
        log.info(
            "nothing to migrate",
            extra={"fields": {"checkpoint": checkpoint, "dedup": held or "none yet"}},
        )
        return None
    fs = HadoopFs(spark, checkpoint)
    offsets = last_committed_offsets(fs, checkpoint)
    moved = f"{checkpoint}.watermark-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    try:
        fs.rename(checkpoint, moved)
    except OSError as exc:  # FileExistsError too
        raise MigrationError(f"could not move {checkpoint} to {moved}: {exc}") from None
    fs.write(f"{checkpoint}/{MARKER}", json.dumps(offsets))
    log.info(
        "checkpoint migrated to the ttl dedup",
        extra={
            "fields": {
                "checkpoint": checkpoint,
                "old_checkpoint_kept_at": moved,
                "starting_offsets": offsets,
                "note": "the ttl dedup starts empty: repeats of events stored within the"
                " last dedup window are stored again",
            }
        },
    )
    return moved


def last_committed_offsets(fs: HadoopFs, checkpoint: str) -> dict[str, dict[str, int]]:
    """The Kafka offsets at the end of the last committed micro-batch:
    ``{topic: {partition: offset}}``, as Spark's ``startingOffsets`` takes them."""
    committed = [int(n) for n, _ in fs.list(f"{checkpoint}/commits") if n.isdigit()]
    if not committed:
        raise MigrationError(f"{checkpoint} has no committed micro-batch: nothing to carry over")
    batch = max(committed)
    lines = fs.read(f"{checkpoint}/offsets/{batch}").splitlines()
    # "v1", the batch's metadata, then one line per source: the query reads one topic
    if len(lines) != 3 or not lines[0].startswith("v"):
        raise MigrationError(
            f"{checkpoint}/offsets/{batch}: expected a version, metadata and one source's"
            f" offsets, got {len(lines)} lines"
        )
    offsets = json.loads(lines[2])
    if not isinstance(offsets, dict) or not offsets:
        raise MigrationError(f"{checkpoint}/offsets/{batch}: no Kafka offsets in {lines[2]!r}")
    return {
        str(topic): {str(p): int(o) for p, o in partitions.items()}
        for topic, partitions in offsets.items()
    }


def starting_offsets(spark: Any, settings: Settings) -> str:
    """What the Kafka source starts from when the checkpoint has no offsets yet: the
    offsets a migration left there, else ``STARTING_OFFSETS``. (Spark itself ignores
    the option once the checkpoint has an offset log.)"""
    marker = f"{settings.checkpoint_uri.rstrip('/')}/{MARKER}"
    fs = HadoopFs(spark, marker)
    if not fs.exists(marker):
        return settings.starting_offsets
    return fs.read(marker)
