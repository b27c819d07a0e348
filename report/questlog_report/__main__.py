"""questlog-report: the walkthrough's analytics report, asked of the query service's REST API.

Usage::

    questlog-report                                   # http://127.0.0.1:8000 (make run)
    questlog-report --base-url http://127.0.0.1:18000 --token-file ./read-token
    questlog-report --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z --out /tmp/r

Writes ``<out>/<UTC timestamp>/report.html`` (self-contained), ``report.md`` and the PNGs,
printing one progress line per section to stderr. Exit codes: 0 written, 1 an endpoint
answered an error (its message is shown), 2 bad options or the service is unreachable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from questlog_report import render
from questlog_report.client import Client, EndpointError, ReportError, ServiceUnreachable

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="questlog-report",
        description="Build the questlog analytics report from the query service's REST API.",
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("QUESTLOG_REPORT_BASE_URL", DEFAULT_BASE_URL),
        help="query service URL (env QUESTLOG_REPORT_BASE_URL; default %(default)s)",
    )
    token = parser.add_mutually_exclusive_group()
    token.add_argument(
        "--token",
        default=os.environ.get("QUESTLOG_REPORT_TOKEN"),
        help="bearer token sent on every request (env QUESTLOG_REPORT_TOKEN); "
        "the REST endpoints need none unless a proxy in front asks for one",
    )
    token.add_argument("--token-file", type=Path, help="file holding the bearer token")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("QUESTLOG_REPORT_OUT", "reports")),
        help="parent folder of the report's folder (env QUESTLOG_REPORT_OUT; default %(default)s)",
    )
    parser.add_argument("--since", help="ISO 8601 start of the window (received_at), inclusive")
    parser.add_argument("--until", help="ISO 8601 end of the window (received_at), exclusive")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for each answer (default %(default)s)",
    )
    args = parser.parse_args(argv)
    for name in ("since", "until"):
        value = getattr(args, name)
        if value is not None:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                parser.error(f"--{name} must be an ISO 8601 timestamp, got {value!r}")
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    return args


def read_token(args: argparse.Namespace) -> str | None:
    if args.token_file is None:
        return args.token or None
    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ReportError(f"cannot read --token-file {args.token_file}: {exc.strerror}") from None
    if not token:
        raise ReportError(f"--token-file {args.token_file} is empty")
    return token


def out_dir(parent: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    candidate, n = parent / stamp, 1
    while candidate.exists():  # two reports within one second
        n += 1
        candidate = parent / f"{stamp}-{n}"
    return candidate


def log(message: str) -> None:
    print(f"[report] {message}", file=sys.stderr, flush=True)


def build(args: argparse.Namespace) -> Path:
    client = Client(args.base_url, token=read_token(args), timeout=args.timeout)
    started = time.perf_counter()
    client.get("/healthz")  # one clear "unreachable" before any section starts
    from questlog_report.sections import SECTIONS, Context  # matplotlib: only when needed

    ctx = Context(client, since=args.since, until=args.until)
    sections = []
    for i, make in enumerate(SECTIONS, start=1):
        t0 = time.perf_counter()
        section = make(ctx)
        sections.append(section)
        log(
            f"{i}/{len(SECTIONS)} {section.title}: {len(section.calls)} call(s), "
            f"{time.perf_counter() - t0:.2f} s (total {time.perf_counter() - started:.2f} s)"
        )
    now = datetime.now(UTC)
    header = render.Header(
        now.strftime("%Y-%m-%dT%H:%M:%SZ"), client.base_url, args.since, args.until
    )
    page = render.write(out_dir(args.out, now), header, sections)
    log(f"wrote {page} and {page.parent / 'report.md'} in {time.perf_counter() - started:.2f} s")
    return page


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        page = build(args)
    except ServiceUnreachable as exc:
        print(f"questlog-report: {exc}", file=sys.stderr)
        return 2
    except EndpointError as exc:
        print(f"questlog-report: {exc}", file=sys.stderr)
        return 1
    except ReportError as exc:
        print(f"questlog-report: {exc}", file=sys.stderr)
        return 2
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
