"""Applies $QUESTLOG_SABOTAGE at start-up in the processes a chaos scenario starts
(this folder is put on their PYTHONPATH only under ``make chaos-sabotage``)."""

import os
import sys

_NAME = os.environ.get("QUESTLOG_SABOTAGE")
if _NAME:
    from questlog_chaos import sabotage

    sabotage.apply(_NAME)
    print(f"questlog chaos: sabotage {_NAME!r} applied in pid {os.getpid()}", file=sys.stderr)
