"""Session fixtures shared by every test folder: real Kafka, HDFS, Spark and a Kubernetes
control plane, started once.

Each runs on free ports under pytest's temp dir and is always stopped; when a test failed,
the logs stay where pytest keeps its temp dirs and their paths are printed at the end.
"""

from __future__ import annotations

import logging

import pytest

# py4j logs at INFO while the interpreter shuts down, after pytest closed its streams
logging.getLogger("py4j").setLevel(logging.WARNING)

_LOGS: list[str] = []


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    from questlog_embedded.kafka import KafkaBroker

    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), default_partitions=3)
    _LOGS.append(str(broker.log_path))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def hdfs(tmp_path_factory):
    from questlog_embedded.hdfs import MiniHdfs

    base = tmp_path_factory.mktemp("hdfs")
    cluster = MiniHdfs(base_dir=base, log_path=base / "hdfs.log")
    _LOGS.append(str(base / "hdfs.log"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from questlog_embedded.spark import local_session

    session = local_session(tmp_path_factory.mktemp("spark"))
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory):
    """etcd + kube-apiserver on loopback, no nodes (questlog_k8s.cluster); the binaries
    build once per machine from the Go module proxy."""
    from questlog_k8s.cluster import ControlPlane

    plane = ControlPlane(tmp_path_factory.mktemp("kube"))
    _LOGS.extend(str(path) for path in plane.log_paths)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def pytest_terminal_summary(terminalreporter, exitstatus):
    if exitstatus != 0 and _LOGS:
        terminalreporter.write_line("infrastructure logs of this run:")
        for path in _LOGS:
            terminalreporter.write_line(f"  {path}")
