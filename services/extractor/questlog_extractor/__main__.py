"""Command line: ``python -m questlog_extractor [--once] [run|maintain]``.

Settings come from ``QUESTLOG_EXTRACTOR_*`` variables (see settings.py); this module only
wires them to the job and stops it cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from questlog_extractor.settings import Settings, SettingsError

log = logging.getLogger("questlog_extractor")


class _QuietWhenStopping(logging.Filter):
    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.stop.is_set() and record.name.split(".")[0] in ("root", "py4j"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="questlog_extractor", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("run", "maintain"), default="run",
                        help="run the stream (default) or compact + vacuum the tables")
    parser.add_argument("--once", action="store_true",
                        help="drain what is in the topic now, then exit (availableNow)")
    args = parser.parse_args(argv)

    from questlog_extractor import metrics

    metrics.configure_logging()
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        log.error("bad settings", extra={"fields": {"error": str(exc)}})
        return 2

    from questlog_extractor import job

    spark = job.build_session(settings)
    stop = threading.Event()
    # py4j logs every call that hits a JVM the stop signal already took down (a process
    # manager signals the whole group): expected then, so not logged as an error.
    quiet = _QuietWhenStopping(stop)
    for name in ("", "py4j", "py4j.java_gateway", "py4j.clientserver"):
        logging.getLogger(name).addFilter(quiet)
    try:
        if args.command == "maintain":
            from questlog_extractor.maintain import maintain

            maintain(spark, settings)
            return 0
        if settings.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.metrics_port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        query = job.start(spark, settings, once=args.once)
        try:
            job.monitor(query, stop)
        except Exception:
            if not stop.is_set():
                raise
            # A process manager (honcho, Ctrl-C in a terminal) signals the whole process
            # group, so Spark's JVM may be gone before the query could stop. Nothing is
            # lost: writes are idempotent per batch and the checkpoint resumes the rest.
            log.info("stopped by signal together with the JVM; the checkpoint resumes")
            return 0
        log.info("query stopped", extra={"fields": {"query_id": query.id}})
        return 0
    finally:
        try:
            spark.stop()
        except Exception:  # the JVM is already gone (see above)
            if not stop.is_set():
                raise


if __name__ == "__main__":
    sys.exit(main())
