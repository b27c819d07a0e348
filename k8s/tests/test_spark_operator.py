"""The Spark Operator turns the chart's SparkApplication into the extractor's driver pod.

On the session's real kube-apiserver (the ``kube_cluster`` fixture): the operators' CRDs,
a namespace under the restricted Pod Security Standard, ``helm install`` of the chart, then
the Kubeflow Spark Operator's controller (built from its Go module, run as a local process)
watching that namespace. It submits the SparkApplication with pyspark's own spark-submit,
which creates the driver pod from the chart's pod template. The pod is checked against the
rendered chart and the wiring test's view of the extractor (questlog_k8s.wiring): image,
command, env, service account, security contexts, resources, the Spark settings.

No kubelet runs, so the driver pod stays Pending and the application SUBMITTED: whether the
image starts and data moves needs a cluster with a container runtime.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from questlog_k8s import chartcheck, cluster, kube, schemas, sparkop, tools, wiring
from questlog_k8s.bootstrap import POD_SECURITY_LABELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELEASE = "questlog"
NAMESPACE = "questlog-sparkop"
# Locust is not part of the extractor's wiring; the rest is installed as rendered by default.
SETS = ("locust.enabled=false",)
SPARK = ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
APP = f"{RELEASE}-extractor"
DRIVER_POD = f"{APP}-driver"
# The chart needs both operators' kinds (Kafka, KafkaNodePool and KafkaTopic too).
CRD_OPERATORS = ("spark-operator", "strimzi")
# What Spark itself sets in a driver container's env, beside the chart's variables.
SPARK_OWN_ENV = re.compile(r"^(PY)?SPARK_")


def _wait(predicate, timeout: float, what: str, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s\n{detail()}")
        time.sleep(0.5)


def _mib(size: str) -> int:
    """A Spark JVM size ("1g", "512m") in MiB."""
    number, unit = re.fullmatch(r"(\d+)([mgt])b?", size.lower()).groups()
    return int(number) * {"m": 1, "g": 1024, "t": 1024**2}[unit]


def _properties(text: str) -> dict[str, str]:
    """A Java properties file as Spark writes it: key=value, backslash escapes."""
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "!")):
            key, value = re.split(r"(?<!\\)=", line, maxsplit=1)
            out[re.sub(r"\\(.)", r"\1", key).strip()] = re.sub(r"\\(.)", r"\1", value)
    return out


def _helm(kubeconfig: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(tools.path("helm")), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(kube_cluster):
    """The chart installed in its own restricted namespace, with the CRDs it needs."""
    # the CRDs applied are those of the controller the test runs
    assert tools.TOOLS[sparkop.TOOL].version == f"v{schemas.SPARK_OPERATOR_VERSION}"
    api = kube.connect(kubeconfig=str(kube_cluster.kubeconfig))
    core = client.CoreV1Api(api)
    cluster.apply_crds(api, CRD_OPERATORS)
    kube_cluster.ensure_namespace(NAMESPACE, POD_SECURITY_LABELS)  # and its "default" account
    args = [f"--set={item}" for item in SETS]
    _helm(
        kube_cluster.kubeconfig,
        "install",
        RELEASE,
        str(chartcheck.CHART),
        "--namespace",
        NAMESPACE,
        *args,
    )
    rendered = chartcheck.parse(chartcheck.render(release=RELEASE, namespace=NAMESPACE, sets=SETS))
    try:
        yield api, rendered
    finally:
        _helm(kube_cluster.kubeconfig, "uninstall", RELEASE, "--namespace", NAMESPACE)
        # Nothing owns the driver pod's objects once the operator is gone (no garbage
        # collector runs): delete the pod so the namespace is left empty of workloads.
        try:
            core.delete_namespaced_pod(DRIVER_POD, NAMESPACE, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise
        api.close()


@pytest.fixture(scope="module")
def submitted(kube_cluster, installed, tmp_path_factory):
    """The operator running until the driver pod exists; the pod and the application."""
    api, rendered = installed
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    state = tmp_path_factory.mktemp("spark-operator")
    kubeconfig = sparkop.controller_kubeconfig(kube_cluster.kubeconfig, [NAMESPACE], state)
    log = state / "controller.log"
    operator = sparkop.SparkOperator(kubeconfig, [NAMESPACE], log)

    def app() -> dict[str, Any]:
        return custom.get_namespaced_custom_object(*SPARK[:2], NAMESPACE, SPARK[2], APP)

    def pod() -> client.V1Pod | None:
        try:
            return core.read_namespaced_pod(DRIVER_POD, NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise
        # spark-submit failed: say why now rather than after the operator's retries
        status = app().get("status") or {}
        if status.get("applicationState", {}).get("state") == "SUBMISSION_FAILED":
            raise AssertionError(f"the operator's spark-submit failed\n{detail()}")
        return None

    def recorded() -> dict[str, Any] | None:
        """The application once the controller has recorded the submission and the driver
        pod it saw (two status updates), or has moved on to another state."""
        found = app()
        status = found.get("status") or {}
        state = status.get("applicationState", {}).get("state")
        if state == "SUBMITTED":
            done = status.get("sparkApplicationId") and status.get("driverInfo", {}).get("podName")
            return found if done else None
        return found if state else None

    def detail() -> str:
        status = app().get("status") or {}
        return (
            f"SparkApplication status: {yaml.safe_dump(status)}\n"
            f"controller log ({log}):\n{operator.log_tail(60)}"
        )

    with operator:
        started = time.monotonic()
        driver = _wait(pod, 240, f"driver pod {DRIVER_POD}", detail)
        submission = _wait(recorded, 60, "the submission in the SparkApplication status", detail)
        print(
            f"\nspark-operator: driver pod created {time.monotonic() - started:.0f} s "
            f"after the controller was watching; state "
            f"{submission['status']['applicationState']['state']}"
        )
        try:
            yield {
                "pod": driver,
                "app": submission,
                "rendered": rendered,
                "plain": api.sanitize_for_serialization(driver),
                "core": core,
            }
        finally:
            shutil.rmtree(
                sparkop.SUBMISSIONS / submission["status"]["submissionID"], ignore_errors=True
            )


def _rendered_app(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        o for o in rendered if o["kind"] == "SparkApplication" and o["metadata"]["name"] == APP
    )


def test_the_driver_pod_spec_is_printed(submitted):
    metadata = {k: v for k, v in submitted["plain"]["metadata"].items() if k != "managedFields"}
    spec = yaml.safe_dump(
        {"metadata": metadata, "spec": submitted["plain"]["spec"]}, sort_keys=False
    )
    print(f"\ndriver pod {NAMESPACE}/{DRIVER_POD} as the Spark Operator made it:\n{spec}")
    core = submitted["core"]
    made = [
        f"{kind} {o.metadata.name}"
        for kind, found in (
            ("Service", core.list_namespaced_service(NAMESPACE)),
            ("ConfigMap", core.list_namespaced_config_map(NAMESPACE)),
        )
        for o in found.items
        if (o.metadata.labels or {}).get("app.kubernetes.io/managed-by") != "Helm"
    ]
    print(f"beside it, made by the operator and spark-submit: {', '.join(sorted(made))}")
    assert submitted["pod"].status.phase == "Pending"  # no kubelet, no node


def test_the_application_is_submitted(submitted):
    status = submitted["app"]["status"]
    assert status["applicationState"]["state"] == "SUBMITTED", status
    assert status["driverInfo"]["podName"] == DRIVER_POD, status
    assert status["submissionAttempts"] == 1, status
    assert status["sparkApplicationId"] == submitted["pod"].metadata.labels["spark-app-selector"]
    owners = submitted["pod"].metadata.owner_references or []
    assert [(o.kind, o.name) for o in owners] == [("SparkApplication", APP)]


def test_the_driver_runs_the_extractor_image_and_main(submitted):
    spec = _rendered_app(submitted["rendered"])["spec"]
    (container,) = submitted["pod"].spec.containers
    assert container.name == "spark-kubernetes-driver"
    assert container.image == spec["image"]
    assert container.image_pull_policy == spec["imagePullPolicy"]
    # the image's entrypoint runs `driver ...`; the main file and its arguments as rendered,
    # and as the wiring test runs them
    assert not container.command
    main = [spec["mainApplicationFile"], *spec["arguments"]]
    extractor = wiring.containers(submitted["rendered"], RELEASE)["extractor"]
    assert list(extractor.command[-len(main) :]) == main
    assert container.args[0] == "driver"
    assert container.args[-len(main) :] == main, container.args
    assert "org.apache.spark.deploy.PythonRunner" in container.args


def test_the_driver_env_is_the_wiring_tests(submitted):
    (container,) = submitted["pod"].spec.containers
    wired = wiring.containers(submitted["rendered"], RELEASE)["extractor"].env
    ours = {e.name: e.value for e in container.env if not SPARK_OWN_ENV.match(e.name)}
    assert ours == wired
    assert ours["QUESTLOG_EXTRACTOR_KAFKA_BOOTSTRAP"] == f"{RELEASE}-kafka-kafka-bootstrap:9092"
    assert ours["QUESTLOG_EXTRACTOR_LAKE_ROOT"] == f"hdfs://{RELEASE}-hdfs-namenode:8020/questlog"
    topic = next(o for o in submitted["rendered"] if o["kind"] == "KafkaTopic")
    assert ours["QUESTLOG_EXTRACTOR_TOPIC"] == topic["spec"]["topicName"]
    # the driver's HDFS identity: the operator image's user, as in a cluster
    spark = {e.name: e.value for e in container.env if SPARK_OWN_ENV.match(e.name)}
    assert spark["SPARK_USER"] == sparkop.SPARK_USER


def test_the_driver_runs_as_the_charts_account_restricted(submitted):
    pod = submitted["plain"]
    spec = _rendered_app(submitted["rendered"])["spec"]
    template = spec["driver"]["template"]
    assert pod["spec"]["serviceAccountName"] == spec["driver"]["serviceAccount"] == APP
    # admitted into a namespace that enforces the restricted standard
    namespace = submitted["core"].read_namespace(NAMESPACE).metadata.labels
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"
    assert pod["spec"]["securityContext"] == template["spec"]["securityContext"]
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"] == template["spec"]["containers"][0]["securityContext"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    labels = pod["metadata"]["labels"]
    assert template["metadata"]["labels"].items() <= labels.items()
    assert labels["spark-role"] == "driver"
    assert labels["sparkoperator.k8s.io/app-name"] == APP


def test_the_driver_gets_the_applications_resources(submitted):
    driver = _rendered_app(submitted["rendered"])["spec"]["driver"]
    (container,) = submitted["pod"].spec.containers
    memory = f"{_mib(driver['memory']) + _mib(driver['memoryOverhead'])}Mi"
    assert container.resources.requests == {"cpu": str(driver["cores"]), "memory": memory}
    assert container.resources.limits == {"cpu": driver["coreLimit"], "memory": memory}


def test_the_driver_gets_the_applications_spark_conf(submitted):
    """spark.properties, which spark-submit writes to a ConfigMap the driver mounts."""
    spec = _rendered_app(submitted["rendered"])["spec"]
    volumes = {v["name"]: v for v in submitted["plain"]["spec"]["volumes"]}
    config_map = volumes["spark-conf-volume-driver"]["configMap"]["name"]
    data = submitted["core"].read_namespaced_config_map(config_map, NAMESPACE).data
    conf = _properties(data["spark.properties"])
    assert {k: conf.get(k) for k in spec["sparkConf"]} == spec["sparkConf"]
    assert conf["spark.kubernetes.namespace"] == NAMESPACE
    assert conf["spark.submit.deployMode"] == "cluster"
