"""A real single-node Kafka 4.x broker in KRaft mode (broker + controller in one JVM).

The jars are the pinned ones of embedded/pom.xml (`make setup`). Storage is formatted on
first start only, so a restart on the same data dir keeps every topic and offset.

Usage:
    questlog-kafka --data-dir var/kafka --port 9092 --topic events --partitions 3
    with KafkaBroker(tmp_path) as kafka: kafka.create_topic("events", partitions=3)
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from . import jars, paths
from .process import free_port, java_bin, port_open, spawn, stop, tail, wait_until

_READY = "Kafka Server started"

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


class KafkaBroker:
    """One KRaft broker+controller on 127.0.0.1. Ports of 0 mean "pick a free one"."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        controller_port: int = 0,
        heap: str = "512m",
        log_level: str = "WARN",
        default_partitions: int = 1,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.heap = heap
        self.log_level = log_level
        self.default_partitions = default_partitions
        self.log_path = self.data_dir / "kafka.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _write_config(self) -> Path:
        logs = self.data_dir / "logs"
        cfg = self.data_dir / "server.properties"
        cfg.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={logs}",
                    f"num.partitions={self.default_partitions}",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "min.insync.replicas=1",
                    "",
                ]
            )
        )
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(level=self.log_level))
        return cfg

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            java_bin(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            jars.classpath("kafka"),
            main_class,
            *args,
        ]

    def _format_once(self, cfg: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").is_file():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt_log = self.data_dir / "format.log"
        # One id in 64 starts with "-": as a separate argument, argparse reads it as an option.
        proc = spawn(
            self._java(
                "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(cfg)
            ),
            fmt_log,
        )
        if proc.wait(timeout=120) != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{tail(fmt_log)}")

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        if self._proc and self._proc.poll() is None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for port in (self.port, self.controller_port):
            if port_open(port):
                raise RuntimeError(f"port {port} on 127.0.0.1 is already in use")
        cfg = self._write_config()
        self._format_once(cfg)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = spawn(self._java("kafka.Kafka", str(cfg)), self.log_path)

        def started() -> bool:
            with open(self.log_path, errors="replace") as f:
                f.seek(offset)
                return _READY in f.read() and port_open(self.port)

        wait_until(started, timeout, f"Kafka on {self.bootstrap}", self._proc, self.log_path)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        stop(self._proc, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, for fault tests: no controlled shutdown."""
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def create_topic(
        self, name: str, partitions: int = 1, config: dict[str, str] | None = None
    ) -> None:
        """Create a topic (idempotent: an existing topic is left as it is)."""
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id="questlog-embedded",
            request_timeout_ms=30000,
        )
        try:
            admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config or {})])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="questlog-kafka", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=paths.var_dir() / "kafka")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("QUESTLOG_KAFKA_PORT", "9092"))
    )
    parser.add_argument("--controller-port", type=int, default=0)
    parser.add_argument("--topic", action="append", default=[], help="topic to create (repeatable)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--heap", default="1g")
    args = parser.parse_args(argv)

    broker = KafkaBroker(
        args.data_dir,
        port=args.port,
        controller_port=args.controller_port,
        heap=args.heap,
        default_partitions=args.partitions,
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        broker.start()
        for topic in args.topic:
            broker.create_topic(topic, partitions=args.partitions)
        print(
            f"kafka ready on {broker.bootstrap} (data {broker.data_dir}, "
            f"log {broker.log_path}); topics: {', '.join(args.topic) or '-'}",
            flush=True,
        )
        while not done.wait(1.0):
            if not broker.running():
                print(f"kafka exited unexpectedly:\n{tail(broker.log_path)}", file=sys.stderr)
                return 1
    except (RuntimeError, TimeoutError, jars.SetupError) as exc:
        print(f"questlog-kafka: {exc}", file=sys.stderr)
        broker.stop()
        return 1
    print("stopping kafka ...", flush=True)
    broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
