"""The wiring test: the Helm chart's containers, exactly as rendered, run as local
processes against this session's real Kafka and HDFS, and carry events end to end.

`helm template` renders the chart's defaults; for the api, query, extractor, Locust master
and worker, the helm test Job and the compaction CronJob, the command, arguments and
environment are taken as rendered (secrets resolved from the rendered Secrets). Only
addresses and paths are rewritten, through the one mapping of questlog_k8s.wiring (listed in
docs/deploy-kubernetes.md). Then:
- the helm test Job's own script posts events through the API process and waits until the
  query process returns every one of them once: Kafka, the extractor's spark-submit
  driver and its Delta tables on HDFS in between;
- Locust's master and worker put load on the API through the master's web API, and the
  ledger verifier finds every accepted event once through the query process;
- the compaction CronJob's container compacts the HDFS lake beside the running extractor,
  and the ledger still finds every event once;
- every variable a container sets is read by its process (traced in each process through
  tests/integration/envtrace), and each service starts only because the chart gave it
  every variable it requires (their settings refuse to start otherwise).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from questlog_embedded.process import free_port, spawn, stop, tail, wait_until
from questlog_embedded.spark import spark_jars
from questlog_k8s import chartcheck, wiring

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RELEASE = "questlog"
VENV_BIN = Path(sys.executable).parent
TRACER = Path(__file__).parent / "envtrace"
HELM_TEST_EVENTS = 200
# Variables a container sets for a consumer outside Python's os.environ: none so far.
NOT_READ_BY_PYTHON: dict[str, set[str]] = {}


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            is_json = r.headers.get_content_type() == "application/json"
            return r.status, json.loads(body or b"{}") if is_json else {}
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except OSError:
        return 0, {}


def _post_form(url: str, form: dict) -> tuple[int, dict]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        return r.status, json.loads(r.read() or b"{}")


@pytest.fixture(scope="module")
def rendered():
    stream = chartcheck.render(
        sets=[f"helmTest.events={HELM_TEST_EVENTS}", "helmTest.timeoutSeconds=240"]
    )
    return chartcheck.parse(stream)


def test_the_chart_names_every_workload_the_test_plays(rendered):
    found = wiring.containers(rendered, RELEASE)
    assert set(found) == {
        "api",
        "query",
        "extractor",
        "locust-master",
        "locust-worker",
        "helm-test",
        "compact",
    }


def test_the_rendered_containers_carry_events_end_to_end(kafka, hdfs, rendered, tmp_path):
    found = wiring.containers(rendered, RELEASE)
    topic_obj = next(o for o in rendered if o["kind"] == "KafkaTopic")
    topic = topic_obj["spec"]["topicName"]
    kafka.create_topic(topic, partitions=topic_obj["spec"]["partitions"])

    api, query, web, master, metrics = (free_port() for _ in range(5))
    mapping = wiring.Mapping(
        addresses={
            f"{RELEASE}-kafka-kafka-bootstrap:9092": kafka.bootstrap,
            f"{RELEASE}-hdfs-namenode:8020": f"127.0.0.1:{hdfs.rpc_port}",
            f"{RELEASE}-api:5000": f"127.0.0.1:{api}",
            f"{RELEASE}-query:8000": f"127.0.0.1:{query}",
            f"{RELEASE}-locust-master": "127.0.0.1",
        },
        listen={
            ("api", "QUESTLOG_API_BIND"): f"127.0.0.1:{api}",
            ("query", "QUESTLOG_QUERY_HOST"): "127.0.0.1",
            ("query", "QUESTLOG_QUERY_PORT"): str(query),
            ("extractor", "QUESTLOG_EXTRACTOR_METRICS_PORT"): str(metrics),
            ("locust-master", "--web-host"): "127.0.0.1",
            ("locust-master", "--web-port"): str(web),
            ("locust-master", "--master-bind-port"): str(master),
            ("locust-worker", "--master-port"): str(master),
        },
        paths={
            "/app/gunicorn.conf.py": str(REPO / "services/query/gunicorn.conf.py"),
            "/app/locustfile.py": str(REPO / "loadtest/locustfile.py"),
            "local:///opt/questlog/spark_main.py": str(REPO / "services/extractor/spark_main.py"),
            "/scripts/helm_test.py": str(REPO / "charts/questlog/files/helm_test.py"),
        },
        spark_master="local[2]",
        spark_jars=spark_jars(),
    )
    trace = tmp_path / "env-reads.txt"
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    local: dict[str, wiring.Container] = {}

    def start(name: str) -> subprocess.Popen:
        pod_tmp = tmp_path / name / "tmp"
        pod_tmp.mkdir(parents=True)
        container = wiring.apply(
            found[name], dataclasses.replace(mapping, paths={**mapping.paths, "/tmp": str(pod_tmp)})
        )
        local[name] = container
        env = {
            # the image's environment: its Python on PATH, nothing else of this session's
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "JAVA_HOME": os.environ.get("JAVA_HOME", ""),
            "PYTHONPATH": str(TRACER),
            "WIRING_ENV_TRACE": f"{trace}.{name}",
            "PYSPARK_PYTHON": sys.executable,
            "TMPDIR": str(pod_tmp),
            **container.env,
        }
        logs[name] = tmp_path / f"{name}.log"
        procs[name] = spawn(list(container.command), logs[name], env=env)
        return procs[name]

    try:
        start("api")
        start("query")
        start("extractor")
        wait_until(
            lambda: _get(f"http://127.0.0.1:{api}/readyz")[0] == 200,
            60,
            "api (as rendered)",
            procs["api"],
            logs["api"],
        )
        wait_until(
            lambda: _get(f"http://127.0.0.1:{query}/healthz")[0] == 200,
            60,
            "query (as rendered)",
            procs["query"],
            logs["query"],
        )
        # the driver serves its metrics once its settings were accepted and Spark is up
        wait_until(
            lambda: _get(f"http://127.0.0.1:{metrics}/metrics")[0] == 200,
            240,
            "extractor driver (as rendered)",
            procs["extractor"],
            logs["extractor"],
        )

        # 1. the helm test Job's script, as rendered
        helm_test = start("helm-test")
        try:
            code = helm_test.wait(timeout=300)
        except subprocess.TimeoutExpired:
            helm_test.kill()
            code = "timeout"
        assert code == 0, f"helm test script failed ({code}):\n{tail(logs['helm-test'])}"
        out = logs["helm-test"].read_text()
        assert f"passed: {HELM_TEST_EVENTS} posted, {HELM_TEST_EVENTS} read back" in out, out

        # the rows are on HDFS, in the lake the chart names, as Delta tables
        lake = found["extractor"].env["QUESTLOG_EXTRACTOR_LAKE_ROOT"]
        assert lake == f"hdfs://{RELEASE}-hdfs-namenode:8020/questlog"
        from deltalake import DeltaTable

        local_lake = local["extractor"].env["QUESTLOG_EXTRACTOR_LAKE_ROOT"]
        stored = DeltaTable(f"{local_lake}/tables/purchase_sword").to_pyarrow_table(
            columns=["event_id", "player_id"]
        )
        player = next(
            line.split("player ")[1].split()[0]
            for line in out.splitlines()
            if "accepted for player" in line
        )
        ids = [r["event_id"] for r in stored.to_pylist() if r["player_id"] == player]
        assert len(ids) == len(set(ids)) == HELM_TEST_EVENTS

        # 2. Locust, master and worker as rendered, started through the web UI's API
        start("locust-master")
        wait_until(
            lambda: _get(f"http://127.0.0.1:{web}/")[0] == 200,
            60,
            "locust master",
            procs["locust-master"],
            logs["locust-master"],
        )
        start("locust-worker")
        wait_until(
            lambda: _get(f"http://127.0.0.1:{web}/stats/requests")[1].get("workers"),
            60,
            "locust worker joins",
            procs["locust-worker"],
            logs["locust-worker"],
        )
        status, reply = _post_form(
            f"http://127.0.0.1:{web}/swarm", {"user_count": 5, "spawn_rate": 5}
        )
        assert status == 200, reply
        assert reply.get("success"), reply
        time.sleep(15)
        stats = _get(f"http://127.0.0.1:{web}/stats/requests")[1]
        _post_form(f"http://127.0.0.1:{web}/stop", {})
        stop(procs.pop("locust-worker"), timeout=20)
        total = next(s for s in stats["stats"] if s["name"] == "Aggregated")
        assert total["num_requests"] > 20, stats
        assert total["num_failures"] == 0, stats["errors"]
        from questlog_loadtest.verify import verify

        ledger = tmp_path / "locust-worker" / "tmp" / "ledger.jsonl"
        report = verify(
            [ledger],
            f"http://127.0.0.1:{query}",
            wait=120,
            read_token=local["query"].env["QUESTLOG_QUERY_READ_TOKEN"],
        )
        assert report.ok, report
        assert report.accepted > 20, report
        assert report.lost == report.duplicated == 0, report

        # 3. the compaction CronJob's container, as rendered, beside the running extractor:
        # one pass on the HDFS lake with no JVM, then the same events, each once
        compact = start("compact")
        try:
            code = compact.wait(timeout=180)
        except subprocess.TimeoutExpired:
            compact.kill()
            code = "timeout"
        assert code == 0, f"compaction failed ({code}):\n{tail(logs['compact'])}"
        passes = [
            json.loads(line)
            for line in logs["compact"].read_text().splitlines()
            if line.startswith("{") and '"compaction pass"' in line
        ]
        assert len(passes) == 1, tail(logs["compact"])
        compacted = passes[0]["tables"]["purchase_sword"]
        assert compacted["files_compacted"] > 1, passes[0]
        assert compacted["files_after"] < compacted["files_before"], passes[0]
        after = verify(
            [ledger],
            f"http://127.0.0.1:{query}",
            wait=60,
            read_token=local["query"].env["QUESTLOG_QUERY_READ_TOKEN"],
        )
        assert after.ok, after
        assert after.lost == after.duplicated == 0, after
        assert after.accepted == report.accepted, (after, report)
        print(
            f"\nwiring: helm test {HELM_TEST_EVENTS} posted / {len(ids)} stored on HDFS / "
            f"{HELM_TEST_EVENTS} read back; locust {total['num_requests']} requests, "
            f"{report.accepted} events accepted, {report.stored} stored and read back, "
            f"lost {report.lost}, duplicated {report.duplicated}; compaction (CronJob) "
            f"{compacted['files_before']} -> {compacted['files_after']} files of "
            f"{compacted['rows']} purchases in {passes[0]['seconds']} s, then {after.stored} "
            f"stored, lost {after.lost}, duplicated {after.duplicated}"
        )
    finally:
        for name in list(procs):
            stop(procs[name], timeout=20)

    # 4. every variable each container sets was read by its process
    reads: dict[str, set[str]] = defaultdict(set)
    for name in local:
        path = Path(f"{trace}.{name}")
        for line in path.read_text().splitlines() if path.exists() else []:
            reads[name].add(line.split(" ", 1)[1])
    unread = {
        name: sorted(set(c.env) - reads[name] - NOT_READ_BY_PYTHON.get(name, set()))
        for name, c in local.items()
    }
    assert not any(unread.values()), f"set by the chart, never read: {unread}"
