"""Checks that run before an event is parsed: write keys and the deadline of the request
body (the per-client rate limit is in ``ratelimit.py``).

A body that trickles in (slowloris) would hold a gunicorn thread for as long as the client
likes: past ``BODY_TIMEOUT_S`` the read side of its socket is shut, the read ends short and
the client gets 408.
"""

from __future__ import annotations

import hmac
import itertools
import socket
import threading
import time
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException

from questlog_service.errors import ApiError

if TYPE_CHECKING:
    from flask import Request
    from werkzeug.datastructures import Headers

KEY_HEADER = "X-Questlog-Key"


def presented_key(headers: Headers) -> str | None:
    auth = headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get(KEY_HEADER)
    return key.strip() if key and key.strip() else None


def check_write_key(write_keys: tuple[str, ...], headers: Headers) -> None:
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


# 1 MiB (MAX_BODY_BYTES) in 10 s is 100 KB/s; a typical batch is a few KB
BODY_TIMEOUT_S = 10.0


class BodyDeadlines:
    """Shuts the read side of sockets whose request body is late: one thread per process,
    woken a few times a second, rather than a timer thread per request."""

    TICK_S = 0.25

    def __init__(self, seconds: float = BODY_TIMEOUT_S) -> None:
        self.seconds = seconds
        self._watched: dict[int, tuple[float, socket.socket]] = {}
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket) -> int:
        token = next(self._tokens)
        with self._lock:
            self._watched[token] = (time.monotonic() + self.seconds, sock)
            if self._thread is None:  # started on first use: after gunicorn forked
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name="questlog-body-deadlines"
                )
                self._thread.start()
        return token

    def release(self, token: int) -> bool:
        """Stop watching; whether the deadline had already cut the body short."""
        with self._lock:
            self._watched.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            now = time.monotonic()
            with self._lock:
                late = [(t, s) for t, (deadline, s) in self._watched.items() if deadline <= now]
                for token, _ in late:
                    del self._watched[token]
                    self._fired.add(token)
            for _, sock in late:
                try:
                    sock.shutdown(socket.SHUT_RD)
                except OSError:  # the client went away meanwhile
                    pass


_DEADLINES = BodyDeadlines()


def read_body(request: Request) -> bytes:
    """The request body; 408 when it did not arrive within ``BODY_TIMEOUT_S``, 400 when
    its framing is broken (the server's parser raises its own errors mid-read, e.g. a
    chunk size that is not hex)."""
    sock = request.environ.get("gunicorn.socket")
    token = _DEADLINES.watch(sock) if sock is not None else None  # None: not under gunicorn
    try:
        data = request.get_data(cache=False)  # MAX_CONTENT_LENGTH bounds chunked bodies too
    except HTTPException:  # 413, or werkzeug's 400 for a client that went away
        if token is not None and _DEADLINES.release(token):
            raise _late() from None
        raise
    except Exception as exc:
        if token is not None and _DEADLINES.release(token):
            raise _late() from None
        raise ApiError(
            400, "request body could not be read: broken framing", {"reason": type(exc).__name__}
        ) from None
    if token is not None and _DEADLINES.release(token):
        raise _late()
    return data


def _late() -> ApiError:
    return ApiError(
        408,
        f"request body not received within {_DEADLINES.seconds:g} s",
        {"timeout_s": _DEADLINES.seconds},
        code="request_timeout",
    )
