"""`make chart-check`: the questlog chart checked offline, the way a cluster would see it.

For the chart's defaults and every charts/questlog/ci/*-values.yaml scenario:
1. `helm lint --strict` (values.schema.json included);
2. `helm template`, then every object validated strictly (unknown fields are errors)
   against the pinned Kubernetes version's schemas, the Spark Operator's CRD and Strimzi's
   v1 CRDs (questlog_k8s.validate); the pod templates inside the SparkApplication, which
   its CRD leaves schemaless, are validated as Pods;
3. the policy checks of questlog_k8s.policy (restricted security, probes, resources,
   pinned images, labels, selectors).
Then skaffold itself: `skaffold diagnose` and `skaffold render --offline` for each profile
and module, and the rendered output through the same checks.
Every problem names the scenario, the object and the field; the exit code is 1 if any.

Usage:
    python -m questlog_k8s.chartcheck              # everything (builds the tools once)
    python -m questlog_k8s.chartcheck --no-skaffold
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from questlog_k8s import policy, schemas, tools, validate

REPO_ROOT = Path(__file__).resolve().parents[2]
# QUESTLOG_CHART: another copy of the chart (tests break one on purpose)
CHART = Path(os.environ.get("QUESTLOG_CHART", REPO_ROOT / "charts" / "questlog"))
KUBE_VERSION = schemas.KUBERNETES_VERSION
RELEASE = "questlog"
NAMESPACE = "questlog"
# skaffold runs: (label, extra args)
SKAFFOLD_RUNS: tuple[tuple[str, list[str]], ...] = (
    ("default", []),
    ("kind", ["-p", "kind"]),
    ("minikube", ["-p", "minikube"]),
    ("locust", ["-m", "locust"]),
    ("locust-kind", ["-m", "locust", "-p", "kind"]),
)


class CheckError(RuntimeError):
    """A tool failed in a way that is not a finding (it did not run)."""


@dataclass
class Result:
    scenario: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(o["kind"] for o in self.objects).items()))


def scenarios() -> list[Path]:
    return sorted((CHART / "ci").glob("*-values.yaml"))


def scenario_name(values: Path | None) -> str:
    return "chart defaults" if values is None else values.name.removesuffix("-values.yaml")


def _run(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([str(tools.path("helm")), *args])


def render(
    values: Iterable[Path] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    sets: Iterable[str] = (),
) -> str:
    """`helm template` of the chart, as one YAML stream (hooks such as the helm test
    included). Raises CheckError with helm's message when the chart does not render."""
    args = [
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
    ]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    proc = helm(*args)
    if proc.returncode != 0:
        raise CheckError(f"helm template failed: {proc.stderr.strip()}")
    return proc.stdout


def parse(stream: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(stream) if isinstance(doc, dict) and doc]


def lint(values: Path | None) -> list[str]:
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["--values", str(values)]
    proc = helm(*args)
    if proc.returncode == 0:
        return []
    lines = [
        line.strip()
        for line in (proc.stdout + proc.stderr).splitlines()
        if "[ERROR]" in line or "[WARNING]" in line or line.startswith("Error")
    ]
    return [f"helm lint: {line}" for line in lines] or [f"helm lint: exit {proc.returncode}"]


def spark_pod_templates(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The driver's and executors' pod templates of each SparkApplication as Pods, so the
    core schema checks what the CRD leaves schemaless (x-kubernetes-preserve-unknown)."""
    pods = []
    for obj in objects:
        if obj.get("kind") != "SparkApplication":
            continue
        for role in ("driver", "executor"):
            template = (obj.get("spec", {}).get(role) or {}).get("template")
            if template is None:
                continue
            meta = dict(template.get("metadata") or {})
            meta["name"] = f"{obj['metadata']['name']}-{role}-template"
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": meta,
                    "spec": template.get("spec") or {},
                }
            )
    return pods


def validate_objects(stream: str, objects: list[dict[str, Any]]) -> list[str]:
    found = [str(p) for p in validate.validate(stream)]
    extra = spark_pod_templates(objects)
    if extra:
        found += [
            f"(SparkApplication pod template) {p}"
            for p in validate.validate(yaml.safe_dump_all(extra))
        ]
    return found


def check_scenario(values: Path | None) -> Result:
    result = Result(scenario_name(values))
    result.problems += lint(values)
    try:
        stream = render([values] if values else [])
    except CheckError as exc:
        result.problems.append(str(exc))
        return result
    result.objects = parse(stream)
    result.problems += validate_objects(stream, result.objects)
    result.problems += [f"policy: {p}" for p in policy.check(result.objects)]
    return result


def skaffold_env(home: Path) -> dict[str, str]:
    """skaffold with the pinned helm v3 first on PATH, no kube context, no telemetry."""
    helm_dir = str(tools.path("helm").parent)
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\ncurrent-context: ''\n"
    )
    return {
        **os.environ,
        "PATH": f"{helm_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "KUBECONFIG": str(kubeconfig),
        "SKAFFOLD_UPDATE_CHECK": "false",
        "SKAFFOLD_COLLECT_METRICS": "false",
    }


# skaffold's artifacts -> the containers that must run them: what setValueTemplates wires.
ARTIFACTS = {
    "questlog-api": ("Deployment", "api"),
    "questlog-query": ("Deployment", "query"),
    "questlog-extractor": ("SparkApplication", "extractor"),
    "questlog-locust": ("Deployment", "locust-master"),
}
ARTIFACT_TAG = "skaffold-check"
SKAFFOLD_RELEASES = (RELEASE, "questlog-load")  # skaffold.yaml's two modules


def images_of(objects: Iterable[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(kind, name) -> the images its pods run."""
    out: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        if obj["kind"] == "SparkApplication":
            out[key].add(obj["spec"]["image"])
        for pod in policy.pods_of(obj):
            for c in pod.spec.get("containers") or []:
                if c.get("image"):
                    out[key].add(c["image"])
    return out


def check_artifact_images(objects: list[dict[str, Any]]) -> list[str]:
    """Each skaffold artifact is the image of its component (in either release)."""
    problems = []
    images = images_of(objects)
    checked = 0
    for artifact, (kind, component) in ARTIFACTS.items():
        for release in SKAFFOLD_RELEASES:
            key = (kind, f"{release}-{component}")
            if key not in images:
                continue
            checked += 1
            want = f"{artifact}:{ARTIFACT_TAG}"
            if images[key] != {want}:
                problems.append(
                    f"{kind} {key[1]}: runs {sorted(images[key])}, skaffold built {want}"
                )
    if not checked:
        problems.append("no component of skaffold's releases runs a skaffold artifact")
    return problems


def skaffold_manifests(stdout: str) -> str:
    """skaffold render's output minus the notice lines it prints before the YAML."""
    lines = stdout.splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if line.startswith(("apiVersion:", "---", "kind:"))),
        len(lines),
    )
    return "".join(lines[start:])


def check_skaffold() -> list[Result]:
    skaffold = str(tools.path("skaffold"))
    results = []
    with tempfile.TemporaryDirectory(prefix="questlog-skaffold-") as tmp:
        env = skaffold_env(Path(tmp))
        artifacts = Path(tmp) / "artifacts.json"
        artifacts.write_text(
            json.dumps(
                {
                    "builds": [
                        {"imageName": name, "tag": f"{name}:{ARTIFACT_TAG}"} for name in ARTIFACTS
                    ]
                }
            )
        )
        _run([skaffold, "config", "set", "--global", "collect-metrics", "false"], env=env)
        diagnose = Result("skaffold diagnose")
        proc = _run(
            [skaffold, "diagnose", "--yaml-only", "--filename", "skaffold.yaml"],
            env=env,
            cwd=REPO_ROOT,
        )
        if proc.returncode != 0:
            diagnose.problems.append(f"skaffold diagnose: {proc.stderr.strip()[-2000:]}")
        else:
            configs = parse(proc.stdout)
            names = sorted(c.get("metadata", {}).get("name", "?") for c in configs)
            if names != ["locust", "questlog"]:
                diagnose.problems.append(
                    f"skaffold diagnose: modules {names}, expected ['locust', 'questlog']"
                )
            diagnose.objects = configs
        results.append(diagnose)
        for label, args in SKAFFOLD_RUNS:
            result = Result(f"skaffold render {label}")
            proc = _run(
                [
                    skaffold,
                    "render",
                    "--offline=true",
                    "--digest-source=none",
                    f"--build-artifacts={artifacts}",
                    "--filename",
                    "skaffold.yaml",
                    *args,
                ],
                env=env,
                cwd=REPO_ROOT,
            )
            if proc.returncode != 0:
                result.problems.append(
                    f"skaffold render {' '.join(args)}: {proc.stderr.strip()[-2000:]}"
                )
            else:
                manifests = skaffold_manifests(proc.stdout)
                result.objects = parse(manifests)
                result.problems += validate_objects(manifests, result.objects)
                result.problems += [f"policy: {p}" for p in policy.check(result.objects)]
                result.problems += check_artifact_images(result.objects)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="questlog-chart-check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-skaffold", action="store_true", help="skip the skaffold part")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        for name in ("helm", "kubeconform", *(() if args.no_skaffold else ("skaffold",))):
            tools.path(name)
        print(
            f"[chart-check] helm {tools.TOOLS['helm'].version}, kubeconform "
            f"{tools.TOOLS['kubeconform'].version}, skaffold "
            f"{tools.TOOLS['skaffold'].version}; Kubernetes {KUBE_VERSION} schemas",
            flush=True,
        )
        results = []
        for values in scenarios():
            result = check_scenario(values)
            results.append(result)
            _report(result)
        if not args.no_skaffold:
            for result in check_skaffold():
                results.append(result)
                _report(result)
    except (CheckError, tools.ToolError, validate.ValidationSetupError, schemas.SchemaError) as exc:
        print(f"[chart-check] ERROR: {exc}", file=sys.stderr)
        return 1
    failed = sum(len(r.problems) for r in results)
    print(
        f"[chart-check] {len(results)} checks, {failed} problems "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 1 if failed else 0


def _report(result: Result) -> None:
    counts = ", ".join(f"{kind} {n}" for kind, n in result.counts.items())
    status = "ok" if not result.problems else f"{len(result.problems)} problem(s)"
    print(
        f"[chart-check] {result.scenario}: {len(result.objects)} objects: {status}"
        + (f" ({counts})" if counts else ""),
        flush=True,
    )
    for problem in result.problems:
        print(f"  {result.scenario}: {problem}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
