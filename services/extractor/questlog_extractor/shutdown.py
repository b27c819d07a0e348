"""Watching the running query, and stopping it between two micro-batches, in bounded time.

Usage::

    gate = BatchGate()
    query = job.start(spark, settings, gate=gate)   # every batch passes through the gate
    try:
        monitor(query, stop, gate=gate)             # logs progress; on ``stop``: stops it
    except StopIncomplete:
        ...                                         # exit anyway: the checkpoint replays
    within(1.5, spark.stop)                         # False: still stopping after 1.5 s
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql.streaming import StreamingQuery

from questlog_extractor import metrics

log = logging.getLogger("questlog_extractor.shutdown")


class BatchGate:
    """Lets a stop wait for the micro-batch in flight, and keeps the next one from starting.

    Stopping a query cancels the Spark jobs of a batch half way (and Spark logs that as a
    failure); a batch that returned without writing would have its offsets committed (its
    events lost). So after ``close`` a batch that arrives is parked instead: it neither
    writes nor returns, the process exits around it, and the checkpoint replays it on the
    next start, as after a crash.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy: int | None = None  # id of the batch being written
        self._closed = False
        self.parked: int | None = None  # id of the batch that arrived after close()

    def run(self, write: Callable[[DataFrame, int], None], batch: DataFrame, batch_id: int) -> None:
        with self._cond:
            park = self._closed
            if park:
                self.parked = batch_id
                self._cond.notify_all()
            else:
                self._busy = batch_id
        if park:
            log.info(
                "stopping: batch left for the next start (checkpoint)",
                extra={"fields": {"batch_id": batch_id}},
            )
            threading.Event().wait()  # until the process exits
        try:
            write(batch, batch_id)
        finally:
            with self._cond:
                self._busy = None
                self._cond.notify_all()

    def close(self, timeout_s: float) -> bool:
        """Refuse further batches; wait for the one in flight. True if none is."""
        with self._cond:
            self._closed = True
            if self._busy is not None:
                log.info(
                    "stopping: waiting for the batch in flight",
                    extra={"fields": {"batch_id": self._busy}},
                )
            return self._cond.wait_for(lambda: self._busy is None, max(timeout_s, 0.0))


class StopIncomplete(Exception):
    """The query could not be stopped between two batches within the time allowed."""


def monitor(
    query: StreamingQuery,
    stop: threading.Event | None = None,
    poll_seconds: float = 2.0,
    gate: BatchGate | None = None,
    stop_within_s: float = 3.5,
    lag_probe: Any = None,
) -> None:
    """Log progress until the query ends (or ``stop`` is set); re-raise its failure.

    With ``lag_probe`` (``lag.EndOffsets``) the lag gauge is refreshed from the broker at
    every poll, between batches too.

    On ``stop``, with the query's ``gate``: wait for the batch in flight, then stop the
    query; ``StopIncomplete`` if that takes longer than ``stop_within_s`` (a batch stuck on
    a broker that went down too, say), for the caller to exit without waiting.
    """
    reporter = metrics.ProgressReporter(topic=lag_probe.topic if lag_probe else None)
    stop = stop or threading.Event()
    while query.isActive and not stop.is_set():
        stop.wait(poll_seconds)  # returns at once on a stop signal
        reporter.report(query.recentProgress)
        if lag_probe is not None and not stop.is_set():
            reporter.refresh_lag(lag_probe)
    if stop.is_set() and query.isActive:
        _stop_between_batches(query, gate, stop_within_s)
    reporter.report(query.recentProgress)
    error: Any = query.exception()
    if error is not None:
        raise RuntimeError(f"streaming query failed: {error}")


def _stop_between_batches(query: StreamingQuery, gate: BatchGate | None, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    if gate is not None and not gate.close(within_s * 0.7):
        raise StopIncomplete(f"the batch in flight did not end within {within_s * 0.7:.1f} s")
    if gate is not None and gate.parked is not None:
        # stop() would wait for the parked batch forever
        raise StopIncomplete(f"batch {gate.parked} had started; it is replayed at next start")
    if not within(deadline - time.monotonic(), query.stop):
        raise StopIncomplete("the query did not stop in time")


def within(timeout_s: float, action: Callable[[], Any]) -> bool:
    """Run ``action`` on a daemon thread; whether it ended within ``timeout_s`` (an
    exception it raised counts as ended: the JVM may be gone already)."""
    done = threading.Event()

    def run() -> None:
        try:
            action()
        except Exception as exc:  # reported; the caller only needs timing
            log.debug("%s during stop: %s", getattr(action, "__name__", action), exc)
        finally:
            done.set()

    threading.Thread(target=run, name="questlog-stop", daemon=True).start()
    return done.wait(max(timeout_s, 0.0))
