"""questlog-k8s without a cluster: each part's readiness and reason read from literal API
objects, which parts a release has (from its Helm record and from the chart itself), the
pods `logs` picks, the text and JSON output, and the exit codes, on a fake cluster."""

from __future__ import annotations

import base64
import copy
import gzip
import json

import pytest

from questlog_k8s import chartcheck, cli, state
from questlog_k8s.kube import KubeError, Unreachable
from questlog_k8s.state import PARTS, PartStatus

R = "questlog"
NS = "questlog"
PLURAL_KIND = {plural: kind for kind, (_, _, plural) in state.CUSTOM_KINDS.items()}


# ---- objects as the API serves them -----------------------------------------------------


def meta(name, generation=1, labels=None, **extra):
    return {
        "name": name,
        "namespace": NS,
        "generation": generation,
        "labels": labels or {},
        **extra,
    }


def kafka(name=f"{R}-kafka", conditions=None, observed=1, generation=1):
    if conditions is None:
        conditions = [{"type": "Ready", "status": "True"}]
    status = {
        "conditions": conditions,
        "observedGeneration": observed,
        "kafkaVersion": "4.1.0",
        "listeners": [
            {"name": "plain", "bootstrapServers": f"{name}-kafka-bootstrap.{NS}.svc:9092"}
        ],
    }
    return {
        "kind": "Kafka",
        "metadata": meta(name, generation),
        "spec": {"kafka": {}},
        "status": status,
    }


def topic(name=f"{R}-kafka-topic", conditions=None):
    if conditions is None:
        conditions = [{"type": "Ready", "status": "True"}]
    return {
        "kind": "KafkaTopic",
        "metadata": meta(name),
        "spec": {"topicName": "events", "partitions": 3, "replicas": 3},
        "status": {"conditions": conditions, "observedGeneration": 1, "topicName": "events"},
    }


def spark_app(
    name=f"{R}-extractor",
    state_="RUNNING",
    attempts=1,
    error=None,
    executors=None,
    submission="sub-2",
):
    status = {
        "submissionID": submission,
        "executionAttempts": attempts,
        "submissionAttempts": attempts,
        "driverInfo": {"podName": f"{name}-driver"},
        "executorState": executors
        if executors is not None
        else {f"{name}-exec-1": "RUNNING", f"{name}-exec-2": "RUNNING"},
    }
    if state_ is not None:
        status["applicationState"] = {"state": state_}
        if error:
            status["applicationState"]["errorMessage"] = error
    return {"kind": "SparkApplication", "metadata": meta(name), "spec": {}, "status": status}


def workload(
    kind, name, ready=1, replicas=1, updated=None, generation=1, observed=1, conditions=()
):
    labels = {"app.kubernetes.io/instance": R, "app.kubernetes.io/name": name}
    status = {
        "observedGeneration": observed,
        "replicas": replicas,
        "updatedReplicas": replicas if updated is None else updated,
        "conditions": list(conditions),
    }
    if ready:
        status["readyReplicas"] = ready  # the API leaves zero counts out
    return {
        "kind": kind,
        "metadata": meta(name, generation, labels),
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}},
        "status": status,
    }


def pod(
    name,
    labels,
    created="2025-01-01T00:00:00Z",
    containers=("main",),
    phase="Running",
    annotations=None,
    statuses=(),
    node="node-1",
):
    spec = {"containers": [{"name": c} for c in containers]}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": labels,
            "creationTimestamp": created,
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": {"phase": phase, "containerStatuses": list(statuses)},
    }


def helm_secret(manifest, revision=1, status="deployed", description="Install complete"):
    record = {
        "name": R,
        "namespace": NS,
        "version": revision,
        "manifest": manifest,
        "info": {"status": status, "description": description},
        "chart": {"metadata": {"name": "questlog", "version": "0.1.0", "appVersion": "0.1.0"}},
    }
    helm_encoded = base64.b64encode(gzip.compress(json.dumps(record).encode()))
    return {
        "metadata": {
            "name": f"sh.helm.release.v1.{R}.v{revision}",
            "labels": {"owner": "helm", "name": R, "version": str(revision), "status": status},
        },
        "data": {"release": base64.b64encode(helm_encoded).decode()},
    }


def manifest_of(parts=PARTS):
    return "\n---\n".join(f"kind: {p.kind}\nmetadata:\n  name: {p.object_name(R)}" for p in parts)


def healthy_objects():
    objs = {
        ("Kafka", f"{R}-kafka"): kafka(),
        ("KafkaTopic", f"{R}-kafka-topic"): topic(),
        ("SparkApplication", f"{R}-extractor"): spark_app(),
    }
    for part in PARTS:
        if part.kind in ("Deployment", "StatefulSet"):
            name = part.object_name(R)
            objs[(part.kind, name)] = workload(part.kind, name, ready=2, replicas=2)
    return objs


TABLES = {
    "tables": [
        {
            "name": "session_start",
            "rows": 120,
            "columns": ["event_id"],
            "version": 7,
            "freshness_seconds": 4.25,
            "latest_event_time": "2025-01-01T00:00:00Z",
        },
        {
            "name": "quarantine",
            "rows": 0,
            "columns": [],
            "version": None,
            "freshness_seconds": None,
            "latest_event_time": None,
        },
    ],
    "as_of": {"session_start": 7, "quarantine": None},
}


class FakeCluster:
    """kube.Cluster's reads over dicts; `fail` maps a method name to the KubeError it
    raises."""

    def __init__(
        self, objects=None, pods=(), secrets=(), crds=None, tables=TABLES, logs=None, fail=None
    ):
        self.objects = healthy_objects() if objects is None else objects
        self.pod_list = list(pods)
        self.secret_list = list(secrets)
        self.crds = {state.crd_name(k) for k in state.CUSTOM_KINDS} if crds is None else set(crds)
        self.tables = tables
        self.logs = logs or {}
        self.fail = fail or {}
        self.calls = []

    def _maybe_fail(self, method):
        self.calls.append(method)
        if method in self.fail:
            raise self.fail[method]

    def custom(self, group, version, plural, namespace, name):
        self._maybe_fail("custom")
        assert (group, version, plural) == state.CUSTOM_KINDS[PLURAL_KIND[plural]]
        return copy.deepcopy(self.objects.get((PLURAL_KIND[plural], name)))

    def deployment(self, namespace, name):
        self._maybe_fail("deployment")
        return copy.deepcopy(self.objects.get(("Deployment", name)))

    def statefulset(self, namespace, name):
        self._maybe_fail("statefulset")
        return copy.deepcopy(self.objects.get(("StatefulSet", name)))

    def crd(self, name):
        self._maybe_fail("crd")
        return {"metadata": {"name": name}} if name in self.crds else None

    def secrets(self, namespace, match_labels):
        self._maybe_fail("secrets")
        return [
            s for s in self.secret_list if match_labels.items() <= s["metadata"]["labels"].items()
        ]

    def pods(self, namespace, match_labels):
        self._maybe_fail("pods")
        return [p for p in self.pod_list if match_labels.items() <= p["metadata"]["labels"].items()]

    def pod(self, namespace, name):
        self._maybe_fail("pod")
        return next((p for p in self.pod_list if p["metadata"]["name"] == name), None)

    def service_get(self, namespace, service, path):
        self._maybe_fail("service_get")
        assert (service, path) == (f"{R}-query:http", "v1/tables")
        return json.dumps(self.tables).encode()

    def pod_log(self, namespace, name, container=None, tail=None, follow=False):
        self.calls.append(("pod_log", name, container, tail, follow))
        answer = self.logs.get(name, [])
        if isinstance(answer, Exception):
            raise answer
        yield from answer


def run(capsys, argv, cluster):
    code = cli.main(argv, cluster=cluster)
    out, err = capsys.readouterr()
    return code, out, err


# ---- names ---------------------------------------------------------------------------------


def test_object_names_follow_the_charts_rule_and_its_63_character_cut():
    assert state.chart_name("questlog", "hdfs-namenode") == "questlog-hdfs-namenode"
    long = "r" * 60
    assert state.chart_name(long, "kafka-topic") == f"{long}-ka"
    assert state.chart_name("r" * 62, "api") == "r" * 62  # the cut leaves no trailing "-"


@pytest.mark.parametrize(
    ("scenario", "absent"),
    [
        ("default", set()),
        ("external", {"kafka", "topic", "namenode", "datanode"}),
        ("minimal", {"locust-master", "locust-worker"}),
        ("locust-only", {"kafka", "topic", "extractor", "api", "query", "namenode", "datanode"}),
    ],
)
def test_the_parts_are_the_objects_the_chart_renders_in_each_scenario(scenario, absent):
    values = [] if scenario == "default" else [chartcheck.CHART / "ci" / f"{scenario}-values.yaml"]
    rendered = chartcheck.render(values, release="ql")
    parts = {p.name for p in state.parts_in_release({"manifest": rendered}, "ql")}
    assert parts == {p.name for p in PARTS} - absent


def test_without_a_helm_record_every_part_is_expected():
    assert state.parts_in_release(None, R) == list(PARTS)


def test_helm_record_decodes_the_newest_revision():
    secrets = [
        helm_secret(manifest_of(PARTS[:1]), revision=1),
        helm_secret(
            manifest_of(PARTS[:2]),
            revision=10,
            status="failed",
            description='Upgrade "questlog" failed: timed out',
        ),
    ]
    record = state.latest_helm_record(secrets)
    assert record["version"] == 10
    assert state.manifest_objects(record) == {
        ("Kafka", f"{R}-kafka"),
        ("KafkaTopic", f"{R}-kafka-topic"),
    }
    status = state.release_status(record)
    assert not status.ready
    assert status.line() == (
        'release: Helm release questlog revision 10 failed: Upgrade "questlog" failed: timed out'
    )
    assert state.latest_helm_record([]) is None


def test_a_secret_that_is_no_helm_record_says_which():
    bad = {
        "metadata": {"name": "sh.helm.release.v1.x.v1", "labels": {}},
        "data": {"release": base64.b64encode(b"not base64 twice!").decode()},
    }
    with pytest.raises(ValueError, match=r"sh\.helm\.release\.v1\.x\.v1 is not a Helm"):
        state.helm_record(bad)


# ---- Kafka and the topic (Strimzi) ------------------------------------------------------------


def test_kafka_ready():
    status = state.strimzi_status("kafka", "Kafka", f"{R}-kafka", kafka())
    assert status.ready
    assert status.reason == "Kafka questlog-kafka Ready"
    assert status.detail["bootstrap"] == ["questlog-kafka-kafka-bootstrap.questlog.svc:9092"]


def test_kafka_not_ready_gives_strimzis_condition():
    creating = [
        {
            "type": "NotReady",
            "status": "True",
            "reason": "Creating",
            "message": "Kafka cluster is being deployed",
        }
    ]
    status = state.strimzi_status("kafka", "Kafka", f"{R}-kafka", kafka(conditions=creating))
    assert not status.ready
    assert status.line() == (
        "kafka: Kafka questlog-kafka not Ready: Creating: Kafka cluster is being deployed"
    )
    ready_false = [
        {
            "type": "Ready",
            "status": "False",
            "reason": "InvalidResourceException",
            "message": "Tiered storage is not supported",
        },
        {"type": "Warning", "status": "True", "reason": "Deprecated"},
    ]
    status = state.strimzi_status("kafka", "Kafka", f"{R}-kafka", kafka(conditions=ready_false))
    assert status.reason == (
        "Kafka questlog-kafka not Ready: InvalidResourceException: Tiered storage is not supported"
    )


def test_kafka_without_status_names_the_operator_and_namespace():
    obj = kafka()
    del obj["status"]
    status = state.strimzi_status("kafka", "Kafka", f"{R}-kafka", obj)
    assert status.reason == (
        "Kafka questlog-kafka not Ready: no status yet (is the Strimzi "
        "operator running and watching questlog?)"
    )


def test_kafka_ready_for_an_older_spec_is_not_ready():
    status = state.strimzi_status("kafka", "Kafka", f"{R}-kafka", kafka(generation=3, observed=2))
    assert not status.ready
    assert "has not reconciled its latest spec yet (generation 3, observed 2)" in status.reason


def test_kafka_ready_with_a_warning_says_so():
    conditions = [
        {
            "type": "Warning",
            "status": "True",
            "reason": "KafkaStorage",
            "message": "storage class changed",
        },
        {"type": "Ready", "status": "True"},
    ]
    status = state.strimzi_status("kafka", "Kafka", f"{R}-kafka", kafka(conditions=conditions))
    assert status.ready
    assert status.reason.endswith("(warning: KafkaStorage: storage class changed)")


def test_missing_custom_resources_say_whether_their_crd_is_there():
    assert state.strimzi_status("kafka", "Kafka", "k", None).reason == "Kafka k not found"
    no_crd = state.strimzi_status("kafka", "Kafka", "k", None, crd_installed=False)
    assert no_crd.reason == (
        "Kafka k not found (the kafkas.kafka.strimzi.io CRD is not "
        "installed: install the Strimzi operator, see k8s/bootstrap)"
    )
    no_spark = state.spark_status("extractor", "x", None, crd_installed=False)
    assert (
        "sparkapplications.sparkoperator.k8s.io CRD is not installed: install the Spark "
        "operator" in no_spark.reason
    )


def test_topic_ready_and_not():
    assert state.strimzi_status("topic", "KafkaTopic", f"{R}-kafka-topic", topic()).reason == (
        "KafkaTopic questlog-kafka-topic Ready (topic events)"
    )
    failing = [
        {
            "type": "Ready",
            "status": "False",
            "reason": "KafkaError",
            "message": "org.apache.kafka.common.errors.PolicyViolationException",
        }
    ]
    status = state.strimzi_status(
        "topic", "KafkaTopic", f"{R}-kafka-topic", topic(conditions=failing)
    )
    assert status.line() == (
        "topic: KafkaTopic questlog-kafka-topic not Ready: KafkaError: "
        "org.apache.kafka.common.errors.PolicyViolationException"
    )


# ---- the extractor (Spark Operator) -----------------------------------------------------------


def test_spark_running_is_ready_with_restarts_and_executors():
    status = state.spark_status("extractor", f"{R}-extractor", spark_app(attempts=3))
    assert status.ready
    assert status.reason == (
        "SparkApplication questlog-extractor RUNNING (restarts 2), "
        "driver questlog-extractor-driver, 2 executors running"
    )
    assert status.detail["restarts"] == 2
    assert status.detail["executors"] == {"RUNNING": 2}


def test_spark_submission_failed_gives_the_operators_error():
    app = spark_app(state_="SUBMISSION_FAILED", error="failed to run spark-submit: exit 1")
    status = state.spark_status("extractor", f"{R}-extractor", app)
    assert not status.ready
    assert status.line() == (
        "extractor: SparkApplication questlog-extractor state "
        "SUBMISSION_FAILED: failed to run spark-submit: exit 1"
    )


def test_spark_crash_loop_counts_restarts():
    app = spark_app(state_="PENDING_RERUN", attempts=5, executors={})
    status = state.spark_status("extractor", f"{R}-extractor", app)
    assert status.reason == "SparkApplication questlog-extractor state PENDING_RERUN (restarts 4)"


def test_spark_submitted_and_never_picked_up():
    assert state.spark_status(
        "extractor", "x", spark_app(state_="SUBMITTED", attempts=1)
    ).reason == ("SparkApplication x state SUBMITTED")
    fresh = spark_app(state_=None)
    fresh["status"] = {}
    assert state.spark_status("extractor", "x", fresh).reason == (
        "SparkApplication x not submitted yet (no state: is the Spark Operator running "
        "with questlog in spark.jobNamespaces?)"
    )


# ---- Deployments and StatefulSets ----------------------------------------------------------


def test_deployment_ready_and_not():
    ok = state.deployment_status(
        "api", "questlog-api", workload("Deployment", "questlog-api", ready=2, replicas=2)
    )
    assert (ok.ready, ok.reason) == (True, "Deployment questlog-api: 2/2 ready")
    assert ok.detail == {"ready_replicas": 2, "replicas": 2}
    half = state.deployment_status(
        "api", "questlog-api", workload("Deployment", "questlog-api", ready=1, replicas=2)
    )
    assert half.line() == "api: Deployment questlog-api: 1/2 replicas ready"
    assert state.deployment_status("api", "questlog-api", None).reason == (
        "Deployment questlog-api not found"
    )


def test_statefulset_ready_rollout_and_stale():
    sts = workload("StatefulSet", "questlog-hdfs-datanode", ready=3, replicas=3)
    assert state.statefulset_status("datanode", "d", sts).reason == "StatefulSet d: 3/3 ready"
    none_ready = workload("StatefulSet", "n", ready=0)
    assert state.statefulset_status("namenode", "n", none_ready).line() == (
        "namenode: StatefulSet n: 0/1 pods ready"
    )
    rolling = workload("StatefulSet", "d", ready=3, replicas=3, updated=1)
    assert state.statefulset_status("datanode", "d", rolling).reason == (
        "StatefulSet d: rollout in progress (1/3 updated, 3 ready)"
    )
    stale = workload("StatefulSet", "d", ready=3, replicas=3, generation=2, observed=1)
    assert "has not seen its latest spec" in state.statefulset_status("datanode", "d", stale).reason
    zero = workload("StatefulSet", "d", ready=0, replicas=0)
    assert state.statefulset_status("datanode", "d", zero).reason == (
        "StatefulSet d: scaled to 0 replicas"
    )


def test_pods_say_why_a_workload_is_not_ready():
    waiting = {
        "name": "namenode",
        "ready": False,
        "state": {
            "waiting": {
                "reason": "ImagePullBackOff",
                "message": 'Back-off pulling image "apache/hadoop:3"',
            }
        },
    }
    pods = [pod("questlog-hdfs-namenode-0", {}, phase="Pending", statuses=[waiting])]
    base = state.statefulset_status("namenode", "n", workload("StatefulSet", "n", ready=0))
    status = state.with_pods(base, pods)
    assert status.reason == (
        "StatefulSet n: 0/1 pods ready; pod questlog-hdfs-namenode-0 "
        "container namenode: ImagePullBackOff: Back-off pulling image "
        '"apache/hadoop:3"'
    )
    ready = state.statefulset_status("namenode", "n", workload("StatefulSet", "n"))
    assert state.with_pods(ready, pods) is ready


# ---- logs: which pods -------------------------------------------------------------------------

DRIVER = state.driver_labels(f"{R}-extractor")


def test_current_driver_is_the_recorded_then_the_current_submission_then_the_newest():
    old = pod(
        "old-driver", {**DRIVER, state.SPARK_SUBMISSION_ID: "sub-1"}, created="2025-01-02T00:00:00Z"
    )
    new = pod(
        "questlog-extractor-driver",
        {**DRIVER, state.SPARK_SUBMISSION_ID: "sub-2"},
        created="2025-01-01T00:00:00Z",
    )
    app = spark_app(submission="sub-2")
    assert state.current_driver(app, [old, new]) is new
    app["status"]["driverInfo"] = {}
    assert state.current_driver(app, [old, new]) is new  # by submission id, not age
    assert state.current_driver(None, [new, old]) is old  # no app: the newest
    assert state.current_driver(app, []) is None


def test_log_container_is_the_annotated_default_else_the_first():
    assert state.log_container(pod("p", {}, containers=("kafka", "sidecar"))) == "kafka"
    annotated = pod(
        "p",
        {},
        containers=("istio-proxy", "api"),
        annotations={"kubectl.kubernetes.io/default-container": "api"},
    )
    assert state.log_container(annotated) == "api"


def test_tables_rows_and_a_wrong_answer():
    assert state.tables(TABLES)[1] == {
        "name": "quarantine",
        "rows": 0,
        "version": None,
        "freshness_seconds": None,
    }
    with pytest.raises(ValueError, match="not a /v1/tables answer"):
        state.tables({"error": "x"})


# ---- status ------------------------------------------------------------------------------------


def test_status_all_ready_prints_a_table_and_exits_0(capsys):
    cluster = FakeCluster(secrets=[helm_secret(manifest_of())])
    code, out, _ = run(capsys, ["status"], cluster)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "questlog release 'questlog' in namespace 'questlog': ready"
    assert lines[2].split() == ["PART", "READY", "STATUS"]
    assert "release        yes    Helm release questlog revision 1 deployed" in lines
    assert (
        "extractor      yes    SparkApplication questlog-extractor RUNNING (restarts 0), "
        "driver questlog-extractor-driver, 2 executors running"
    ) in lines
    assert "datanode       yes    StatefulSet questlog-hdfs-datanode: 2/2 ready" in lines
    assert (
        "tables (query service, via the API server's service proxy to service "
        "questlog-query:http):" in lines
    )
    assert lines[-3].split() == ["TABLE", "ROWS", "VERSION", "FRESHNESS"]
    assert lines[-2].split() == ["session_start", "120", "7", "4.2s"]
    assert lines[-1].split() == ["quarantine", "0", "-", "-"]


def test_status_not_ready_exits_1_and_says_why_including_the_pods(capsys):
    objects = healthy_objects()
    objects[("Kafka", f"{R}-kafka")] = kafka(
        conditions=[
            {
                "type": "NotReady",
                "status": "True",
                "reason": "Creating",
                "message": "Kafka cluster is being deployed",
            }
        ]
    )
    objects[("Deployment", f"{R}-query")] = workload(
        "Deployment", f"{R}-query", ready=0, replicas=2
    )
    labels = objects[("Deployment", f"{R}-query")]["spec"]["selector"]["matchLabels"]
    unscheduled = pod("questlog-query-abc", labels, phase="Pending")
    unscheduled["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory.",
        }
    ]
    cluster = FakeCluster(
        objects=objects,
        pods=[unscheduled],
        fail={
            "service_get": KubeError(
                "the API server's proxy answered 503 Service Unavailable: "
                'no endpoints available for service "questlog-query"'
            )
        },
    )
    code, out, _ = run(capsys, ["status"], cluster)
    assert code == 1
    assert "NOT READY (2 of 9 parts)" in out.splitlines()[0]
    assert (
        "kafka          no     Kafka questlog-kafka not Ready: Creating: Kafka cluster "
        "is being deployed"
    ) in out
    assert (
        "query          no     Deployment questlog-query: 0/2 replicas ready; pod "
        "questlog-query-abc: not scheduled: Unschedulable: 0/1 nodes are available: 1 "
        "Insufficient memory."
    ) in out
    assert (
        "tables: the query service cannot be reached through the API server's service "
        "proxy to service questlog-query:http: the API server's proxy answered 503 "
        'Service Unavailable: no endpoints available for service "questlog-query"'
    ) in out
    assert "note: no Helm release 'questlog' in namespace 'questlog'; expecting every part" in out


def test_status_json_for_scripts(capsys):
    objects = healthy_objects()
    objects[("SparkApplication", f"{R}-extractor")] = spark_app(
        state_="FAILING", attempts=2, error="driver container failed with ExitCode: 1"
    )
    cluster = FakeCluster(objects=objects, secrets=[helm_secret(manifest_of())])
    code, out, _ = run(capsys, ["status", "--json"], cluster)
    assert code == 1
    doc = json.loads(out)
    assert (doc["namespace"], doc["release"], doc["ready"]) == (NS, R, False)
    assert doc["helm"] == {
        "revision": 1,
        "status": "deployed",
        "chart": "0.1.0",
        "app_version": "0.1.0",
        "description": "Install complete",
    }
    parts = {p["part"]: p for p in doc["parts"]}
    assert list(parts) == ["release", *(p.name for p in PARTS)]
    assert parts["extractor"]["ready"] is False
    assert parts["extractor"]["reason"] == (
        "SparkApplication questlog-extractor state FAILING "
        "(restarts 1): driver container failed with "
        "ExitCode: 1"
    )
    assert parts["extractor"]["detail"]["restarts"] == 1
    assert parts["api"]["detail"] == {"ready_replicas": 2, "replicas": 2}
    assert doc["tables"]["reachable"] is True
    assert doc["tables"]["tables"][0]["name"] == "session_start"


def test_status_leaves_out_parts_the_release_does_not_have(capsys):
    external = [p for p in PARTS if p.name not in ("kafka", "topic", "namenode", "datanode")]
    objects = {
        k: v
        for k, v in healthy_objects().items()
        if k[0] not in ("Kafka", "KafkaTopic", "StatefulSet")
    }
    cluster = FakeCluster(objects=objects, secrets=[helm_secret(manifest_of(external))])
    code, out, _ = run(capsys, ["status"], cluster)
    assert code == 0
    assert "kafka " not in out
    assert "namenode" not in out


def test_status_without_the_query_service_has_no_tables(capsys):
    parts = [p for p in PARTS if p.name != "query"]
    cluster = FakeCluster(secrets=[helm_secret(manifest_of(parts))])
    code, out, _ = run(capsys, ["status"], cluster)
    assert code == 0
    assert "note: the query service is not part of this release: no tables" in out
    assert "service_get" not in cluster.calls


def test_a_refused_helm_record_still_reports_every_part(capsys):
    cluster = FakeCluster(
        fail={"secrets": KubeError("Kubernetes API answered 403 Forbidden: secrets is forbidden")}
    )
    code, out, _ = run(capsys, ["status"], cluster)
    assert code == 0
    assert "note: Helm's release record is unreadable (Kubernetes API answered 403" in out


def test_missing_objects_with_missing_crds(capsys):
    cluster = FakeCluster(objects={}, crds=(), tables=TABLES)
    code, out, _ = run(capsys, ["status"], cluster)
    assert code == 1
    assert (
        "kafka          no     Kafka questlog-kafka not found (the kafkas.kafka.strimzi.io "
        "CRD is not installed: install the Strimzi operator, see k8s/bootstrap)"
    ) in out
    assert "api            no     Deployment questlog-api not found" in out


def test_unreachable_cluster_exits_2_with_one_line(capsys):
    down = Unreachable("cannot reach the Kubernetes API at https://127.0.0.1:1: refused")
    for command in (["status"], ["wait", "--timeout", "1"], ["logs", "api"]):
        cluster = FakeCluster(fail={"secrets": down, "deployment": down})
        code, _, err = run(capsys, command, cluster)
        assert code == 2, command
        assert err.splitlines()[-1] == (
            "questlog-k8s: cannot reach the Kubernetes API at https://127.0.0.1:1: refused"
        )


def test_a_real_client_on_a_closed_port_exits_2_without_a_traceback(tmp_path, capsys):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    code = cli.main(["status", "--kubeconfig", str(kubeconfig)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("questlog-k8s: cannot reach the Kubernetes API at https://127.0.0.1:1")
    assert "Traceback" not in err
    assert out == ""


def test_no_kubeconfig_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code = cli.main(["status", "--kubeconfig", str(tmp_path / "missing")])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("questlog-k8s: no usable kubeconfig")


@pytest.mark.parametrize(
    "argv", [["logs", "spark"], ["wait", "--timeout", "0"], ["logs", "api", "--tail", "-1"], []]
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv, cluster=FakeCluster())
    assert exc.value.code == 2


def test_freshness_reads_at_a_glance():
    assert [cli.freshness(s) for s in (None, 0.5, 59.94, 61, 3601, 2 * 86400 + 3600)] == [
        "-",
        "0.5s",
        "59.9s",
        "1m01s",
        "1h00m",
        "2d01h",
    ]


# ---- wait --------------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def statuses(*ready):
    return [
        PartStatus(f"p{i}", "Deployment", f"p{i}", r, "ok" if r else "waiting")
        for i, r in enumerate(ready)
    ]


def test_wait_for_logs_changes_only_and_returns_when_ready():
    polls = iter([statuses(False, True), statuses(False, True), statuses(True, True)])
    clock, logged = Clock(), []
    left = cli.wait_for(lambda: next(polls), 60, 5, logged.append, clock, clock.sleep)
    assert left == []
    assert logged == ["p0: waiting", "p1: ready: ok", "p0: ready: ok"]
    assert clock.now == 10


def test_wait_for_times_out_with_the_parts_not_ready():
    clock = Clock()
    left = cli.wait_for(lambda: statuses(False, True), 12, 5, lambda _: None, clock, clock.sleep)
    assert [p.part for p in left if not p.ready] == ["p0"]
    assert clock.now == 12


def test_wait_for_rides_out_a_blip_but_not_a_dead_start():
    clock = Clock()
    with pytest.raises(KubeError):
        cli.wait_for(
            lambda: (_ for _ in ()).throw(KubeError("down")), 10, 1, print, clock, clock.sleep
        )
    answers = iter([statuses(False), KubeError("blip"), statuses(True)])

    def check():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    logged = []
    assert cli.wait_for(check, 10, 1, logged.append, clock, clock.sleep) == []
    assert logged == [
        "p0: waiting",
        "cannot read the cluster (polling again): blip",
        "p0: ready: ok",
    ]
    clock2 = Clock()
    answers2 = iter([statuses(False)] + [KubeError("gone")] * 20)
    assert (
        cli.wait_for(lambda: check_from(answers2), 5, 1, lambda _: None, clock2, clock2.sleep)
        is None
    )


def check_from(answers):
    answer = next(answers)
    if isinstance(answer, Exception):
        raise answer
    return answer


class Becoming(FakeCluster):
    """Not ready for the first `polls` reads of the SparkApplication, then RUNNING."""

    def __init__(self, polls, **kwargs):
        super().__init__(**kwargs)
        self.left = polls
        self.objects[("SparkApplication", f"{R}-extractor")] = spark_app(state_="SUBMITTED")

    def custom(self, group, version, plural, namespace, name):
        if plural == "sparkapplications":
            self.left -= 1
            if self.left < 0:
                self.objects[("SparkApplication", name)] = spark_app()
        return super().custom(group, version, plural, namespace, name)


def test_wait_prints_each_change_and_exits_0_when_ready(capsys):
    cluster = Becoming(2, secrets=[helm_secret(manifest_of())])
    code, out, _ = run(capsys, ["wait", "--timeout", "30", "--interval", "0.01"], cluster)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "[wait] release 'questlog' in namespace 'questlog', up to 30 s"
    assert "[wait] extractor: SparkApplication questlog-extractor state SUBMITTED" in lines
    assert lines[-2] == (
        "[wait] extractor: ready: SparkApplication questlog-extractor "
        "RUNNING (restarts 0), driver questlog-extractor-driver, 2 executors "
        "running"
    )
    assert lines[-1] == "[wait] every part is ready"
    assert sum("extractor" in line for line in lines) == 2  # the unchanged polls are quiet


def test_wait_timeout_exits_1_with_one_line_per_part_not_ready(capsys):
    objects = healthy_objects()
    objects[("Kafka", f"{R}-kafka")] = kafka(
        conditions=[
            {
                "type": "Ready",
                "status": "False",
                "reason": "FatalProblem",
                "message": "Failed to reconcile",
            }
        ]
    )
    objects[("SparkApplication", f"{R}-extractor")] = spark_app(
        state_="SUBMISSION_FAILED", error="failed to run spark-submit"
    )
    cluster = FakeCluster(objects=objects)
    code, _, err = run(capsys, ["wait", "--timeout", "0.05", "--interval", "0.01"], cluster)
    assert code == 1
    assert err.splitlines() == [
        "questlog-k8s: not ready after 0.05 s:",
        "kafka: Kafka questlog-kafka not Ready: FatalProblem: Failed to reconcile",
        "extractor: SparkApplication questlog-extractor state SUBMISSION_FAILED: failed to "
        "run spark-submit",
    ]


# ---- logs --------------------------------------------------------------------------------------


def test_logs_api_reads_every_pod_of_the_deployment_with_a_prefix(capsys):
    labels = healthy_objects()[("Deployment", f"{R}-api")]["spec"]["selector"]["matchLabels"]
    pods = [
        pod("questlog-api-b", labels, containers=("api",)),
        pod("questlog-api-a", labels, containers=("api",)),
        pod("someone-else", {"app": "x"}),
    ]
    logs = {
        "questlog-api-a": [b'{"msg": "a1"}\n', b'{"msg": "a2"}\n'],
        "questlog-api-b": [b'{"msg": "b1"}'],
    }
    cluster = FakeCluster(pods=pods, logs=logs)
    code, out, _ = run(capsys, ["logs", "api", "--tail", "5"], cluster)
    assert code == 0
    assert out.splitlines() == [
        '[questlog-api-a] {"msg": "a1"}',
        '[questlog-api-a] {"msg": "a2"}',
        '[questlog-api-b] {"msg": "b1"}',
    ]
    assert ("pod_log", "questlog-api-a", "api", 5, False) in cluster.calls


def test_logs_follow_streams_every_pod_at_once(capsys):
    labels = healthy_objects()[("Deployment", f"{R}-query")]["spec"]["selector"]["matchLabels"]
    pods = [pod(f"questlog-query-{i}", labels) for i in range(3)]
    cluster = FakeCluster(pods=pods, logs={p["metadata"]["name"]: [b"x\n"] for p in pods})
    code, out, _ = run(capsys, ["logs", "query", "-f"], cluster)
    assert code == 0
    assert sorted(out.splitlines()) == [f"[questlog-query-{i}] x" for i in range(3)]


def test_logs_extractor_reads_the_driver_of_the_current_run_without_prefix(capsys):
    old = pod(
        "questlog-extractor-driver-old",
        {**DRIVER, state.SPARK_SUBMISSION_ID: "sub-1"},
        created="2025-01-03T00:00:00Z",
        containers=("spark-kubernetes-driver",),
    )
    current = pod(
        "questlog-extractor-driver",
        {**DRIVER, state.SPARK_SUBMISSION_ID: "sub-2"},
        containers=("spark-kubernetes-driver",),
    )
    executor = pod("questlog-extractor-exec-1", state.executor_labels(f"{R}-extractor"))
    cluster = FakeCluster(
        pods=[old, current, executor], logs={"questlog-extractor-driver": [b"batch 1 committed\n"]}
    )
    code, out, _ = run(capsys, ["logs", "extractor"], cluster)
    assert (code, out) == (0, "batch 1 committed\n")
    assert (
        "pod_log",
        "questlog-extractor-driver",
        "spark-kubernetes-driver",
        None,
        False,
    ) in cluster.calls
    code, out, _ = run(
        capsys,
        ["logs", "executors"],
        FakeCluster(
            pods=[old, current, executor], logs={"questlog-extractor-exec-1": [b"task 3\n"]}
        ),
    )
    assert (code, out) == (0, "[questlog-extractor-exec-1] task 3\n")


def test_logs_kafka_picks_the_broker_pods():
    brokers = pod("questlog-kafka-questlog-kafka-pool-0", state.kafka_labels(f"{R}-kafka"))
    entity = pod(
        "questlog-kafka-entity-operator-1",
        {
            state.STRIMZI_CLUSTER: f"{R}-kafka",
            state.STRIMZI_KIND: "Kafka",
            state.STRIMZI_NAME: f"{R}-kafka-entity-operator",
        },
    )
    picked = cli.log_pods(FakeCluster(pods=[entity, brokers]), NS, R, "kafka")
    assert [p["metadata"]["name"] for p in picked] == ["questlog-kafka-questlog-kafka-pool-0"]


def test_logs_refused_by_the_server_exit_1_naming_the_pod(capsys):
    labels = healthy_objects()[("StatefulSet", f"{R}-hdfs-namenode")]["spec"]["selector"][
        "matchLabels"
    ]
    refused = KubeError(
        'Kubernetes API answered 400 Bad Request: container "namenode" in '
        'pod "questlog-hdfs-namenode-0" is waiting to start: '
        "ContainerCreating"
    )
    cluster = FakeCluster(
        pods=[pod("questlog-hdfs-namenode-0", labels, containers=("namenode",))],
        logs={"questlog-hdfs-namenode-0": refused},
    )
    code, out, err = run(capsys, ["logs", "namenode"], cluster)
    assert code == 1
    assert out == ""
    assert err == (
        f"questlog-k8s: logs of pod questlog-hdfs-namenode-0 (container namenode): {refused}\n"
    )


def test_logs_of_a_pod_on_no_node_say_so_rather_than_print_nothing(capsys):
    # The API answers such a pod's log with 200 and no bytes: the CLI does not ask.
    labels = healthy_objects()[("Deployment", f"{R}-api")]["spec"]["selector"]["matchLabels"]
    pending = pod("questlog-api-a", labels, containers=("api",), phase="Pending", node=None)
    pending["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient cpu.",
        }
    ]
    running = pod("questlog-api-b", labels, containers=("api",))
    cluster = FakeCluster(pods=[pending, running], logs={"questlog-api-b": [b"up\n"]})
    code, out, err = run(capsys, ["logs", "api"], cluster)
    assert code == 1
    assert out == "[questlog-api-b] up\n"
    assert err == (
        "questlog-k8s: logs of pod questlog-api-a (container api): not on a node "
        "yet (Pending: Unschedulable: 0/3 nodes are available: 3 Insufficient "
        "cpu.): no log to read\n"
    )
    assert not any(
        c[:2] == ("pod_log", "questlog-api-a") for c in cluster.calls if isinstance(c, tuple)
    )
    assert state.log_blocker(pod("p", {}, phase="Pending", node=None)) == (
        "not on a node yet (Pending): no log to read"
    )


@pytest.mark.parametrize(
    ("target", "objects", "message"),
    [
        ("api", {}, "Deployment questlog-api not found in namespace questlog"),
        (
            "datanode",
            None,
            "StatefulSet questlog-hdfs-datanode has no pods (selector "
            "app.kubernetes.io/instance=questlog,"
            "app.kubernetes.io/name=questlog-hdfs-datanode)",
        ),
        ("extractor", None, "no driver pod of SparkApplication questlog-extractor (state RUNNING)"),
        ("extractor", {}, "SparkApplication questlog-extractor not found in namespace questlog"),
        ("executors", None, "no executor pods of SparkApplication questlog-extractor"),
        ("kafka", None, "no broker pods of Kafka questlog-kafka"),
        ("locust", {}, "no Locust pods"),
    ],
)
def test_logs_without_pods_exit_1_and_say_what_was_looked_for(target, objects, message, capsys):
    code, _, err = run(capsys, ["logs", target], FakeCluster(objects=objects))
    assert code == 1
    assert err.startswith(f"questlog-k8s: logs {target}: {message}")
