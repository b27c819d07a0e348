"""The supervisor of `make run` with tiny throwaway processes: prefixes, restarts with
backoff, one-shots, and Ctrl-C/SIGTERM leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from questlog_embedded.supervise import Backoff, describe, read_env_file, read_procfile

PY = sys.executable
LINE = re.compile(r"^\d\d:\d\d:\d\d (\S+)\s* \| (.*)$")
# a process that stays up, printing its pid and its process group
STEADY = (
    f"{PY} -c \"import os, time; print('steady', os.getpid(), os.getpgid(0), "
    'flush=True); time.sleep(600)"'
)


class Run:
    """``python -m questlog_embedded.supervise`` on a Procfile of our own, its output in a
    file (the way Stack runs it)."""

    def __init__(self, tmp_path: Path, procfile: str, *args: str) -> None:
        (tmp_path / "Procfile").write_text(textwrap.dedent(procfile))
        self.out = tmp_path / "out.log"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "questlog_embedded.supervise",
                    "-f",
                    str(tmp_path / "Procfile"),
                    "-d",
                    str(tmp_path),
                    "--colour",
                    "never",
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def lines(self, name: str | None = None) -> list[str]:
        found = [LINE.match(line) for line in self.text().splitlines()]
        return [m.group(2) for m in found if m and (name is None or m.group(1) == name)]

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            hits = re.findall(pattern, self.text(), re.MULTILINE)
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(
                    f"{pattern!r} x{count} not seen (supervisor "
                    f"rc {self.proc.poll()}); output:\n{self.text()}"
                )
            time.sleep(0.05)

    def pids(self, name: str) -> list[int]:
        return [int(p) for p in re.findall(rf"\| {name} (?:re)?started \(pid (\d+)", self.text())]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def run(tmp_path):
    runs: list[Run] = []
    groups: list[int] = []

    def start(procfile: str, *args: str) -> Run:
        r = Run(tmp_path, procfile, *args)
        runs.append(r)
        return r

    yield start
    for r in runs:  # a failed test must not leave a supervisor or its children behind
        r.kill()
        groups.extend(int(g) for g in re.findall(r"steady \d+ (\d+)", r.text()))
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def test_the_procfile_and_env_file_are_read_like_honcho():
    entries = read_procfile(
        "# comment\n\nweb: exec gunicorn app  \nready: exec banner  # once: prints the banner\n"
    )
    assert [(e.name, e.command, e.once) for e in entries] == [
        ("web", "exec gunicorn app", False),
        ("ready", "exec banner", True),
    ]
    with pytest.raises(ValueError, match="line 1"):
        read_procfile("no colon here\n")
    with pytest.raises(ValueError, match="twice"):
        read_procfile("a: x\na: y\n")
    assert read_env_file("A=1\n# c\nB='two words'\nC=x=y:z\nexport D=\"4\"\n") == {
        "A": "1",
        "B": "two words",
        "C": "x=y:z",
        "D": "4",
    }


def test_backoff_doubles_to_its_limit_and_starts_over_after_a_stable_run():
    b = Backoff(first=1, limit=30, stable_after=60)
    delays, previous = [], 0.0
    for _ in range(7):
        previous = b.next(previous, uptime=2)
        delays.append(previous)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert b.next(30, uptime=61) == 1  # up for a while: healthy again
    assert describe(-9) == "killed by SIGKILL"
    assert describe(3) == "exit code 3"


def test_every_line_carries_its_process_name(run):
    r = run(f"""
        one: {PY} -c "print('hello from one'); print('second line')"  # once
        two: {PY} -c "import sys; print('to stderr', file=sys.stderr)"  # once
        """)
    r.wait_for(r"two finished")
    r.wait_for(r"one finished")
    assert r.stop() == 0
    text = r.text()
    assert all(LINE.match(line) for line in text.splitlines()), text
    assert r.lines("one")[:2] == ["hello from one", "second line"]
    assert r.lines("two") == ["to stderr"]


def test_a_crashing_process_is_restarted_with_backoff_and_the_others_keep_running(run):
    r = run(
        f"""
        steady: {STEADY}
        flaky: {PY} -c "print('up'); raise SystemExit(3)"
        """,
        "--backoff",
        "0.2",
        "--max-backoff",
        "0.8",
        "--stable-after",
        "30",
    )
    delays = r.wait_for(
        r"flaky crashed \(exit code 3\) after [\d.]+ s up; "
        r"restart #\d+ in ([\d.]+) s",
        count=5,
        timeout=30,
    )
    assert [float(d) for d in delays[:5]] == [0.2, 0.4, 0.8, 0.8, 0.8]
    r.wait_for(r"flaky restarted \(pid \d+, restart #4\)")
    assert len(set(r.pids("flaky"))) >= 5  # a new process each time
    assert len(r.pids("steady")) == 1
    assert alive(r.pids("steady")[0])
    assert "steady crashed" not in r.text()
    assert r.stop() == 0


def test_a_killed_process_is_logged_with_its_signal_and_comes_back(run):
    r = run(
        f"""
        a: {STEADY}
        b: {STEADY}
        """,
        "--backoff",
        "0.1",
    )
    r.wait_for(r"\| steady \d+", count=2)
    first_a, first_b = r.pids("a")[0], r.pids("b")[0]
    os.kill(first_a, signal.SIGKILL)
    r.wait_for(r"a crashed \(killed by SIGKILL\) after [\d.]+ s up; restart #1 in 0.1 s")
    r.wait_for(r"a restarted \(pid \d+, restart #1\)")
    r.wait_for(r"\| steady \d+", count=3)
    assert r.pids("a")[-1] != first_a
    assert alive(r.pids("a")[-1])
    assert r.pids("b") == [first_b]
    assert alive(first_b)
    assert r.stop() == 0


def test_what_a_crashed_process_leaves_in_its_group_is_killed_before_the_restart(run, tmp_path):
    # the leader dies, a child of its group (like a gunicorn worker) would hold on
    r = run(
        f"""
        leader: {PY} -c "import subprocess, time; p = subprocess.Popen(['sleep', '600']); \
print('child', p.pid, flush=True); time.sleep(0.5); raise SystemExit(1)"
        """,
        "--backoff",
        "5",
    )
    child = int(r.wait_for(r"leader \s*\| child (\d+)")[0])
    r.wait_for(r"leader: SIGKILL to what was left of its process group")
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    assert r.stop() == 0


def test_a_one_shot_runs_once_whatever_its_exit_and_the_stack_stays_up(run):
    r = run(
        f"""
        steady: {STEADY}
        banner: {PY} -c "print('banner')"  # once
        broken: {PY} -c "raise SystemExit(4)"  # once: fails
        """,
        "--backoff",
        "0.1",
    )
    r.wait_for(r"banner finished")
    r.wait_for(r"broken failed \(exit code 4\); it runs once: not restarted")
    time.sleep(1.0)  # ten backoff periods: nothing restarts
    assert len(r.pids("banner")) == len(r.pids("broken")) == 1
    assert not re.search(r"\w+ restarted \(pid", r.text())
    assert r.proc.poll() is None
    assert alive(r.pids("steady")[0])
    assert r.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_every_process_group_and_exits_0(run, sig):
    # each entry starts a grandchild in its group: it must go too
    r = run(f"""
        a: sleep 600 & {STEADY}
        b: sleep 600 & {STEADY}
        c: {STEADY}
        """)
    groups = [int(g) for g in r.wait_for(r"\| steady \d+ (\d+)", count=3)]
    assert all(group_alive(g) for g in groups)
    assert r.stop(sig) == 0
    assert not [g for g in groups if group_alive(g)]
    assert f"{signal.Signals(sig).name} received: stopping every process" in r.text()
    assert r.lines("supervisor")[-1] == "every process stopped"


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(run):
    stubborn = (
        f'{PY} -c "import os, signal, time; signal.signal(signal.SIGTERM, '
        "signal.SIG_IGN); print('steady', os.getpid(), os.getpgid(0), flush=True); "
        'time.sleep(600)"'
    )
    r = run(
        f"""
        stubborn: {stubborn}
        fine: {STEADY}
        """,
        "--stop-timeout",
        "1",
    )
    groups = [int(g) for g in r.wait_for(r"\| steady \d+ (\d+)", count=2)]
    started = time.monotonic()
    assert r.stop() == 1  # not clean: something needed SIGKILL
    assert time.monotonic() - started < 8  # 1 s, then SIGKILL (slack for a busy machine)
    assert "stubborn still running after 1 s: SIGKILL" in r.text()
    assert not [g for g in groups if group_alive(g)]


def test_children_get_sigterm_when_the_supervisor_itself_is_killed(run):
    r = run(f"""
        a: {STEADY}
        """)
    r.wait_for(r"\| steady \d+")
    pid = r.pids("a")[0]
    r.kill()  # SIGKILL: no chance to stop anything itself
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_optional_entries_run_only_when_their_variable_is_1():
    from questlog_embedded.supervise import selected

    entries = read_procfile(
        "a: run-a\nb: exec run-b --x  # if QUESTLOG_TRINO_ENABLED\nc: run-c  # once\n"
    )
    assert [(e.name, e.command, e.when) for e in entries] == [
        ("a", "run-a", None),
        ("b", "exec run-b --x", "QUESTLOG_TRINO_ENABLED"),
        ("c", "run-c", None),
    ]
    assert [e.name for e in selected(entries, {})] == ["a", "c"]
    assert [e.name for e in selected(entries, {"QUESTLOG_TRINO_ENABLED": "0"})] == ["a", "c"]
    assert [e.name for e in selected(entries, {"QUESTLOG_TRINO_ENABLED": "1"})] == ["a", "b", "c"]


def test_the_procfiles_optional_processes_are_hdfs_and_trino():
    from questlog_embedded import paths
    from questlog_embedded.supervise import selected

    entries = read_procfile((paths.REPO_ROOT / "embedded" / "Procfile").read_text())
    optional = {e.name: e.when for e in entries if e.when}
    assert optional == {
        "hdfs": "QUESTLOG_LAKE_HDFS",
        "trino": "QUESTLOG_TRINO_ENABLED",
        "trino-sync": "QUESTLOG_TRINO_ENABLED",
    }
    assert "hdfs" not in [e.name for e in selected(entries, {"QUESTLOG_LAKE_HDFS": "0"})]


def test_the_infrastructure_stops_only_after_every_other_process_has_stopped(run):
    # slow takes 1.5 s to exit on SIGTERM; infra would exit at once: it must still go last
    slow = (
        f'{PY} -c "import os, signal, sys, time; '
        "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), sys.exit(0))); "
        "print('steady', os.getpid(), os.getpgid(0), flush=True); time.sleep(600)\""
    )
    r = run(f"""
        infra: {STEADY}  # stops last
        slow: exec {slow}
        """)
    r.wait_for(r"\| steady \d+ (\d+)", count=2)
    assert r.stop() == 0
    stopped = [line.split()[0] for line in r.lines("supervisor") if " stopped (" in line]
    assert stopped == ["slow", "infra"], r.text()


def test_kafka_and_hdfs_are_the_procfiles_infrastructure():
    from questlog_embedded import paths

    entries = read_procfile((paths.REPO_ROOT / "embedded" / "Procfile").read_text())
    assert {e.name for e in entries if e.stops_last} == {"kafka", "hdfs"}
    assert all("stops last" not in e.command for e in entries)
