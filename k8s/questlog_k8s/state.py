"""What each part of a questlog release is doing, read from its Kubernetes objects.

Pure functions of the objects as the API serves them (plain dicts with camelCase keys, as
`kubectl get -o json` shows them), so every reason is tested with literal dicts; the reads
live in cli.py, through kube.Cluster. Each part is ready or not, with one line that stands
alone in a log: "kafka: Kafka questlog-kafka not Ready: <condition message>".

The operators' words are theirs: Strimzi reports a Kafka or KafkaTopic through
status.conditions (Ready, or NotReady with a reason and message); the Spark Operator
reports a SparkApplication through status.applicationState.state, and counts runs in
status.executionAttempts (one per successful submission, so a restart adds one).

Usage:
    from questlog_k8s import state
    for part in state.parts_in_release(record, "questlog"):
        ...                                   # read part.kind named part.object_name(...)
    state.strimzi_status("kafka", "Kafka", "questlog-kafka", obj).line()
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from questlog_k8s.bootstrap import condition as _condition
from questlog_k8s.bootstrap import condition_reason as _why
from questlog_k8s.bootstrap import deployment_problem, pod_problems

Obj = Mapping[str, Any]

# The Spark Operator's pod labels (pkg/common/spark.go of spark-operator v2.5.2).
SPARK_ROLE = "spark-role"
SPARK_APP_NAME = "sparkoperator.k8s.io/app-name"
SPARK_SUBMISSION_ID = "sparkoperator.k8s.io/submission-id"
# Strimzi's pod labels (io.strimzi.api.ResourceLabels); a cluster's broker pods are named
# "<cluster>-kafka" in strimzi.io/name (KafkaResources.kafkaComponentName), whatever pool.
STRIMZI_CLUSTER = "strimzi.io/cluster"
STRIMZI_KIND = "strimzi.io/kind"
STRIMZI_NAME = "strimzi.io/name"


@dataclass(frozen=True)
class Part:
    """One thing `questlog-k8s status` reports: the object it reads and its name."""

    name: str  # what a user types and reads: "kafka", "api"
    kind: str
    suffix: str  # the object is "<release>-<suffix>", the chart's common.nameFor

    def object_name(self, release: str) -> str:
        return chart_name(release, self.suffix)


PARTS = (
    Part("kafka", "Kafka", "kafka"),
    Part("topic", "KafkaTopic", "kafka-topic"),
    Part("extractor", "SparkApplication", "extractor"),
    Part("api", "Deployment", "api"),
    Part("query", "Deployment", "query"),
    Part("namenode", "StatefulSet", "hdfs-namenode"),
    Part("datanode", "StatefulSet", "hdfs-datanode"),
    Part("locust-master", "Deployment", "locust-master"),
    Part("locust-worker", "Deployment", "locust-worker"),
)

# group, version, plural: the API versions the chart writes (and k8s/bootstrap checks).
CUSTOM_KINDS = {
    "Kafka": ("kafka.strimzi.io", "v1", "kafkas"),
    "KafkaTopic": ("kafka.strimzi.io", "v1", "kafkatopics"),
    "SparkApplication": ("sparkoperator.k8s.io", "v1beta2", "sparkapplications"),
}
_OPERATOR = {"Kafka": "Strimzi", "KafkaTopic": "Strimzi topic", "SparkApplication": "Spark"}


def chart_name(release: str, suffix: str) -> str:
    """The chart's `printf "%s-%s" | trunc 63 | trimSuffix "-"`."""
    return f"{release}-{suffix}"[:63].removesuffix("-")


def crd_name(kind: str) -> str:
    group, _, plural = CUSTOM_KINDS[kind]
    return f"{plural}.{group}"


@dataclass(frozen=True)
class PartStatus:
    part: str
    kind: str
    name: str
    ready: bool
    reason: str  # why not, complete enough to stand alone; when ready, a short summary
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{self.part}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- Helm's release record: which parts this release has -----------------------------


def helm_record(secret: Obj) -> dict[str, Any]:
    """A Helm 3 release record out of its Secret ("sh.helm.release.v1.<name>.v<n>"):
    the Secret's data holds base64 of Helm's own base64 of gzipped JSON."""
    try:
        raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        record = json.loads(raw)
    except (KeyError, TypeError, ValueError, binascii.Error, OSError) as exc:
        name = (secret.get("metadata") or {}).get("name", "?")
        raise ValueError(f"Secret {name} is not a Helm release record: {exc}") from exc
    if not isinstance(record, dict):
        raise ValueError("a Helm release record is a JSON object")
    return record


def latest_helm_record(secrets: Iterable[Obj]) -> dict[str, Any] | None:
    """The newest revision among a release's record Secrets (label owner=helm)."""

    def revision(secret: Obj) -> int:
        version = ((secret.get("metadata") or {}).get("labels") or {}).get("version", "0")
        return int(version) if str(version).isdigit() else 0

    newest = max(secrets, key=revision, default=None)
    return None if newest is None else helm_record(newest)


def manifest_objects(record: Obj) -> set[tuple[str, str]]:
    """(kind, name) of every object the release's manifest holds (hooks excluded)."""
    found = set()
    for doc in yaml.safe_load_all(record.get("manifest") or ""):
        if isinstance(doc, dict) and doc.get("kind"):
            found.add((doc["kind"], (doc.get("metadata") or {}).get("name", "")))
    return found


def parts_in_release(record: Obj | None, release: str) -> list[Part]:
    """The parts this release installed: a component disabled in its values (kafka and hdfs
    in the "external" scenario, locust in "minimal") is not waited for. Without a Helm
    record (the chart applied some other way) every part is expected."""
    if record is None:
        return list(PARTS)
    objects = manifest_objects(record)
    return [p for p in PARTS if (p.kind, p.object_name(release)) in objects]


def release_status(record: Obj) -> PartStatus:
    info = record.get("info") or {}
    name, revision = record.get("name", "?"), record.get("version", "?")
    status = info.get("status", "unknown")
    chart = (record.get("chart") or {}).get("metadata") or {}
    detail = {
        "revision": revision,
        "status": status,
        "chart": chart.get("version"),
        "app_version": chart.get("appVersion"),
        "description": info.get("description"),
    }
    if status == "deployed":
        return PartStatus(
            "release",
            "HelmRelease",
            name,
            True,
            f"Helm release {name} revision {revision} deployed",
            detail,
        )
    why = f"Helm release {name} revision {revision} {status}"
    if info.get("description"):
        why += f": {info['description']}"
    return PartStatus("release", "HelmRelease", name, False, why, detail)


# ---- each kind ------------------------------------------------------------------------


def missing(part: str, kind: str, name: str, crd_installed: bool | None = None) -> PartStatus:
    why = f"{kind} {name} not found"
    if crd_installed is False:
        why += (
            f" (the {crd_name(kind)} CRD is not installed: install the "
            f"{_OPERATOR[kind].split()[0]} operator, see k8s/bootstrap)"
        )
    return PartStatus(part, kind, name, False, why)


def strimzi_status(
    part: str, kind: str, name: str, obj: Obj | None, crd_installed: bool | None = None
) -> PartStatus:
    """A Kafka or KafkaTopic: ready when Strimzi says Ready=True for its latest spec."""
    if obj is None:
        return missing(part, kind, name, crd_installed)
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    detail: dict[str, Any] = {}
    if kind == "KafkaTopic":
        detail = {
            "topic": status.get("topicName") or spec.get("topicName") or name,
            "partitions": spec.get("partitions"),
            "replicas": spec.get("replicas"),
        }
    else:
        detail = {
            "kafka_version": status.get("kafkaVersion"),
            "bootstrap": [
                listener.get("bootstrapServers") for listener in status.get("listeners") or []
            ],
        }
    warnings = [
        _why(c)
        for c in status.get("conditions") or []
        if c.get("type") == "Warning" and c.get("status") == "True"
    ]
    if warnings:
        detail["warnings"] = warnings
    not_ready = f"{kind} {name} not Ready"
    ready = _condition(obj, "Ready")
    if not status.get("conditions"):
        namespace = (obj.get("metadata") or {}).get("namespace", "its namespace")
        return PartStatus(
            part,
            kind,
            name,
            False,
            f"{not_ready}: no status yet (is the {_OPERATOR[kind]} operator "
            f"running and watching {namespace}?)",
            detail,
        )
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return PartStatus(
            part,
            kind,
            name,
            False,
            f"{not_ready}: the operator has not reconciled its latest spec "
            f"yet (generation {generation}, observed {observed})",
            detail,
        )
    if ready is not None and ready.get("status") == "True":
        summary = f"{kind} {name} Ready"
        if kind == "KafkaTopic":
            summary += f" (topic {detail['topic']})"
        if warnings:
            summary += f" (warning: {warnings[0]})"
        return PartStatus(part, kind, name, True, summary, detail)
    # Strimzi writes NotReady=True with the reason (Creating, or the exception) while not
    # ready; Ready=False would carry it otherwise.
    failing = next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") != "Warning" and c.get("status") == "True"
        ),
        None,
    )
    cond = failing or ready or {}
    why = _why(cond) or f"{cond.get('type', 'no Ready condition')}"
    return PartStatus(part, kind, name, False, f"{not_ready}: {why}", detail)


def restarts(app: Obj) -> int:
    """Runs after the first: executionAttempts counts every successful submission."""
    return max(0, int((app.get("status") or {}).get("executionAttempts") or 0) - 1)


def spark_status(
    part: str, name: str, app: Obj | None, crd_installed: bool | None = None
) -> PartStatus:
    """The extractor: ready while its SparkApplication is RUNNING (its driver pod runs)."""
    kind = "SparkApplication"
    if app is None:
        return missing(part, kind, name, crd_installed)
    status = app.get("status") or {}
    app_state = status.get("applicationState") or {}
    state = app_state.get("state") or ""
    executors: dict[str, int] = {}
    for executor_state in (status.get("executorState") or {}).values():
        executors[executor_state] = executors.get(executor_state, 0) + 1
    detail = {
        "state": state or None,
        "restarts": restarts(app),
        "execution_attempts": status.get("executionAttempts", 0),
        "submission_attempts": status.get("submissionAttempts", 0),
        "driver": (status.get("driverInfo") or {}).get("podName"),
        "executors": executors,
        "error": app_state.get("errorMessage"),
    }
    if not state:
        namespace = (app.get("metadata") or {}).get("namespace", "its namespace")
        return PartStatus(
            part,
            kind,
            name,
            False,
            f"{kind} {name} not submitted yet (no state: is the Spark Operator "
            f"running with {namespace} in spark.jobNamespaces?)",
            detail,
        )
    if state == "RUNNING":
        running = executors.get("RUNNING", 0)
        summary = (
            f"{kind} {name} RUNNING (restarts {detail['restarts']}), driver "
            f"{detail['driver'] or '?'}, "
            f"{running} executor{'s' if running != 1 else ''} running"
        )
        return PartStatus(part, kind, name, True, summary, detail)
    again = f" (restarts {detail['restarts']})" if detail["restarts"] else ""
    why = f"{kind} {name} state {state}{again}"
    if app_state.get("errorMessage"):
        why += f": {app_state['errorMessage']}"
    return PartStatus(part, kind, name, False, why, detail)


def _replicas(obj: Obj) -> tuple[int, int]:
    want = (obj.get("spec") or {}).get("replicas", 1)
    return (obj.get("status") or {}).get("readyReplicas", 0) or 0, want


def deployment_status(part: str, name: str, dep: Obj | None) -> PartStatus:
    kind = "Deployment"
    if dep is None:
        return missing(part, kind, name)
    ready, want = _replicas(dep)
    detail = {"ready_replicas": ready, "replicas": want}
    problem = deployment_problem(dep)
    if problem is None:
        return PartStatus(part, kind, name, True, f"{kind} {name}: {ready}/{want} ready", detail)
    return PartStatus(part, kind, name, False, f"{kind} {name}: {problem}", detail)


def statefulset_status(part: str, name: str, sts: Obj | None) -> PartStatus:
    """HDFS: ready when the StatefulSet's current spec has all its pods ready."""
    kind = "StatefulSet"
    if sts is None:
        return missing(part, kind, name)
    status = sts.get("status") or {}
    ready, want = _replicas(sts)
    detail = {"ready_replicas": ready, "replicas": want}
    updated = status.get("updatedReplicas", want) or 0
    generation = (sts.get("metadata") or {}).get("generation", 0)
    if want == 0:
        problem = "scaled to 0 replicas"
    elif status.get("observedGeneration", 0) < generation:
        problem = "the controller has not seen its latest spec yet"
    elif ready >= want and updated >= want:
        return PartStatus(part, kind, name, True, f"{kind} {name}: {ready}/{want} ready", detail)
    elif updated < want:
        problem = f"rollout in progress ({updated}/{want} updated, {ready} ready)"
    else:
        problem = f"{ready}/{want} pods ready"
    return PartStatus(part, kind, name, False, f"{kind} {name}: {problem}", detail)


def with_pods(status: PartStatus, pods: Iterable[Obj]) -> PartStatus:
    """A not-ready Deployment or StatefulSet, with what its pods say (pending, image pulls,
    crash loops, failing probes)."""
    lines = pod_problems(pods)
    if status.ready or not lines:
        return status
    return PartStatus(
        status.part,
        status.kind,
        status.name,
        False,
        "; ".join([status.reason, *lines]),
        {**status.detail, "pods": lines},
    )


def selector(obj: Obj | None) -> dict[str, str]:
    return dict((((obj or {}).get("spec") or {}).get("selector") or {}).get("matchLabels") or {})


# ---- the query service's tables --------------------------------------------------------


def tables(payload: Any) -> list[dict[str, Any]]:
    """GET /v1/tables' rows: name, rows, version (None: not written yet), freshness."""
    if not isinstance(payload, dict) or not isinstance(payload.get("tables"), list):
        raise ValueError('not a /v1/tables answer (no "tables" list)')
    return [
        {
            "name": t.get("name"),
            "rows": t.get("rows"),
            "version": t.get("version"),
            "freshness_seconds": t.get("freshness_seconds"),
        }
        for t in payload["tables"]
        if isinstance(t, dict)
    ]


# ---- logs: which pods ----------------------------------------------------------------


def driver_labels(app_name: str) -> dict[str, str]:
    return {SPARK_ROLE: "driver", SPARK_APP_NAME: app_name}


def executor_labels(app_name: str) -> dict[str, str]:
    return {SPARK_ROLE: "executor", SPARK_APP_NAME: app_name}


def kafka_labels(cluster: str) -> dict[str, str]:
    return {STRIMZI_CLUSTER: cluster, STRIMZI_KIND: "Kafka", STRIMZI_NAME: f"{cluster}-kafka"}


def _created(pod: Obj) -> str:
    return (pod.get("metadata") or {}).get("creationTimestamp") or ""


def current_driver(app: Obj | None, pods: Sequence[Obj]) -> Obj | None:
    """The driver pod of the application's current run: the one the operator recorded
    (status.driverInfo.podName), else the one labelled with the current submission id,
    else the newest driver pod."""
    status = (app or {}).get("status") or {}
    recorded = (status.get("driverInfo") or {}).get("podName")
    submission = status.get("submissionID")
    for pod in pods:
        if recorded and (pod.get("metadata") or {}).get("name") == recorded:
            return pod
    current = [
        p
        for p in pods
        if submission
        and ((p.get("metadata") or {}).get("labels") or {}).get(SPARK_SUBMISSION_ID) == submission
    ]
    return max(current or pods, key=_created, default=None)


def log_blocker(pod: Obj) -> str | None:
    """Why a pod has no log yet, where the API would answer an empty log, not an error:
    a pod on no node (the server answers 200 and nothing). None: ask the server."""
    if (pod.get("spec") or {}).get("nodeName"):
        return None
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    scheduled = _condition(pod, "PodScheduled")
    why = _why(scheduled) if scheduled and scheduled.get("status") == "False" else ""
    return f"not on a node yet ({phase}{': ' + why if why else ''}): no log to read"


def log_container(pod: Obj) -> str:
    """The container `kubectl logs` would pick: the default-container annotation, else the
    first."""
    meta = pod.get("metadata") or {}
    chosen = (meta.get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    return chosen or (containers[0] if containers else "")
