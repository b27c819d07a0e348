"""Mechanisms broken on purpose, to show that each scenario can fail.

Each module here (``questlog_chaos.sabotage.<name>``) defines ``apply(patch)``, which turns
one safety mechanism off through ``patch.setattr(target, name, value)`` (pytest's
``monkeypatch`` in the test process). ``make chaos-sabotage`` runs every scenario with the
mechanism its ``@pytest.mark.sabotage("<name>")`` names broken, and passes only if every
scenario then fails.

Processes a scenario starts get the sabotage through ``env()``: this folder's
``sitecustomize.py`` applies it at interpreter start-up when ``QUESTLOG_SABOTAGE`` is set.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIABLE = "QUESTLOG_SABOTAGE"


class _SetAttr:
    """``monkeypatch.setattr`` for a process that will not undo it."""

    @staticmethod
    def setattr(target, name, value) -> None:
        setattr(target, name, value)


def apply(name: str, patch=None) -> None:
    module = importlib.import_module(f"{__name__}.{name}")
    module.apply(patch or _SetAttr())


def env(name: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables that carry sabotage ``name`` into a child process
    (none when ``name`` is None)."""
    if not name:
        return {}
    base = os.environ if base is None else base
    path = os.pathsep.join(p for p in (str(HERE / "site"), base.get("PYTHONPATH", "")) if p)
    return {VARIABLE: name, "PYTHONPATH": path}
