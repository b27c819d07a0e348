"""The embedded HDFS (MiniDFSCluster JVM): real writes, WebHDFS, restarts, clean stops."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import hdfs_native
import pytest

from questlog_embedded.hdfs import MiniHdfs, MiniHdfsError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAYLOAD = b"questlog\x00" + bytes(range(256)) * 4096  # ~1 MiB, binary-safe


def _write(uri: str, path: str, data: bytes) -> None:
    client = hdfs_native.Client(uri)
    client.mkdirs("/questlog", create_parent=True)
    with client.create(path) as f:
        f.write(data)


def _read(uri: str, path: str) -> bytes:
    with hdfs_native.Client(uri).read(path) as f:
        return f.read()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def hdfs(tmp_path: Path) -> Iterator[MiniHdfs]:
    with MiniHdfs(tmp_path / "hdfs", log_path=tmp_path / "hdfs.log") as cluster:
        yield cluster


def test_write_read_and_webhdfs(hdfs: MiniHdfs) -> None:
    assert hdfs.running
    assert hdfs.rpc_port > 0
    assert hdfs.http_port > 0
    assert hdfs.uri == f"hdfs://127.0.0.1:{hdfs.rpc_port}"
    assert hdfs.webhdfs_url == f"http://127.0.0.1:{hdfs.http_port}"
    assert hdfs.spark_conf()["spark.hadoop.dfs.replication"] == "1"
    assert "spark.hadoop.fs.defaultFS" not in hdfs.spark_conf()
    assert hdfs.spark_conf(default_fs=True)["spark.hadoop.fs.defaultFS"] == hdfs.uri

    _write(hdfs.uri, "/questlog/blob.bin", PAYLOAD)
    assert _read(hdfs.uri, "/questlog/blob.bin") == PAYLOAD

    url = f"{hdfs.webhdfs_url}/webhdfs/v1/questlog?op=LISTSTATUS"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get_content_type() == "application/json"
        listing = json.load(resp)
    entries = {s["pathSuffix"]: s for s in listing["FileStatuses"]["FileStatus"]}
    assert entries["blob.bin"]["length"] == len(PAYLOAD)
    assert entries["blob.bin"]["replication"] == 1

    with urllib.request.urlopen(
        f"{hdfs.webhdfs_url}/webhdfs/v1/?op=LISTSTATUS", timeout=10
    ) as resp:
        assert resp.status == 200
        root = json.load(resp)
    assert "questlog" in {s["pathSuffix"] for s in root["FileStatuses"]["FileStatus"]}


def test_restart_keeps_data_and_stop_leaves_no_process(tmp_path: Path) -> None:
    base, log = tmp_path / "hdfs", tmp_path / "hdfs.log"

    first = MiniHdfs(base, log_path=log).start()
    pid = first.pid
    assert pid is not None
    assert _pid_alive(pid)
    try:
        _write(first.uri, "/questlog/keep.bin", PAYLOAD)
    finally:
        first.stop()
    assert not _pid_alive(pid)
    assert not first.running
    first.stop()  # idempotent

    with MiniHdfs(base, log_path=log) as second:
        assert _read(second.uri, "/questlog/keep.bin") == PAYLOAD
        pid = second.pid
    assert pid is not None
    assert not _pid_alive(pid)

    text = log.read_text()
    assert text.count("formatting a new cluster") == 1
    assert text.count("reusing the formatted cluster") == 1


def test_fixed_ports_and_clear_error_when_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        cluster = MiniHdfs(tmp_path / "hdfs", rpc_port=taken, log_path=tmp_path / "hdfs.log")
        with pytest.raises(MiniHdfsError, match="before it was ready") as info:
            cluster.start(timeout=120)
    assert "last lines" in str(info.value)
    assert str(taken) in str(info.value)  # the log tail names the port that was in use
    assert not cluster.running
    with pytest.raises(MiniHdfsError, match="not started"):
        _ = cluster.uri
