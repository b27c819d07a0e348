"""T10: each gunicorn worker keeps its own buckets (the shared table is ignored), so a
client gets the limit once per worker."""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_api import ratelimit

    patch.setattr(
        ratelimit.RateLimiter,
        "from_environment",
        classmethod(lambda cls, rate, burst=0: cls(rate, burst)),
    )
