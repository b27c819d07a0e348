"""The lake on HDFS (a real MiniDFSCluster from the root conftest's ``hdfs`` fixture)."""

import pytest

from questlog_query import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_counts_over_hdfs_lake(hdfs, gen, tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    root = f"{hdfs.uri}/questlog-query-test"
    rows = gen.make("purchase_sword", 60, seed=5)
    write_deltalake(
        f"{root}/tables/purchase_sword",
        pa.Table.from_pylist(rows, schema=gen.schema("purchase_sword")),
        partition_by=["event_date"],
        mode="append",
    )
    settings = gen.settings(tmp_path, lake_root=root)
    client = create_app(settings).test_client()
    body = client.get("/v1/stats/counts?event_type=purchase_sword&group_by=host").get_json()
    expected: dict = {}
    for r in rows:
        expected[r["host"]] = expected.get(r["host"], 0) + 1
    assert {r["host"]: r["count"] for r in body["rows"]} == expected
    assert body["as_of"] == {"purchase_sword": 0}
    assert client.get("/readyz").status_code == 200
