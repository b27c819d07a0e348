"""Trino (Presto's successor) over questlog's Delta tables: the walkthrough's last step.

The server is the pinned io.trino:trino-server tarball from Maven Central, fetched once
into a cache outside the clone and checked against its SHA-1 (about 820 MB; only
``lib/``, ``bin/`` and the Delta Lake plugin are unpacked, about 370 MB). It needs Java 24
or newer: the Temurin 25 JDK beside Java 17 serves, for Trino only.

One catalog, ``questlog``, on Trino's Delta Lake connector: a file metastore under the
state folder and the native local file system (``file://`` lakes) or HDFS (``hdfs://``
lakes). Tables are registered by ``python -m questlog_query.trino_sync``, which keeps
every table the extractor creates registered. Trino reads the Delta log, so it sees only
committed snapshots, like the query service.

Library:
    server = TrinoServer(Path("var/trino"), port=0).start()   # waits until it answers
    server.url          # 'http://127.0.0.1:<port>'
    server.stop()

CLI:
    questlog-trino fetch                       # download + unpack into the cache, progress shown
    questlog-trino serve --state-dir var/trino --port 8080   # foreground, until SIGTERM
    questlog-trino cli [trino-cli args...]     # the pinned trino CLI on the right JDK
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .process import free_port

VERSION = "476"
MAVEN = "https://repo1.maven.org/maven2/io/trino"
SERVER = (
    f"{MAVEN}/trino-server/{VERSION}/trino-server-{VERSION}.tar.gz",
    "c9b38be4017ebd2f7095455aaac772fb40247ebe",
)
CLI = (
    f"{MAVEN}/trino-cli/{VERSION}/trino-cli-{VERSION}-executable.jar",
    "c835824e01842036d4e0c071b5e2b7e1d28ba299",
)
# What `serve` unpacks: the server's own classpath, the connector questlog's tables use,
# and TPC-H (0.3 MB of its own: the readiness probe's catalog, see ready()).
PLUGINS = ("delta-lake", "tpch")
UNPACK = ("lib/*", *(f"plugin/{name}/*" for name in PLUGINS))
MIN_JAVA = 24
HOST = "127.0.0.1"
DEFAULT_PORT = 8080
CATALOG = "questlog"
SCHEMA = "default"
# Sized for a 2-core, 24 GB machine that also runs Kafka, Spark, HDFS and two gunicorns:
# a 2 GB heap, 1 GB of it for one query (Trino wants the per-node query memory plus a
# 30 % headroom below the heap, or it refuses to start).
HEAP = os.environ.get("QUESTLOG_TRINO_HEAP", "2G")
QUERY_MEMORY = os.environ.get("QUESTLOG_TRINO_QUERY_MEMORY", "1GB")


def cache_root() -> Path:
    """Outside the clone, shared by every checkout: QUESTLOG_TRINO_CACHE, else
    ~/.cache/questlog/trino/<version>."""
    default = Path.home() / ".cache" / "questlog" / "trino" / VERSION
    return Path(os.environ.get("QUESTLOG_TRINO_CACHE", default)).expanduser().resolve()


def server_home() -> Path:
    return cache_root() / "server"


def cli_jar() -> Path:
    return cache_root() / Path(CLI[0]).name


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - Maven Central publishes SHA-1 sums
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, sha1: str, dest: Path, log=print) -> None:
    """``url`` to ``dest`` through a ``.part`` file, progress every 10 %, SHA-1 checked."""
    if dest.is_file() and _sha1(dest) == sha1:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log(f"[trino] downloading {url}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:  # noqa: S310
            total = int(resp.headers.get("Content-Length") or 0)
            done, shown = 0, -1
            while block := resp.read(1 << 20):
                out.write(block)
                done += len(block)
                tenth = done * 10 // total if total else -1
                if tenth > shown:
                    shown = tenth
                    log(
                        f"[trino]   {done / 1e6:7.0f} MB of {total / 1e6:.0f} MB "
                        f"({time.monotonic() - started:.0f} s)"
                    )
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise RuntimeError(
            f"downloading {url} failed: {exc}. Check that Maven Central "
            "(repo1.maven.org) is reachable, then try again."
        ) from exc
    got = _sha1(part)
    if got != sha1:
        part.unlink()
        raise RuntimeError(f"{url}: SHA-1 {got}, expected {sha1}; the partial file was removed")
    part.replace(dest)


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def fetch(log=print) -> Path:
    """The server unpacked under the cache (idempotent: a stamp names the tarball's SHA-1)
    and the CLI jar next to it. Returns the server's home."""
    home = server_home()
    stamp = home / ".questlog-unpacked"
    unpacked = f"{SERVER[1]} {' '.join(UNPACK)}"  # a new plugin in UNPACK unpacks again
    if not (stamp.is_file() and stamp.read_text().strip() == unpacked):
        tarball = cache_root() / Path(SERVER[0]).name
        _download(*SERVER, tarball, log=log)
        log(f"[trino] unpacking {', '.join(UNPACK)} of {tarball.name} into {home}")
        tmp = home.with_name("server.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        top = f"trino-server-{VERSION}"
        wanted = [f"{top}/{p}" for p in UNPACK]
        # The tarball stores each jar once and hard-links its other copies to it, often
        # from a plugin questlog does not unpack: extract those targets too, then drop
        # what is not wanted (the links keep the data).
        listing = subprocess.run(
            ["tar", "-tvzf", str(tarball)], check=True, capture_output=True, text=True
        ).stdout
        targets = sorted(
            {
                line.split(" link to ", 1)[1].strip()
                for line in listing.splitlines()
                if line.startswith("h")
                and " link to " in line
                and _matches(line.split(" link to ", 1)[0].split()[-1], wanted)
                and not _matches(line.split(" link to ", 1)[1].strip(), wanted)
            }
        )
        subprocess.run(
            [
                "tar",
                "-xzf",
                str(tarball),
                "-C",
                str(tmp),
                "--strip-components=1",
                "--wildcards",
                *wanted,
                *targets,
            ],
            check=True,
        )
        for plugin in (tmp / "plugin").iterdir():
            if plugin.name not in PLUGINS:
                shutil.rmtree(plugin)
        (tmp / ".questlog-unpacked").write_text(unpacked + "\n")
        shutil.rmtree(home, ignore_errors=True)
        tmp.rename(home)
    _download(*CLI, cli_jar(), log=log)
    return home


def _java_major(java: Path) -> int:
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else 0


def java() -> str:
    """A java of MIN_JAVA or newer: QUESTLOG_TRINO_JAVA_HOME, else the newest JDK under
    /usr/lib/jvm that is new enough (Temurin 25 on these machines)."""
    explicit = os.environ.get("QUESTLOG_TRINO_JAVA_HOME")
    candidates = (
        [Path(explicit)]
        if explicit
        else sorted(Path("/usr/lib/jvm").glob("*"), key=lambda p: ("temurin" not in p.name, p.name))
    )
    for home in candidates:
        binary = home / "bin" / "java"
        if binary.is_file() and _java_major(binary) >= MIN_JAVA:
            return str(binary)
    where = f"QUESTLOG_TRINO_JAVA_HOME={explicit}" if explicit else "/usr/lib/jvm/*"
    raise RuntimeError(
        f"Trino {VERSION} needs Java {MIN_JAVA} or newer; none found in {where}. "
        "Install a JDK 25 (e.g. Temurin 25) and set QUESTLOG_TRINO_JAVA_HOME."
    )


def catalog_properties(metastore_dir: Path) -> str:
    """The ``questlog`` catalog: Delta Lake connector, file metastore, local files and HDFS."""
    return "\n".join(
        [
            "connector.name=delta_lake",
            "hive.metastore=file",
            f"hive.metastore.catalog.dir=local://{metastore_dir.resolve()}",
            # file:// lakes (and the metastore) through Trino's native local file system,
            # rooted at / so a table's location is its file:// URI unchanged
            "fs.native-local.enabled=true",
            "local.location=/",
            # hdfs:// lakes (make run LAKE=hdfs, the chart)
            "fs.hadoop.enabled=true",
            "delta.register-table-procedure.enabled=true",
            "",
        ]
    )


def write_etc(state: Path, port: int) -> Path:
    """Trino's etc/ under ``state`` (rewritten on every start: settings live in code)."""
    etc = state / "etc"
    (etc / "catalog").mkdir(parents=True, exist_ok=True)
    (state / "data").mkdir(parents=True, exist_ok=True)
    (state / "metastore").mkdir(parents=True, exist_ok=True)
    (etc / "config.properties").write_text(
        "\n".join(
            [
                "coordinator=true",
                "node-scheduler.include-coordinator=true",
                f"http-server.http.port={port}",
                f"discovery.uri=http://{HOST}:{port}",
                f"query.max-memory={QUERY_MEMORY}",
                f"query.max-memory-per-node={QUERY_MEMORY}",
                # One node, which is also its own worker: nothing to fail over to. Under a busy
                # 2-core machine its heartbeat to itself can time out, and the failure detector
                # then takes the only node away ("No nodes available to run query").
                "failure-detector.enabled=false",
                f"catalog.config-dir={etc / 'catalog'}",
                f"access-control.config-files={etc / 'access-control.properties'}",
                "",
            ]
        )
    )
    # INFO, without a TIMELINE line per query (the registrar asks every few seconds)
    (etc / "log.properties").write_text("io.trino=INFO\nio.trino.event.QueryMonitor=WARN\n")
    (etc / "catalog" / f"{CATALOG}.properties").write_text(catalog_properties(state / "metastore"))
    # the access rules and the readiness probe's catalog: the registrar's module owns them
    from questlog_query.trino_sync import READY_CATALOG, rules

    (etc / "catalog" / f"{READY_CATALOG}.properties").write_text("connector.name=tpch\n")
    (etc / "rules.json").write_text(json.dumps(rules(CATALOG), indent=2) + "\n")
    (etc / "access-control.properties").write_text(
        f"access-control.name=file\nsecurity.config-file={etc / 'rules.json'}\n"
    )
    return etc


def command(state: Path, port: int, home: Path | None = None) -> list[str]:
    """The coordinator's JVM command line (what Trino's launcher would run), bound to
    127.0.0.1 only."""
    home = home or server_home()
    state = state.resolve()
    etc = write_etc(state, port)
    return [
        java(),
        f"-Xmx{HEAP}",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:ReservedCodeCacheSize=256M",
        "-Djdk.attach.allowAttachSelf=true",
        "-Dfile.encoding=UTF-8",
        "--enable-native-access=ALL-UNNAMED",
        "-Dnode.environment=questlog",
        "-Dnode.id=questlog-embedded",
        f"-Dnode.data-dir={state / 'data'}",
        f"-Dnode.bind-ip={HOST}",
        f"-Dnode.internal-address={HOST}",
        f"-Dconfig={etc / 'config.properties'}",
        f"-Dlog.levels-file={etc / 'log.properties'}",
        f"-Dplugin.dir={home / 'plugin'}",
        "-cp",
        f"{home / 'lib'}/*",
        "io.trino.server.TrinoServer",
    ]


def info(url: str, timeout: float = 2.0) -> dict | None:
    """Trino's /v1/info, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/v1/info", timeout=timeout) as resp:  # noqa: S310
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def ready(url: str, timeout: float = 10.0) -> bool:
    """Trino answers a table scan: /v1/info says it has started AND the readiness probe's
    scan answers (questlog_query.trino_sync.ready, which says why both are needed)."""
    from questlog_query.trino_sync import ready as scan_ready

    answer = info(url)
    if not answer or answer.get("starting", True):
        return False
    return scan_ready(url, timeout)


class TrinoServer:
    """One coordinator (which is also its worker) on 127.0.0.1, state under ``state``."""

    def __init__(self, state: Path, port: int = 0) -> None:
        self.state = Path(state)
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = self.state / "server.log"
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None

    def start(self, timeout: float = 240.0) -> TrinoServer:
        home = fetch(log=lambda line: print(line, file=sys.stderr, flush=True))
        self.state.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command(self.state, self.port, home),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while not ready(self.url):
            if self.proc.poll() is not None or time.monotonic() - started > timeout:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(
                    f"Trino did not start within {timeout:.0f} s (log {self.log_path}):\n{tail}"
                )
            time.sleep(0.5)
        self.start_seconds = time.monotonic() - started
        return self

    def rss_bytes(self) -> int | None:
        if not self.proc:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> TrinoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="questlog-trino", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download and unpack the pinned server and CLI (cached)")
    serve = sub.add_parser("serve", help="run the coordinator in the foreground")
    serve.add_argument(
        "--state-dir", type=Path, default=None, help="etc/, data/, metastore/ (default <var>/trino)"
    )
    serve.add_argument(
        "--port", type=int, default=int(os.environ.get("QUESTLOG_TRINO_PORT", DEFAULT_PORT))
    )
    sub.add_parser("cli", help="the pinned trino CLI (every later argument is the CLI's)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cli"]:
        try:
            fetch(log=lambda line: print(line, file=sys.stderr))
            binary = java()
        except RuntimeError as exc:
            print(f"[trino] ERROR: {exc}", file=sys.stderr)
            return 2
        os.execv(  # noqa: S606 - the pinned CLI jar on the chosen JDK
            binary,
            [
                binary,
                "--enable-native-access=ALL-UNNAMED",
                "-jar",
                str(cli_jar()),
                *argv[1:],
            ],
        )
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch()
            print(f"[trino] {server_home()} and {cli_jar()} ready")
            return 0
        from . import paths

        home = fetch()
        state = (args.state_dir or paths.var_dir() / "trino").resolve()
        cmd = command(state, args.port, home)
    except RuntimeError as exc:
        print(f"[trino] ERROR: {exc}", file=sys.stderr)
        return 2
    print(
        f"[trino] coordinator on http://{HOST}:{args.port}, catalog {CATALOG!r}, "
        f"heap {HEAP}, state {state}",
        flush=True,
    )
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.execv(cmd[0], cmd)  # noqa: S606 - the supervisor signals the JVM itself
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
