"""The bootstrap's logic without a cluster: readiness read from API objects as the API
serves them, the helm command lines, the namespace object, the wait loop and the command."""

from __future__ import annotations

import shlex
import subprocess

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from questlog_k8s import bootstrap, kube
from questlog_k8s.bootstrap import (
    crd_problem,
    deployment_problem,
    helm_command,
    namespace_manifest,
    operator_releases,
    pod_problems,
    wait_until_ready,
)

STRIMZI_CMD = [
    "helm",
    "upgrade",
    "--install",
    "strimzi",
    "oci://quay.io/strimzi-helm/strimzi-kafka-operator",
    "--version",
    "1.2.0",
    "--namespace",
    "strimzi",
    "--create-namespace",
    "--set",
    "watchNamespaces={questlog}",
]
SPARK_CMD = [
    "helm",
    "upgrade",
    "--install",
    "spark-operator",
    "spark-operator",
    "--repo",
    "https://kubeflow.github.io/spark-operator",
    "--version",
    "2.5.2",
    "--namespace",
    "spark-operator",
    "--create-namespace",
    "--set",
    "spark.jobNamespaces={questlog}",
    "--set",
    "spark.serviceAccount.create=false",
    "--set",
    "spark.rbac.create=false",
    "--set",
    "webhook.enable=true",
    "--set",
    "controller.uiService.enable=false",
]
PARTS = [
    "crd kafkas.kafka.strimzi.io",
    "crd kafkanodepools.kafka.strimzi.io",
    "crd kafkatopics.kafka.strimzi.io",
    "deployment strimzi/strimzi-cluster-operator",
    "crd sparkapplications.sparkoperator.k8s.io",
    "deployment spark-operator/spark-operator-controller",
    "deployment spark-operator/spark-operator-webhook",
]


def crd(name="kafkas.kafka.strimzi.io", served=("v1",), conditions=None):
    if conditions is None:
        conditions = [
            {"type": "NamesAccepted", "status": "True"},
            {"type": "Established", "status": "True"},
        ]
    return {
        "metadata": {"name": name},
        "spec": {
            "versions": [
                {"name": v, "served": True, "storage": i == 0} for i, v in enumerate(served)
            ]
        },
        "status": {"conditions": conditions},
    }


def deployment(
    ready=1, replicas=1, updated=None, generation=1, observed=1, conditions=(), labels=None
):
    status = {
        "observedGeneration": observed,
        "replicas": replicas,
        "updatedReplicas": replicas if updated is None else updated,
        "conditions": list(conditions),
    }
    if ready:
        status["readyReplicas"] = ready  # the API leaves zero counts out
    return {
        "metadata": {"name": "op", "generation": generation},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels or {"app": "op"}},
            "template": {},
        },
        "status": status,
    }


def pod(name="op-1", phase="Running", conditions=(), containers=(), init=()):
    return {
        "metadata": {"name": name},
        "status": {
            "phase": phase,
            "conditions": list(conditions),
            "containerStatuses": list(containers),
            "initContainerStatuses": list(init),
        },
    }


# ---- CRDs ---------------------------------------------------------------------------------


def test_crd_established_and_serving_the_version_is_ready():
    assert crd_problem(crd(), "v1") is None


def test_crd_missing():
    assert crd_problem(None, "v1").startswith("not found")


def test_crd_without_established_condition_yet():
    assert crd_problem(crd(conditions=[]), "v1") == "no Established condition yet"
    no_status = {"metadata": {"name": "x"}, "spec": {"versions": []}}
    assert crd_problem(no_status, "v1") == "no Established condition yet"


def test_crd_established_false_says_why():
    cond = {
        "type": "Established",
        "status": "False",
        "reason": "Installing",
        "message": "the initial names have not been accepted",
    }
    problem = crd_problem(crd(conditions=[cond]), "v1")
    assert problem == ("Established=False (Installing: the initial names have not been accepted)")


def test_crd_established_unknown_without_reason():
    assert (
        crd_problem(crd(conditions=[{"type": "Established", "status": "Unknown"}]), "v1")
        == "Established=Unknown"
    )


def test_crd_of_an_older_operator_not_serving_v1():
    problem = crd_problem(crd(served=("v1beta2",)), "v1")
    assert problem is not None
    assert problem.startswith("serves v1beta2, not v1")


def test_crd_version_listed_but_not_served():
    obj = crd()
    obj["spec"]["versions"].append({"name": "v1beta2", "served": False})
    assert crd_problem(obj, "v1beta2").startswith("serves v1, not v1beta2")


# ---- Deployments --------------------------------------------------------------------------


def test_deployment_ready():
    assert deployment_problem(deployment(ready=1)) is None
    assert deployment_problem(deployment(ready=2, replicas=2)) is None


def test_deployment_replicas_default_to_one():
    dep = deployment(ready=0)
    del dep["spec"]["replicas"]
    assert deployment_problem(dep) == "0/1 replicas ready"


def test_deployment_missing():
    assert deployment_problem(None).startswith("not found")


def test_deployment_not_ready_counts_replicas():
    assert deployment_problem(deployment(ready=1, replicas=2)) == "1/2 replicas ready"
    assert deployment_problem(deployment(ready=0)) == "0/1 replicas ready"


def test_deployment_whose_latest_spec_is_not_observed_is_not_ready():
    dep = deployment(ready=1, generation=2, observed=1)
    assert deployment_problem(dep) == "the controller has not seen its latest spec yet"


def test_deployment_rollout_in_progress():
    assert deployment_problem(deployment(ready=1, replicas=1, updated=0)) == (
        "rollout in progress (0/1 updated, 1 ready)"
    )


def test_deployment_scaled_to_zero_is_not_an_operator():
    assert deployment_problem(deployment(ready=0, replicas=0)) == "scaled to 0 replicas"


def test_deployment_says_why_its_pods_are_not_created():
    refused = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": 'pods "op-1" is forbidden: violates PodSecurity "restricted:latest"',
    }
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "op-1" has timed out progressing.',
    }
    problem = deployment_problem(deployment(ready=0, conditions=[refused, stuck]))
    assert problem == (
        '0/1 replicas ready; pods not created: FailedCreate: pods "op-1" is '
        'forbidden: violates PodSecurity "restricted:latest"; '
        'ProgressDeadlineExceeded: ReplicaSet "op-1" has timed out progressing.'
    )


def test_deployment_ignores_conditions_that_are_not_failures():
    fine = [
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        {"type": "ReplicaFailure", "status": "False"},
    ]
    assert deployment_problem(deployment(ready=0, conditions=fine)) == "0/1 replicas ready"


# ---- pods ---------------------------------------------------------------------------------


def test_pod_unschedulable():
    cond = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient memory.",
    }
    assert pod_problems([pod(phase="Pending", conditions=[cond])]) == [
        "pod op-1: not scheduled: Unschedulable: 0/1 nodes are available: 1 Insufficient memory."
    ]


def test_pod_image_pull_and_crash_loop():
    pulling = {
        "name": "operator",
        "ready": False,
        "restartCount": 0,
        "state": {
            "waiting": {
                "reason": "ImagePullBackOff",
                "message": 'Back-off pulling image "quay.io/x"',
            }
        },
    }
    crashing = {
        "name": "operator",
        "ready": False,
        "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
    }
    assert pod_problems(
        [pod("a", phase="Pending", containers=[pulling]), pod("b", containers=[crashing])]
    ) == [
        'pod a container operator: ImagePullBackOff: Back-off pulling image "quay.io/x"',
        "pod b container operator: CrashLoopBackOff (restarts 4, last exit 1)",
    ]


def test_pod_running_but_not_ready():
    running = {"name": "operator", "ready": False, "state": {"running": {}}}
    assert pod_problems([pod(containers=[running])]) == [
        "pod op-1 container operator: running, not ready (readiness probe failing)"
    ]


def test_pod_init_container_failing():
    init = {
        "name": "certs",
        "ready": False,
        "state": {
            "waiting": {
                "reason": "CreateContainerConfigError",
                "message": 'secret "certs" not found',
            }
        },
    }
    assert pod_problems([pod(phase="Pending", init=[init])]) == [
        'pod op-1 init container certs: CreateContainerConfigError: secret "certs" not found'
    ]


def test_pod_starting_or_healthy_says_nothing():
    creating = {
        "name": "operator",
        "ready": False,
        "state": {"waiting": {"reason": "ContainerCreating"}},
    }
    healthy = {"name": "operator", "ready": True, "state": {"running": {}}}
    scheduled = {"type": "PodScheduled", "status": "True"}
    assert pod_problems([pod(containers=[healthy], conditions=[scheduled])]) == []
    # a pod still creating its container: only its phase, nothing alarming
    assert pod_problems([pod(phase="Pending", containers=[creating])]) == ["pod op-1: Pending"]


def test_pod_failed_phase_with_reason():
    assert pod_problems(
        [pod(phase="Failed") | {"status": {"phase": "Failed", "reason": "Evicted"}}]
    ) == ["pod op-1: Failed (Evicted)"]


# ---- releases, helm, namespace ------------------------------------------------------------


def test_helm_commands_pin_versions_and_namespaces():
    strimzi, spark = operator_releases()
    assert helm_command(strimzi) == STRIMZI_CMD
    assert helm_command(spark) == SPARK_CMD


def test_helm_commands_follow_the_namespace_and_the_cluster_options():
    strimzi, spark = operator_releases("games")
    cmd = helm_command(strimzi, "/opt/helm", kubeconfig="/k/config", context="kind-questlog")
    assert cmd[0] == "/opt/helm"
    assert "watchNamespaces={games}" in cmd
    assert cmd[-4:] == ["--kubeconfig", "/k/config", "--kube-context", "kind-questlog"]
    assert "spark.jobNamespaces={games}" in helm_command(spark)


def test_strimzi_never_lists_its_own_namespace_as_watched():
    # The chart appends its release namespace itself; listing it too makes duplicate
    # RoleBindings and the install fails.
    strimzi, _ = operator_releases()
    assert dict(strimzi.values)["watchNamespaces"] == "{questlog}"
    assert strimzi.namespace not in dict(strimzi.values)["watchNamespaces"]


def test_operators_wait_for_the_crds_and_deployments_the_chart_needs():
    strimzi, spark = operator_releases()
    assert {(c.name, c.version) for c in strimzi.crds} == {
        ("kafkas.kafka.strimzi.io", "v1"),
        ("kafkanodepools.kafka.strimzi.io", "v1"),
        ("kafkatopics.kafka.strimzi.io", "v1"),
    }
    assert [(c.name, c.version) for c in spark.crds] == [
        ("sparkapplications.sparkoperator.k8s.io", "v1beta2")
    ]
    assert strimzi.deployments == ("strimzi-cluster-operator",)
    assert spark.deployments == ("spark-operator-controller", "spark-operator-webhook")


def test_namespace_is_restricted_enforced_audited_and_warned():
    ns = namespace_manifest("questlog")
    assert ns["apiVersion"] == "v1"
    assert ns["kind"] == "Namespace"
    assert ns["metadata"]["name"] == "questlog"
    assert ns["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "questlog",
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
    }
    assert namespace_manifest("games")["metadata"]["name"] == "games"


def test_namespace_manifest_is_a_valid_namespace_object():
    ns = client.V1Namespace.from_dict(namespace_manifest())
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"


# ---- statuses, diagnosis, waiting ---------------------------------------------------------


class FakeCluster:
    """crd()/deployment()/pods() answering from dicts; counts reads."""

    def __init__(self, crds=None, deployments=None, pods=None):
        self.crds = crds or {}
        self.deployments = deployments or {}
        self.pod_lists = pods or {}
        self.namespaces = []
        self.pod_queries = []

    def crd(self, name):
        return self.crds.get(name)

    def deployment(self, namespace, name):
        return self.deployments.get((namespace, name))

    def pods(self, namespace, labels):
        self.pod_queries.append((namespace, dict(labels)))
        return self.pod_lists.get(namespace, [])

    def apply_namespace(self, manifest):
        self.namespaces.append(manifest)
        return "created"


def ready_cluster():
    releases = operator_releases()
    return FakeCluster(
        crds={c.name: crd(c.name, served=(c.version,)) for r in releases for c in r.crds},
        deployments={(r.namespace, d): deployment() for r in releases for d in r.deployments},
    )


def test_statuses_name_every_part():
    assert bootstrap.statuses(ready_cluster(), operator_releases()) == dict.fromkeys(PARTS)


def test_statuses_of_an_empty_cluster_say_not_found_for_every_part():
    status = bootstrap.statuses(FakeCluster(), operator_releases())
    assert list(status) == PARTS
    assert all(why.startswith("not found") for why in status.values())


def test_diagnose_adds_what_the_pods_say():
    cluster = ready_cluster()
    cluster.deployments[("strimzi", "strimzi-cluster-operator")] = deployment(
        ready=0, labels={"name": "strimzi-cluster-operator"}
    )
    pulling = {"name": "op", "ready": False, "state": {"waiting": {"reason": "ErrImagePull"}}}
    cluster.pod_lists["strimzi"] = [pod("strimzi-1", phase="Pending", containers=[pulling])]
    problems = {
        "deployment strimzi/strimzi-cluster-operator": "0/1 replicas ready",
        "crd kafkas.kafka.strimzi.io": "not found",
    }
    out = bootstrap.diagnose(cluster, operator_releases(), problems)
    assert out == {
        "deployment strimzi/strimzi-cluster-operator": (
            "0/1 replicas ready; pod strimzi-1 container op: ErrImagePull"
        ),
        "crd kafkas.kafka.strimzi.io": "not found",
    }
    assert cluster.pod_queries == [("strimzi", {"name": "strimzi-cluster-operator"})]


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_returns_when_everything_is_ready_and_logs_only_changes():
    answers = iter(
        [
            {"a": "not found", "b": None},
            {"a": "not found", "b": None},
            {"a": "0/1 replicas ready", "b": None},
            {"a": None, "b": None},
        ]
    )
    clock, logged = FakeClock(), []
    left = wait_until_ready(
        lambda: next(answers),
        timeout=60,
        interval=2,
        log=logged.append,
        clock=clock,
        sleep=clock.sleep,
    )
    assert left == {}
    assert logged == [
        "[bootstrap] a: not found",
        "[bootstrap] b: ready",
        "[bootstrap] a: 0/1 replicas ready",
        "[bootstrap] a: ready",
    ]
    assert clock.sleeps == [2, 2, 2]


def test_wait_times_out_with_what_is_not_ready():
    clock = FakeClock()
    polls = []

    def check():
        polls.append(clock.now)
        return {"a": None, "b": "0/1 replicas ready"}

    left = wait_until_ready(
        check, timeout=5, interval=2, log=lambda _: None, clock=clock, sleep=clock.sleep
    )
    assert left == {"b": "0/1 replicas ready"}
    assert clock.now == 5  # the last sleep is cut to the deadline, never past it
    assert polls == [0, 2, 4, 5]


# ---- the command --------------------------------------------------------------------------


def test_dry_run_prints_the_namespace_and_the_commands_and_touches_nothing(capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run touched a cluster or ran a command")

    monkeypatch.setattr(kube, "connect", refuse)
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.delenv("HELM", raising=False)
    assert bootstrap.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert shlex.join(STRIMZI_CMD) in lines
    assert shlex.join(SPARK_CMD) in lines
    manifest = out.split("---\n")[1]
    assert yaml.safe_load(manifest) == namespace_manifest("questlog")
    waits = [line.removeprefix("#   ").split(" (")[0] for line in lines if line.startswith("#   ")]
    assert waits == PARTS


def test_dry_run_with_namespace_context_and_helm(capsys, monkeypatch):
    monkeypatch.delenv("HELM", raising=False)
    assert (
        bootstrap.main(
            [
                "--dry-run",
                "--namespace",
                "games",
                "--context",
                "kind-q",
                "--kubeconfig",
                "/k/c",
                "--helm",
                "/opt/helm",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    commands = [shlex.split(line) for line in out.splitlines() if line.startswith("/opt/helm ")]
    assert len(commands) == 2
    for cmd in commands:
        assert cmd[-4:] == ["--kubeconfig", "/k/c", "--kube-context", "kind-q"]
    assert "watchNamespaces={games}" in commands[0]
    assert "spark.jobNamespaces={games}" in commands[1]
    assert yaml.safe_load(out.split("---\n")[1])["metadata"]["name"] == "games"


def test_timeout_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exc:
        bootstrap.main(["--dry-run", "--timeout", "0"])
    assert exc.value.code == 2
    assert "--timeout must be positive" in capsys.readouterr().err


class FakeApi:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def run_main(monkeypatch):
    """main() against a FakeCluster; helm calls recorded and answered by `helm_rc`."""
    calls = []
    state = {"cluster": ready_cluster(), "helm_rc": 0}

    def fake_run(cmd, **kwargs):
        calls.append(("helm", cmd))
        return subprocess.CompletedProcess(cmd, state["helm_rc"], "", "Error: boom")

    def fake_apply(manifest):
        calls.append(("namespace", manifest))
        return "created"

    monkeypatch.setattr(kube, "connect", lambda kubeconfig, context: FakeApi())
    monkeypatch.setattr(kube, "Cluster", lambda api: state["cluster"])
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(bootstrap.time, "sleep", lambda s: None)

    def run(*argv):
        state["cluster"].apply_namespace = fake_apply
        return bootstrap.main(["--helm", "/opt/helm", *argv])

    run.calls = calls
    run.state = state
    return run


def test_run_makes_the_namespace_before_installing_then_waits(run_main, capsys):
    assert run_main("--context", "kind-q") == 0
    kinds = [kind for kind, _ in run_main.calls]
    assert kinds == ["namespace", "helm", "helm"]
    assert run_main.calls[0][1] == namespace_manifest("questlog")
    assert run_main.calls[1][1] == ["/opt/helm", *STRIMZI_CMD[1:], "--kube-context", "kind-q"]
    assert run_main.calls[2][1] == ["/opt/helm", *SPARK_CMD[1:], "--kube-context", "kind-q"]
    assert "[bootstrap] ready: Strimzi 1.2.0 and Spark Operator 2.5.2" in capsys.readouterr().out


def test_run_stops_when_helm_fails(run_main, capsys):
    run_main.state["helm_rc"] = 1
    assert run_main() == 1
    assert [kind for kind, _ in run_main.calls] == ["namespace", "helm"]
    err = capsys.readouterr().err
    assert "helm could not install strimzi 1.2.0 (exit 1)" in err
    assert "Error: boom" in err


def test_run_times_out_naming_each_part_not_ready(run_main, capsys, monkeypatch):
    cluster = run_main.state["cluster"]
    del cluster.crds["sparkapplications.sparkoperator.k8s.io"]
    cluster.deployments[("spark-operator", "spark-operator-webhook")] = deployment(ready=0)
    ticks = iter(range(0, 10_000, 7))
    monkeypatch.setattr(bootstrap.time, "monotonic", lambda: next(ticks))
    assert run_main("--timeout", "20") == 1
    err = capsys.readouterr().err
    assert "not ready after 20 s" in err
    assert "  crd sparkapplications.sparkoperator.k8s.io: not found" in err
    assert "  deployment spark-operator/spark-operator-webhook: 0/1 replicas ready" in err
    assert "strimzi-cluster-operator" not in err


def test_find_helm_prefers_option_then_env_then_path_then_the_pinned_build(monkeypatch):
    from questlog_k8s import tools

    monkeypatch.setattr(tools, "path", lambda name: f"/cache/{name}")
    monkeypatch.setenv("HELM", "/env/helm")
    monkeypatch.setattr(bootstrap.shutil, "which", lambda name: "/usr/bin/helm")
    assert bootstrap.find_helm("/opt/helm") == "/opt/helm"
    assert bootstrap.find_helm() == "/env/helm"
    monkeypatch.delenv("HELM")
    assert bootstrap.find_helm() == "/usr/bin/helm"
    monkeypatch.setattr(bootstrap.shutil, "which", lambda name: None)
    assert bootstrap.find_helm() == "/cache/helm"


# ---- the client helper's two decisions: 404 is "not there", 409 on create is "update" -----


class FakeCore:
    def __init__(self, create_status=None):
        self.create_status = create_status
        self.patched = []

    def create_namespace(self, body):
        if self.create_status:
            raise ApiException(status=self.create_status, reason="x")
        return body

    def patch_namespace(self, name, body):
        self.patched.append((name, body))


def make_cluster(core):
    cluster = kube.Cluster(client.ApiClient(client.Configuration(host="https://127.0.0.1:6443")))
    cluster._core = core
    return cluster


def test_apply_namespace_creates_it():
    core = FakeCore()
    assert make_cluster(core).apply_namespace(namespace_manifest()) == "created"
    assert core.patched == []


def test_apply_namespace_adds_labels_to_an_existing_one():
    core = FakeCore(create_status=409)
    assert make_cluster(core).apply_namespace(namespace_manifest()) == "updated"
    assert core.patched == [
        ("questlog", {"metadata": {"labels": namespace_manifest()["metadata"]["labels"]}})
    ]


def test_apply_namespace_reports_other_refusals():
    with pytest.raises(kube.KubeError, match="403"):
        make_cluster(FakeCore(create_status=403)).apply_namespace(namespace_manifest())


def test_read_answers_none_for_not_found_and_raises_otherwise():
    cluster = make_cluster(FakeCore())

    def missing(*args):
        raise ApiException(status=404, reason="Not Found")

    def forbidden(*args):
        raise ApiException(status=403, reason="Forbidden")

    assert cluster._read(missing) is None
    with pytest.raises(kube.KubeError, match="403 Forbidden"):
        cluster._read(forbidden)
    dep = client.V1Deployment.from_dict(deployment())
    assert cluster._read(lambda: dep)["status"]["readyReplicas"] == 1


def test_an_unreachable_api_is_a_kube_error_naming_the_server():
    import urllib3

    class Down(FakeCore):
        def create_namespace(self, body):
            raise urllib3.exceptions.MaxRetryError(None, "/api/v1/namespaces", "refused")

    with pytest.raises(kube.KubeError) as exc:
        make_cluster(Down()).apply_namespace(namespace_manifest())
    assert str(exc.value).startswith("cannot reach the Kubernetes API at https://127.0.0.1:6443: ")
