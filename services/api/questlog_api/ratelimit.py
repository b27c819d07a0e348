"""The per-client rate limit: one token bucket per client (the write key if one was sent,
else the client IP), for the whole server rather than per gunicorn worker.

Under gunicorn the buckets live in a small file every worker maps (``SharedBuckets``): the
master creates it before forking (``gunicorn_config.on_starting``) and names it in
``RATE_STATE_ENV``; an ``flock`` serialises each read-modify-write across the workers, a
thread lock across one worker's threads. Kept per worker instead, N workers let a client
through at N times the setting (measured: 1.99x with two). Without gunicorn (tests, a
single process) the buckets are a dict (``LocalBuckets``). Buckets idle for a minute are
reused, so memory stays bounded either way.

Usage::

    limiter = RateLimiter.from_environment(rate=50, burst=20)
    limiter.check(client)          # raises ApiError 429 with Retry-After when empty
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
import time
from pathlib import Path

from questlog_service.errors import ApiError

RATE_STATE_ENV = "QUESTLOG_API_RATE_STATE"
IDLE_S = 60.0


def refill(tokens: float, last: float, now: float, rate: float, burst: float) -> float:
    return min(burst, tokens + max(0.0, now - last) * rate)


class LocalBuckets:
    """Buckets of this process only."""

    MAX_CLIENTS = 100_000

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def take(self, client: str, now: float, rate: float, burst: float) -> float | None:
        """One token for ``client``: None if granted, else the tokens left (< 1)."""
        with self._lock:
            tokens, last = self._buckets.get(client, (burst, now))
            tokens = refill(tokens, last, now, rate, burst)
            granted = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if granted else tokens, now)
            if now - self._last_sweep > IDLE_S or len(self._buckets) > self.MAX_CLIENTS:
                self._sweep(now)
            return None if granted else tokens

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        idle = [c for c, (_, last) in self._buckets.items() if now - last > IDLE_S]
        for client in idle:
            del self._buckets[client]
        if len(self._buckets) > self.MAX_CLIENTS:  # under a flood of distinct clients
            self._buckets.clear()


class SharedBuckets:
    """Buckets in a file mapped by every worker: an open-addressed table of
    (client hash, tokens, last refill) records; CLOCK_MONOTONIC is one clock for all."""

    SLOTS = 1 << 16
    PROBE = 8  # records looked at per client before the longest idle one is reused
    RECORD = struct.Struct("<Qdd")

    @classmethod
    def create(cls, path: Path) -> Path:
        """The zeroed table (about 1.5 MB), made once by the gunicorn master."""
        with open(path, "wb") as f:
            f.truncate(cls.SLOTS * cls.RECORD.size)
        return path

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR)
        size = os.fstat(self._fd).st_size
        if size != self.SLOTS * self.RECORD.size:
            raise ValueError(f"{path}: {size} bytes is not a rate-limit table")
        self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()  # flock does not exclude threads sharing one fd

    @staticmethod
    def _hash(client: str) -> int:
        digest = hashlib.blake2b(client.encode("utf-8", "surrogatepass"), digest_size=8)
        return int.from_bytes(digest.digest(), "little") or 1  # 0 marks a free record

    def take(self, client: str, now: float, rate: float, burst: float) -> float | None:
        """One token for ``client``: None if granted, else the tokens left (< 1)."""
        key = self._hash(client)
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                offset, tokens, last = self._find(key, now, burst)
                # ``now`` was read before the lock: another worker may have written a later
                # time meanwhile, and moving it back would count that interval twice
                now = max(now, last)
                tokens = refill(tokens, last, now, rate, burst)
                granted = tokens >= 1.0
                self.RECORD.pack_into(
                    self._map, offset, key, tokens - 1.0 if granted else tokens, now
                )
                return None if granted else tokens
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _find(self, key: int, now: float, burst: float) -> tuple[int, float, float]:
        """The client's record (offset, tokens, last), or a free, idle or the longest idle
        record among its probes, as a full bucket."""
        size = self.RECORD.size
        start = key % self.SLOTS
        reuse, reuse_last = -1, math.inf
        for i in range(self.PROBE):
            offset = ((start + i) % self.SLOTS) * size
            held, tokens, last = self.RECORD.unpack_from(self._map, offset)
            if held == key:
                return offset, tokens, last
            if held == 0 or now - last > IDLE_S:
                last = -math.inf  # free or idle: the best record to reuse
            if last < reuse_last:
                reuse, reuse_last = offset, last
        return reuse, burst, now


class RateLimiter:
    def __init__(
        self, rate: float, burst: int = 0, buckets: LocalBuckets | SharedBuckets | None = None
    ) -> None:
        self.rate = rate
        self.burst = float(burst or max(1.0, rate))
        self.buckets = buckets if buckets is not None else LocalBuckets()

    @classmethod
    def from_environment(cls, rate: float, burst: int = 0) -> RateLimiter:
        """Shared buckets when the gunicorn master made a table for its workers."""
        path = os.environ.get(RATE_STATE_ENV, "")
        if rate > 0 and path:
            return cls(rate, burst, SharedBuckets(Path(path)))
        return cls(rate, burst)

    def check(self, client: str) -> None:
        """Take one token for ``client`` or raise 429 with the seconds until the next one."""
        if self.rate <= 0:
            return
        left = self.buckets.take(client, time.monotonic(), self.rate, self.burst)
        if left is not None:
            wait = math.ceil((1.0 - left) / self.rate)
            raise ApiError(
                429,
                "rate limit exceeded",
                {"limit_per_second": self.rate},
                retry_after=max(1, wait),
            )
