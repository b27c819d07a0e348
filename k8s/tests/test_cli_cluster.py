"""questlog-k8s on a real kube-apiserver (the session's ``kube_cluster``), on the chart as
`helm install` makes it.

No operator, controller or kubelet runs, so the test plays their part where the CLI reads
it: it patches the status subresources as Strimzi (Kafka, KafkaTopic conditions), the Spark
Operator (the SparkApplication's applicationState, executionAttempts, driverInfo) and the
Deployment and StatefulSet controllers (ready replicas) would; it creates the driver and
executor pods with the operator's labels; and for the tables, a pod object whose address is
a real query service started here (gunicorn, an empty lake), behind an EndpointSlice, so
that the API server's service proxy reaches it. Logs cannot be served without a kubelet:
the pods sit on a Node whose kubelet port answers nothing, and the CLI must name the pod it
picked and pass on the server's error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from questlog_k8s import chartcheck, cli, cluster, kube, state, tools
from questlog_k8s.bootstrap import POD_SECURITY_LABELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELEASE = "questlog"  # the CLI's default, so only --namespace is passed
CRD_OPERATORS = ("strimzi", "spark-operator")
MERGE = "application/merge-patch+json"
REPO = Path(__file__).resolve().parents[2]
APP = f"{RELEASE}-extractor"
ALL_PARTS = [p.name for p in state.PARTS]

Obj = dict[str, Any]


def _until(predicate, timeout: float, what: str, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s\n{detail()}")
        time.sleep(0.3)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _host_address() -> str | None:
    """This machine's own IPv4 address outside loopback (an EndpointSlice refuses
    127.0.0.0/8), found the way the kernel would route out; nothing is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1, never reached: a UDP connect sends nothing
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith("127.") else address


RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


class Release:
    """One `helm install` of the chart in its own restricted namespace, the CLI pointed at
    it, and the operators' and controllers' writes the test makes in their place."""

    def __init__(self, plane: Any, api: client.ApiClient, home: Path):
        self.plane = plane
        self.kubeconfig = str(plane.kubeconfig)
        self.namespace = f"questlog-cli-{uuid.uuid4().hex[:6]}"
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        # helm's cache and config in the test's folder, not the user's
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
        }

    def helm(self, *args: str) -> None:
        proc = subprocess.run(
            [
                str(tools.path("helm")),
                "--kubeconfig",
                self.kubeconfig,
                "--namespace",
                self.namespace,
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stderr}"

    def argv(self, *args: str) -> list[str]:
        return [*args, "--kubeconfig", self.kubeconfig, "--namespace", self.namespace]

    def cli(self, *args: str) -> tuple[int, str, str]:
        """questlog-k8s in this process, its stdout and stderr captured."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(self.argv(*args))
        return code, out.getvalue(), err.getvalue()

    # ---- playing the operators and controllers

    def custom_status(self, kind: str, name: str, status: Obj) -> None:
        group, version, plural = state.CUSTOM_KINDS[kind]
        self.custom.patch_namespaced_custom_object_status(
            group, version, self.namespace, plural, name, {"status": status}, _content_type=MERGE
        )

    def workload_ready(self, kind: str, name: str, ready: int | None = None) -> None:
        """The status the Deployment or StatefulSet controller writes once `ready` (default:
        all) of its pods are ready."""
        read, patch = (
            (self.apps.read_namespaced_deployment, self.apps.patch_namespaced_deployment_status)
            if kind == "Deployment"
            else (
                self.apps.read_namespaced_stateful_set,
                self.apps.patch_namespaced_stateful_set_status,
            )
        )
        obj = read(name, self.namespace)
        want = obj.spec.replicas
        ready = want if ready is None else ready
        status = {
            "observedGeneration": obj.metadata.generation,
            "replicas": want,
            "updatedReplicas": want,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if kind == "StatefulSet":
            status |= {
                "currentReplicas": want,
                "currentRevision": f"{name}-1",
                "updateRevision": f"{name}-1",
            }
        patch(name, self.namespace, {"status": status}, _content_type=MERGE)

    def selector(self, deployment: str) -> dict[str, str]:
        return dict(
            self.apps.read_namespaced_deployment(
                deployment, self.namespace
            ).spec.selector.match_labels
        )

    def pod(
        self, name: str, labels: dict[str, str], container: str, node: str | None = None
    ) -> None:
        spec: Obj = {
            "securityContext": RESTRICTED_POD,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": container,
                    "image": "questlog-test:0",
                    "securityContext": RESTRICTED_CONTAINER,
                }
            ],
        }
        if node:
            spec["nodeName"] = node  # as the scheduler binds it
        self.core.create_namespaced_pod(
            self.namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": labels},
                "spec": spec,
            },
        )

    def status_table(self, out: str) -> dict[str, tuple[str, str]]:
        """status's table: part -> (READY, STATUS)."""
        lines = out.splitlines()
        start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["PART"])
        rows = {}
        for line in lines[start + 1 :]:
            if not line.strip():
                break
            part, ready, reason = re.split(r"\s{2,}", line, maxsplit=2)
            rows[part] = (ready, reason)
        return rows


@pytest.fixture(scope="module")
def api(kube_cluster):
    api = kube.connect(str(kube_cluster.kubeconfig))
    cluster.apply_crds(api, CRD_OPERATORS)
    yield api
    api.close()


@pytest.fixture
def release(kube_cluster, api, tmp_path):
    rel = Release(kube_cluster, api, tmp_path)
    kube_cluster.ensure_namespace(rel.namespace, POD_SECURITY_LABELS)
    rel.helm("install", RELEASE, str(chartcheck.CHART))
    try:
        yield rel
    finally:
        rel.helm("uninstall", RELEASE)
        # the test's own pods: no garbage collector runs to remove them
        rel.core.delete_collection_namespaced_pod(rel.namespace, grace_period_seconds=0)


class Lines:
    """A child's stdout, line by line, as it comes."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, wanted: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(
                    f"wanted {wanted!r}; the wait printed:\n" + "\n".join(self.seen)
                )
            self.seen.append(line)


# ---- status and wait, each part from not ready to ready ----------------------------------


def test_status_and_wait_follow_every_part_from_not_ready_to_ready(release):
    ns = release.namespace

    # 1. as installed: objects, but no operator or controller has written a status
    code, out, _ = release.cli("status")
    assert code == 1, out
    assert out.splitlines()[0] == (
        f"questlog release 'questlog' in namespace '{ns}': NOT READY (9 of 10 parts)"
    )
    rows = release.status_table(out)
    assert list(rows) == ["release", *ALL_PARTS]
    assert rows["release"] == ("yes", "Helm release questlog revision 1 deployed")
    assert rows["kafka"] == (
        "no",
        f"Kafka questlog-kafka not Ready: no status yet (is the "
        f"Strimzi operator running and watching {ns}?)",
    )
    assert rows["topic"] == (
        "no",
        f"KafkaTopic questlog-kafka-topic not Ready: no status yet "
        f"(is the Strimzi topic operator running and watching "
        f"{ns}?)",
    )
    assert rows["extractor"] == (
        "no",
        f"SparkApplication questlog-extractor not submitted yet "
        f"(no state: is the Spark Operator running with {ns} in "
        f"spark.jobNamespaces?)",
    )
    assert rows["api"] == (
        "no",
        "Deployment questlog-api: the controller has not seen its latest spec yet",
    )
    assert rows["datanode"] == (
        "no",
        "StatefulSet questlog-hdfs-datanode: the controller has not seen its latest spec yet",
    )
    assert (
        "tables: the query service cannot be reached through the API server's service "
        "proxy to service questlog-query:http: the API server's proxy answered 503 "
        'Service Unavailable: no endpoints available for service "questlog-query"'
    ) in out.splitlines()

    # 2. wait gives up with one line per part that is not ready
    code, _, err = release.cli("wait", "--timeout", "1", "--interval", "0.5")
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == "questlog-k8s: not ready after 1 s:"
    assert [line.split(":")[0] for line in lines[1:]] == ALL_PARTS
    assert f"kafka: {rows['kafka'][1]}" in lines

    # 3. a wait in the background sees each change as the "operators" make it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "questlog_k8s.cli",
            *release.argv("wait", "--timeout", "300", "--interval", "0.3"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait = Lines(proc)
        wait.expect(f"[wait] kafka: {rows['kafka'][1]}")

        release.custom_status(
            "Kafka",
            "questlog-kafka",
            {
                "observedGeneration": 1,
                "conditions": [
                    {
                        "type": "NotReady",
                        "status": "True",
                        "reason": "Creating",
                        "message": "Kafka cluster is being deployed",
                    }
                ],
            },
        )
        wait.expect(
            "[wait] kafka: Kafka questlog-kafka not Ready: Creating: Kafka cluster is "
            "being deployed"
        )
        release.custom_status(
            "Kafka",
            "questlog-kafka",
            {
                "observedGeneration": 1,
                "kafkaVersion": "4.1.0",
                "conditions": [{"type": "Ready", "status": "True"}],
                "listeners": [
                    {
                        "name": "plain",
                        "bootstrapServers": f"questlog-kafka-kafka-bootstrap.{ns}.svc:9092",
                    }
                ],
            },
        )
        wait.expect("[wait] kafka: ready: Kafka questlog-kafka Ready")

        release.custom_status(
            "KafkaTopic",
            "questlog-kafka-topic",
            {
                "observedGeneration": 1,
                "topicName": "events",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        )
        wait.expect("[wait] topic: ready: KafkaTopic questlog-kafka-topic Ready (topic events)")

        release.custom_status(
            "SparkApplication",
            APP,
            {
                "submissionAttempts": 1,
                "driverInfo": {},
                "applicationState": {
                    "state": "SUBMISSION_FAILED",
                    "errorMessage": "failed to run spark-submit: exit status 1",
                },
            },
        )
        wait.expect(
            "[wait] extractor: SparkApplication questlog-extractor state "
            "SUBMISSION_FAILED: failed to run spark-submit: exit status 1"
        )
        release.custom_status(
            "SparkApplication",
            APP,
            {
                "submissionID": "sub-2",
                "submissionAttempts": 3,
                "executionAttempts": 2,
                "driverInfo": {"podName": f"{APP}-driver"},
                "applicationState": {"state": "RUNNING", "errorMessage": None},
                "executorState": {f"{APP}-exec-1": "RUNNING"},
            },
        )
        wait.expect(
            "[wait] extractor: ready: SparkApplication questlog-extractor RUNNING "
            "(restarts 1), driver questlog-extractor-driver, 1 executor running"
        )

        api_want = release.apps.read_namespaced_deployment("questlog-api", ns).spec.replicas
        release.workload_ready("Deployment", "questlog-api", ready=0)
        wait.expect(f"[wait] api: Deployment questlog-api: 0/{api_want} replicas ready")
        release.workload_ready("Deployment", "questlog-api")
        wait.expect(f"[wait] api: ready: Deployment questlog-api: {api_want}/{api_want} ready")

        for kind, name in (
            ("Deployment", "questlog-query"),
            ("Deployment", "questlog-locust-master"),
            ("Deployment", "questlog-locust-worker"),
            ("StatefulSet", "questlog-hdfs-namenode"),
        ):
            release.workload_ready(kind, name)
        wait.expect("[wait] namenode: ready: StatefulSet questlog-hdfs-namenode: 1/1 ready")
        assert not any(line == "[wait] every part is ready" for line in wait.seen)
        release.workload_ready("StatefulSet", "questlog-hdfs-datanode")
        wait.expect("[wait] every part is ready")
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    # each change printed once: no repeated line while nothing changed
    changes = [line for line in wait.seen if line.startswith("[wait] kafka:")]
    assert len(changes) == len(set(changes)) == 3

    # 4. status agrees, for people and for scripts
    code, out, _ = release.cli("status")
    assert code == 0, out
    assert out.splitlines()[0] == f"questlog release 'questlog' in namespace '{ns}': ready"
    rows = release.status_table(out)
    assert all(ready == "yes" for ready, _ in rows.values()), rows
    code, out, _ = release.cli("status", "--json")
    doc = json.loads(out)
    assert (code, doc["ready"], doc["helm"]["status"]) == (0, True, "deployed")
    extractor = next(p for p in doc["parts"] if p["part"] == "extractor")
    assert (
        extractor["detail"].items()
        >= {
            "state": "RUNNING",
            "restarts": 1,
            "execution_attempts": 2,
            "driver": f"{APP}-driver",
        }.items()
    )
    assert doc["tables"]["reachable"] is False


def test_wait_timeout_after_a_failed_upgrade_names_the_release(release):
    """A failed `helm upgrade` is a part of its own: the record says why."""
    release.custom_status(
        "Kafka",
        "questlog-kafka",
        {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "InvalidResourceException",
                    "message": "Kafka version 3.0.0 is not supported",
                }
            ],
        },
    )
    proc = subprocess.run(
        [
            str(tools.path("helm")),
            "--kubeconfig",
            release.kubeconfig,
            "--namespace",
            release.namespace,
            "upgrade",
            RELEASE,
            str(chartcheck.CHART),
            "--set",
            "api.replicas=-1",
        ],
        capture_output=True,
        text=True,
        env=release.env,
        check=False,
    )
    assert proc.returncode != 0  # values.schema.json refuses it: no new revision is made
    code, _, err = release.cli("wait", "--timeout", "1", "--interval", "0.5")
    assert code == 1
    assert (
        "kafka: Kafka questlog-kafka not Ready: InvalidResourceException: Kafka version "
        "3.0.0 is not supported"
    ) in err.splitlines()
    assert not any(line.startswith("release:") for line in err.splitlines())


# ---- the tables, through the API server's service proxy --------------------------------


@pytest.fixture
def query_service(tmp_path):
    """The real query service (gunicorn, as its image runs it) on an empty lake, on this
    machine's own address: what the API server's proxy reaches stands in for a query pod."""
    host = _host_address()
    if host is None:
        pytest.skip("no IPv4 address outside loopback: an EndpointSlice cannot point here")
    port = _free_port(host)
    lake = tmp_path / "lake"
    lake.mkdir()
    env = {
        **os.environ,
        "QUESTLOG_QUERY_HOST": host,
        "QUESTLOG_QUERY_PORT": str(port),
        "QUESTLOG_QUERY_WORKERS": "1",
        "QUESTLOG_QUERY_LAKE_ROOT": lake.as_uri(),
        "QUESTLOG_QUERY_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "query.log").open("w")
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "-c",
            str(REPO / "services/query/gunicorn.conf.py"),
            "questlog_query:create_app()",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def answers() -> bool:
        assert proc.poll() is None, (tmp_path / "query.log").read_text()
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/v1/tables", timeout=5):
                return True
        except OSError:
            return False

    try:
        _until(
            answers,
            120,
            "the query service answering",
            lambda: (tmp_path / "query.log").read_text(),
        )
        yield host, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_status_reads_the_tables_through_the_service_proxy(release, query_service):
    ip, port = query_service
    ns = release.namespace
    # What the kubelet and the EndpointSlice controller would write for a ready query pod.
    release.pod(
        "questlog-query-0", release.selector("questlog-query"), "query", node="questlog-nowhere"
    )
    release.core.patch_namespaced_pod_status(
        "questlog-query-0",
        ns,
        {
            "status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        },
        _content_type=MERGE,
    )
    client.DiscoveryV1Api(release.api).create_namespaced_endpoint_slice(
        ns,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "questlog-query-test",
                "labels": {"kubernetes.io/service-name": "questlog-query"},
            },
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": [ip],
                    "conditions": {"ready": True},
                    "targetRef": {"kind": "Pod", "name": "questlog-query-0", "namespace": ns},
                }
            ],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    )

    def through_proxy() -> dict | None:
        doc = json.loads(release.cli("status", "--json")[1])
        return doc["tables"] if doc["tables"]["reachable"] else None

    tables = _until(
        through_proxy, 30, "the tables through the service proxy", lambda: release.cli("status")[1]
    )
    assert tables["via"] == ("the API server's service proxy to service questlog-query:http")
    names = [t["name"] for t in tables["tables"]]
    assert "quarantine" in names
    assert len(names) > 1
    # an empty lake: every table known to the service, none written yet
    assert all(t["version"] is None and t["rows"] == 0 for t in tables["tables"])
    _, out, _ = release.cli("status")
    lines = out.splitlines()
    at = lines.index(
        "tables (query service, via the API server's service proxy to service questlog-query:http):"
    )
    assert lines[at + 1].split() == ["TABLE", "ROWS", "VERSION", "FRESHNESS"]
    assert lines[at + 2].split()[1:] == ["0", "-", "-"]
    # the same service through a URL the user opened (as with a port-forward)
    _, out, _ = release.cli("status", "--json", "--query-url", f"http://{ip}:{port}")
    assert json.loads(out)["tables"]["tables"] == tables["tables"]


# ---- logs: the right pod, and the server's word when it cannot serve ------------------


@pytest.fixture
def dead_node(api):
    """A Node whose kubelet port answers nothing: the API server will try it for logs."""
    name = f"questlog-cli-node-{uuid.uuid4().hex[:6]}"
    port = _free_port()  # closed again at once
    core = client.CoreV1Api(api)
    core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    core.patch_node_status(
        name,
        {
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            }
        },
        _content_type=MERGE,
    )
    try:
        yield name, port
    finally:
        core.delete_node(name)


def test_logs_picks_the_right_pod_and_reports_the_servers_error(release, dead_node):
    node, port = dead_node
    ns = release.namespace
    release.custom_status(
        "SparkApplication",
        APP,
        {
            "submissionID": "sub-2",
            "executionAttempts": 2,
            "driverInfo": {"podName": f"{APP}-driver"},
            "applicationState": {"state": "RUNNING"},
        },
    )
    driver = state.driver_labels(APP)
    # the driver of the previous run, left behind, and the current one
    release.pod(
        f"{APP}-driver-old",
        {**driver, state.SPARK_SUBMISSION_ID: "sub-1"},
        "spark-kubernetes-driver",
        node,
    )
    release.pod(
        f"{APP}-driver",
        {**driver, state.SPARK_SUBMISSION_ID: "sub-2"},
        "spark-kubernetes-driver",
        node,
    )
    for i in (1, 2):
        release.pod(
            f"{APP}-exec-{i}",
            {**state.executor_labels(APP), state.SPARK_SUBMISSION_ID: "sub-2"},
            "spark-kubernetes-executor",
            node,
        )
    release.pod("questlog-api-0", release.selector("questlog-api"), "api", node)
    release.pod("questlog-query-0", release.selector("questlog-query"), "query")  # no node

    code, out, err = release.cli("logs", "extractor")
    assert (code, out) == (1, "")
    head = (
        f"questlog-k8s: logs of pod {APP}-driver (container spark-kubernetes-driver): "
        "Kubernetes API answered "
    )
    assert err.startswith(head), err
    # the server's own words: it tried the kubelet of the pod's node, which did not answer
    assert f"127.0.0.1:{port}/containerLogs/{ns}/{APP}-driver/spark-kubernetes-driver" in err
    assert "connection refused" in err
    assert len(err.splitlines()) == 1

    code, _, err = release.cli("logs", "executors", "--tail", "5")
    assert code == 1
    assert [line.split(" (")[0] for line in err.splitlines()] == [
        f"questlog-k8s: logs of pod {APP}-exec-1",
        f"questlog-k8s: logs of pod {APP}-exec-2",
    ]
    assert "containerLogs" in err
    assert "tailLines=5" in err

    code, _, err = release.cli("logs", "api", "--follow")
    assert code == 1
    assert err.startswith(
        "questlog-k8s: logs of pod questlog-api-0 (container api): Kubernetes API answered "
    )
    assert "follow=true" in err

    code, _, err = release.cli("logs", "query")
    assert (code, err) == (
        1,
        "questlog-k8s: logs of pod questlog-query-0 (container query): "
        "not on a node yet (Pending): no log to read\n",
    )

    code, _, err = release.cli("logs", "kafka")
    assert code == 1
    assert err.startswith(
        f"questlog-k8s: logs kafka: no broker pods of Kafka questlog-kafka in namespace {ns}"
    )
    code, _, err = release.cli("logs", "namenode")
    assert code == 1
    assert err.startswith(
        "questlog-k8s: logs namenode: StatefulSet questlog-hdfs-namenode has no pods"
    )


def test_a_server_that_refuses_the_credentials_is_a_clear_exit_2(release, tmp_path):
    kubeconfig = yaml.safe_load(Path(release.kubeconfig).read_text())
    for user in kubeconfig["users"]:
        user["user"] = {"token": "not-a-valid-token"}
    bad = tmp_path / "kubeconfig"
    bad.write_text(yaml.safe_dump(kubeconfig))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["status", "--kubeconfig", str(bad), "--namespace", release.namespace])
    assert code == 2
    assert err.getvalue().startswith("questlog-k8s: Kubernetes API answered 401 Unauthorized")
    assert "Traceback" not in err.getvalue()
