"""The wiring test's environment tracer tells a read variable from one that is only set
(the wiring test's "set by the chart, never read" check rests on it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TRACER = Path(__file__).parent / "envtrace"

PROGRAM = """
import os, subprocess, sys
os.environ["QUESTLOG_X_READ"]
os.environ.get("QUESTLOG_X_GET")
os.getenv("QUESTLOG_X_GETENV")
"QUESTLOG_X_IN" in os.environ
copied = dict(os.environ)          # a copy is not a read
copied2 = os.environ.copy()
names = [k for k in os.environ]    # nor is listing the names
if os.fork() == 0:                 # a forked worker records in its own pid
    os.environ.get("QUESTLOG_X_CHILD")
    os._exit(0)
os.wait()
"""


def test_reads_are_recorded_and_copies_are_not(tmp_path):
    trace = tmp_path / "trace"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(TRACER),
        "WIRING_ENV_TRACE": str(trace),
        **{f"QUESTLOG_X_{n}": "1" for n in ("READ", "GET", "GETENV", "IN", "UNREAD", "CHILD")},
    }
    subprocess.run([sys.executable, "-c", PROGRAM], env=env, check=True)
    lines = [line.split() for line in trace.read_text().splitlines()]
    names = {name for _, name in lines if name.startswith("QUESTLOG_X_")}
    assert names == {
        "QUESTLOG_X_READ",
        "QUESTLOG_X_GET",
        "QUESTLOG_X_GETENV",
        "QUESTLOG_X_IN",
        "QUESTLOG_X_CHILD",
    }
    pids = {pid for pid, name in lines if name.startswith("QUESTLOG_X_")}
    assert len(pids) == 2
