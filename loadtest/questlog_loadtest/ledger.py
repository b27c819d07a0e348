"""The ledger: one JSON line per event a load run tried to send, with what the API said.

Record: {"id": event_id or null, "type": event_type, "status": HTTP status (0 = no
answer: connection error or timeout; -1 = SENT, written just before the request, so an
event in flight when the run stops is still known), "t": unix time, "run": run id}.
A 2xx means accepted; 503 means unavailable (Kafka did not acknowledge); other 4xx
mean rejected. Legacy GET routes report their event id in the X-Event-Id header.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

SENT = -1  # written before a request goes out; its answer follows in a later line


class Ledger:
    def __init__(self, path: Path, run_id: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self._lock = threading.Lock()
        self._file = open(self.path, "a", buffering=1 << 16)

    def record(self, event_ids: Iterable[str | None], event_type: str, status: int) -> None:
        now = time.time()
        lines = "".join(
            json.dumps(
                {"id": eid, "type": event_type, "status": status, "t": now, "run": self.run_id}
            )
            + "\n"
            for eid in event_ids
        )
        with self._lock:
            self._file.write(lines)

    def close(self) -> None:
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def read(paths: Iterable[Path]) -> Iterator[dict]:
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
