"""T10: the API's rate limiter never refuses: every client gets every request through."""

from __future__ import annotations


def apply(patch) -> None:
    from questlog_api import guards

    patch.setattr(guards.RateLimiter, "check", lambda self, client: None)
