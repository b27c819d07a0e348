"""The policy checks: a compliant workload passes, and each rule fails on the one field
that breaks it, naming the object and the field."""

from __future__ import annotations

import copy

import pytest

from questlog_k8s import policy

LABELS = {
    "app.kubernetes.io/name": "api",
    "app.kubernetes.io/instance": "q",
    "app.kubernetes.io/version": "0.1.0",
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/part-of": "questlog",
}
SELECTOR = {"app.kubernetes.io/name": "api", "app.kubernetes.io/instance": "q"}
PROBE = {"httpGet": {"path": "/healthz", "port": 5000}}


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "q-api", "labels": dict(LABELS)},
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "api",
                            "image": "questlog-api:0.1.0",
                            "livenessProbe": PROBE,
                            "readinessProbe": PROBE,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def test_a_compliant_deployment_passes():
    assert policy.check([deployment()]) == []


def _set(obj: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()
C = "spec.template.spec.containers.0"
CF = "spec.template.spec.containers[0]"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (f"{C}.readinessProbe", _DELETE, f"{CF}.readinessProbe"),
        (f"{C}.livenessProbe", _DELETE, f"{CF}.livenessProbe"),
        (f"{C}.resources.limits", _DELETE, f"{CF}.resources.limits.cpu"),
        (f"{C}.image", "questlog-api:latest", f"{CF}.image"),
        (f"{C}.image", "registry:5000/questlog-api", f"{CF}.image"),
        (
            f"{C}.securityContext.allowPrivilegeEscalation",
            True,
            f"{CF}.securityContext.allowPrivilegeEscalation",
        ),
        (
            f"{C}.securityContext.capabilities",
            {"add": ["NET_ADMIN"]},
            f"{CF}.securityContext.capabilities.drop",
        ),
        (
            "spec.template.spec.securityContext.runAsNonRoot",
            False,
            "spec.template.spec.securityContext.runAsNonRoot",
        ),
        (
            "spec.template.spec.securityContext.seccompProfile",
            _DELETE,
            "spec.template.spec.securityContext.seccompProfile.type",
        ),
        ("spec.template.spec.hostNetwork", True, "spec.template.spec.hostNetwork"),
        (
            "metadata.labels",
            {"app.kubernetes.io/name": "api"},
            "metadata.labels.app.kubernetes.io/instance",
        ),
        (
            "spec.selector.matchLabels",
            {**SELECTOR, "app.kubernetes.io/version": "0.1.0"},
            "spec.selector.matchLabels.app.kubernetes.io/version",
        ),
    ],
)
def test_each_rule_names_the_object_and_field(path, value, field):
    obj = copy.deepcopy(deployment())
    _set(obj, path, value)
    problems = policy.check([obj])
    assert any(
        p.kind == "Deployment" and p.name == "q-api" and p.field == field for p in problems
    ), problems


def test_a_job_needs_no_probes_but_everything_else():
    job = deployment()
    job["kind"] = "Job"
    del job["spec"]["selector"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    del container["livenessProbe"], container["readinessProbe"]
    assert policy.check([job]) == []
    del container["resources"]
    assert policy.check([job])


def test_a_cronjob_is_checked_through_its_job_template():
    pod = deployment()["spec"]["template"]
    container = pod["spec"]["containers"][0]
    del container["livenessProbe"], container["readinessProbe"]
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "q-compact", "labels": dict(LABELS)},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": pod}}},
    }
    assert policy.check([cron]) == []
    container["securityContext"]["allowPrivilegeEscalation"] = True
    assert [(p.kind, p.field) for p in policy.check([cron])] == [
        (
            "CronJob",
            "spec.jobTemplate.spec.template.spec.containers[0]"
            ".securityContext.allowPrivilegeEscalation",
        )
    ]


def test_spark_application_pods_are_checked_through_their_templates():
    pod_spec = deployment()["spec"]["template"]["spec"]
    driver = copy.deepcopy(pod_spec)
    driver["containers"][0] = {
        k: v for k, v in driver["containers"][0].items() if k not in ("image", "resources")
    }
    executor = copy.deepcopy(driver)
    del executor["containers"][0]["readinessProbe"]  # executors: liveness only
    app = {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": "q-extractor", "labels": dict(LABELS)},
        "spec": {
            "image": "questlog-extractor:0.1.0",
            "restartPolicy": {"type": "Always"},
            "driver": {"cores": 1, "coreLimit": "1", "memory": "1g", "template": {"spec": driver}},
            "executor": {
                "cores": 1,
                "coreLimit": "1",
                "memory": "1g",
                "template": {"spec": executor},
            },
        },
    }
    assert policy.check([app]) == []
    app["spec"]["restartPolicy"]["type"] = "OnFailure"
    del app["spec"]["driver"]["template"]["spec"]["securityContext"]
    fields = {p.field for p in policy.check([app])}
    assert "spec.restartPolicy.type" in fields
    assert "spec.driver.template.spec.securityContext.runAsNonRoot" in fields
