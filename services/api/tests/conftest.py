"""Fixtures: an app on the in-memory sink, and its test client."""

from __future__ import annotations

import pytest

from questlog_api import MemorySink, Settings, create_app

IP_KEY = b"test-ip-hash-key-0123456789"


def make_settings(**overrides) -> Settings:
    values = {"sink": "memory", "ip_hash_key": IP_KEY}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_for():
    """``settings_for(**overrides)`` -> memory-sink Settings with a test IP key."""
    return make_settings


@pytest.fixture
def ip_key():
    return IP_KEY


@pytest.fixture
def sink():
    return MemorySink()


@pytest.fixture
def app(sink):
    return create_app(make_settings(), sink=sink)


@pytest.fixture
def client(app):
    return app.test_client()
