"""The embedded Trino's configuration, without starting it (started: services/query/tests/
test_trino.py and tests/e2e/test_hdfs_trino_stack.py)."""

from __future__ import annotations

import json

import pytest

from questlog_embedded import trino


def test_the_catalog_reads_local_files_and_hdfs_through_a_file_metastore(tmp_path):
    props = dict(
        line.split("=", 1)
        for line in trino.catalog_properties(tmp_path / "meta").splitlines()
        if line
    )
    assert props["connector.name"] == "delta_lake"
    assert props["hive.metastore"] == "file"
    assert props["hive.metastore.catalog.dir"] == f"local://{tmp_path / 'meta'}"
    assert (props["fs.native-local.enabled"], props["local.location"]) == ("true", "/")
    assert props["fs.hadoop.enabled"] == "true"
    assert props["delta.register-table-procedure.enabled"] == "true"


def test_etc_binds_loopback_and_only_the_registrar_may_register(tmp_path):
    etc = trino.write_etc(tmp_path, 18080)
    config = (etc / "config.properties").read_text()
    assert "http-server.http.port=18080" in config
    assert "discovery.uri=http://127.0.0.1:18080" in config
    rules = json.loads((etc / "rules.json").read_text())
    assert rules["procedures"] == [
        {
            "user": "questlog-registrar",
            "catalog": "questlog",
            "schema": "system",
            "procedure": "register_table",
            "privileges": ["EXECUTE"],
        }
    ]
    assert {"catalog": "(questlog|system)", "allow": "read-only"} in rules["catalogs"]


def test_the_readiness_catalog_is_tpch_and_only_the_probe_may_read_it(tmp_path):
    etc = trino.write_etc(tmp_path, 18080)
    assert (etc / "catalog" / "questlog_ready.properties").read_text() == "connector.name=tpch\n"
    from questlog_query.trino_sync import READY_SQL

    assert "questlog_ready.tiny.region" in READY_SQL
    rules = json.loads((etc / "rules.json").read_text())
    readers = [rule for rule in rules["catalogs"] if "questlog_ready" in rule["catalog"]]
    assert readers == [
        {"user": "questlog-ready", "catalog": "questlog_ready", "allow": "read-only"}
    ]
    assert "tpch" in trino.PLUGINS
    assert "plugin/tpch/*" in trino.UNPACK


def test_trino_refuses_a_java_older_than_24_with_the_fix(monkeypatch):
    monkeypatch.setenv("QUESTLOG_TRINO_JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")
    with pytest.raises(RuntimeError, match=r"needs Java 24 or newer.*QUESTLOG_TRINO_JAVA_HOME"):
        trino.java()


def test_a_download_with_a_wrong_checksum_is_refused_and_removed(tmp_path):
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"not the tarball")
    dest = tmp_path / "cache" / "x.tar.gz"
    with pytest.raises(RuntimeError, match=r"SHA-1 .* expected 0000"):
        trino._download(payload.as_uri(), "0" * 40, dest, log=lambda *_: None)
    assert not dest.exists()
    assert not dest.with_name("x.tar.gz.part").exists()
