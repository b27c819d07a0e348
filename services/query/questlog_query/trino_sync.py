"""Keep questlog's Delta tables registered in Trino's ``questlog`` catalog.

The extractor creates a table the first time an event of its type (or a quarantined
record) arrives; Trino's Delta Lake connector reads a table only once it is registered in
its metastore. This loop asks Trino which tables its schema holds and registers each
table of the lake contract that exists but is missing, under its own name and under the
walkthrough's names (``questlog_schemas.lake.ALIASES``), every ``QUESTLOG_TRINO_SYNC_EVERY_S``.
It speaks Trino's HTTP protocol with the standard library, so it needs no client package:
the query service's image runs it as a sidecar in the chart, `make run TRINO=1` as a process.

Settings (environment):

| variable | default | meaning |
|---|---|---|
| ``QUESTLOG_TRINO_URL`` | ``http://127.0.0.1:8080`` | the coordinator |
| ``QUESTLOG_TRINO_LAKE_ROOT`` | (required) | the lake root, as the query service reads it |
| ``QUESTLOG_TRINO_CATALOG`` | ``questlog`` | catalog on the Delta Lake connector |
| ``QUESTLOG_TRINO_SCHEMA`` | ``default`` | schema the tables go in |
| ``QUESTLOG_TRINO_USER`` | ``questlog-registrar`` | the one user Trino's rules let register |
| ``QUESTLOG_TRINO_SYNC_EVERY_S`` | ``10`` | seconds between passes |

``python -m questlog_query.trino_sync`` loops; ``--once`` runs one pass and exits 0 when
every existing table is registered, 1 otherwise; ``--ready`` exits 0 when Trino answers a
table scan (``ready()``), 1 otherwise (the chart's readiness probe).

Trino's access rules (``RULES``) live here too, beside the users they name: the embedded
server (questlog_embedded.trino) writes them, the chart's ConfigMap holds the same JSON
(a chart test compares them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from questlog_schemas import lake
from questlog_service.logs import configure_logging

log = logging.getLogger("questlog.trino_sync")
PREFIX = "QUESTLOG_TRINO_"
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# Trino's answer when a location holds no Delta table (yet): the extractor has not
# created that table; try again next pass.
_NOT_YET = "No transaction log found"


DEFAULT_URL = "http://127.0.0.1:8080"
REGISTRAR = "questlog-registrar"
# A catalog only the readiness probe sees (tpch's built-in tiny.region, 5 rows).
READY_CATALOG = "questlog_ready"
READY_USER = "questlog-ready"
READY_SQL = f"SELECT count(*) FROM {READY_CATALOG}.tiny.region"  # noqa: S608 - constants


def rules(catalog: str = "questlog") -> dict[str, Any]:
    """Trino's file access rules (the first matching rule wins): analysts read; only the
    registrar may register tables (both its catalog rule and the procedure rule are
    needed: without the latter CALL register_table is denied); only the readiness probe
    sees its catalog."""
    return {
        "catalogs": [
            {"user": READY_USER, "catalog": READY_CATALOG, "allow": "read-only"},
            {"user": REGISTRAR, "catalog": catalog, "allow": "all"},
            {"catalog": f"({catalog}|system)", "allow": "read-only"},
        ],
        "procedures": [
            {
                "user": REGISTRAR,
                "catalog": catalog,
                "schema": "system",
                "procedure": "register_table",
                "privileges": ["EXECUTE"],
            },
        ],
    }


class TrinoError(RuntimeError):
    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class SyncSettings:
    url: str
    lake_root: str
    catalog: str = "questlog"
    schema: str = "default"
    user: str = "questlog-registrar"
    every_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SyncSettings:
        env = os.environ if environ is None else environ
        problems: list[str] = []
        root = env.get(PREFIX + "LAKE_ROOT", "")
        if not root.startswith(("file:///", "hdfs://")):
            problems.append(f"{PREFIX}LAKE_ROOT must be a file:/// or hdfs:// URI, got {root!r}")
        url = env.get(PREFIX + "URL", DEFAULT_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            problems.append(f"{PREFIX}URL must be an http(s):// URL, got {url!r}")
        names = {}
        for key, default in (("CATALOG", "questlog"), ("SCHEMA", "default")):
            names[key] = env.get(PREFIX + key, default)
            if not _NAME.fullmatch(names[key]):
                problems.append(f"{PREFIX}{key} must match {_NAME.pattern}, got {names[key]!r}")
        every = env.get(PREFIX + "SYNC_EVERY_S", "10")
        try:
            every_s = float(every)
            if every_s <= 0:
                raise ValueError
        except ValueError:
            problems.append(f"{PREFIX}SYNC_EVERY_S must be a positive number, got {every!r}")
            every_s = 10.0
        if problems:
            raise ValueError("; ".join(problems))
        return cls(
            url=url,
            lake_root=root.rstrip("/"),
            catalog=names["CATALOG"],
            schema=names["SCHEMA"],
            user=env.get(PREFIX + "USER", REGISTRAR),
            every_s=every_s,
        )


def execute(url: str, user: str, sql: str, timeout: float = 60.0) -> list[list[Any]]:
    """Run one statement through Trino's client protocol; the rows, or TrinoError."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        f"{url}/v1/statement",
        data=sql.encode(),
        method="POST",
        headers={"X-Trino-User": user, "X-Trino-Source": "questlog-trino-sync"},
    )
    rows: list[list[Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            answer = json.loads(resp.read())
        rows.extend(answer.get("data") or [])
        if "error" in answer:
            error = answer["error"]
            raise TrinoError(error.get("message", "?"), error.get("errorName", ""))
        next_uri = answer.get("nextUri")
        if not next_uri:
            return rows
        if time.monotonic() > deadline:
            raise TrinoError(f"no answer within {timeout:.0f} s", "TIMEOUT")
        request = urllib.request.Request(next_uri, headers={"X-Trino-User": user})  # noqa: S310


def ready(url: str, timeout: float = 10.0) -> bool:
    """Trino answers a table scan: the probe's scan over its tpch catalog gives the right
    answer. /v1/info saying it has started, or ``SELECT 1`` answering, is not enough: for
    2-5 s after both the coordinator has not yet learnt that it serves its catalogs (its
    own announcement lists them later) and a scan of any table answers "No nodes
    available to run query". The announcement names every catalog at once, so the
    probe's catalog answering means questlog's tables answer too."""
    try:
        return execute(url, READY_USER, READY_SQL, timeout) == [[5]]
    except (OSError, ValueError, TrinoError):
        return False


def wanted(lake_root: str) -> dict[str, str]:
    """Trino table name -> Delta table location, for every table of the lake contract."""
    tables = {name: lake.table_uri(lake_root, name) for name in lake.tables()}
    for alias, table in lake.ALIASES.items():  # the walkthrough's names
        if table in tables:
            tables[alias] = tables[table]
    return tables


def sync_once(settings: SyncSettings) -> tuple[list[str], list[str]]:
    """One pass: (registered now, still missing because their table does not exist yet)."""
    s = settings
    show = f'SHOW TABLES FROM "{s.catalog}"."{s.schema}"'
    try:
        shown = execute(s.url, s.user, show)
    except TrinoError as exc:
        if "does not exist" not in str(exc):
            raise
        # a new metastore (first start, or an emptyDir in the chart): make the schema
        execute(s.url, s.user, f'CREATE SCHEMA IF NOT EXISTS "{s.catalog}"."{s.schema}"')
        shown = execute(s.url, s.user, show)
    present = {row[0] for row in shown}
    registered, missing = [], []
    for name, location in wanted(s.lake_root).items():
        if name in present:
            continue
        sql = (
            f"CALL \"{s.catalog}\".system.register_table(schema_name => '{s.schema}', "
            f"table_name => '{name}', table_location => '{location}')"
        )
        try:
            execute(s.url, s.user, sql)
        except TrinoError as exc:
            if _NOT_YET in str(exc):
                missing.append(name)
                continue
            if "already exists" in str(exc):  # another registrar won the race
                continue
            raise
        registered.append(name)
        log.info("registered %s.%s.%s -> %s", s.catalog, s.schema, name, location)
    return registered, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m questlog_query.trino_sync",
        description="keep questlog's tables registered in Trino",
    )
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument(
        "--ready", action="store_true", help="exit 0 when Trino answers a table scan, else 1"
    )
    args = parser.parse_args(argv)
    if args.ready:
        url = os.environ.get(PREFIX + "URL", DEFAULT_URL).rstrip("/")
        return 0 if ready(url, timeout=4.0) else 1
    configure_logging("questlog-trino-sync")
    try:
        settings = SyncSettings.from_env()
    except ValueError as exc:
        print(f"trino_sync: {exc}", file=sys.stderr)
        return 2
    last_problem = None
    while True:
        try:
            _, missing = sync_once(settings)
            if args.once:
                if missing:
                    log.info("not created yet (no Delta log): %s", ", ".join(missing))
                return 0
            last_problem = None
        except (OSError, TrinoError) as exc:
            if args.once:
                log.error("Trino at %s: %s", settings.url, exc)
                return 1
            problem = f"{type(exc).__name__}: {exc}"
            if problem != last_problem:  # each new problem once, not every pass
                log.warning(
                    "Trino at %s: %s; retrying every %.0f s",
                    settings.url,
                    problem,
                    settings.every_s,
                )
                last_problem = problem
        time.sleep(settings.every_s)


if __name__ == "__main__":
    sys.exit(main())
