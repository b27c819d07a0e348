"""The freshness case's budgets: the per-batch phase budget read from the extractor's log
lines, the JVM profile's categories, and the per-process CPU budget from /proc."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import profile_jvm
from cases.freshness import batch_budget
from harness import CpuBudget


def _line(ts: str, **fields) -> str:
    record = {"ts": ts, "level": "info", "service": "questlog-extractor", **fields}
    return f"10:00:00 extractor  | {json.dumps(record)}"


def _progress(ts: str, batch_id: int, add_batch: int) -> str:
    return _line(
        ts,
        msg="batch progress",
        batch_id=batch_id,
        input_rows=1000,
        batch_duration_ms=add_batch + 50,
        phases_ms={"addBatch": add_batch, "queryPlanning": 30, "walCommit": 10},
        state_ms={"commit": 5, "updates": 3, "removals": 1},
    )


def test_the_batch_budget_takes_the_window_s_batches_and_their_medians(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        "\n".join(
            [
                _progress("2026-12-01T10:00:00.000Z", 1, 9999),  # before the window
                _progress("2026-12-01T10:00:02.000Z", 2, 300),
                _line(
                    "2026-12-01T10:00:02.100Z",
                    msg="batch written",
                    collect_ms=200,
                    split_ms=1,
                    commit_ms=40,
                ),
                _progress("2026-12-01T10:00:03.000Z", 3, 500),
                _progress("2026-12-01T10:00:04.000Z", 4, 400),
                "10:00:04 api        | not json",
                _progress("2026-12-01T10:00:09.000Z", 5, 9999),  # after it
            ]
        )
    )
    start = 1796119202.0 - 0.5  # 2026-12-01T10:00:02Z, minus a margin
    budget = batch_budget(log, start, start + 4, {"extractor_jvm": 0.6, "extractor_python": 0.06})
    assert budget["batches"] == 3
    assert budget["batches_per_s"] == 0.75
    assert budget["phases_ms"]["addBatch"] == 400
    assert budget["phases_ms"]["queryPlanning"] == 30
    assert budget["phases_ms"]["commitOffsets"] is None  # not in these lines: unknown, not 0
    assert budget["state_store_ms"] == {"updates": 3, "removals": 1, "commit": 5}
    assert budget["writer_ms"] == {"collect_ms": 200, "split_ms": 1, "commit_ms": 40}
    assert budget["core_s_per_batch"] == {"extractor_jvm": 0.8, "extractor_python": 0.08}


def test_no_batch_in_the_window_says_so(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(_progress("2026-12-01T10:00:00.000Z", 1, 300))
    assert batch_budget(log, 0, 1, {}) == {"batches": 0}


def test_profile_categories_take_the_most_specific_match_first():
    codegen_in_a_task = [
        "org/apache/spark/sql/catalyst/expressions/codegen/CodeGenerator$.compile",
        "org/apache/spark/sql/execution/ProjectExec.doExecute",
        "org/apache/spark/scheduler/ShuffleMapTask.runTask",
    ]
    parsing = [
        "com/fasterxml/jackson/core/json/UTF8StreamJsonParser.nextToken",
        "org/apache/spark/sql/catalyst/json/JacksonParser.parse",
        "org/apache/spark/sql/catalyst/expressions/GeneratedClass$SpecificUnsafeProjection.apply",
        "org/apache/spark/shuffle/ShuffleWriteProcessor.write",  # the map task's loop
        "org/apache/spark/scheduler/ShuffleMapTask.runTask",
    ]
    unknown = ["java/lang/Thread.run"]
    shares = profile_jvm.categorize([codegen_in_a_task, codegen_in_a_task, parsing, unknown])
    assert shares["codegen"] == 0.5
    assert shares["rows"] == 0.25
    assert shares["other"] == 0.25
    assert sum(shares.values()) == 1.0


def test_the_cpu_budget_sees_a_busy_process_as_about_one_core():
    busy = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.time()\nwhile time.time() - t < 3: pass",
            "loadgen",
        ]  # named like a component (COMPONENTS matches the command line)
    )
    try:
        time.sleep(0.3)
        with CpuBudget() as cpu:
            time.sleep(1.5)
    finally:
        busy.wait()
    assert 0.5 <= cpu.cores["loadgen"] <= 1.05, cpu.cores  # one core at most, most of it
    assert cpu.capacity >= 1
