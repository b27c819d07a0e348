"""Loaded by every Python process of the wiring test (on PYTHONPATH): records each
environment variable the process reads, so the test can tell which of the variables the
chart sets were actually read. Appends one name per line to $WIRING_ENV_TRACE.

A read is os.environ[...], os.environ.get(...), os.getenv(...) or `in`. Copying the
whole environment (dict(os.environ), os.environ.copy(), iterating it) is not a read.
"""

import os
import threading

_PATH = os.environ.get("WIRING_ENV_TRACE")
if _PATH:
    _seen: set = set()
    _local = threading.local()
    _lock = threading.Lock()

    def _record(key):
        pending = getattr(_local, "pending", None)
        if pending and key in pending:  # a value fetched by dict(os.environ)
            pending.discard(key)
            return
        if getattr(_local, "bulk", 0) or not isinstance(key, str) or key in _seen:
            return
        with _lock:
            if key in _seen:
                return
            _seen.add(key)
            with open(_PATH, "a") as out:
                out.write(f"{os.getpid()} {key}\n")

    class _TracedEnviron(os._Environ):
        def __getitem__(self, key):
            _record(key)
            return super().__getitem__(key)

        def __contains__(self, key):
            _record(key)
            return super().__contains__(key)

        def __iter__(self):
            _local.bulk = getattr(_local, "bulk", 0) + 1
            try:
                yield from super().__iter__()
            finally:
                _local.bulk -= 1

        def keys(self):
            # dict(os.environ) lists the keys, then fetches each value: not reads
            names = list(super().__iter__())
            _local.pending = set(names)
            return names

        def copy(self):
            _local.bulk = getattr(_local, "bulk", 0) + 1
            try:
                return super().copy()
            finally:
                _local.bulk -= 1

    os.environ.__class__ = _TracedEnviron
    # forked children (gunicorn workers) record again in their own pid
    os.register_at_fork(after_in_child=_seen.clear)
