"""The chart on a real kube-apiserver (etcd + kube-apiserver on loopback, no nodes).

What a user's `helm install` meets and an offline render cannot show: the operators' CRDs
as the server serves them, admission (Pod Security under the restricted standard, the
ServiceAccount plugin, namespace lifecycle), defaulting, strict field validation of custom
resources, `lookup`, and upgrades and uninstalls of live objects. No kubelet, scheduler or
controller-manager runs: Deployments get no ReplicaSets, StatefulSets no pods or PVCs. So
each pod template is judged by creating a Pod from it with dryRun=All in the restricted
namespace, which runs every admission plugin on it and stores nothing.

Every failure names the scenario, the object and the server's message. The figures (server
start time, objects per scenario, the refusal message) are printed: run with -s.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from questlog_k8s import chartcheck, kube, schemas, tools
from questlog_k8s.bootstrap import POD_SECURITY_LABELS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RELEASE = chartcheck.RELEASE
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
SCENARIOS = {chartcheck.scenario_name(p): p for p in chartcheck.scenarios()}
# the API versions questlog writes; each CRD must serve them
SERVED = {
    "kafkas.kafka.strimzi.io": "v1",
    "kafkanodepools.kafka.strimzi.io": "v1",
    "kafkatopics.kafka.strimzi.io": "v1",
    "sparkapplications.sparkoperator.k8s.io": "v1beta2",
    "servicemonitors.monitoring.coreos.com": "v1",
}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

Obj = dict[str, Any]


class Kube:
    """kubectl (our build), helm v3 and the Python client, all on the test's server."""

    def __init__(self, plane: Any, home: Path):
        self.plane = plane
        self.kubeconfig = str(plane.kubeconfig)
        self._kubectl = str(tools.path("kubectl"))
        self._helm = str(tools.path("helm"))
        # helm's and kubectl's caches and config in the test's folder, not the user's
        self._env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
        }
        self._cache = str(home / "kube-cache")
        self.api = kube.connect(self.kubeconfig)
        self.core = client.CoreV1Api(self.api)

    def _run(
        self, cmd: list[str], input: str | None, what: str, check: bool
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=self._env,
            check=False,
            timeout=300,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"{what}: {' '.join(cmd[1:])} failed (exit {proc.returncode}):\n"
                f"{proc.stderr.strip()}\n{proc.stdout.strip()[-2000:]}",
                pytrace=False,
            )
        return proc

    def kubectl(
        self, *args: str, input: str | None = None, what: str = "kubectl", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self._run(
            [self._kubectl, "--kubeconfig", self.kubeconfig, "--cache-dir", self._cache, *args],
            input,
            what,
            check,
        )

    def helm(
        self, *args: str, what: str = "helm", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self._run([self._helm, "--kubeconfig", self.kubeconfig, *args], None, what, check)

    def namespace(self, name: str, restricted: bool = True) -> str:
        self.plane.ensure_namespace(name, POD_SECURITY_LABELS if restricted else {})
        return name

    def dry_run_pod(self, namespace: str, pod: Obj) -> str | None:
        """None if admission lets the pod in, else the server's message."""
        try:
            self.core.create_namespaced_pod(namespace, pod, dry_run="All")
        except ApiException as exc:
            try:
                return f"{exc.status} {json.loads(exc.body)['message']}"
            except (TypeError, ValueError, KeyError):
                return f"{exc.status} {exc.reason}: {exc.body}"
        return None


@pytest.fixture(scope="module")
def cluster(kube_cluster, tmp_path_factory):
    """The server with the operators' CRDs applied and Established."""
    k = Kube(kube_cluster, tmp_path_factory.mktemp("kube-clients"))
    print(
        f"\n[cluster] kube-apiserver {kube_cluster.server} started in "
        f"{kube_cluster.start_seconds:.1f} s"
    )
    files = [path for paths in schemas.crd_files().values() for path in paths]
    names = [
        doc["metadata"]["name"]
        for path in files
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    started = time.monotonic()
    # server-side: Strimzi's CRDs are too big for client-side apply's annotation; forced,
    # since another test of the session may have created them under another field manager
    k.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        *(arg for path in files for arg in ("-f", str(path))),
        what="applying the Strimzi, Spark Operator and prometheus-operator CRDs",
    )
    k.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{n}" for n in names),
        what="waiting for the CRDs to be Established",
    )
    print(f"[cluster] {len(names)} CRDs Established in {time.monotonic() - started:.1f} s")
    yield k
    k.api.close()


def _render(scenario: str, namespace: str, sets: tuple[str, ...] = ()) -> list[Obj]:
    values = SCENARIOS[scenario]
    return chartcheck.parse(chartcheck.render([values], RELEASE, namespace, sets))


def _is_hook(obj: Obj) -> bool:
    return "helm.sh/hook" in ((obj.get("metadata") or {}).get("annotations") or {})


def _key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _live(k: Kube, namespace: str, objects: list[Obj], what: str) -> list[Obj]:
    """The objects as the server holds them; fails naming every one it lacks."""
    proc = k.kubectl(
        "get",
        "-n",
        namespace,
        "-f",
        "-",
        "-o",
        "json",
        input=yaml.safe_dump_all(objects),
        what=what,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"{what}: objects missing on the server:\n{proc.stderr.strip()}", pytrace=False)
    found = json.loads(proc.stdout)
    return found["items"] if found.get("kind") == "List" else [found]


def _pods(obj: Obj) -> list[tuple[str, Obj]]:
    """(where, Pod) for each pod the object stands for, filled in as its controller would
    so that Pod validation passes and admission judges what the cluster would run."""
    kind, name = _key(obj)
    spec = obj.get("spec") or {}
    out: list[tuple[str, Obj]] = []
    if kind in POD_KINDS:
        template = copy.deepcopy(spec["template"])
        pod_spec = template["spec"]
        # the StatefulSet controller adds a volume per claim template (claim <t>-<pod>)
        for claim in spec.get("volumeClaimTemplates") or []:
            claim_name = claim["metadata"]["name"]
            pod_spec.setdefault("volumes", []).append(
                {
                    "name": claim_name,
                    "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}-0"},
                }
            )
        out.append(
            ("spec.template", {"metadata": template.get("metadata") or {}, "spec": pod_spec})
        )
    elif kind == "SparkApplication":
        # spark-submit makes the pods from these templates, with spec.image and the
        # driver's service account (executors use it too unless they name one)
        driver_sa = (spec.get("driver") or {}).get("serviceAccount")
        for role in ("driver", "executor"):
            part = spec.get(role) or {}
            template = copy.deepcopy(part.get("template") or {})
            pod_spec = template.get("spec") or {}
            for container in pod_spec.get("containers") or []:
                container.setdefault("image", spec["image"])
            pod_spec["restartPolicy"] = "Never"
            account = part.get("serviceAccount") or driver_sa
            if account:
                pod_spec["serviceAccountName"] = account
            out.append(
                (
                    f"spec.{role}.template",
                    {"metadata": template.get("metadata") or {}, "spec": pod_spec},
                )
            )
    pods = []
    for where, pod in out:
        meta = {
            "name": f"{kind}-{name}-{where.split('.')[1]}".lower()[:63].rstrip("-"),
            "labels": pod["metadata"].get("labels") or {},
        }
        pods.append(
            (where, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod["spec"]})
        )
    return pods


def _admission_problems(k: Kube, namespace: str, objects: list[Obj]) -> list[str]:
    problems = []
    for obj in objects:
        for where, pod in _pods(obj):
            refused = k.dry_run_pod(namespace, pod)
            if refused:
                problems.append(f"{obj['kind']} {obj['metadata']['name']} ({where}): {refused}")
    return problems


def _counts(objects: list[Obj]) -> dict[str, int]:
    return dict(sorted(collections.Counter(o["kind"] for o in objects).items()))


def _leftovers(k: Kube, namespace: str, manifest: list[Obj]) -> list[str]:
    """Every namespaced type the server lists, searched for the release's label, and the
    manifest's objects by name."""
    types = k.kubectl(
        "api-resources",
        "--namespaced=true",
        "--verbs=list",
        "-o",
        "name",
        what="listing resource types",
    ).stdout.split()
    by_label = k.kubectl(
        "get",
        ",".join(types),
        "-n",
        namespace,
        "-l",
        INSTANCE,
        "-o",
        "name",
        "--ignore-not-found",
        what="listing leftovers",
    ).stdout.split()
    by_name = k.kubectl(
        "get",
        "-n",
        namespace,
        "-f",
        "-",
        "-o",
        "name",
        "--ignore-not-found",
        input=yaml.safe_dump_all(manifest),
        what="listing leftovers",
    ).stdout
    helm_secrets = k.kubectl(
        "get",
        "secrets",
        "-n",
        namespace,
        "-l",
        f"owner=helm,name={RELEASE}",
        "-o",
        "name",
        what="listing helm's release records",
    ).stdout
    return sorted(set(by_label) | set(by_name.split()) | set(helm_secrets.split()))


# ------------------------------------------------------------------------------ the CRDs


def test_crds_are_established_and_serve_the_versions_the_chart_writes(cluster):
    for name, version in SERVED.items():
        crd = json.loads(
            cluster.kubectl("get", f"crd/{name}", "-o", "json", what=f"reading CRD {name}").stdout
        )
        conditions = {c["type"]: c for c in crd["status"].get("conditions") or []}
        assert conditions.get("Established", {}).get("status") == "True", (name, conditions)
        served = {v["name"] for v in crd["spec"]["versions"] if v.get("served")}
        assert version in served, f"CRD {name} serves {sorted(served)}, not {version}"
    # and the server's OpenAPI publishes them: what kubectl explain and clients read
    explain = cluster.kubectl(
        "explain",
        "kafkas.spec.kafka.listeners",
        "--api-version",
        "kafka.strimzi.io/v1",
        what="kubectl explain",
    ).stdout
    assert "FIELD: listeners" in explain


# ----------------------------------------------------------------- install every scenario


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_install_admits_every_pod_and_uninstall_leaves_nothing(cluster, scenario):
    ns = cluster.namespace(f"ql-{scenario}")
    rendered = _render(scenario, ns)
    started = time.monotonic()
    cluster.helm(
        "install",
        RELEASE,
        str(chartcheck.CHART),
        "-n",
        ns,
        "-f",
        str(SCENARIOS[scenario]),
        what=f"[{scenario}] helm install",
    )
    install_s = time.monotonic() - started

    manifest = chartcheck.parse(
        cluster.helm(
            "get", "manifest", RELEASE, "-n", ns, what=f"[{scenario}] helm get manifest"
        ).stdout
    )
    expected = {_key(o) for o in rendered if not _is_hook(o)}
    assert {_key(o) for o in manifest} == expected, (
        f"[{scenario}] helm's manifest differs from helm template's objects"
    )
    live = _live(cluster, ns, manifest, f"[{scenario}] installed objects")
    assert {_key(o) for o in live} == expected
    for obj in live:  # created by this release, labelled as such
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == RELEASE, _key(obj)
        assert obj["metadata"].get("annotations", {}).get("meta.helm.sh/release-name") == RELEASE, (
            _key(obj)
        )
    print(f"\n[{scenario}] helm install {install_s:.1f} s, {len(live)} objects: {_counts(live)}")

    # every pod template as the server holds it (defaulted), plus the helm test's Job
    # (a hook: rendered, not installed until `helm test`)
    hooks = [o for o in rendered if _is_hook(o)]
    problems = _admission_problems(cluster, ns, live + hooks)
    judged = sum(len(_pods(o)) for o in live + hooks)
    assert not problems, (
        f"[{scenario}] refused by admission in a restricted namespace:\n" + "\n".join(problems)
    )
    assert judged > 0, f"[{scenario}] no pod template judged"
    print(f"[{scenario}] {judged} pod templates admitted under restricted Pod Security")

    cluster.helm("uninstall", RELEASE, "-n", ns, what=f"[{scenario}] helm uninstall")
    left = _leftovers(cluster, ns, manifest)
    assert not left, f"[{scenario}] left behind after helm uninstall: {left}"


def test_upgrade_changes_live_objects(cluster):
    ns = cluster.namespace("ql-upgrade")
    values = str(SCENARIOS["default"])
    cluster.helm(
        "install", RELEASE, str(chartcheck.CHART), "-n", ns, "-f", values, what="helm install"
    )
    names = {
        o["kind"]: o["metadata"]["name"]
        for o in _render("default", ns)
        if o["kind"] in ("KafkaTopic", "HorizontalPodAutoscaler")
    }
    api = f"{RELEASE}-api"
    query = f"{RELEASE}-query"
    secret_before = {
        s["metadata"]["name"]: s["data"]
        for s in json.loads(
            cluster.kubectl("get", "secrets", "-n", ns, "-l", INSTANCE, "-o", "json").stdout
        )["items"]
    }
    assert names.get("HorizontalPodAutoscaler"), "the default scenario has the api's HPA"

    cluster.helm(
        "upgrade",
        RELEASE,
        str(chartcheck.CHART),
        "-n",
        ns,
        "-f",
        values,
        "--set",
        "query.replicas=3",
        "--set",
        "kafka.topic.partitions=12",
        "--set",
        "api.rateLimit=25",
        "--set",
        "api.autoscaling.enabled=false",
        "--set",
        "api.replicas=4",
        what="helm upgrade",
    )

    def get(kind: str, name: str) -> Obj:
        return json.loads(
            cluster.kubectl(
                "get", kind, name, "-n", ns, "-o", "json", what=f"reading {kind} {name}"
            ).stdout
        )

    assert get("deployment", query)["spec"]["replicas"] == 3
    assert get("kafkatopic", names["KafkaTopic"])["spec"]["partitions"] == 12
    api_dep = get("deployment", api)
    assert api_dep["spec"]["replicas"] == 4
    env = {
        e["name"]: e.get("value")
        for c in api_dep["spec"]["template"]["spec"]["containers"]
        for e in c.get("env") or []
    }
    assert env.get("QUESTLOG_API_RATE_LIMIT") == "25", env
    gone = cluster.kubectl(
        "get", "hpa", names["HorizontalPodAutoscaler"], "-n", ns, "--ignore-not-found", "-o", "name"
    ).stdout.strip()
    assert not gone, "the HPA outlived autoscaling.enabled=false"
    # the generated secrets (lookup on the live server) survive the upgrade unchanged
    secret_after = {
        s["metadata"]["name"]: s["data"]
        for s in json.loads(
            cluster.kubectl("get", "secrets", "-n", ns, "-l", INSTANCE, "-o", "json").stdout
        )["items"]
    }
    assert secret_after == secret_before
    history = json.loads(cluster.helm("history", RELEASE, "-n", ns, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2]
    assert history[-1]["status"] == "deployed"
    print(
        f"\n[upgrade] revision 2 live: query 3 replicas, topic 12 partitions, api 4 "
        f"replicas without HPA, rate limit 25; secrets kept: {sorted(secret_after)}"
    )
    cluster.helm("uninstall", RELEASE, "-n", ns, what="helm uninstall")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_template_applies_with_server_dry_run(cluster, scenario):
    ns = cluster.namespace(f"dry-{scenario}")
    stream = chartcheck.render([SCENARIOS[scenario]], RELEASE, ns)
    proc = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        ns,
        "-f",
        "-",
        input=stream,
        what=f"[{scenario}] helm template | kubectl apply --dry-run=server",
    )
    applied = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(applied) == len(chartcheck.parse(stream)), proc.stdout
    # the namespace warns on workloads whose pods the restricted standard would refuse
    assert "would violate PodSecurity" not in proc.stderr, proc.stderr


# ------------------------------------------------------------ refusals, provoked on purpose


def _pod(name: str, **container_security: Any) -> Obj:
    security = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        **container_security,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": {"runAsUser": 10001},
            "containers": [
                {"name": "app", "image": "questlog-api:0.1.0", "securityContext": security}
            ],
        },
    }


def test_pod_security_refuses_a_privileged_pod(cluster):
    restricted = cluster.namespace("psa-restricted")
    open_ns = cluster.namespace("psa-open", restricted=False)
    assert cluster.dry_run_pod(restricted, _pod("compliant")) is None

    privileged = _pod("privileged", privileged=True, allowPrivilegeEscalation=True)
    message = cluster.dry_run_pod(restricted, privileged)
    print(f"\n[psa] privileged pod refused: {message}")
    assert message is not None, "a privileged pod was admitted in a restricted namespace"
    assert message.startswith("403 ")
    assert 'violates PodSecurity "restricted:latest"' in message
    assert 'container "app" must not set securityContext.privileged=true' in message

    as_root = _pod("as-root", runAsNonRoot=False)
    message = cluster.dry_run_pod(restricted, as_root)
    print(f"[psa] runAsNonRoot=false refused: {message}")
    assert message is not None, "a root pod was admitted in a restricted namespace"
    assert "runAsNonRoot != true" in message
    # the namespace's label decides: without it the same pod is admitted
    assert cluster.dry_run_pod(open_ns, privileged) is None


def test_the_template_check_names_a_refused_workload(cluster):
    """The check the install test relies on can fail: the chart's api Deployment with its
    container running as root is refused, and the problem names the object."""
    ns = cluster.namespace("psa-template")
    api = next(
        o
        for o in _render("default", ns)
        if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{RELEASE}-api"
    )
    container = api["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["runAsNonRoot"] = False
    assert _admission_problems(cluster, ns, [api]) == [
        f'Deployment {RELEASE}-api (spec.template): 403 pods "deployment-{RELEASE}-api-'
        'template" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != '
        f'true (container "{container["name"]}" must not set securityContext.runAsNonRoot='
        "false)"
    ]


@pytest.mark.parametrize(
    ("kind", "path"),
    [("Kafka", ("spec", "kafka", "replicas")), ("SparkApplication", ("spec", "driver", "cpus"))],
)
def test_unknown_fields_in_custom_resources_are_refused(cluster, kind, path):
    ns = cluster.namespace("strict-fields")
    obj = next(o for o in _render("default", ns) if o["kind"] == kind)
    cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        ns,
        "-f",
        "-",
        input=yaml.safe_dump(obj),
        what=f"the chart's own {kind}",
    )
    bad = copy.deepcopy(obj)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = 3
    proc = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        ns,
        "-f",
        "-",
        input=yaml.safe_dump(bad),
        check=False,
    )
    print(f"\n[strict] {kind} with {'.'.join(path)}: {proc.stderr.strip()}")
    assert proc.returncode != 0, f"{kind} with {'.'.join(path)} was accepted"
    assert f'strict decoding error: unknown field "{".".join(path)}"' in proc.stderr
