"""Snapshot cache: the latest committed Delta version of each table, as an Arrow dataset.

Readers only ever see files listed in the Delta log (``DeltaTable.to_pyarrow_dataset``),
never a glob over the table folder, so Parquet files a killed writer left behind are
invisible. Each table is checked for a new version at most every ``snapshot_ttl_s``;
between checks, and while the version is unchanged, a query does no metadata I/O.

Usage::

    lake = Lake.from_settings(settings)      # or Lake(lake_root, snapshot_ttl_s)
    snap = lake.snapshot("purchase_sword")   # Snapshot(version=..., dataset=..., rows=...)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from questlog_query import metrics
from questlog_query.catalog import TableSpec, catalog
from questlog_schemas import lake as layout

if TYPE_CHECKING:
    from questlog_query.settings import Settings

log = logging.getLogger(__name__)


class LakeUnavailable(RuntimeError):
    """A table could not be read and there is no earlier snapshot to serve."""


@dataclass(frozen=True)
class Snapshot:
    """One immutable table version. ``version`` is None while the table does not exist."""

    name: str
    version: int | None
    dataset: pads.Dataset
    rows: int
    latest_time: datetime | None
    columns: tuple[str, ...]
    # Local paths of exactly the Parquet files this version's Delta log lists (file://
    # lakes only): DuckDB reads them natively, several times faster than through Arrow.
    files: tuple[str, ...] = ()
    partition_columns: tuple[str, ...] = ()
    # Per file of ``files`` (same order): its rows and the (min, max) of the table's time
    # column from the Delta log's statistics, None where a writer recorded none. Lets a
    # query for the first rows in time order read only the files that can hold them.
    file_stats: tuple[FileStats, ...] = ()

    def subset(self, indexes: Iterable[int]) -> Snapshot:
        """The same version restricted to some of its ``files`` (a native read only)."""
        keep = sorted(set(indexes))
        return replace(
            self,
            files=tuple(self.files[i] for i in keep),
            file_stats=tuple(self.file_stats[i] for i in keep),
            rows=sum(self.file_stats[i].rows for i in keep),
        )

    def freshness_seconds(self, now: datetime | None = None) -> float | None:
        if self.latest_time is None:
            return None
        now = now or datetime.now(UTC)
        return round(max(0.0, (now - self.latest_time).total_seconds()), 3)


@dataclass(frozen=True)
class FileStats:
    rows: int
    time_min: datetime | None
    time_max: datetime | None


@dataclass
class _Entry:
    spec: TableSpec
    uri: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    table: DeltaTable | None = None
    snapshot: Snapshot | None = None
    checked_at: float = float("-inf")


def _empty(spec: TableSpec) -> Snapshot:
    return Snapshot(spec.name, None, pads.dataset(spec.schema.empty_table()), 0, None, spec.columns)


def _stats(
    table: DeltaTable, dataset: pads.Dataset, spec: TableSpec
) -> tuple[int, datetime | None]:
    """Row count and newest time from the Delta log's file statistics (no data read).

    Falls back to scanning the one time column when a writer recorded no statistics.
    """
    adds = pa.table(table.get_add_actions(flatten=True))
    if adds.num_rows == 0:
        return 0, None
    records = adds.column("num_records") if "num_records" in adds.column_names else None
    max_col = f"max.{spec.time_column}"
    if (
        records is not None
        and records.null_count == 0
        and max_col in adds.column_names
        and adds.column(max_col).null_count < adds.num_rows
    ):
        latest = pc.max(adds.column(max_col)).as_py()
        return int(pc.sum(records).as_py() or 0), _as_utc(latest)
    column = dataset.to_table(columns=[spec.time_column]).column(spec.time_column)
    return len(column), _as_utc(pc.max(column).as_py())


def _file_stats(
    table: DeltaTable, files: tuple[str, ...], spec: TableSpec
) -> tuple[FileStats, ...]:
    """``FileStats`` for each local file, from the log's add actions (matched by path)."""
    if not files:
        return ()
    adds = pa.table(table.get_add_actions(flatten=True))
    names = adds.column_names
    low, high = f"min.{spec.time_column}", f"max.{spec.time_column}"
    nothing = [None] * adds.num_rows
    by_path = {
        unquote(path): FileStats(int(rows or 0), _as_utc(lo), _as_utc(hi))
        for path, rows, lo, hi in zip(
            cast("list[str]", adds.column("path").to_pylist()),  # an add action has a path
            adds.column("num_records").to_pylist() if "num_records" in names else nothing,
            adds.column(low).to_pylist() if low in names else nothing,
            adds.column(high).to_pylist() if high in names else nothing,
            strict=True,
        )
    }
    uri = table.table_uri
    root = (unquote(urlparse(uri).path) if uri.startswith("file:") else uri).rstrip("/") + "/"
    unknown = FileStats(0, None, None)
    return tuple(by_path.get(f[len(root) :] if f.startswith(root) else f, unknown) for f in files)


def _local_files(table: DeltaTable) -> tuple[str, ...]:
    """The committed data files as local paths, or () when the table is not on a local
    disk or uses a feature a plain Parquet read would get wrong (deletion vectors)."""
    uris = table.file_uris()
    if not uris or not all(u.startswith("file://") or u.startswith("/") for u in uris):
        return ()
    if "deletionVectors" in (table.protocol().reader_features or []):
        return ()
    return tuple(unquote(u[len("file://") :]) if u.startswith("file://") else u for u in uris)


def _as_utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Lake:
    """Latest committed snapshot per table, refreshed lazily at most every TTL seconds."""

    def __init__(
        self,
        lake_root: str,
        snapshot_ttl_s: float = 1.0,
        specs: dict[str, TableSpec] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lake_root = lake_root.rstrip("/")
        self.ttl = snapshot_ttl_s
        self._clock = clock
        self._entries = {
            name: _Entry(spec, layout.table_uri(self.lake_root, name))
            for name, spec in (specs or catalog()).items()
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Lake:
        return cls(settings.lake_root, settings.snapshot_ttl_s)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def snapshot(self, name: str, force: bool = False) -> Snapshot:
        entry = self._entries[name]
        snap = entry.snapshot
        if snap is not None and not force and self._clock() - entry.checked_at < self.ttl:
            return snap
        with entry.lock:
            if (
                entry.snapshot is not None
                and not force
                and self._clock() - entry.checked_at < self.ttl
            ):
                return entry.snapshot
            return self._refresh(entry)

    def snapshots(self, names: Iterable[str]) -> dict[str, Snapshot]:
        return {name: self.snapshot(name) for name in names}

    def _refresh(self, entry: _Entry) -> Snapshot:
        try:
            if entry.table is None:
                entry.table = DeltaTable(entry.uri)
            else:
                entry.table.update_incremental()
            version = entry.table.version()
        except TableNotFoundError:
            entry.table = None
            if entry.snapshot is None or entry.snapshot.version is not None:
                entry.snapshot = _empty(entry.spec)
            entry.checked_at = self._clock()
            return entry.snapshot
        except Exception as exc:  # storage down, table replaced under us, ...
            metrics.SNAPSHOT_ERRORS.labels(entry.spec.name).inc()
            entry.table = None  # reopen from scratch next time
            if entry.snapshot is None:
                raise LakeUnavailable(f"cannot read table {entry.spec.name}: {exc}") from exc
            log.warning(
                "serving stale snapshot",
                extra={
                    "table": entry.spec.name,
                    "version": entry.snapshot.version,
                    "error": str(exc),
                },
            )
            return entry.snapshot
        if entry.snapshot is None or entry.snapshot.version != version:
            started = time.perf_counter()
            dataset = entry.table.to_pyarrow_dataset()
            rows, latest = _stats(entry.table, dataset, entry.spec)
            files = _local_files(entry.table)
            entry.snapshot = Snapshot(
                entry.spec.name,
                version,
                dataset,
                rows,
                latest,
                tuple(dataset.schema.names),
                files=files,
                partition_columns=tuple(entry.table.metadata().partition_columns),
                file_stats=_file_stats(entry.table, files, entry.spec),
            )
            metrics.SNAPSHOT_LOADS.labels(entry.spec.name).inc()
            metrics.TABLE_VERSION.labels(entry.spec.name).set(version)
            metrics.TABLE_ROWS.labels(entry.spec.name).set(rows)
            log.info(
                "snapshot loaded",
                extra={
                    "table": entry.spec.name,
                    "version": version,
                    "rows": rows,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
        entry.checked_at = self._clock()
        return entry.snapshot

    def check_reachable(self) -> str | None:
        """None when every table could be opened (or is absent), else the first error."""
        root = self.lake_root
        if root.startswith("file://"):
            import os

            if not os.path.isdir(root[len("file://") :]):
                return f"lake root {root} does not exist"
        for name, entry in self._entries.items():
            try:
                DeltaTable(entry.uri).version()
            except TableNotFoundError:
                continue
            except Exception as exc:
                return f"table {name}: {exc}"
        return None
