"""questlog's embedded HDFS: a real NameNode + DataNode (MiniDFSCluster) in one local JVM.

The JVM side is embedded/java/MiniHdfs.java, compiled by `python -m questlog_embedded.jars`
against the pinned hadoop-client-minicluster jars. The base dir is formatted on the first
start only, so files survive restarts.

Library:
    with MiniHdfs(Path("var/hdfs")) as hdfs:       # free ports, waits until ready
        hdfs.uri           # 'hdfs://127.0.0.1:<rpc>'
        hdfs.webhdfs_url   # 'http://127.0.0.1:<http>'  (+ /webhdfs/v1/...)
        hdfs.spark_conf()  # spark.hadoop.* settings for a Spark job writing to hdfs.uri

CLI (runs in the foreground until Ctrl-C / SIGTERM):
    questlog-hdfs --base-dir var/hdfs --rpc-port 0 --http-port 0
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO

from . import jars, paths

HOST = "127.0.0.1"
MAIN_CLASS = "MiniHdfs"
READY_RE = re.compile(r"^QUESTLOG_HDFS_READY rpc=(?P<rpc>\d+) http=(?P<http>\d+)\s*$")

# What Hadoop 3.4 reaches into on Java 17 (the same set Spark passes to its JVMs).
JAVA_OPTS = (
    "-XX:+IgnoreUnrecognizedVMOptions",
    "-Djava.net.preferIPv4Stack=true",
    "-Xmx512m",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
    "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
    "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
)

_TAIL_LINES = 40


class MiniHdfsError(RuntimeError):
    """The embedded HDFS did not start (or died); the message ends with its last log lines."""


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise MiniHdfsError("no `java` on PATH and JAVA_HOME unset: install a JDK 17")
    return java


def _tail(path: Path, n: int = _TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=n))
    except OSError as exc:
        return f"(no log: {exc})"


class MiniHdfs:
    """One MiniDFSCluster JVM (1 NameNode + 1 DataNode, WebHDFS on, permissions off).

    rpc_port / http_port 0 let the OS pick free ports; after start() the properties hold
    the ports actually bound. The log defaults to <base_dir>.log next to the base dir.
    """

    def __init__(
        self, base_dir: Path, rpc_port: int = 0, http_port: int = 0, log_path: Path | None = None
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.log_path = (
            Path(log_path)
            if log_path is not None
            else self.base_dir.with_name(self.base_dir.name + ".log")
        ).resolve()
        self._want_rpc = rpc_port
        self._want_http = http_port
        self._rpc_port: int | None = None
        self._http_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.startup_seconds: float | None = None

    # -- addresses ---------------------------------------------------------------------
    def _need_started(self) -> None:
        if self._rpc_port is None:
            raise MiniHdfsError("MiniHdfs is not started: call start() first")

    @property
    def rpc_port(self) -> int:
        self._need_started()
        assert self._rpc_port is not None
        return self._rpc_port

    @property
    def http_port(self) -> int:
        self._need_started()
        assert self._http_port is not None
        return self._http_port

    @property
    def uri(self) -> str:
        """fs.defaultFS for clients, e.g. hdfs://127.0.0.1:9000."""
        return f"hdfs://{HOST}:{self.rpc_port}"

    @property
    def webhdfs_url(self) -> str:
        """NameNode HTTP root; WebHDFS lives under <webhdfs_url>/webhdfs/v1/."""
        return f"http://{HOST}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def hadoop_conf(self) -> dict[str, str]:
        """Client settings for writing to this single-DataNode cluster."""
        return {
            "fs.defaultFS": self.uri,
            "dfs.replication": "1",
            # With one DataNode there is nothing to replace a failed pipeline node with.
            "dfs.client.block.write.replace-datanode-on-failure.enable": "false",
            "dfs.client.block.write.replace-datanode-on-failure.policy": "NEVER",
            # The DataNode advertises 127.0.0.1 both as IP and as hostname: either works.
            "dfs.client.use.datanode.hostname": "false",
        }

    def spark_conf(self, default_fs: bool = False) -> dict[str, str]:
        """hadoop_conf() as spark.hadoop.* keys for SparkSession.builder.config(...).

        fs.defaultFS is left out unless default_fs=True: it would also move every
        scheme-less path of the job (warehouse, checkpoints) onto this HDFS.
        """
        conf = self.hadoop_conf()
        if not default_fs:
            conf.pop("fs.defaultFS")
        return {f"spark.hadoop.{k}": v for k, v in conf.items()}

    # -- lifecycle ---------------------------------------------------------------------
    def command(self) -> list[str]:
        extra = [jars.classes_dir()]
        return [
            _java(),
            *JAVA_OPTS,
            "-cp",
            jars.classpath("hdfs", *extra),
            MAIN_CLASS,
            "--base-dir",
            str(self.base_dir),
            "--rpc-port",
            str(self._want_rpc),
            "--http-port",
            str(self._want_http),
        ]

    def start(self, timeout: float = 120) -> MiniHdfs:
        """Start the JVM and block until the cluster is up (out of safe mode)."""
        with self._lock:
            if self.running:
                return self
            self._cleanup()
            try:
                jars.compile_java(log=lambda _msg: None)  # no-op when the classes are fresh
            except jars.SetupError as exc:
                raise MiniHdfsError(f"cannot build the MiniHdfs launcher: {exc}") from exc
            cmd = self.command()
            self.base_dir.mkdir(parents=True, exist_ok=True)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
            self._log.write(f"--- {time.strftime('%F %T')} starting MiniHdfs\n".encode())
            self._log.flush()
            self._ready.clear()
            self._rpc_port = self._http_port = None
            started = time.monotonic()
            # stdin stays an open pipe: the JVM exits on its EOF, so it never outlives us.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                cwd=self.base_dir,
            )
            self._reader = threading.Thread(
                target=self._pump,
                args=(self._proc.stdout, self._log),
                name=f"minihdfs-stdout-{self._proc.pid}",
                daemon=True,
            )
            self._reader.start()

            deadline = started + timeout
            while not self._ready.wait(0.2):
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    self._reader.join(5)
                    self._cleanup()
                    raise MiniHdfsError(
                        f"MiniHdfs exited with code {code} before it was ready "
                        f"(log: {self.log_path}); last lines:\n{_tail(self.log_path)}"
                    )
                if time.monotonic() > deadline:
                    self._stop_locked(timeout=15)
                    raise MiniHdfsError(
                        f"MiniHdfs was not ready after {timeout:.0f}s (log: {self.log_path}); "
                        f"last lines:\n{_tail(self.log_path)}"
                    )
            self.startup_seconds = time.monotonic() - started
            return self

    def _pump(self, stream: IO[bytes], log: IO[bytes]) -> None:
        """Copy the JVM's stdout to the log, catching the READY line on the way."""
        for raw in iter(stream.readline, b""):
            m = READY_RE.match(raw.decode(errors="replace"))
            if m and not self._ready.is_set():
                self._rpc_port, self._http_port = int(m["rpc"]), int(m["http"])
                self._ready.set()
            try:
                log.write(raw)
                log.flush()
            except (OSError, ValueError):  # log closed under us during stop()
                pass
        stream.close()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (clean cluster shutdown), then SIGKILL after `timeout` s. Idempotent."""
        with self._lock:
            self._stop_locked(timeout)

    def _stop_locked(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        self._cleanup()

    def _cleanup(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        self._reader = None
        self._rpc_port = self._http_port = None

    def wait(self) -> int:
        """Block until the JVM exits on its own; returns its exit code."""
        proc = self._proc
        if proc is None:
            raise MiniHdfsError("MiniHdfs is not started")
        return proc.wait()

    def __enter__(self) -> MiniHdfs:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="questlog-hdfs",
        description="Run questlog's embedded HDFS (MiniDFSCluster) in the foreground.",
    )
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=paths.var_dir() / "hdfs",
        help="cluster state; formatted on first use (default: var/hdfs)",
    )
    parser.add_argument("--rpc-port", type=int, default=0, help="NameNode RPC (0 = free port)")
    parser.add_argument(
        "--http-port", type=int, default=0, help="NameNode HTTP / WebHDFS (0 = free port)"
    )
    parser.add_argument(
        "--log", type=Path, default=None, help="JVM log file (default: <base-dir>.log)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for ready")
    args = parser.parse_args(argv)

    hdfs = MiniHdfs(args.base_dir, args.rpc_port, args.http_port, args.log)

    def _on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_term)
    try:
        hdfs.start(timeout=args.timeout)
        print(f"HDFS ready in {hdfs.startup_seconds:.1f}s (pid {hdfs.pid}, log {hdfs.log_path})")
        print(f"  fs.defaultFS  {hdfs.uri}")
        print(f"  WebHDFS       {hdfs.webhdfs_url}/webhdfs/v1/")
        print("Ctrl-C to stop.", flush=True)
        code = hdfs.wait()
        print(f"MiniHdfs exited on its own (code {code}); see {hdfs.log_path}", file=sys.stderr)
        return 1
    except MiniHdfsError as exc:
        print(f"questlog-hdfs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping HDFS ...", flush=True)
        return 0
    finally:
        hdfs.stop()


if __name__ == "__main__":
    sys.exit(main())
