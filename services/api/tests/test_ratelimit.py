"""The rate limit: one token bucket per client, shared by every worker process."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from questlog_api.ratelimit import LocalBuckets, RateLimiter, SharedBuckets
from questlog_service.errors import ApiError


@pytest.fixture
def table(tmp_path):
    return SharedBuckets.create(tmp_path / "buckets")


@pytest.mark.parametrize("kind", ["local", "shared"])
def test_a_bucket_grants_its_burst_then_the_rate(kind, table):
    buckets = LocalBuckets() if kind == "local" else SharedBuckets(table)
    now = 1000.0
    granted = [buckets.take("c", now, rate=2.0, burst=3.0) is None for _ in range(5)]
    assert granted == [True, True, True, False, False]
    assert buckets.take("c", now + 0.5, 2.0, 3.0) is None  # 0.5 s at 2/s refilled one
    assert buckets.take("c", now + 0.5, 2.0, 3.0) is not None
    assert buckets.take("other", now, 2.0, 3.0) is None  # clients are separate


def test_a_full_probe_window_reuses_the_longest_idle_record(table, monkeypatch):
    buckets = SharedBuckets(table)
    monkeypatch.setattr(SharedBuckets, "_hash", staticmethod(lambda client: int(client)))
    slots = SharedBuckets.SLOTS
    # clients 1, 1+S, 1+2S ... all start probing at record 1; client 1 is the longest idle
    for i in range(SharedBuckets.PROBE):
        assert buckets.take(str(1 + i * slots), 100.0 + i / 100, 1.0, 1.0) is None
    newcomer = str(1 + SharedBuckets.PROBE * slots)
    assert buckets.take(newcomer, 100.2, 1.0, 1.0) is None  # took the longest idle record
    assert buckets.take(str(1 + slots), 100.2, 1.0, 1.0) is not None  # others keep theirs
    assert buckets.take(str(1), 100.3, 1.0, 1.0) is None  # client 1 was evicted: afresh


def _hammer(path: str, seconds: float, out) -> None:
    buckets = SharedBuckets(path)
    granted, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        granted += buckets.take("one-client", time.monotonic(), 50.0, 10.0) is None
    out.put(granted)


def test_workers_share_one_bucket_per_client(table):
    """Four processes drawing as fast as they can from one client's bucket get the burst
    plus rate x seconds between them, not four times that."""
    out = multiprocessing.get_context("fork").Queue()
    seconds = 2.0
    procs = [
        multiprocessing.get_context("fork").Process(target=_hammer, args=(str(table), seconds, out))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=10)
    assert 10 + 50 * seconds * 0.9 <= total <= 10 + 50 * (seconds + 0.5)


def test_limiter_raises_429_with_retry_after(table):
    limiter = RateLimiter(0.5, 1, SharedBuckets(table))
    limiter.check("c")
    with pytest.raises(ApiError) as refused:
        limiter.check("c")
    assert refused.value.status == 429
    assert refused.value.retry_after == 2  # one token at 0.5/s


def test_from_environment_shares_only_when_the_master_made_a_table(table, monkeypatch):
    monkeypatch.delenv("QUESTLOG_API_RATE_STATE", raising=False)
    assert isinstance(RateLimiter.from_environment(5).buckets, LocalBuckets)
    monkeypatch.setenv("QUESTLOG_API_RATE_STATE", str(table))
    assert isinstance(RateLimiter.from_environment(5).buckets, SharedBuckets)
    assert isinstance(RateLimiter.from_environment(0).buckets, LocalBuckets)  # limit off


def test_a_file_of_the_wrong_size_is_refused(tmp_path):
    (tmp_path / "x").write_bytes(b"not a table")
    with pytest.raises(ValueError, match="not a rate-limit table"):
        SharedBuckets(tmp_path / "x")
