"""Fixtures of the extractor's tests (Kafka, Spark and HDFS come from the root conftest)."""

from __future__ import annotations

import pytest

from questlog_schemas import load_registry


@pytest.fixture(scope="session")
def registry():
    return load_registry()
