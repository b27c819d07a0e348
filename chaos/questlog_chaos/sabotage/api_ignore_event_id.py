"""T2's mechanism off: the legacy routes ignore the client's event id (header or
parameter), so a retry after an ambiguous 503 becomes a second event.

The routes module is patched when it is first imported, not here: importing it loads the
API's Prometheus metrics, which must not happen in gunicorn's master before it empties
the multiprocess directory."""

from __future__ import annotations

import importlib.util
import sys

TARGET = "questlog_api.routes.legacy"


def apply(patch) -> None:
    if TARGET in sys.modules:
        patch.setattr(sys.modules[TARGET], "client_event_id", lambda: None)
        return
    sys.meta_path.insert(0, _PatchOnImport(patch))


class _PatchOnImport:
    def __init__(self, patch) -> None:
        self.patch = patch

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        original = spec.loader.exec_module
        patch = self.patch

        def exec_module(module):
            original(module)
            patch.setattr(module, "client_event_id", lambda: None)

        spec.loader.exec_module = exec_module
        return spec
