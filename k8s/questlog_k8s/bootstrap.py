"""Prepare a cluster for the questlog chart: its namespace and the two operators it relies on.

The operators are their own Helm releases at pinned versions, never subcharts of questlog:
Strimzi (Kafka, KafkaNodePool, KafkaTopic) in namespace "strimzi", watching the questlog
namespace, and the Kubeflow Spark Operator (SparkApplication) in "spark-operator", running
jobs only in the questlog namespace. The questlog namespace enforces the restricted Pod
Security Standard; the operators' own namespaces are left to the cluster's default, since
their pods are not guaranteed to meet it (Strimzi's chart, in the versions checked, leaves
the operator's security context empty by default).

Then it waits until the CRDs are Established (and serve the API version the chart uses) and
every operator Deployment has its ready replicas; on timeout it says, per part, what is not
ready and why (pods unschedulable, image pulls, crash loops, admission refusals).

A second run is harmless: `helm upgrade --install` with the same pinned versions and values
only records a new revision, and the namespace keeps any labels it had besides these.

Usage:
    k8s/bootstrap                          # the current kube context
    k8s/bootstrap --context kind-questlog --timeout 900
    k8s/bootstrap --dry-run                # print the namespace and the helm commands only
    HELM=/path/to/helm k8s/bootstrap       # or --helm; default: helm on PATH, else the
                                           # pinned one (python -m questlog_k8s.tools helm)
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

# One pin per operator: the chart check validates against these versions' CRDs.
from questlog_k8s.schemas import SPARK_OPERATOR_VERSION, STRIMZI_VERSION

Obj = Mapping[str, Any]
Status = dict[str, str | None]  # part -> None when ready, else why not

DEFAULT_NAMESPACE = "questlog"
DEFAULT_TIMEOUT = 600.0

# The label set of the restricted Pod Security Standard, enforced and also reported (audit
# log, client warnings) so a refused pod says why in `kubectl` output, not only in events.
POD_SECURITY_LABELS = {
    f"pod-security.kubernetes.io/{mode}{suffix}": value
    for mode in ("enforce", "audit", "warn")
    for suffix, value in (("", "restricted"), ("-version", "latest"))
}


@dataclass(frozen=True)
class Crd:
    name: str
    version: str  # the API version questlog's chart writes; the CRD must serve it


@dataclass(frozen=True)
class Release:
    """One operator, installed as its own Helm release, and what "ready" means for it."""

    name: str
    namespace: str
    chart: str
    version: str
    repo: str | None = None
    values: tuple[tuple[str, str], ...] = ()
    crds: tuple[Crd, ...] = ()
    deployments: tuple[str, ...] = ()


def operator_releases(namespace: str = DEFAULT_NAMESPACE) -> tuple[Release, ...]:
    strimzi = Release(
        name="strimzi",
        namespace="strimzi",
        chart="oci://quay.io/strimzi-helm/strimzi-kafka-operator",
        version=STRIMZI_VERSION,
        # The chart adds its own namespace to this list: never name "strimzi" here
        # (duplicate RoleBindings, the chart's values.yaml warns).
        values=(("watchNamespaces", f"{{{namespace}}}"),),
        crds=tuple(
            Crd(f"{plural}.kafka.strimzi.io", "v1")
            for plural in ("kafkas", "kafkanodepools", "kafkatopics")
        ),
        deployments=("strimzi-cluster-operator",),
    )
    spark = Release(
        name="spark-operator",
        namespace="spark-operator",
        chart="spark-operator",
        repo="https://kubeflow.github.io/spark-operator",
        version=SPARK_OPERATOR_VERSION,
        values=(
            ("spark.jobNamespaces", f"{{{namespace}}}"),
            # The questlog chart makes the driver's service account and the Role it needs
            # (pods, services, configmaps, PVCs). With rbac left on and no account made here,
            # this chart would grant that Role to the namespace's "default" account instead.
            ("spark.serviceAccount.create", "false"),
            ("spark.rbac.create", "false"),
            # questlog's SparkApplication puts its env, labels and security contexts in pod
            # templates, which spark-submit applies itself (checked against the controller
            # in k8s/tests/test_spark_operator.py, no webhook running); the webhook stays on
            # for applications that use the operator's own pod fields.
            ("webhook.enable", "true"),
            # The extractor turns Spark's UI off; no Service for it.
            ("controller.uiService.enable", "false"),
        ),
        crds=(Crd("sparkapplications.sparkoperator.k8s.io", "v1beta2"),),
        # "<release>-controller" / "<release>-webhook": the release name contains the chart
        # name, so the chart's fullname is the release name.
        deployments=("spark-operator-controller", "spark-operator-webhook"),
    )
    return (strimzi, spark)


def namespace_manifest(name: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/part-of": "questlog", **POD_SECURITY_LABELS},
        },
    }


def helm_command(
    release: Release, helm: str = "helm", kubeconfig: str | None = None, context: str | None = None
) -> list[str]:
    cmd = [helm, "upgrade", "--install", release.name, release.chart]
    if release.repo:
        cmd += ["--repo", release.repo]  # no `helm repo add`: nothing left in the user's config
    cmd += ["--version", release.version, "--namespace", release.namespace, "--create-namespace"]
    for key, value in release.values:
        cmd += ["--set", f"{key}={value}"]
    if kubeconfig:
        cmd += ["--kubeconfig", kubeconfig]
    if context:
        cmd += ["--kube-context", context]
    return cmd


# ---- readiness: pure functions of the objects as the API serves them ------------------


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of that type, if the object has one."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def condition_reason(cond: Obj) -> str:
    """A condition's reason and message, as one line."""
    return ": ".join(p for p in (cond.get("reason"), cond.get("message")) if p)


def crd_problem(crd: Obj | None, version: str) -> str | None:
    """None when the CRD is Established and serves `version`, else why not."""
    if crd is None:
        return "not found (its operator's chart did not install it)"
    established = condition(crd, "Established")
    if established is None:
        return "no Established condition yet"
    if established.get("status") != "True":
        return f"Established={established.get('status')}" + (
            f" ({condition_reason(established)})" if condition_reason(established) else ""
        )
    served = [
        v.get("name") for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")
    ]
    if version not in served:
        return (
            f"serves {', '.join(served) or 'no version'}, not {version} "
            "(CRDs of another operator version already in the cluster?)"
        )
    return None


def deployment_problem(dep: Obj | None) -> str | None:
    """None when the Deployment's current spec has all its replicas ready, else why not."""
    if dep is None:
        return "not found (its operator's chart did not create it)"
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    want = spec.get("replicas", 1)
    if want == 0:
        return "scaled to 0 replicas"
    generation = (dep.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return "the controller has not seen its latest spec yet"
    ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
    if ready >= want and updated >= want:
        return None
    why = [
        f"{ready}/{want} replicas ready"
        if updated >= want
        else f"rollout in progress ({updated}/{want} updated, {ready} ready)"
    ]
    failure = condition(dep, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        why.append(f"pods not created: {condition_reason(failure)}")  # e.g. refused by PodSecurity
    progressing = condition(dep, "Progressing")
    if progressing is not None and progressing.get("status") == "False":
        why.append(condition_reason(progressing))
    return "; ".join(why)


_BENIGN_WAITS = {"ContainerCreating", "PodInitializing"}


def pod_problems(pods: Iterable[Obj]) -> list[str]:
    """Why a Deployment's pods are not ready, one line per container (or pod) that says."""
    lines = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        scheduled = condition(pod, "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False":
            lines.append(f"pod {name}: not scheduled: {condition_reason(scheduled)}")
            continue
        before = len(lines)
        for init, group in (
            (True, status.get("initContainerStatuses")),
            (False, status.get("containerStatuses")),
        ):
            for cs in group or []:
                where = f"pod {name} {'init ' if init else ''}container {cs.get('name')}"
                state = cs.get("state") or {}
                waiting = state.get("waiting")
                if waiting and waiting.get("reason") not in _BENIGN_WAITS:
                    line = f"{where}: {condition_reason(waiting)}"
                    crashed = (cs.get("lastState") or {}).get("terminated")
                    if crashed:
                        line += (
                            f" (restarts {cs.get('restartCount', 0)}, "
                            f"last exit {crashed.get('exitCode')})"
                        )
                    lines.append(line)
                elif not init and "running" in state and not cs.get("ready"):
                    lines.append(f"{where}: running, not ready (readiness probe failing)")
        if len(lines) == before and status.get("phase") not in (None, "Running"):
            lines.append(
                f"pod {name}: {status.get('phase')}"
                + (f" ({status['reason']})" if status.get("reason") else "")
            )
    return lines


def crd_part(crd: Crd) -> str:
    return f"crd {crd.name}"


def deployment_part(release: Release, name: str) -> str:
    return f"deployment {release.namespace}/{name}"


def statuses(cluster: Any, releases: Sequence[Release]) -> Status:
    """Every part of every release, with None (ready) or why not, read from `cluster`
    (a questlog_k8s.kube.Cluster or anything with its crd()/deployment() methods)."""
    out: Status = {}
    for release in releases:
        for crd in release.crds:
            out[crd_part(crd)] = crd_problem(cluster.crd(crd.name), crd.version)
        for name in release.deployments:
            out[deployment_part(release, name)] = deployment_problem(
                cluster.deployment(release.namespace, name)
            )
    return out


def diagnose(cluster: Any, releases: Sequence[Release], problems: Mapping[str, str]) -> Status:
    """The problems, each not-ready Deployment's with what its pods say."""
    out: Status = dict(problems)
    for release in releases:
        for name in release.deployments:
            part = deployment_part(release, name)
            if part not in problems:
                continue
            dep = cluster.deployment(release.namespace, name)
            labels = ((dep or {}).get("spec") or {}).get("selector", {}).get("matchLabels")
            if labels:
                lines = pod_problems(cluster.pods(release.namespace, labels))
                if lines:
                    out[part] = "; ".join([problems[part], *lines])
    return out


def wait_until_ready(
    check: Callable[[], Status],
    timeout: float,
    interval: float = 2.0,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, str]:
    """Poll `check` until every part is ready or `timeout` seconds passed. Logs each part
    when its state changes; answers the parts still not ready (empty: all ready)."""
    clock, sleep = clock or time.monotonic, sleep or time.sleep
    deadline = clock() + timeout
    seen: Status = {}
    while True:
        now = check()
        for part, problem in now.items():
            if part not in seen or seen[part] != problem:
                log(f"[bootstrap] {part}: {'ready' if problem is None else problem}")
        seen = now
        waiting = {part: problem for part, problem in now.items() if problem is not None}
        if not waiting or clock() >= deadline:
            return waiting
        sleep(max(0.0, min(interval, deadline - clock())))


# ---- the command ----------------------------------------------------------------------


def find_helm(explicit: str | None = None) -> str:
    """--helm, then $HELM, then helm on PATH, then the pinned build (compiled once)."""
    chosen = explicit or os.environ.get("HELM")
    if chosen:
        return chosen
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    from questlog_k8s import tools

    return str(tools.path("helm"))


def plan(
    namespace: str,
    releases: Sequence[Release],
    helm: str = "helm",
    kubeconfig: str | None = None,
    context: str | None = None,
) -> str:
    """What a run would do, as text a user can read or paste (the --dry-run output)."""
    lines = [
        f"# 1. the {namespace} namespace (restricted Pod Security Standard)",
        "---",
        yaml.safe_dump(namespace_manifest(namespace), sort_keys=False).rstrip(),
        "---",
        "# 2. the operators, each its own Helm release",
    ]
    lines += [shlex.join(helm_command(r, helm, kubeconfig, context)) for r in releases]
    lines.append("# 3. wait until these are ready")
    for r in releases:
        lines += [f"#   {crd_part(c)} (Established, serves {c.version})" for c in r.crds]
        lines += [f"#   {deployment_part(r, d)} (all replicas ready)" for d in r.deployments]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k8s/bootstrap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help="questlog's namespace, watched by both operators (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for the CRDs and operators after the installs "
        "(default: %(default).0f)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the namespace and the helm commands; touch no cluster",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--helm", help="helm binary (default: $HELM, then helm on PATH, then the pinned build)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.timeout <= 0:
        _parser().error("--timeout must be positive")
    releases = operator_releases(args.namespace)
    if args.dry_run:
        helm = args.helm or os.environ.get("HELM") or "helm"
        print(plan(args.namespace, releases, helm, args.kubeconfig, args.context))
        return 0

    from questlog_k8s import kube  # the Kubernetes client only when a cluster is touched
    from questlog_k8s.tools import ToolError

    try:
        helm = find_helm(args.helm)
        with kube.connect(args.kubeconfig, args.context) as api:
            cluster = kube.Cluster(api)
            done = cluster.apply_namespace(namespace_manifest(args.namespace))
            print(f"[bootstrap] namespace {args.namespace}: {done} (restricted)")
            for release in releases:
                cmd = helm_command(release, helm, args.kubeconfig, args.context)
                print(f"[bootstrap] {shlex.join(cmd)}")
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    print(
                        f"[bootstrap] ERROR: helm could not install {release.name} "
                        f"{release.version} (exit {proc.returncode}):\n"
                        f"{proc.stderr.strip()}",
                        file=sys.stderr,
                    )
                    return 1
            print(f"[bootstrap] waiting up to {args.timeout:.0f} s for the operators")
            problems = wait_until_ready(lambda: statuses(cluster, releases), args.timeout)
            if problems:
                print(f"[bootstrap] ERROR: not ready after {args.timeout:.0f} s:", file=sys.stderr)
                for part, why in diagnose(cluster, releases, problems).items():
                    print(f"  {part}: {why}", file=sys.stderr)
                return 1
    except (kube.KubeError, ToolError, OSError) as exc:
        print(f"[bootstrap] ERROR: {exc}", file=sys.stderr)
        return 1
    print(
        f"[bootstrap] ready: Strimzi {STRIMZI_VERSION} and Spark Operator "
        f"{SPARK_OPERATOR_VERSION} watch namespace {args.namespace}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
