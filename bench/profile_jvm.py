"""Where a JVM's CPU goes, by Java Flight Recorder's execution samples: started and stopped
on a live process with ``jcmd``, then each sampled stack put in the first category whose
frames it holds (``CATEGORIES``, most specific first). Samples cover Java threads running
Java code; the JIT compilers' and the GC's own threads are not sampled.

Usage::

    with JfrProfile(pid, work_dir) as profile:
        ...                                  # the load to profile
    profile.shares                           # {"codegen": 0.05, "planning": 0.23, ...}: sums to 1

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

# (key, fragments of "package/Class.method" frames): first match wins, so the order runs
# from the most specific to the most general (the rows a map task parses run inside the
# shuffle writer's loop: "rows" comes before "shuffle").
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "codegen",  # generating Java source for the batch's plan, per batch (and per task)
        (
            "codegen/CodeGenerator",
            "WholeStageCodegenExec.doCodeGen",
            "GenerateUnsafeProjection",
            "codegen/Block",
            "CodeFormatter",
        ),
    ),
    (
        "planning",  # analyzer, optimizer, physical planning of each batch
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
        "serialization",  # tasks, closures and broadcasts (de)serialized
        (
            "ObjectOutputStream",
            "ObjectInputStream",
            "JavaSerializer",
            "ClosureCleaner",
            "TorrentBroadcast",
        ),
    ),
    ("state_store", ("state/RocksDB", "state/StateStore", "rocksdb/")),  # the dedup state
    ("kafka_fetch", ("KafkaDataConsumer", "org/apache/kafka/")),
    ("arrow_collect", ("ArrowConverters", "arrow/", "collectAsArrowToPython")),
    (
        "rows",  # JSON parsing, validation, projections: the per-row work
        ("GeneratedClass", "JacksonParser", "catalyst/expressions/", "UTF8String"),
    ),
    ("shuffle", ("shuffle/",)),  # writing and reading the dedup shuffle
    ("checkpoint_logs", ("HDFSMetadataLog", "CheckpointFileManager", "OffsetSeqLog", "CommitLog")),
    (
        "scheduler",  # DAG and task scheduling, RPC, listeners
        ("scheduler/", "rpc/", "netty", "LiveListenerBus", "AsyncEventQueue", "status/"),
    ),
    ("py4j", ("py4j/",)),  # the foreachBatch callback and the driver's calls
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
