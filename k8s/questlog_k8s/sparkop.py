"""The Kubeflow Spark Operator's controller as a local process, outside any cluster.

The controller is the pinned Go build of questlog_k8s.tools ("spark-operator"). Out of
cluster it gets what its Deployment would give it:
- its own identity: the ServiceAccount and RBAC of the bootstrap's release, rendered from
  the operator's chart (in its Go module, at the binary's version) and applied, and a
  kubeconfig with a token of that account (controller_kubeconfig()). The controller and
  its spark-submit act with exactly the rights a cluster install grants them.
- ``SPARK_HOME``: it runs ``$SPARK_HOME/bin/spark-submit`` for every submission. PyPI's
  pyspark is a Spark distribution for this purpose: bin/ plus jars/ with the Kubernetes
  scheduler (spark-kubernetes, the fabric8 client), so its package folder serves.
- ``KUBERNETES_SERVICE_HOST`` / ``_PORT``: it builds spark-submit's ``--master k8s://...``
  from them alone, as it would from a pod's environment.
- ``KUBECONFIG``: how spark-submit's fabric8 client authenticates; the controller itself
  gets ``--kubeconfig``.
- ``SPARK_USER``: the image's user, which spark-submit passes on to the driver.
It must start after the operator's CRDs are established (its informers fail otherwise).
It writes each submission's pod templates to /tmp/spark/<submission id>/, a path fixed in
the operator. Health probes are served on a loopback port; metrics, pprof and leader
election stay off (their defaults). No webhook runs: the questlog chart gives the driver
and executors pod templates, which spark-submit applies itself.

Usage::

    kubeconfig = controller_kubeconfig(admin_kubeconfig, ["questlog"], state_dir)
    with SparkOperator(kubeconfig, ["questlog"], state_dir / "controller.log"):
        ...                       # SparkApplications in "questlog" are submitted
    python -m questlog_k8s.sparkop --kubeconfig var/cluster/kubeconfig --namespace questlog
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from questlog_embedded import process
from questlog_k8s import bootstrap, schemas, tools

TOOL = "spark-operator"
CHART = "charts/spark-operator-chart"  # inside the operator's Go module
# the chart's files that make the controller's identity
IDENTITY_TEMPLATES = ("templates/controller/serviceaccount.yaml", "templates/controller/rbac.yaml")
ACCOUNT_TOKEN_HOURS = 24  # a longer run needs a new kubeconfig
# where the controller writes each submission's pod templates (fixed in the operator)
SUBMISSIONS = Path("/tmp/spark")  # noqa: S108 (not ours to choose)
# The operator's image runs as "spark" (uid 185). spark-submit hands its user to the driver
# as SPARK_USER, the driver's HDFS identity: not this machine's login.
SPARK_USER = "spark"
_PR_SET_PDEATHSIG = 1


class OperatorError(RuntimeError):
    """The controller could not be set up or started, or died; the message says why."""


def spark_home() -> Path:
    """pyspark's package folder, found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise OperatorError(
            "pyspark is not installed in this environment: the operator "
            "needs its spark-submit and Kubernetes jars"
        )
    home = Path(spec.origin).parent
    if not (home / "bin" / "spark-submit").is_file():
        raise OperatorError(f"{home} has no bin/spark-submit")
    return home


def _run(cmd: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OperatorError(
            f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()[-3000:]}"
        )
    return proc.stdout


def _current(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The current context's cluster entry and context."""
    context = next(
        c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
    )
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    return cluster, context


def kubeconfig_server(kubeconfig: Path) -> str:
    return _current(yaml.safe_load(Path(kubeconfig).read_text()))[0]["server"]


def identity_objects(job_namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """The controller's ServiceAccount and RBAC as the bootstrap's release makes them (its
    values, these job namespaces), rendered from the chart of the binary's version."""
    tool = tools.TOOLS[TOOL]
    root = schemas._go_module_dir(f"{TOOL} chart", tool.module, tool.version)
    release = next(r for r in bootstrap.operator_releases() if r.chart == TOOL)
    values = {**dict(release.values), "spark.jobNamespaces": f"{{{','.join(job_namespaces)}}}"}
    cmd = [
        str(tools.path("helm")),
        "template",
        release.name,
        str(root / CHART),
        "--namespace",
        release.namespace,
    ]
    for key, value in values.items():
        cmd += ["--set", f"{key}={value}"]
    for template in IDENTITY_TEMPLATES:
        cmd += ["--show-only", template]
    objects = [o for o in yaml.safe_load_all(_run(cmd)) if o]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": release.namespace}}
    return [namespace, *objects]


def controller_kubeconfig(
    admin_kubeconfig: Path, job_namespaces: Sequence[str], folder: Path
) -> Path:
    """Apply the controller's identity with the admin's kubeconfig (server-side apply, so a
    second call is harmless) and write ``folder/controller.kubeconfig`` with a fresh token of
    its ServiceAccount (TokenRequest: the API server issues it, no controller needed).

    Besides fidelity, this keeps spark-submit off the admin's client certificate: fabric8
    reads only RSA client keys unless BouncyCastle is on the classpath, and pyspark ships
    none; a token works with any key type."""
    kubectl = [str(tools.path("kubectl")), "--kubeconfig", str(admin_kubeconfig)]
    objects = identity_objects(job_namespaces)
    _run(
        [*kubectl, "apply", "--server-side", "--field-manager=questlog-sparkop", "-f", "-"],
        stdin=yaml.safe_dump_all(objects),
    )
    account = next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]
    token = _run(
        [
            *kubectl,
            "create",
            "token",
            account["name"],
            "--namespace",
            account["namespace"],
            f"--duration={ACCOUNT_TOKEN_HOURS}h",
        ]
    ).strip()

    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster, _ = _current(admin)
    if "certificate-authority" in cluster:  # a path: inline it, the file may move
        ca = Path(cluster.pop("certificate-authority")).read_bytes()
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    user = f"{account['namespace']}:{account['name']}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": TOOL,
        "clusters": [{"name": TOOL, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": TOOL, "context": {"cluster": TOOL, "user": user}}],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "controller.kubeconfig"
    partial = path.with_name(f".{path.name}.partial")
    partial.touch(mode=0o600)
    partial.write_text(yaml.safe_dump(config))
    partial.replace(path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: Linux sends it SIGTERM when its parent dies, so a killed test run
    leaves no controller behind submitting into the next run's cluster."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    os.setpgrp()


class SparkOperator:
    """One controller process watching ``namespaces``; its log goes to ``log_path``."""

    def __init__(self, kubeconfig: Path, namespaces: Sequence[str], log_path: Path):
        if not namespaces:
            raise ValueError("name the namespaces to watch: an empty list means all")
        self.kubeconfig = Path(kubeconfig)
        self.server = kubeconfig_server(self.kubeconfig)
        self.namespaces = list(namespaces)
        self.log_path = Path(log_path)
        self.health_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            str(tools.path(TOOL)),
            "controller",
            "start",
            f"--kubeconfig={self.kubeconfig}",
            f"--namespaces={','.join(self.namespaces)}",
            f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
            "--zap-encoder=json",
        ]  # watching() reads the log

    def environment(self) -> dict[str, str]:
        url = urllib.parse.urlsplit(self.server)
        if url.scheme != "https" or not url.hostname or not url.port:
            raise OperatorError(f"the API server must be https://host:port, not {self.server}")
        return {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            "SPARK_USER": SPARK_USER,
            "KUBERNETES_SERVICE_HOST": url.hostname,
            "KUBERNETES_SERVICE_PORT": str(url.port),
            "KUBECONFIG": str(self.kubeconfig),
        }

    def start(self, timeout: float = 60.0) -> SparkOperator:
        if self._proc is not None:
            raise OperatorError("already started")
        self.health_port = _free_port()
        command, env = self.command(), self.environment()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not (self.ready() and self.watching()):
            if not self.alive():
                code = self._proc.returncode
                self._proc = None
                raise OperatorError(
                    f"the spark-operator controller exited with {code} while "
                    f"starting; the end of {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise OperatorError(
                    f"the spark-operator controller was not watching after "
                    f"{timeout:.0f} s; the end of {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.3)
        return self

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status == 200
        except OSError:  # URLError included
            return False

    def watching(self) -> bool:
        """The SparkApplication controller's informers synced and its workers started."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # client-go's klog lines
            if (
                entry.get("msg") == "Starting workers"
                and entry.get("controller") == "sparkapplication"
            ):
                return True
        return False

    def stop(self, timeout: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        process.stop(proc, timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        with open(self.log_path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines))

    def __enter__(self) -> SparkOperator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m questlog_k8s.sparkop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        required=True,
        help="an admin's kubeconfig (applies the controller's RBAC)",
    )
    parser.add_argument(
        "--namespace", action="append", required=True, help="a namespace to watch (repeatable)"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=Path("var/spark-operator"),
        help="where its kubeconfig and log go (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        kubeconfig = controller_kubeconfig(args.kubeconfig, args.namespace, args.state)
        operator = SparkOperator(kubeconfig, args.namespace, args.state / "controller.log")
        operator.start()
    except (OperatorError, tools.ToolError, schemas.SchemaError) as exc:
        print(f"[sparkop] {exc}", file=sys.stderr)
        return 1
    print(
        f"[sparkop] watching {', '.join(args.namespace)}; log: {operator.log_path}; Ctrl-C stops",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while operator.alive():
            time.sleep(1)
        print(f"[sparkop] the controller exited:\n{operator.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        operator.stop()


if __name__ == "__main__":
    sys.exit(main())
