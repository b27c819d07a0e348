import shutil
from pathlib import Path

import pyarrow.compute as pc
from deltalake import DeltaTable

from questlog_query.lake import Lake


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_missing_table_is_empty_not_an_error(lake_dir: Path):
    lake = Lake(lake_dir.as_uri(), 0)
    snap = lake.snapshot("purchase_sword")
    assert snap.version is None
    assert snap.rows == 0
    assert snap.dataset.count_rows() == 0
    assert "sword_type" in snap.columns


def test_snapshot_matches_committed_rows(lake_dir: Path, events):
    lake = Lake(lake_dir.as_uri(), 0)
    snap = lake.snapshot("purchase_sword")
    assert snap.version == 1
    assert snap.rows == 400 == snap.dataset.count_rows()
    newest = max(r["received_at"] for r in events["purchase_sword"])
    # from the Delta log's file statistics, which keep milliseconds (truncated)
    assert snap.latest_time == newest.replace(microsecond=newest.microsecond // 1000 * 1000)


def test_uncommitted_parquet_is_never_read(lake_dir: Path, events):
    table_dir = lake_dir / "tables" / "purchase_sword"
    committed = sorted(table_dir.rglob("*.parquet"))
    # a killed writer leaves a valid Parquet file that no Delta commit references
    orphan = committed[0].with_name("part-99999-orphan-c000.snappy.parquet")
    shutil.copy(committed[0], orphan)
    assert orphan.name not in {Path(f).name for f in DeltaTable(table_dir.as_uri()).file_uris()}
    snap = Lake(lake_dir.as_uri(), 0).snapshot("purchase_sword")
    assert snap.dataset.count_rows() == 400
    assert all("orphan" not in f for f in snap.dataset.files)


def test_new_version_is_picked_up_after_ttl_only(lake_dir: Path, events, monkeypatch, gen):
    clock = FakeClock()
    lake = Lake(lake_dir.as_uri(), 1.0, clock=clock)
    calls = []
    original = DeltaTable.update_incremental

    def counting(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(DeltaTable, "update_incremental", counting)
    first = lake.snapshot("purchase_sword")
    gen.write(lake_dir, "purchase_sword", gen.make("purchase_sword", 10, seed=9))
    for _ in range(50):  # repeated reads within the TTL: same object, no metadata I/O
        assert lake.snapshot("purchase_sword") is first
    assert calls == []
    clock.now += 1.5
    second = lake.snapshot("purchase_sword")
    assert len(calls) == 1
    assert second.version == first.version + 1
    assert second.rows == 410
    clock.now += 1.5
    assert lake.snapshot("purchase_sword") is second  # unchanged version: same snapshot
    assert len(calls) == 2


def test_table_created_later_appears(lake_dir: Path, gen):
    lake = Lake(lake_dir.as_uri(), 0)
    assert lake.snapshot("join_guild").version is None
    gen.write(lake_dir, "join_guild", gen.make("join_guild", 5, seed=3))
    snap = lake.snapshot("join_guild")
    assert snap.version == 0
    assert pc.sum(pc.equal(snap.dataset.to_table().column("event_type"), "join_guild")).as_py() == 5
