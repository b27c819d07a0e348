"""Checks that run before an event is parsed: write keys and the per-client rate limit.

The rate limit is a token bucket per client (the write key if one was sent, else the
client IP) held in each worker's memory: with N workers a client gets at most N times the
configured rate. Buckets idle for a minute are dropped so memory stays bounded.
"""

from __future__ import annotations

import hmac
import math
import threading
import time

from questlog_api.errors import ApiError

KEY_HEADER = "X-Questlog-Key"


def presented_key(headers) -> str | None:
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get(KEY_HEADER)
    return key.strip() if key and key.strip() else None


def check_write_key(write_keys: tuple[str, ...], headers) -> None:
    """Raise 401 unless keys are off or a configured key was presented."""
    if not write_keys:
        return
    key = presented_key(headers)
    if key is None:
        raise ApiError(401, "missing write key (Authorization: Bearer <key> or X-Questlog-Key)")
    # compare against every key in constant time, so timing tells nothing about which
    matched = False
    for candidate in write_keys:
        matched |= hmac.compare_digest(candidate.encode(), key.encode())
    if not matched:
        raise ApiError(401, "invalid write key")


class RateLimiter:
    MAX_CLIENTS = 100_000
    IDLE_S = 60.0

    def __init__(self, rate: float, burst: int = 0) -> None:
        self.rate = rate
        self.burst = float(burst or max(1.0, rate))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def check(self, client: str) -> None:
        """Take one token for ``client`` or raise 429 with the seconds until the next one."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise ApiError(429, "rate limit exceeded", {"limit_per_second": self.rate},
                               retry_after=max(1, wait))
            self._buckets[client] = (tokens - 1.0, now)
            if now - self._last_sweep > self.IDLE_S or len(self._buckets) > self.MAX_CLIENTS:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        idle = [c for c, (_, last) in self._buckets.items() if now - last > self.IDLE_S]
        for client in idle:
            del self._buckets[client]
        if len(self._buckets) > self.MAX_CLIENTS:  # under a flood of distinct clients
            self._buckets.clear()
