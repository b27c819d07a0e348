"""A page of rows in time order from only part of the table (questlog_query.firstrows):
every answer equals the same query over the whole table, and a first page reads only the
files that can hold it."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest

from questlog_query import firstrows
from questlog_query.engine import Engine
from questlog_query.firstrows import first_rows
from questlog_query.lake import FileStats, Lake

VIEW = "purchase_sword__first_rows"
FILES = 24


@pytest.fixture
def table(lake_dir, gen):
    """24 appends: mostly in time order, some overlapping (a late batch, a compaction's
    wide file), with ties on received_at inside and across files."""
    rows = gen.make("purchase_sword", 1200, seed=7)
    rng = random.Random(7)
    chunks = [rows[i : i + 50] for i in range(0, len(rows), 50)]
    chunks[5], chunks[9] = chunks[9], chunks[5]  # written out of order
    chunks[12] = chunks[12] + [dict(rows[3], event_id="tie-" + rows[3]["event_id"])]
    for chunk in chunks:
        gen.write(lake_dir, "purchase_sword", chunk)
    assert len(chunks) == FILES
    lake = Lake(lake_dir.as_uri(), 60.0)
    return rows, lake, Engine("256MB", 1, 30.0, str(lake_dir)), rng


def page(engine, snap, where, bound, order, limit, reads):
    direction = "DESC" if order == "desc" else "ASC"
    tail = f" ORDER BY received_at {direction}, event_id {direction} LIMIT $limit"
    base = f'SELECT * FROM "{VIEW}"' + (" WHERE " + " AND ".join(where) if where else "")
    edge_clause = "received_at >= $edge" if order == "desc" else "received_at <= $edge"

    def run(part, edge):
        reads.append((len(part.files), edge))
        if edge is None:
            return engine.query(base + tail, {**bound, "limit": limit}, {VIEW: part})
        sql = base + (" AND " if where else " WHERE ") + edge_clause + tail
        return engine.query(sql, {**bound, "limit": limit, "edge": edge}, {VIEW: part})

    return run


def whole(engine, snap, where, bound, order, limit):
    direction = "DESC" if order == "desc" else "ASC"
    sql = (
        'SELECT * FROM "purchase_sword"'
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY received_at {direction}, event_id {direction} LIMIT $limit"
    )
    return engine.query(sql, {**bound, "limit": limit}, {"purchase_sword": snap})


@pytest.mark.parametrize("budget", [1, 30, 120, 10_000])
def test_every_page_equals_the_query_over_the_whole_table(table, monkeypatch, budget):
    rows, lake, engine, rng = table
    monkeypatch.setattr(firstrows, "FIRST_BUDGET_ROWS", budget)
    snap = lake.snapshot("purchase_sword")
    assert len(snap.files) >= FILES
    assert all(s.time_min for s in snap.file_stats)
    times = sorted(r["received_at"] for r in rows)
    for case in range(120):
        order = rng.choice(["asc", "desc"])
        limit = rng.choice([1, 2, 11, 101, 2000])
        where, bound = [], {}
        low = high = None
        if rng.random() < 0.4:
            bound["host"] = rng.choice(["user1.comcast.com", "user3.example.org", "nobody"])
            where.append("host = $host")
        if rng.random() < 0.3:
            bound["player_id"] = f"player{rng.randint(0, 14)}"
            where.append("player_id = $player_id")
        if rng.random() < 0.5:  # a cursor at a real row, ties included
            at = rng.choice(rows)
            bound["c_time"], bound["c_id"] = at["received_at"], at["event_id"]
            op = ">" if order == "asc" else "<"
            where.append(
                f"(received_at {op} $c_time OR (received_at = $c_time AND event_id {op} $c_id))"
            )
            low, high = (at["received_at"], None) if order == "asc" else (None, at["received_at"])
        if rng.random() < 0.3:
            since = rng.choice(times)
            bound["since"] = since
            where.append("received_at >= $since")
            low = max(low, since) if low else since
        if rng.random() < 0.3:
            until = rng.choice(times) + timedelta(microseconds=1)
            bound["until"] = until
            where.append("received_at < $until")
            high = min(high, until) if high else until
        reads: list = []
        got = first_rows(
            snap,
            page(engine, snap, where, bound, order, limit, reads),
            limit=limit,
            descending=order == "desc",
            low=low,
            high=high,
        )
        want = whole(engine, snap, where, bound, order, limit)
        assert got.equals(want), (case, order, limit, where, bound, reads)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_first_page_reads_only_the_files_that_can_hold_it(table, monkeypatch, order):
    _, lake, engine, _ = table
    monkeypatch.setattr(firstrows, "FIRST_BUDGET_ROWS", 60)
    snap = lake.snapshot("purchase_sword")
    reads: list = []
    got = first_rows(
        snap, page(engine, snap, [], {}, order, 20, reads), limit=20, descending=order == "desc"
    )
    assert got.num_rows == 20
    assert len(reads) == 1, reads
    assert reads[0][1] is not None, reads
    assert reads[0][0] <= 6, f"a 20-row page read {reads[0][0]} of {len(snap.files)} files"


def test_files_without_statistics_are_always_read(table, monkeypatch):
    _, lake, engine, _ = table
    monkeypatch.setattr(firstrows, "FIRST_BUDGET_ROWS", 60)
    snap = lake.snapshot("purchase_sword")
    # the file holding the latest rows, as if its writer had recorded no statistics
    latest = max(range(len(snap.files)), key=lambda i: snap.file_stats[i].time_max)
    stats = list(snap.file_stats)
    stats[latest] = FileStats(stats[latest].rows, None, None)
    blind = dataclasses.replace(snap, file_stats=tuple(stats))
    reads: list = []
    got = first_rows(blind, page(engine, blind, [], {}, "desc", 5, reads), limit=5, descending=True)
    assert got.equals(whole(engine, snap, [], {}, "desc", 5))
    assert all(n >= 1 for n, _ in reads)


def test_without_per_file_statistics_the_whole_snapshot_is_queried(table):
    _, lake, _, _ = table
    snap = dataclasses.replace(lake.snapshot("purchase_sword"), files=(), file_stats=())
    calls: list = []
    first_rows(snap, lambda part, edge: calls.append((part, edge)), limit=5)
    assert calls == [(snap, None)]
