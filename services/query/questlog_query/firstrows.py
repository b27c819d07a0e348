"""The first rows of a table in time order, reading only the part of it that holds them.

``GET /v1/events`` pages by (received_at, event_id): ``ORDER BY ... LIMIT n``. Given the
whole table, DuckDB decodes every column of every row that passes the filter before its
top-N keeps n of them: on 10M rows, a page of one host's purchases took ~190 ms where an
unordered ``LIMIT 100`` takes ~19 ms. Yet the Delta log records each file's rows and the
min and max of the time column, and a streamed table is written in time order.

``first_rows`` estimates, from those statistics, the time ``edge`` before which about
``budget`` rows lie (after which, for a descending page), and runs the query on the files
that reach before the edge, with ``received_at <= edge`` added: DuckDB then skips every row
group past the edge by its own statistics. When that finds ``limit`` rows, they are
exactly the first ``limit`` rows of the whole table: every row left out lies after the
edge, so after all of them. When it finds fewer, the budget grows (by the rate of matches
seen so far) and the query runs again, until the edge covers the table. Files without
statistics are always read. Files wholly outside the time bounds (the cursor, ``since``,
``until``) are never read. tests/test_firstrows.py compares every answer with the query
over the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

import pyarrow as pa

from questlog_query.lake import Snapshot

FIRST_BUDGET_ROWS = 200_000  # rows the first try expects to read
GROWTH = 4  # each further try expects to read at least this many times more

# (a subset of the snapshot's files, the edge or None for no edge) -> the page
Run = Callable[[Snapshot, datetime | None], pa.Table]


class _File(NamedTuple):
    file_index: int  # in the snapshot's files
    rows: int
    time_min: datetime
    time_max: datetime


def _edge(files: list[_File], budget: int, descending: bool) -> datetime | None:
    """The time with about ``budget`` rows of ``files`` (sorted from the start of the
    order) before it (after it, descending), interpolating in the file where the count is
    reached; None when the files hold fewer rows than that."""
    seen = 0
    for f in files:
        if seen + f.rows >= budget and f.rows:
            share = (budget - seen) / f.rows
            span = f.time_max - f.time_min
            return f.time_max - span * share if descending else f.time_min + span * share
        seen += f.rows
    return None


def first_rows(
    snap: Snapshot,
    run: Run,
    *,
    limit: int,
    descending: bool = False,
    low: datetime | None = None,
    high: datetime | None = None,
) -> pa.Table:
    """The query's first ``limit`` rows in time order, as ``run`` over the whole snapshot
    would give them; rows must lie within ``low``..``high`` (inclusive) for the query."""
    stats = snap.file_stats
    if not snap.files or len(stats) != len(snap.files):  # not read natively: no statistics
        return run(snap, None)
    known: list[_File] = []
    unknown: list[int] = []  # files without statistics: always read
    for i, st in enumerate(stats):
        if st.time_min is None or st.time_max is None:
            unknown.append(i)
        elif not (
            (low is not None and st.time_max < low) or (high is not None and st.time_min > high)
        ):
            known.append(_File(i, st.rows, st.time_min, st.time_max))
    if descending:
        known.sort(key=lambda f: f.time_max, reverse=True)
    else:
        known.sort(key=lambda f: f.time_min)
    budget = FIRST_BUDGET_ROWS
    while True:
        edge = _edge(known, budget, descending)
        if edge is None:
            return run(snap.subset([f.file_index for f in known] + unknown), None)
        part = [
            f.file_index
            for f in known
            if (f.time_max >= edge if descending else f.time_min <= edge)
        ]
        table = run(snap.subset(part + unknown), edge)
        if table.num_rows >= limit:
            return table
        found = table.num_rows
        wanted = int(1.5 * budget * limit / found) if found else budget * 2 * GROWTH
        budget = max(budget * GROWTH, wanted)
