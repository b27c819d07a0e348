"""Command line: ``python -m questlog_extractor [--once] [run|maintain|compact [--every S]]``,
and ``python -m questlog_extractor migrate-dedup`` (``migrate.py``).

Settings come from ``QUESTLOG_EXTRACTOR_*`` variables (see settings.py); this module only
wires them to the job and stops it cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from questlog_extractor.settings import Settings, SettingsError
from questlog_service.logs import configure_logging

log = logging.getLogger("questlog_extractor")
SERVICE = "questlog-extractor"


class _QuietWhenStopping(logging.Filter):
    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.stop.is_set() and record.name.split(".")[0] in ("root", "py4j"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="questlog_extractor", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        choices=("run", "maintain", "compact", "migrate-dedup"),
        default="run",
        help="run the stream (default), or compact + vacuum the tables with"
        " Spark (maintain) or without a JVM (compact), or move a checkpoint written by"
        " the watermark dedup to the ttl dedup, the extractor stopped (migrate-dedup)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="drain what is in the topic now, then exit (availableNow)",
    )
    parser.add_argument(
        "--every",
        type=int,
        metavar="SECONDS",
        help="compact: a pass every SECONDS until SIGTERM/SIGINT (default"
        " QUESTLOG_EXTRACTOR_COMPACT_EVERY_S; unset: one pass)",
    )
    args = parser.parse_args(argv)
    if args.every is not None and (args.command != "compact" or args.every < 1):
        parser.error("--every takes a number of seconds >= 1, with compact only")

    from questlog_extractor import metrics

    configure_logging(SERVICE)
    try:
        settings = Settings.from_env(kafka=args.command != "compact")
    except SettingsError as exc:
        log.error("bad settings", extra={"fields": {"error": str(exc)}})
        return 2
    if args.command == "compact":
        return _compact(settings, args.every or settings.compact_every_s)

    from questlog_extractor import job

    # The JVM ignores SIGTERM: this process stops it, between two batches (below).
    spark = job.build_session(settings, jvm_ignores_sigterm=True)
    stop = threading.Event()
    # py4j logs every call that hits a JVM already gone while stopping (one killed with
    # the group, or exiting as this process exits): expected then, not logged as errors.
    quiet = _QuietWhenStopping(stop)
    for name in ("", "py4j", "py4j.java_gateway", "py4j.clientserver"):
        logging.getLogger(name).addFilter(quiet)
    try:
        if args.command == "maintain":
            from questlog_extractor.maintain import maintain

            maintain(spark, settings)
            return 0
        if args.command == "migrate-dedup":
            from questlog_extractor.migrate import MigrationError, migrate_dedup

            try:
                migrate_dedup(spark, settings)
            except MigrationError as exc:
                log.error("migration refused", extra={"fields": {"error": str(exc)}})
                return 1
            return 0
        if settings.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.metrics_port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        gate = job.BatchGate()
        query = job.start(spark, settings, once=args.once, gate=gate)
        metrics.publish_info(settings)
        probe = _lag_probe(spark, settings)
        try:
            job.monitor(
                query,
                stop,
                poll_seconds=1.0,
                gate=gate,
                stop_within_s=STOP_WITHIN_S,
                lag_probe=probe,
            )
        except job.StopIncomplete as exc:
            # Like a crash, and as safe: nothing was half-committed (writes are
            # idempotent per batch) and the checkpoint replays what is not done.
            log.warning("stopping without the query: %s", exc)
            _exit_now(0)
        except Exception:
            if not stop.is_set():
                raise
            # The JVM went away while stopping (SIGKILL to the group, say). Nothing is
            # lost: writes are idempotent per batch and the checkpoint resumes the rest.
            log.info("stopped by signal together with the JVM; the checkpoint resumes")
            return 0
        log.info("query stopped", extra={"fields": {"query_id": query.id}})
        if probe is not None:
            probe.close()
        return 0
    finally:
        if stop.is_set():
            # Bounded: a process manager kills what has not exited within seconds
            # (make run's supervisor: 10 s).
            if not job.within(SPARK_STOP_WITHIN_S, spark.stop):
                log.warning("spark did not stop in time; its JVM exits with this process")
                _exit_now(0)
        else:
            spark.stop()


# A stop signal is followed by SIGKILL after 10 s under `make run`'s supervisor; Kubernetes
# allows 30 s by default. Both budgets together stay under the shorter one.
STOP_WITHIN_S = 3.0
SPARK_STOP_WITHIN_S = 1.5


def _compact(settings: Settings, every_s: int | None) -> int:
    """One pass, or passes every ``every_s`` on a thread until a signal. The thread, because
    a pass spends its time in delta-rs (GIL released) and the signal is handled here at
    once: stopping waits ``STOP_WITHIN_S`` for the pass, then exits anyway, as a kill would
    (safe: a compaction commits atomically or not at all; the files of one that did not
    are orphans the sweep deletes)."""
    from questlog_extractor import compact

    if every_s is None:  # one pass (a CronJob's): a table that failed fails the run
        return 1 if "failed" in compact.compact_all(settings) else 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "compacting",
        extra={"fields": {"every_s": every_s, "retain_hours": compact.retain_hours(settings)}},
    )
    loop = threading.Thread(
        target=compact.every, args=(settings, every_s, stop), name="compact", daemon=True
    )
    loop.start()
    while loop.is_alive() and not stop.wait(1.0):
        pass
    loop.join(STOP_WITHIN_S)
    if loop.is_alive():
        log.warning("stopping in the middle of a compaction pass; the next one redoes it")
        _exit_now(0)
    log.info("compaction stopped")
    return 0


def _lag_probe(spark, settings: Settings):
    """The live lag probe, or None (and a warning) if its consumer cannot be built: the lag
    gauge then keeps Spark's own figure; the stream itself does not depend on it."""
    from questlog_extractor.lag import EndOffsets

    try:
        return EndOffsets(spark, settings.kafka_bootstrap, settings.topic)
    except Exception as exc:
        log.warning("no live lag probe: %s", str(exc)[:300])
        return None


def _exit_now(code: int) -> None:
    """Exit without waiting for threads (a parked batch, py4j's): the JVM sees its stdin
    close and exits too."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
