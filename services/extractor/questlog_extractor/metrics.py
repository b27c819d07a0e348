"""Progress and lag of the streaming query: one JSON log line per micro-batch and the
same numbers as Prometheus metrics (``/metrics`` on METRICS_PORT).

Usage::

    reporter = ProgressReporter()
    reporter.report(query.recentProgress)   # logs and exports batches not seen yet
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Gauge

log = logging.getLogger("questlog_extractor")

INPUT_ROWS = Counter("questlog_extractor_input_rows", "Kafka records read by the streaming query")
ROWS_WRITTEN = Counter(
    "questlog_extractor_rows_written",
    "Rows committed to a lake table (replayed batches included)",
    ["table"],
)
REPLAYS_SKIPPED = Counter(
    "questlog_extractor_replayed_writes_skipped",
    "Table writes skipped because the table already holds the batch"
    " (a batch replayed after a crash; delta-rs writer)",
    ["table"],
)
DUPLICATES = Counter(
    "questlog_extractor_duplicates_dropped",
    "Records dropped as repeats of an event_id within the dedup window",
)
LATE_ROWS = Counter(
    "questlog_extractor_late_rows_dropped",
    "Records older than the watermark (received_at), dropped by Spark",
)
ROWS_PER_SECOND = Gauge(
    "questlog_extractor_processed_rows_per_second", "Processing rate of the last micro-batch"
)
BATCH_SECONDS = Gauge(
    "questlog_extractor_batch_duration_seconds", "Wall time of the last micro-batch"
)
OFFSETS_BEHIND = Gauge(
    "questlog_extractor_offsets_behind_latest",
    "Records between the last batch's end offsets and the topic's latest"
    " (asked of the broker every poll; Spark's own figure until then)",
)
LAST_BATCH = Gauge("questlog_extractor_last_batch_id", "Id of the last finished micro-batch")
INFO = Gauge(
    "questlog_extractor_info",
    "The running extractor's settings (value 1)",
    ["topic", "kafka_bootstrap", "lake_root", "trigger_seconds", "watermark", "writer"],
)
LAST_PROGRESS = Gauge(
    "questlog_extractor_last_progress_timestamp_seconds",
    "When the last micro-batch finished (unix time)",
)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def offsets_behind(end: Any, latest: Any) -> int:
    """Sum over partitions of latest - end (Kafka source offsets: {topic: {partition: n}})."""

    def load(offsets: Any) -> dict[str, dict[str, int]]:
        if isinstance(offsets, str):
            try:
                offsets = json.loads(offsets)
            except ValueError:
                return {}
        return offsets if isinstance(offsets, dict) else {}

    end_map, latest_map = load(end), load(latest)
    return sum(
        max(0, int(n) - int(end_map.get(topic, {}).get(part, n)))
        for topic, parts in latest_map.items()
        for part, n in parts.items()
    )


def duplicates_dropped(progress: Mapping[str, Any]) -> int:
    """Rows the dedup dropped in one micro-batch. ``dropDuplicatesWithinWatermark`` counts
    them itself; the TTL dedup (transformWithState) stores each id it lets through, once,
    so it dropped every input row (each record reaches it) beyond the ids it stored."""
    state = (progress.get("stateOperators") or [{}])[0]
    if state.get("operatorName") == "transformWithStateExec":
        stored = _number(state.get("numRowsUpdated"))
        return max(0, int(_number(progress.get("numInputRows")) - stored))
    return int(_number((state.get("customMetrics") or {}).get("numDroppedDuplicateRows")))


def summarize(progress: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers worth a log line out of a StreamingQueryProgress dict."""
    sources = progress.get("sources") or [{}]
    source = sources[0]
    metrics = source.get("metrics") or {}
    state = (progress.get("stateOperators") or [{}])[0]
    return {
        "batch_id": progress.get("batchId"),
        "input_rows": progress.get("numInputRows", 0),
        "input_rows_per_second": round(_number(progress.get("inputRowsPerSecond")), 1),
        "processed_rows_per_second": round(_number(progress.get("processedRowsPerSecond")), 1),
        "batch_duration_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
        # where the batch's time went: latestOffset, queryPlanning, addBatch, walCommit, ...
        "phases_ms": {
            k: v for k, v in (progress.get("durationMs") or {}).items() if k != "triggerExecution"
        },
        "end_offset": source.get("endOffset"),
        "latest_offset": source.get("latestOffset"),
        "offsets_behind_latest": int(_number(metrics["maxOffsetsBehindLatest"]))
        if "maxOffsetsBehindLatest" in metrics
        else offsets_behind(source.get("endOffset"), source.get("latestOffset")),
        "watermark": (progress.get("eventTime") or {}).get("watermark"),
        "duplicates_dropped": duplicates_dropped(progress),
        "late_rows_dropped": int(_number(state.get("numRowsDroppedByWatermark"))),
        "state_rows": state.get("numRowsTotal"),
        # the dedup state store's share of the batch (inside addBatch)
        "state_ms": {
            "commit": state.get("commitTimeMs"),
            "updates": state.get("allUpdatesTimeMs"),
            "removals": state.get("allRemovalsTimeMs"),
        },
    }


def publish_info(settings: Any) -> None:
    INFO.labels(
        settings.topic,
        settings.kafka_bootstrap,
        settings.lake_root,
        str(settings.trigger_seconds),
        settings.watermark,
        settings.writer,
    ).set(1)


class ProgressReporter:
    """Turns each new StreamingQueryProgress into a log line and metric updates."""

    def __init__(self, topic: str | None = None) -> None:
        self.last_batch_id = -1
        self.topic = topic
        self.end_offsets: dict[int, int] | None = None  # of the last finished batch
        self._probe_failing = False

    def refresh_lag(self, probe: Any) -> None:
        """OFFSETS_BEHIND from the broker's end offsets now (``lag.EndOffsets``); a failed
        probe leaves the last figure, logged once per failure streak."""
        if self.end_offsets is None:
            return
        from questlog_extractor import lag

        try:
            latest = probe.fetch()
        except Exception as exc:
            if not self._probe_failing:
                log.warning("lag probe failed", extra={"fields": {"error": str(exc)[:300]}})
            self._probe_failing = True
            return
        self._probe_failing = False
        OFFSETS_BEHIND.set(lag.offsets_behind(self.end_offsets, latest))

    def report(self, progresses: Sequence[Mapping[str, Any]] | None) -> None:
        for progress in progresses or []:
            batch_id = progress.get("batchId", -1)
            if batch_id <= self.last_batch_id:
                continue
            self.last_batch_id = batch_id
            fields = summarize(progress)
            INPUT_ROWS.inc(fields["input_rows"])
            DUPLICATES.inc(fields["duplicates_dropped"])
            LATE_ROWS.inc(fields["late_rows_dropped"])
            ROWS_PER_SECOND.set(fields["processed_rows_per_second"])
            BATCH_SECONDS.set((fields["batch_duration_ms"] or 0) / 1000)
            OFFSETS_BEHIND.set(fields["offsets_behind_latest"])
            LAST_BATCH.set(batch_id)
            LAST_PROGRESS.set(time.time())
            if self.topic is not None:
                from questlog_extractor import lag

                ends = lag.end_offsets_of(
                    (progress.get("sources") or [{}])[0].get("endOffset"), self.topic
                )
                self.end_offsets = ends if ends is not None else self.end_offsets
            level = logging.WARNING if fields["late_rows_dropped"] else logging.INFO
            log.log(level, "batch progress", extra={"fields": fields})
