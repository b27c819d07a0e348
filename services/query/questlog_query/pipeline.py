"""What the rest of the pipeline says about itself: the extractor's and the event API's
Prometheus counters, scraped on demand and cached briefly.

The lake holds the events; what it cannot hold is what never became a row (duplicates
dropped by dedup, rows behind the watermark, events the API refused) and how far the
extractor is behind the topic. Those live in the other services' ``/metrics``, so the
report and the dashboard, which talk only to this service, get them here. A service
that is not configured or does not answer is reported as unavailable with the reason,
never as zeros.

Usage::

    status = PipelineStatus(extractor_url, api_url)
    status.snapshot()   # {"extractor": {...}, "api": {...}}
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

SCRAPE_TIMEOUT_S = 1.0
MAX_BYTES = 4 * 1024 * 1024

# {sample_name: [(labels, value), ...]}
Samples = dict[str, list[tuple[dict[str, str], float]]]


class ScrapeFailed(Exception):
    """A metrics endpoint did not answer with Prometheus text."""


def scrape(url: str, timeout_s: float = SCRAPE_TIMEOUT_S) -> Samples:
    """Samples by name: ``{sample_name: [(labels, value), ...]}``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - operator-set URL
            body = resp.read(MAX_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ScrapeFailed(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if len(body) > MAX_BYTES:
        raise ScrapeFailed(f"{url}: more than {MAX_BYTES} bytes")
    samples: Samples = defaultdict(list)
    try:
        for family in text_string_to_metric_families(body.decode("utf-8", "replace")):
            for sample in family.samples:
                samples[sample.name].append((dict(sample.labels), float(sample.value)))
    except ValueError as exc:
        raise ScrapeFailed(f"{url}: not Prometheus text ({exc})") from None
    return samples


def _total(samples: Samples, name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def _by(samples: Samples, name: str, label: str) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for labels, value in samples.get(name, []):
        out[labels.get(label, "")] += int(value)
    return dict(sorted(out.items()))


def extractor_view(samples: Samples, now: float) -> dict[str, Any]:
    info = samples.get("questlog_extractor_info") or [({}, 0.0)]
    last = _total(samples, "questlog_extractor_last_progress_timestamp_seconds")
    return {
        "settings": dict(info[0][0]),
        "input_rows": int(_total(samples, "questlog_extractor_input_rows_total")),
        "rows_written": _by(samples, "questlog_extractor_rows_written_total", "table"),
        "duplicates_dropped": int(_total(samples, "questlog_extractor_duplicates_dropped_total")),
        "late_rows_dropped": int(_total(samples, "questlog_extractor_late_rows_dropped_total")),
        "replayed_writes_skipped": int(
            _total(samples, "questlog_extractor_replayed_writes_skipped_total")
        ),
        "batch_duration_seconds": _total(samples, "questlog_extractor_batch_duration_seconds"),
        "processed_rows_per_second": _total(
            samples, "questlog_extractor_processed_rows_per_second"
        ),
        "offsets_behind_latest": int(_total(samples, "questlog_extractor_offsets_behind_latest")),
        "last_batch_id": int(_total(samples, "questlog_extractor_last_batch_id")),
        "last_progress_age_seconds": round(max(0.0, now - last), 3) if last > 0 else None,
    }


def api_view(samples: Samples, now: float) -> dict[str, Any]:
    return {
        "events_accepted": _by(samples, "questlog_api_events_accepted_total", "event_type"),
        "events_rejected": _by(samples, "questlog_api_events_rejected_total", "reason"),
    }


class PipelineStatus:
    """Both scrapes, each cached for ``ttl_s`` so a refreshing dashboard costs one scrape."""

    def __init__(self, extractor_url: str, api_url: str, ttl_s: float = 1.0) -> None:
        self.sources = {"extractor": (extractor_url, extractor_view), "api": (api_url, api_view)}
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: self._view(name) for name in self.sources}

    def _view(self, name: str) -> dict[str, Any]:
        url, view = self.sources[name]
        with self._lock:
            cached = self._cache.get(name)
            if cached and time.monotonic() - cached[0] < self.ttl_s:
                return cached[1]
        head: dict[str, Any] = {"metrics_url": url or None}
        if not url:
            result = {
                **head,
                "available": False,
                "error": f"not configured (QUESTLOG_QUERY_{name.upper()}_METRICS_URL)",
            }
        else:
            try:
                result = {
                    **head,
                    "available": True,
                    "error": None,
                    **view(scrape(url), time.time()),
                }
            except ScrapeFailed as exc:
                result = {**head, "available": False, "error": str(exc)}
        with self._lock:
            self._cache[name] = (time.monotonic(), result)
        return result
