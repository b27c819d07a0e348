"""`helm test`: events posted through the event API are all found, once each, through the
query API (Kafka, the extractor, the lake and the query service in between).

Standard library only: it runs in the API's image. Settings (the chart sets them):
QUESTLOG_TEST_API_URL, QUESTLOG_TEST_QUERY_URL, QUESTLOG_TEST_EVENTS (default 20),
QUESTLOG_TEST_TIMEOUT_S (default 300: the extractor may still be starting).
Exit 0 when every event was read back exactly once; 1 otherwise, saying what is missing.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        sys.exit(f"helm test: {name} is not set")
    return value


def _call(url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")  # noqa: S310 (the chart's URLs)
    if body:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 (chart URL)
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main() -> int:
    api = _env("QUESTLOG_TEST_API_URL").rstrip("/")
    query = _env("QUESTLOG_TEST_QUERY_URL").rstrip("/")
    count = int(_env("QUESTLOG_TEST_EVENTS", "20"))
    timeout_s = float(_env("QUESTLOG_TEST_TIMEOUT_S", "300"))
    player = f"helm-test-{uuid.uuid4().hex[:12]}"
    events = [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "purchase_sword",
            "player_id": player,
            "properties": {"sword_type": "longsword", "price": 9.99, "currency": "USD"},
        }
        for _ in range(count)
    ]
    deadline = time.monotonic() + timeout_s
    while True:  # the API answers 503 until Kafka acknowledges: retry within the budget
        try:
            status, reply = _call(f"{api}/v1/events", json.dumps(events).encode())
        except OSError as exc:
            status, reply = 0, {"error": str(exc)}
        if status == 202 or time.monotonic() > deadline:
            break
        print(f"helm test: POST /v1/events -> {status} {reply}; retrying", flush=True)
        time.sleep(5)
    if status != 202 or reply.get("accepted") != count:
        print(f"helm test: FAILED: POST /v1/events -> {status} {reply}")
        return 1
    print(f"helm test: {count} events accepted for player {player}", flush=True)
    wanted = {e["event_id"] for e in events}
    url = f"{query}/v1/events/purchase_sword?" + urllib.parse.urlencode(
        {"player_id": player, "limit": 1000}
    )
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            status, reply = _call(url)
        except OSError as exc:
            status, reply = 0, {"error": str(exc)}
        if status == 200:
            seen = [row["event_id"] for row in reply.get("rows", [])]
            if set(seen) >= wanted:
                break
        print(
            f"helm test: {len(set(seen) & wanted)}/{count} readable so far (query -> {status})",
            flush=True,
        )
        time.sleep(5)
    missing = wanted - set(seen)
    duplicates = len(seen) - len(set(seen))
    if missing or duplicates:
        print(
            f"helm test: FAILED: {len(missing)} of {count} events not readable after "
            f"{timeout_s:.0f} s, {duplicates} duplicated"
        )
        return 1
    print(
        f"helm test: passed: {count} posted, {count} read back once each "
        f"(as_of {reply.get('as_of')})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
