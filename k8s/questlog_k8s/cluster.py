"""A real Kubernetes control plane on loopback: etcd and kube-apiserver, and no nodes.

Both are built from the Go module proxy (questlog_k8s.tools) and listen on free ports of
127.0.0.1. The API server runs with its production defaults where they matter to a chart:
admission on (Pod Security, NamespaceLifecycle, ServiceAccount, ... the server's default
set), Node,RBAC authorization, the real OpenAPI, service-account tokens signed with a key
made here. A CA, the serving certificate and an admin client certificate (group
system:masters) are made with the openssl CLI the first time a folder is used, and the
admin's kubeconfig is written beside them.

What it cannot do, by design: no kubelet, scheduler or controller-manager runs. Pods stay
Pending, Deployments get no ReplicaSets, StatefulSets no PVCs, namespaces never finish
terminating, and nobody creates a namespace's "default" service account: call
ensure_namespace() (or create it) before creating pods that rely on it.

Usage:
    python -m questlog_k8s.cluster           # `make cluster`: state under var/cluster,
                                             # runs in the foreground until Ctrl-C
    python -m questlog_k8s.cluster --fresh   # forget the previous state first

    with ControlPlane(tmp_path) as cp:       # in code (the kube_cluster test fixture)
        subprocess.run([kubectl, "--kubeconfig", cp.kubeconfig, "get", "namespaces"])
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import yaml

from questlog_k8s import tools

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_CIDR: the "kubernetes" service
CONTEXT = "questlog-local"
ADMIN = "questlog-admin"
STOP_GRACE = 15.0

Log = Callable[[str], None]


class ClusterError(RuntimeError):
    """The control plane could not start or stopped; the message says which part and why."""


def var_cluster_dir() -> Path:
    """`make cluster`'s state, beside the embedded mode's (./var, or $QUESTLOG_VAR_DIR)."""
    return Path(os.environ.get("QUESTLOG_VAR_DIR", REPO_ROOT / "var")).resolve() / "cluster"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together, so they differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


# --------------------------------------------------------------------------- PKI


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ClusterError("openssl not found: it makes the control plane's certificates")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed: {proc.stderr.strip()[-2000:]}")


def _ec_key(name: str, cwd: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=cwd
    )


def _signed_cert(name: str, subject: str, extensions: str, cwd: Path) -> None:
    """<name>.key and <name>.crt, signed by ca.key for 10 years."""
    _ec_key(f"{name}.key", cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        f"0x{secrets.token_hex(16)}",
        "-days",
        "3650",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=cwd,
    )
    (cwd / f"{name}.csr").unlink()
    (cwd / f"{name}.ext").unlink()


def make_pki(folder: Path) -> None:
    """The CA, the API server's serving certificate, the admin client certificate and the
    service-account signing key; made once per folder, in a side folder renamed at the end
    so a half-made set never exists."""
    if (folder / "ca.crt").is_file():
        return
    if folder.exists():  # not ours, or half deleted by hand: start over
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pki-", dir=folder.parent))
    _ec_key("ca.key", staging)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=questlog-local-ca",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        "ca.crt",
        cwd=staging,
    )
    names = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    san = ",".join(["IP:127.0.0.1", f"IP:{SERVICE_IP}", *(f"DNS:{n}" for n in names)])
    _signed_cert(
        "apiserver",
        "/CN=kube-apiserver",
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n",
        staging,
    )
    _signed_cert(
        "admin",
        f"/O=system:masters/CN={ADMIN}",
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        staging,
    )
    _ec_key("service-account.key", staging)
    _openssl(
        "pkey", "-in", "service-account.key", "-pubout", "-out", "service-account.pub", cwd=staging
    )
    for path in staging.iterdir():
        path.chmod(0o600)
    staging.rename(folder)


# --------------------------------------------------------------------------- processes


class _Process:
    """One child with its log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, cmd: list[str], log_path: Path):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("ab")
        # Own session: a Ctrl-C in the terminal reaches only us; we stop children in order.
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 25) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def died(self) -> ClusterError:
        return ClusterError(
            f"{self.name} exited with {self.proc.returncode}; the end of "
            f"{self.log_path}:\n{self.tail()}"
        )

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --------------------------------------------------------------------------- the plane


class ControlPlane:
    """etcd and kube-apiserver under one folder: pki/, etcd/ (data), logs/, kubeconfig.

    The folder may be reused: its certificates and etcd data are kept, ports are new at
    every start (the kubeconfig is rewritten)."""

    def __init__(self, base_dir: Path, log: Log = _stderr):
        self.base_dir = Path(base_dir).resolve()
        self._logger = log
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None
        self._port: int | None = None
        self.start_seconds: float | None = None  # launch to /readyz ok, of the last start

    # ---- where things are

    @property
    def pki(self) -> Path:
        return self.base_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.base_dir / "kubeconfig"

    @property
    def server(self) -> str:
        if self._port is None:
            raise ClusterError("the control plane is not started")
        return f"https://127.0.0.1:{self._port}"

    @property
    def log_paths(self) -> list[Path]:
        return [self.base_dir / "logs" / f"{name}.log" for name in ("etcd", "kube-apiserver")]

    # ---- lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 180.0) -> None:
        etcd, apiserver = tools.path("etcd"), tools.path("kube-apiserver")
        make_pki(self.pki)
        etcd_client, etcd_peer, api_port = _free_ports(3)
        started = time.monotonic()
        deadline = started + timeout
        try:
            self._etcd = _Process(
                "etcd", self._etcd_cmd(etcd, etcd_client, etcd_peer), self.log_paths[0]
            )
            self._wait(
                self._etcd,
                f"http://127.0.0.1:{etcd_client}/health",
                deadline,
                lambda body: json.loads(body).get("health") == "true",
            )
            self._port = api_port
            self._write_kubeconfig()
            self._apiserver = _Process(
                "kube-apiserver",
                self._apiserver_cmd(apiserver, etcd_client, api_port),
                self.log_paths[1],
            )
            self._wait(
                self._apiserver,
                f"{self.server}/readyz",
                deadline,
                lambda body: body.strip() == "ok",
            )
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        self._logger(
            f"[cluster] kube-apiserver ready at {self.server} in "
            f"{self.start_seconds:.1f} s (etcd and kube-apiserver launched, "
            "/readyz ok)"
        )

    def stop(self) -> None:
        """The API server first (its shutdown still talks to etcd), then etcd. Safe to
        call twice."""
        for proc in (self._apiserver, self._etcd):
            if proc is not None:
                proc.stop()
        self._apiserver = self._etcd = None

    def problems(self) -> list[str]:
        """For each child of a started plane that exited: its name and its log's end."""
        return [
            str(p.died()) for p in (self._etcd, self._apiserver) if p is not None and not p.alive()
        ]

    # ---- commands

    def _etcd_cmd(self, binary: Path, client: int, peer: int) -> list[str]:
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        return [
            str(binary),
            "--name",
            "questlog",
            "--data-dir",
            str(self.base_dir / "etcd"),
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"questlog={peer_url}",
            "--log-level",
            "warn",
        ]

    def _apiserver_cmd(self, binary: Path, etcd_client: int, port: int) -> list[str]:
        pki = self.pki
        return [
            str(binary),
            "--etcd-servers",
            f"http://127.0.0.1:{etcd_client}",
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(port),
            "--tls-cert-file",
            str(pki / "apiserver.crt"),
            "--tls-private-key-file",
            str(pki / "apiserver.key"),
            "--client-ca-file",
            str(pki / "ca.crt"),
            "--service-account-key-file",
            str(pki / "service-account.pub"),
            "--service-account-signing-key-file",
            str(pki / "service-account.key"),
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--authorization-mode",
            "Node,RBAC",
            # Admission: the server's default plugin set (PodSecurity, NamespaceLifecycle,
            # ServiceAccount, LimitRanger, ResourceQuota, the webhooks, ...).
            # Privileged pods allowed cluster-wide as kubeadm does, so that refusing one
            # is Pod Security admission's call, not a blanket flag's.
            "--allow-privileged=true",
            # The "kubernetes" service's endpoints would be 127.0.0.1, which Endpoints
            # validation refuses (loopback): keep the reconciler off rather than log errors.
            "--endpoint-reconciler-type",
            "none",
            "--profiling=false",
        ]

    def _write_kubeconfig(self) -> None:
        def data(name: str) -> str:
            return base64.b64encode((self.pki / name).read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": CONTEXT,
            "clusters": [
                {
                    "name": CONTEXT,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": data("ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN,
                    "user": {
                        "client-certificate-data": data("admin.crt"),
                        "client-key-data": data("admin.key"),
                    },
                }
            ],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": ADMIN}}],
            "preferences": {},
        }
        partial = self.kubeconfig.with_name(".kubeconfig.partial")
        partial.write_text(yaml.safe_dump(config, sort_keys=False))
        partial.chmod(0o600)
        partial.replace(self.kubeconfig)

    # ---- waiting

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        return ctx

    def _wait(self, proc: _Process, url: str, deadline: float, ok: Callable[[str], bool]) -> None:
        # no proxy for loopback, whatever the environment says
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=self._ssl_context()))
        opener = urllib.request.build_opener(*handlers)
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not proc.alive():
                raise proc.died()
            try:
                with opener.open(url, timeout=5) as resp:
                    body = resp.read().decode()
                if ok(body):
                    return
                last = body[-300:]
            except urllib.error.HTTPError as exc:  # /readyz answers 500 until ready
                last = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[-600:]}"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise ClusterError(
            f"{proc.name} not ready at {url} in time; last answer: {last}\n"
            f"the end of {proc.log_path}:\n{proc.tail()}"
        )

    # ---- what no controller-manager does

    def ensure_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """The namespace (labels added if it exists) and its "default" service account,
        which the ServiceAccount admission plugin needs for pods that name no account."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from questlog_k8s import kube

        with kube.connect(str(self.kubeconfig)) as api:
            kube.Cluster(api).apply_namespace(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name, "labels": dict(labels or {})},
                }
            )
            try:
                client.CoreV1Api(api).create_namespaced_service_account(
                    name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise ClusterError(
                        f"creating {name}/default service account: {exc.status} {exc.body}"
                    ) from exc


# --------------------------------------------------------------------------- make cluster


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="questlog-k8s-cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="state folder (default: var/cluster)"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete the folder's etcd data, certificates and logs first",
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for /readyz (default 180)"
    )
    args = parser.parse_args(argv)
    base = (args.dir or var_cluster_dir()).resolve()
    if args.fresh and base.exists():
        shutil.rmtree(base)
    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly as on Ctrl-C
    plane = ControlPlane(base)
    try:
        kubectl = tools.path("kubectl")  # built with kube-apiserver: one `go build`
        plane.start(timeout=args.timeout)
        plane.ensure_namespace("default")
        print(
            f"kube-apiserver {plane.server} (etcd and kube-apiserver, no nodes)\n"
            f"kubeconfig: {plane.kubeconfig}\n"
            f"logs: {', '.join(str(p) for p in plane.log_paths)}\n"
            f"kubectl: {kubectl}\n\n"
            f"export KUBECONFIG={plane.kubeconfig}\n\n"
            "Ctrl-C stops etcd and kube-apiserver.",
            flush=True,
        )
        while not (problems := plane.problems()):
            time.sleep(1)
        print("\n".join(problems), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    except (ClusterError, tools.ToolError) as exc:
        print(f"[cluster] ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        plane.stop()
    print("[cluster] stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def apply_crds(api: object, operators: tuple[str, ...], timeout: float = 90.0) -> list[str]:
    """Server-side apply the CRDs of ``operators`` (keys of schemas.crd_files()) with the
    Kubernetes client ``api`` and wait until each is Established; the CRD names.

    The field manager is kubectl's, with force: `kubectl apply --server-side` (what
    test_cluster uses) conflicts on .spec.versions with any other manager of a CRD, even
    for the same file, so every test of a session applies them alike."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from questlog_k8s import schemas

    ext = client.ApiextensionsV1Api(api)
    names = []
    for operator in operators:
        for path in schemas.crd_files()[operator]:
            for crd in yaml.safe_load_all(path.read_text()):
                if not crd:
                    continue
                names.append(crd["metadata"]["name"])
                try:
                    ext.patch_custom_resource_definition(
                        names[-1],
                        crd,
                        field_manager="kubectl",
                        force=True,
                        _content_type="application/apply-patch+yaml",
                    )
                except ApiException as exc:
                    raise ClusterError(
                        f"CRD {names[-1]} from {path}: {exc.status} {exc.body}"
                    ) from exc
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            # the API server always answers a CRD with its status
            status = ext.read_custom_resource_definition(name).status
            conditions = status.conditions or []  # type: ignore[union-attr]
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"CRD {name} not Established after {timeout:.0f} s")
            time.sleep(0.3)
    return names
