"""Small helpers for the JVM processes of the embedded mode: ports, java, child lifetime."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def java_bin() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise RuntimeError("no `java` on PATH and JAVA_HOME unset: install a JDK 17")
    return java


def _die_with_parent() -> None:
    """Run in the child: ask Linux to SIGTERM it when the parent dies, so a crashed test
    run or a killed `make run` never leaves a broker behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    os.setpgrp()


def spawn(
    cmd: list[str], log_path: Path, env: dict | None = None, tie_to_parent: bool = True
) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent if tie_to_parent else os.setpgrp,
        )
    finally:
        log.close()


def stop(proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL: a clean shutdown when possible, never a hang."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return "(no log)"
    with open(path, errors="replace") as f:
        return "".join(deque(f, maxlen=lines))


def wait_until(
    predicate,
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log_path: Path | None = None,
    interval: float = 0.2,
):
    """Poll predicate() until truthy; fail clearly if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{what}: process exited with {proc.returncode} before it was ready; "
                f"last log lines ({log_path}):\n{tail(log_path) if log_path else ''}"
            )
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{what}: not ready after {timeout:.0f}s; last log lines ({log_path}):\n"
                f"{tail(log_path) if log_path else ''}"
            )
        time.sleep(interval)
