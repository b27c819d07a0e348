"""`make run`'s process supervisor: every entry of embedded/Procfile in its own process
group, one log stream with a prefix per process, and a crashed process restarted with
backoff while the others keep serving. Only Ctrl-C or SIGTERM stops the whole stack.

honcho, used before, stops every process when one exits: a SIGKILL to the extractor's JVM
took the broker and the API down with it (issue #17, T14).

Usage:
    python -m questlog_embedded.supervise -f embedded/Procfile -e var/run.env
    python -m questlog_embedded.supervise -f Procfile --backoff 0.2 --stop-timeout 3

The Procfile is honcho's and foreman's format, ``name: command`` (run by /bin/sh in the
root folder), so it stays the one list of processes. A command ending with the shell
comment ``# once`` is a one-shot (the banner): it runs once at start, whatever its exit
it is not restarted, and the stack does not depend on it. A command ending with
``# if VAR`` runs only when the environment (the env files included) sets ``VAR`` to
``1``: the optional parts, ``make run TRINO=1`` and ``make run LAKE=hdfs``. A command
with the comment ``# stops last`` (the infrastructure: Kafka, HDFS) is stopped only after
every other process has stopped, so no service loses its broker or file system while it
shuts down (a Trino whose HDFS went first retried it past the stop timeout).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import paths

SELF = "supervisor"  # the prefix of the supervisor's own lines
_ONCE = re.compile(r"\s+#\s*once\b.*$")
_IF = re.compile(r"\s+#\s*if\s+([A-Z][A-Z0-9_]*)\s*$")
_LAST = re.compile(r"\s+#\s*stops last\b")
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: dlopen after fork can deadlock
_COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")


@dataclass(frozen=True)
class Entry:
    name: str
    command: str
    once: bool = False
    when: str | None = None  # run only if this environment variable is "1"
    stops_last: bool = False  # stopped after every other process has stopped


def read_procfile(text: str) -> list[Entry]:
    """``name: command`` lines; blank lines and ``#`` comments skipped."""
    entries: list[Entry] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not command:
            raise ValueError(f"Procfile line {number}: expected 'name: command', got {line!r}")
        if any(e.name == name for e in entries):
            raise ValueError(f"Procfile line {number}: {name!r} is listed twice")
        stops_last = bool(_LAST.search(command))
        command = _LAST.sub("", command)
        when = _IF.search(command)
        if when:
            command = command[: when.start()]
        once = bool(_ONCE.search(command))
        entries.append(
            Entry(
                name,
                _ONCE.sub("", command) if once else command,
                once,
                when.group(1) if when else None,
                stops_last,
            )
        )
    if not entries:
        raise ValueError("the Procfile lists no process")
    return entries


def selected(entries: list[Entry], env: dict[str, str]) -> list[Entry]:
    """The entries to run: those without ``# if VAR``, and those whose VAR is "1"."""
    return [e for e in entries if e.when is None or env.get(e.when) == "1"]


def read_env_file(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (what ``python -m questlog_embedded.stack env`` writes)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``first`` doubling up to ``limit``; a process that stayed up for
    ``stable_after`` seconds counts as healthy again and starts over at ``first``."""

    first: float = 1.0
    limit: float = 30.0
    stable_after: float = 60.0

    def next(self, previous: float, uptime: float) -> float:
        if previous <= 0 or uptime >= self.stable_after:
            return self.first
        return min(previous * 2, self.limit)


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc: an orphan whose parent
    does not reap it would otherwise look alive to ``killpg(pgid, 0)`` for ever."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _child_setup() -> None:
    """In the child: SIGTERM when the supervisor dies, even by SIGKILL, so no process of
    the stack outlives it."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One Procfile entry and its current process."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.restarts = 0
        self.delay = 0.0  # the last restart delay (backoff)
        self.restart_at: float | None = None
        self.done = False  # a one-shot that ran

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Starts every entry, restarts the ones that exit unexpectedly, stops all on a
    signal. Runs in the main thread (signals, and PDEATHSIG follows the thread that
    forked the child)."""

    def __init__(
        self,
        entries: list[Entry],
        env: dict[str, str],
        root: Path,
        out: TextIO | None = None,
        backoff: Backoff | None = None,
        stop_timeout: float = 10.0,
        colour: bool = False,
        poll_seconds: float = 0.1,
    ) -> None:
        self.children = [Child(e) for e in entries]
        self.env = env
        self.root = root
        self.out = out or sys.stdout
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self.poll_seconds = poll_seconds
        self.width = max(len(SELF), *(len(e.name) for e in entries))
        self.colours = (
            {c.name: _COLOURS[i % len(_COLOURS)] for i, c in enumerate(self.children)}
            if colour
            else {}
        )
        self._write_lock = threading.Lock()
        self._signals: list[int] = []
        self._pumps: list[threading.Thread] = []

    # -- output ------------------------------------------------------------------------

    def say(self, name: str, line: str) -> None:
        prefix = f"{time.strftime('%H:%M:%S')} {name:<{self.width}} |"
        colour = self.colours.get(name, "1" if self.colours else "")
        if colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self._write_lock:
            try:
                self.out.write(f"{prefix} {line}\n")
                self.out.flush()
            except (OSError, ValueError):  # a closed terminal or pipe must not stop the stack
                pass

    def log(self, line: str) -> None:
        self.say(SELF, line)

    def _pump(self, name: str, stream) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self.say(name, raw.decode(errors="replace").rstrip("\r\n"))

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, child: Child) -> None:
        child.restart_at = None
        child.proc = subprocess.Popen(
            ["/bin/sh", "-c", child.entry.command],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
        child.started = time.monotonic()
        pump = threading.Thread(
            target=self._pump,
            args=(child.name, child.proc.stdout),
            name=f"output-{child.name}",
            daemon=True,
        )
        pump.start()
        self._pumps.append(pump)
        if child.restarts:
            self.log(f"{child.name} restarted (pid {child.proc.pid}, restart #{child.restarts})")
        else:
            self.log(
                f"{child.name} started (pid {child.proc.pid})"
                + (", runs once" if child.entry.once else "")
            )

    def exited(self, child: Child) -> None:
        """The process of ``child`` ended on its own: end what is left of its group (a
        gunicorn worker whose master was killed still holds the port), then restart it."""
        assert child.proc is not None
        code = child.proc.returncode
        uptime = time.monotonic() - child.started
        left = group_members(child.proc.pid)
        if left:
            _signal_group(child.proc.pid, signal.SIGKILL)
            self.log(
                f"{child.name}: SIGKILL to what was left of its process group "
                f"(pids {', '.join(map(str, left))})"
            )
        child.proc = None
        if child.entry.once:
            child.done = True
            if code == 0:
                self.log(f"{child.name} finished")
            else:
                self.log(f"{child.name} failed ({describe(code)}); it runs once: not restarted")
            return
        self.crashed(child, code, uptime)

    def crashed(self, child: Child, code: int, uptime: float) -> None:
        """Schedule the restart of a long-running process that exited unexpectedly."""
        child.delay = self.backoff.next(child.delay, uptime)
        child.restarts += 1
        child.restart_at = time.monotonic() + child.delay
        self.log(
            f"{child.name} crashed ({describe(code)}) after {uptime:.1f} s up; "
            f"restart #{child.restarts} in {child.delay:g} s"
        )

    def _on_signal(self, signum: int, _frame) -> None:
        self._signals.append(signum)

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        self.log(
            f"supervising {', '.join(c.name for c in self.children)} "
            f"(pid {os.getpid()}; Ctrl-C stops everything)"
        )
        for child in self.children:
            if not self._signals:
                self.start(child)
        while not self._signals:
            now = time.monotonic()
            for child in self.children:
                if child.proc is not None and child.proc.poll() is not None:
                    self.exited(child)
                elif child.restart_at is not None and now >= child.restart_at:
                    self.start(child)
            time.sleep(self.poll_seconds)
        return self.stop_all(self._signals[0])

    def stop_all(self, signum: int) -> int:
        """SIGTERM to every process group, then SIGKILL to what is left after
        ``stop_timeout`` (at once on a second Ctrl-C); the ``# stops last`` ones only once
        the others have gone. 0 when every process stopped on SIGTERM."""
        self.log(f"{signal.Signals(signum).name} received: stopping every process")
        for child in self.children:
            child.restart_at = None
        first = [c for c in self.children if not c.entry.stops_last]
        last = [c for c in self.children if c.entry.stops_last]
        clean = self._stop(first)
        clean = self._stop(last) and clean
        until = time.monotonic() + 2
        for pump in self._pumps:  # the last lines of every process, then ours
            pump.join(timeout=max(0.0, until - time.monotonic()))
        self.log("every process stopped" if clean else "stopped (some needed SIGKILL)")
        return 0 if clean else 1

    def _stop(self, children: list[Child]) -> bool:
        """SIGTERM to these children's groups, SIGKILL after the timeout; True if none
        needed SIGKILL."""
        groups = {}
        for child in children:
            if child.proc is not None:
                groups[child.name] = child.proc.pid
                _signal_group(child.proc.pid, signal.SIGTERM)
        seen = len(self._signals)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and len(self._signals) == seen:
            for child in children:
                if child.proc is not None and child.proc.poll() is not None:
                    self.log(f"{child.name} stopped ({describe(child.proc.returncode)})")
                    child.proc = None
            if not any(group_members(pgid) for pgid in groups.values()):
                break
            time.sleep(self.poll_seconds)
        clean = True
        for name, pgid in groups.items():
            if group_members(pgid):
                clean = False
                self.log(f"{name} still running after {self.stop_timeout:g} s: SIGKILL")
                _signal_group(pgid, signal.SIGKILL)
        for child in children:  # those that exited after the loop's last look too
            if child.proc is not None:
                self.log(f"{child.name} stopped ({describe(child.proc.wait())})")
                child.proc = None
        return clean


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m questlog_embedded.supervise", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "-f", "--procfile", type=Path, default=paths.REPO_ROOT / "embedded" / "Procfile"
    )
    parser.add_argument(
        "-e",
        "--env-file",
        type=Path,
        action="append",
        default=[],
        help="KEY=VALUE file added to every process's environment",
    )
    parser.add_argument(
        "-d", "--root", type=Path, default=paths.REPO_ROOT, help="the folder the commands run in"
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        help="first restart delay, doubled at each crash (seconds)",
    )
    parser.add_argument("--max-backoff", type=float, default=30.0)
    parser.add_argument(
        "--stable-after",
        type=float,
        default=60.0,
        help="uptime after which the restart delay starts over",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        help="seconds between SIGTERM and SIGKILL when stopping",
    )
    parser.add_argument("--colour", choices=("auto", "always", "never"), default="auto")
    args = parser.parse_args(argv)

    try:
        entries = read_procfile(args.procfile.read_text())
        env = dict(os.environ)
        for path in args.env_file:
            env.update(read_env_file(path.read_text()))
    except (OSError, ValueError) as exc:
        print(f"supervise: {exc}", file=sys.stderr)
        return 2
    entries = selected(entries, env)
    colour = args.colour == "always" or (
        args.colour == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    )
    supervisor = Supervisor(
        entries,
        env,
        args.root.resolve(),
        colour=colour,
        stop_timeout=args.stop_timeout,
        backoff=Backoff(args.backoff, args.max_backoff, args.stable_after),
    )
    return supervisor.run()


if __name__ == "__main__":
    # `python -m` runs this file as a second module, __main__: run the importable one's
    # main, so there is one Supervisor class (the one a test or a chaos sabotage patches).
    from questlog_embedded import supervise

    sys.exit(supervise.main())
