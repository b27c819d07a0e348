"""Policy checks over the rendered chart: what the model charts' reviewers ask of every
workload, checked on the objects `helm template` produced.

Every pod the chart makes (Deployments, StatefulSets, Jobs, and the pods the operators
make from the SparkApplication's templates and the Strimzi Kafka's) must have:
- the restricted Pod Security Standard: runAsNonRoot, seccomp RuntimeDefault, no
  privilege escalation, every capability dropped, no host namespaces or hostPath;
- resources (requests and limits of cpu and memory) on every container;
- liveness and readiness probes on every long-running container (not on Jobs, which end);
- images pinned by tag or digest, never ``:latest`` or untagged.
Every object carries the app.kubernetes.io/{name,instance,version,managed-by,part-of}
labels; selectors never select on a version (selectors are immutable).

Usage::

    problems = check(objects)       # objects: the parsed documents of `helm template`
    for p in problems: print(p)     # "Deployment q-api: spec.template...: why"
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
)
VERSION_LABELS = ("app.kubernetes.io/version", "helm.sh/chart")
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


@dataclass(frozen=True)
class Problem:
    kind: str
    name: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.field}: {self.message}"


@dataclass(frozen=True)
class Pod:
    """One pod shape to check: where it sits in its object, and what it is."""

    path: str
    spec: dict[str, Any]
    long_running: bool = True  # probes expected
    # A container whose image the operator sets (Spark's, from spec.image); resources
    # come from the operator's cores/memory fields, checked apart.
    operator_managed: bool = False


def pods_of(obj: dict[str, Any]) -> Iterator[Pod]:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind in POD_TEMPLATE_KINDS:
        if kind == "CronJob":
            spec, path = spec.get("jobTemplate", {}).get("spec") or {}, "spec.jobTemplate.spec"
        else:
            path = "spec"
        template = spec.get("template", {})
        # a Job's pod runs to completion: no probes expected
        yield Pod(
            f"{path}.template.spec",
            template.get("spec") or {},
            long_running=kind not in ("Job", "CronJob"),
        )
    elif kind == "Pod":
        yield Pod("spec", spec)
    elif kind == "SparkApplication":
        for role in ("driver", "executor"):
            template = (spec.get(role) or {}).get("template") or {}
            yield Pod(
                f"spec.{role}.template.spec", template.get("spec") or {}, operator_managed=True
            )


def _containers(pod: Pod) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers"):
        for i, container in enumerate(pod.spec.get(key) or []):
            yield f"{pod.path}.{key}[{i}]", container


def _check_pod(obj: dict[str, Any], pod: Pod) -> Iterator[tuple[str, str]]:
    spec = pod.spec
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        yield f"{pod.path}.securityContext.runAsNonRoot", "must be true (restricted)"
    if psc.get("runAsUser") == 0:
        yield f"{pod.path}.securityContext.runAsUser", "must not be 0 (restricted)"
    if (psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        yield f"{pod.path}.securityContext.seccompProfile.type", "must be RuntimeDefault"
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            yield f"{pod.path}.{flag}", "host namespaces are not allowed (restricted)"
    for i, volume in enumerate(spec.get("volumes") or []):
        if "hostPath" in volume:
            yield f"{pod.path}.volumes[{i}].hostPath", "not allowed (restricted)"
    containers = list(_containers(pod))
    if not containers:
        yield f"{pod.path}.containers", "no containers"
    for where, c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{where}.securityContext.allowPrivilegeEscalation", "must be false"
        if sc.get("privileged"):
            yield f"{where}.securityContext.privileged", "must not be true"
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            yield f"{where}.securityContext.capabilities.drop", "must include ALL"
        if sc.get("runAsUser") == 0 or sc.get("runAsNonRoot") is False:
            yield f"{where}.securityContext", "must not run as root"
        if not pod.operator_managed:
            image = c.get("image", "")
            if not image:
                yield f"{where}.image", "missing"
            else:
                yield from _check_image(f"{where}.image", image)
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if not (resources.get(part) or {}).get(res):
                        yield f"{where}.resources.{part}.{res}", "missing"
        is_init = ".initContainers[" in where
        if pod.long_running and not is_init:
            # Spark's executors get liveness only: the driver decides whether one is used.
            wanted = (
                ("livenessProbe",)
                if where.startswith("spec.executor")
                else ("livenessProbe", "readinessProbe")
            )
            for probe in wanted:
                if not c.get(probe):
                    yield f"{where}.{probe}", "missing"


def _check_image(field: str, image: str) -> Iterator[tuple[str, str]]:
    if "@sha256:" in image:
        return
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag at all ("repo/name" or "host:5000/name")
        yield field, f"{image!r} has no tag: pin a version"
    elif tag == "latest":
        yield field, f"{image!r}: ':latest' is not allowed; pin a version"


def _check_labels(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for label in LABELS:
        if not labels.get(label):
            yield f"metadata.labels.{label}", "missing"
    selectors: list[tuple[str, dict[str, Any]]] = []
    spec = obj.get("spec") or {}
    if isinstance((spec.get("selector") or {}).get("matchLabels"), dict):
        selectors.append(("spec.selector.matchLabels", spec["selector"]["matchLabels"]))
    elif obj.get("kind") == "Service" and isinstance(spec.get("selector"), dict):
        selectors.append(("spec.selector", spec["selector"]))
    if obj.get("kind") == "NetworkPolicy":
        selectors.append(
            (
                "spec.podSelector.matchLabels",
                (spec.get("podSelector") or {}).get("matchLabels") or {},
            )
        )
    for field, selector in selectors:
        for label in VERSION_LABELS:
            if label in selector:
                yield f"{field}.{label}", "selectors must not include a version"


def _check_spark(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    spec = obj.get("spec") or {}
    yield from _check_image("spec.image", spec.get("image", ""))
    for role in ("driver", "executor"):
        part = spec.get(role) or {}
        for field in ("cores", "coreLimit", "memory"):
            if not part.get(field):
                yield f"spec.{role}.{field}", "missing (the pod's resources)"
    if (spec.get("restartPolicy") or {}).get("type") != "Always":
        yield "spec.restartPolicy.type", "a streaming query wants Always"


def _check_strimzi_kafka(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    spec = obj.get("spec") or {}
    templates = {
        "spec.kafka.template": (
            (spec.get("kafka") or {}).get("template") or {},
            ("kafkaContainer",),
        ),
        "spec.entityOperator.template": (
            (spec.get("entityOperator") or {}).get("template") or {},
            ("topicOperatorContainer", "userOperatorContainer"),
        ),
    }
    for where, (template, containers) in templates.items():
        psc = (template.get("pod") or {}).get("securityContext") or {}
        if (
            psc.get("runAsNonRoot") is not True
            or (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault"
        ):
            yield f"{where}.pod.securityContext", "must be restricted (runAsNonRoot, seccomp)"
        for name in containers:
            sc = (template.get(name) or {}).get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False or "ALL" not in (
                (sc.get("capabilities") or {}).get("drop") or []
            ):
                yield f"{where}.{name}.securityContext", "must be restricted"


def check(objects: Iterable[dict[str, Any]]) -> list[Problem]:
    problems: list[Problem] = []
    for obj in objects:
        if not isinstance(obj, dict) or "kind" not in obj:
            continue
        kind = obj["kind"]
        name = (obj.get("metadata") or {}).get("name", "?")
        found: list[tuple[str, str]] = list(_check_labels(obj))
        for pod in pods_of(obj):
            found += _check_pod(obj, pod)
        if kind == "SparkApplication":
            found += _check_spark(obj)
        if kind == "Kafka" and obj.get("apiVersion", "").startswith("kafka.strimzi.io/"):
            found += _check_strimzi_kafka(obj)
        problems += [Problem(kind, name, field, message) for field, message in found]
    return problems
