"""Per-table gauges set where a snapshot is loaded: what the dashboards' rows panel reads."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from questlog_query.lake import Lake


def _rows(table: str) -> float | None:
    return REGISTRY.get_sample_value("questlog_query_table_rows", {"table": table})


def test_table_rows_follow_each_loaded_snapshot(lake_dir: Path, events, gen):
    lake = Lake(lake_dir.as_uri(), 0)
    assert lake.snapshot("purchase_sword").rows == 400
    assert _rows("purchase_sword") == 400
    gen.write(lake_dir, "purchase_sword", gen.make("purchase_sword", 10, seed=9))
    assert lake.snapshot("purchase_sword").rows == 410
    assert _rows("purchase_sword") == 410
    version = lake.snapshot("purchase_sword").version
    assert (
        REGISTRY.get_sample_value("questlog_query_table_version", {"table": "purchase_sword"})
        == version
    )


def test_table_rows_are_on_the_metrics_endpoint(events, client):
    assert client.get("/v1/tables").status_code == 200  # loads every table's snapshot
    text = client.get("/metrics").get_data(as_text=True)
    assert 'questlog_query_table_rows{table="purchase_sword"} 400.0' in text


def test_error_counters_are_exported_at_zero_before_any_error(client):
    """A labelled counter nobody incremented has no series; the dashboards' error panels
    would then query a metric no service exports."""
    text = client.get("/metrics").get_data(as_text=True)
    assert 'questlog_query_snapshot_errors_total{table="quarantine"}' in text
    assert 'questlog_query_timeouts_total{kind="sql"}' in text
