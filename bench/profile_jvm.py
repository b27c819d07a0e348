"""Where a JVM's CPU goes, by Java Flight Recorder's execution samples: started and stopped
on a live process with ``jcmd``, then each sampled stack put in the first category whose
frames it holds (``CATEGORIES``, most specific first). Samples cover Java threads running
Java code; the JIT compilers' and the GC's own threads are not sampled.

Usage::

    with JfrProfile(pid, work_dir) as profile:
        ...                                  # the load to profile
    profile.shares                           # {"code generation": 0.21, ...}, sums to 1

The JVM must have been started with a deep enough stack depth for the planning frames to be
seen under the executor's (``STACK_DEPTH_OPTION``, e.g. in ``JAVA_TOOL_OPTIONS``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

STACK_DEPTH_OPTION = "-XX:FlightRecorderOptions:stackdepth=256"

# (category, fragments of "package/Class.method" frames); first match wins.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "code generation (per batch)",
        (
            "codegen/CodeGenerator",
            "WholeStageCodegenExec.doCodeGen",
            "GenerateUnsafeProjection",
            "codegen/Block",
            "CodeFormatter",
        ),
    ),
    (
        "planning: analyzer, optimizer, physical plan",
        (
            "optimizedPlan",
            "assertAnalyzed",
            "sparkPlan",
            "executedPlan",
            "catalyst/analysis/",
            "catalyst/optimizer/",
            "SparkStrategies",
            "IncrementalExecution",
        ),
    ),
    (
        "task and closure (de)serialization",
        (
            "ObjectOutputStream",
            "ObjectInputStream",
            "JavaSerializer",
            "ClosureCleaner",
            "TorrentBroadcast",
        ),
    ),
    ("dedup state store (RocksDB)", ("state/RocksDB", "state/StateStore", "rocksdb/")),
    ("Kafka fetch", ("KafkaDataConsumer", "org/apache/kafka/")),
    ("Arrow collect", ("ArrowConverters", "arrow/", "collectAsArrowToPython")),
    ("shuffle write and read", ("shuffle/",)),
    (
        "offset and commit logs",
        ("HDFSMetadataLog", "CheckpointFileManager", "OffsetSeqLog", "CommitLog"),
    ),
    (
        "rows: JSON parse, validation, projection",
        ("GeneratedClass", "JacksonParser", "catalyst/expressions/", "UTF8String"),
    ),
    (
        "scheduler, RPC, listeners",
        ("scheduler/", "rpc/", "netty", "LiveListenerBus", "AsyncEventQueue", "status/"),
    ),
    ("Py4J (the foreachBatch callback)", ("py4j/",)),
)
OTHER = "other"


def jdk_tool(name: str) -> str:
    """``jcmd``/``jfr`` of the JDK whose ``java`` is on the PATH."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("no java on the PATH: cannot profile the extractor's JVM")
    tool = Path(java).resolve().parent / name
    if not tool.exists():
        raise RuntimeError(f"{tool} is missing: a JRE without the JDK tools cannot profile")
    return str(tool)


def categorize(stacks: list[list[str]]) -> dict[str, float]:
    """Share of the samples in each category (frames "package/Class.method", top first)."""
    counts: Counter[str] = Counter()
    for frames in stacks:
        joined = " ".join(frames)
        name = next((c for c, keys in CATEGORIES if any(k in joined for k in keys)), OTHER)
        counts[name] += 1
    total = sum(counts.values())
    order = [c for c, _ in CATEGORIES] + [OTHER]
    return {c: round(counts[c] / total, 3) for c in order} if total else {}


def read_stacks(recording: Path) -> list[list[str]]:
    out = subprocess.run(
        [
            jdk_tool("jfr"),
            "print",
            "--json",
            "--stack-depth",
            "256",
            "--events",
            "jdk.ExecutionSample",
            str(recording),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    stacks = []
    for event in json.loads(out)["recording"]["events"]:
        frames = (event["values"].get("stackTrace") or {}).get("frames") or []
        stacks.append([f"{f['method']['type']['name']}.{f['method']['name']}" for f in frames])
    return stacks


class JfrProfile:
    def __init__(self, pid: int, work: Path) -> None:
        self.pid, self.recording = pid, Path(work) / f"extractor-{pid}.jfr"
        self.shares: dict[str, float] = {}
        self.samples = 0

    def __enter__(self) -> JfrProfile:
        self._jcmd("JFR.start", "name=questlog-bench", f"filename={self.recording}")
        return self

    def __exit__(self, *exc) -> None:
        self._jcmd("JFR.stop", "name=questlog-bench")
        stacks = read_stacks(self.recording)
        self.samples = len(stacks)
        self.shares = categorize(stacks)

    def _jcmd(self, *args: str) -> None:
        subprocess.run([jdk_tool("jcmd"), str(self.pid), *args], check=True, capture_output=True)
