"""Validations per second of a valid purchase_sword event (a benchmark, not a test).

Usage::

    .venv/bin/python schemas/bench_validate.py [iterations]
"""

from __future__ import annotations

import sys
import time

from questlog_schemas import load_registry

EVENT = {
    "event_id": "0b6e5a52-4c7e-4f5e-9a35-1f2b3c4d5e6f",
    "event_type": "purchase_sword",
    "event_time": "2024-05-01T12:00:00Z",
    "received_at": "2024-05-01T12:00:00.123Z",
    "player_id": "player-42",
    "session_id": "s-1",
    "properties": {"sword_type": "longsword", "price": 9.99, "currency": "EUR", "quantity": 1},
    "context": {"host": "user1.comcast.com", "user_agent": "ApacheBench/2.3", "accept": "*/*"},
    "schema_version": 1,
}


def main(iterations: int = 200_000) -> None:
    registry = load_registry()
    validate = registry.validate
    if validate(EVENT):
        raise SystemExit(f"benchmark event is invalid: {validate(EVENT)}")
    start = time.perf_counter()
    for _ in range(iterations):
        validate(EVENT)
    elapsed = time.perf_counter() - start
    print(f"{iterations / elapsed:,.0f} validations/s ({iterations} in {elapsed:.2f}s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
