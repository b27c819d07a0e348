"""questlog-k8s: what a questlog release on Kubernetes is doing, for people and scripts.

status  every part of the release: the Kafka cluster and its topic (Strimzi), the
        extractor's SparkApplication (state, restarts), the Deployments (ready/desired
        replicas), the HDFS StatefulSets, and the lake's tables as the query service
        reports them through the API server's service proxy. A table, or --json.
wait    polls until every part is ready, printing each change; on timeout, one line per
        part that is not ready and why.
logs    the right pods' logs: every pod of api/query/kafka/datanode/locust (each line
        prefixed with its pod), the extractor's driver pod of the current run, or all
        of its executors.

Parts a release does not have (kafka and hdfs with the "external" values, locust with
"minimal") are read from its Helm record and neither shown nor waited for. The tables are
information, not readiness: a new release has none yet.

Exit status: 0 ready (or logs read), 1 not ready or a pod's logs refused, 2 usage errors
and an unreachable or refusing cluster.

Usage:
    questlog-k8s status                         # release "questlog" in namespace "questlog"
    questlog-k8s status --json | jq '.parts[] | select(.ready | not)'
    questlog-k8s wait --timeout 900 --context kind-questlog
    questlog-k8s logs extractor --follow
    questlog-k8s logs api --tail 50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from questlog_k8s import state
from questlog_k8s.kube import KubeError, Unreachable
from questlog_k8s.state import PartStatus

PROG = "questlog-k8s"
DEFAULT_NAMESPACE = "questlog"
DEFAULT_RELEASE = "questlog"
REQUEST_TIMEOUT = 15.0  # per API request: an unreachable server is an answer, not a hang
LOG_TARGETS = ("api", "query", "extractor", "executors", "kafka", "namenode", "datanode", "locust")


# ---- reading a release ----------------------------------------------------------------


@dataclass
class Report:
    namespace: str
    release: str
    parts: list[PartStatus]
    helm: dict[str, Any] | None = None
    tables: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(p.ready for p in self.parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "release": self.release,
            "ready": self.ready,
            "helm": self.helm,
            "parts": [p.as_dict() for p in self.parts],
            "tables": self.tables,
            "notes": self.notes,
        }


def _helm_record(
    cluster: Any, namespace: str, release: str, notes: list[str]
) -> dict[str, Any] | None:
    try:
        record = state.latest_helm_record(
            cluster.secrets(namespace, {"owner": "helm", "name": release})
        )
    except Unreachable:
        raise
    except KubeError as exc:  # e.g. no right to list Secrets: still report every part
        notes.append(f"Helm's release record is unreadable ({exc}); expecting every part")
        return None
    except ValueError as exc:
        notes.append(f"{exc}; expecting every part")
        return None
    if record is None:
        notes.append(
            f"no Helm release {release!r} in namespace {namespace!r}; expecting every part"
        )
    return record


def _crd_installed(cluster: Any, kind: str) -> bool | None:
    try:
        return cluster.crd(state.crd_name(kind)) is not None
    except Unreachable:
        raise
    except KubeError:  # a namespaced user may not read CRDs: then we cannot tell
        return None


def read_parts(
    cluster: Any,
    namespace: str,
    release: str,
    diagnose: bool = False,
    notes: list[str] | None = None,
) -> tuple[dict[str, Any] | None, list[PartStatus]]:
    """The release's Helm record and each part's status. `diagnose` adds what the pods of
    a not-ready Deployment or StatefulSet say (one more request per such part)."""
    record = _helm_record(cluster, namespace, release, notes if notes is not None else [])
    out = [state.release_status(record)] if record is not None else []
    for part in state.parts_in_release(record, release):
        name = part.object_name(release)
        if part.kind in state.CUSTOM_KINDS:
            group, version, plural = state.CUSTOM_KINDS[part.kind]
            obj = cluster.custom(group, version, plural, namespace, name)
            installed = None if obj is not None else _crd_installed(cluster, part.kind)
            if part.kind == "SparkApplication":
                status = state.spark_status(part.name, name, obj, installed)
            else:
                status = state.strimzi_status(part.name, part.kind, name, obj, installed)
        elif part.kind == "Deployment":
            obj = cluster.deployment(namespace, name)
            status = state.deployment_status(part.name, name, obj)
        else:
            obj = cluster.statefulset(namespace, name)
            status = state.statefulset_status(part.name, name, obj)
        if diagnose and not status.ready and part.kind in ("Deployment", "StatefulSet"):
            labels = state.selector(obj)
            if labels:
                status = state.with_pods(status, cluster.pods(namespace, labels))
        out.append(status)
    return record, out


def _http_get(url: str, timeout: float = REQUEST_TIMEOUT) -> bytes:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"--query-url must be an http(s) URL, not {url!r}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (checked)
        return response.read()


def read_tables(
    cluster: Any, namespace: str, release: str, query_url: str | None = None
) -> dict[str, Any]:
    """GET /v1/tables from the query service: through the API server's service proxy, or
    a URL the user opened (e.g. `kubectl port-forward svc/questlog-query 8000`)."""
    service = f"{state.chart_name(release, 'query')}:http"
    via = query_url or f"the API server's service proxy to service {service}"
    try:
        if query_url:
            body = _http_get(query_url.rstrip("/") + "/v1/tables")
        else:
            body = cluster.service_get(namespace, service, "v1/tables")
        rows = state.tables(json.loads(body))
    except (KubeError, OSError, ValueError) as exc:
        return {"reachable": False, "via": via, "error": str(exc), "tables": []}
    return {"reachable": True, "via": via, "error": None, "tables": rows}


def report(
    cluster: Any,
    namespace: str,
    release: str,
    query_url: str | None = None,
    diagnose: bool = True,
    with_tables: bool = True,
) -> Report:
    notes: list[str] = []
    record, parts = read_parts(cluster, namespace, release, diagnose, notes)
    helm = (
        None
        if record is None
        else {k: v for k, v in state.release_status(record).detail.items() if v is not None}
    )
    result = Report(namespace, release, parts, helm, notes=notes)
    if with_tables:
        if any(p.part == "query" for p in parts):
            result.tables = read_tables(cluster, namespace, release, query_url)
        else:
            notes.append("the query service is not part of this release: no tables")
    return result


# ---- the text a person reads ------------------------------------------------------------


def freshness(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def _columns(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent
        + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def render(rep: Report) -> str:
    not_ready = [p for p in rep.parts if not p.ready]
    verdict = (
        "ready" if not not_ready else f"NOT READY ({len(not_ready)} of {len(rep.parts)} parts)"
    )
    lines = [f"questlog release {rep.release!r} in namespace {rep.namespace!r}: {verdict}", ""]
    lines += _columns(
        [
            ("PART", "READY", "STATUS"),
            *((p.part, "yes" if p.ready else "no", p.reason) for p in rep.parts),
        ]
    )
    tables = rep.tables
    if tables is not None:
        lines.append("")
        if tables["reachable"]:
            lines.append(f"tables (query service, via {tables['via']}):")
            rows = [("TABLE", "ROWS", "VERSION", "FRESHNESS")]
            rows += [
                (
                    str(t["name"]),
                    str(t["rows"]),
                    "-" if t["version"] is None else str(t["version"]),
                    freshness(t["freshness_seconds"]),
                )
                for t in tables["tables"]
            ]
            lines += _columns(rows, "  ") if tables["tables"] else ["  (no tables)"]
        else:
            lines.append(
                f"tables: the query service cannot be reached through "
                f"{tables['via']}: {tables['error']}"
            )
    if rep.notes:
        lines.append("")
        lines += [f"note: {note}" for note in rep.notes]
    return "\n".join(lines)


# ---- wait ---------------------------------------------------------------------------------


def wait_for(
    check: Callable[[], list[PartStatus]],
    timeout: float,
    interval: float,
    log: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[PartStatus] | None:
    """Poll `check` until every part is ready (answers []) or `timeout` seconds passed
    (answers the last statuses). Logs each part whose state changed. A KubeError on the
    first poll is raised (nothing to wait on); later ones are logged and polled again,
    and answer None if the deadline comes while the cluster cannot be read."""
    deadline = clock() + timeout
    seen: dict[str, tuple[bool, str]] = {}
    last_error: str | None = None
    now: list[PartStatus] | None
    first = True
    while True:
        try:
            now = check()
        except KubeError as exc:
            if first:
                raise
            if str(exc) != last_error:
                log(f"cannot read the cluster (polling again): {exc}")
            last_error = str(exc)
            now = None
        else:
            last_error = None
            for part in now:
                key = (part.ready, part.reason)
                if seen.get(part.part) != key:
                    log(f"{part.part}: {'ready: ' if part.ready else ''}{part.reason}")
                seen[part.part] = key
            if all(p.ready for p in now):
                return []
        first = False
        if clock() >= deadline:
            return now
        sleep(max(0.0, min(interval, deadline - clock())))


# ---- logs --------------------------------------------------------------------------------


class NoPods(Exception):
    """No pod to read logs from; the message says what was looked for."""


def _workload_pods(cluster: Any, namespace: str, kind: str, name: str) -> list[Mapping[str, Any]]:
    read = cluster.deployment if kind == "Deployment" else cluster.statefulset
    obj = read(namespace, name)
    if obj is None:
        raise NoPods(f"{kind} {name} not found in namespace {namespace}")
    labels = state.selector(obj)
    pods = cluster.pods(namespace, labels) if labels else []
    if not pods:
        raise NoPods(
            f"{kind} {name} has no pods (selector "
            f"{','.join(f'{k}={v}' for k, v in sorted(labels.items()))})"
        )
    return pods


def log_pods(cluster: Any, namespace: str, release: str, target: str) -> list[Mapping[str, Any]]:
    """The pods whose logs `logs <target>` shows, by name."""
    name = state.chart_name
    if target in ("api", "query"):
        pods = _workload_pods(cluster, namespace, "Deployment", name(release, target))
    elif target == "locust":
        pods = []
        for role in ("master", "worker"):
            with contextlib.suppress(NoPods):  # e.g. workers scaled to 0
                pods += _workload_pods(
                    cluster, namespace, "Deployment", name(release, f"locust-{role}")
                )
        if not pods:
            raise NoPods(
                f"no Locust pods (Deployments {name(release, 'locust-master')}, "
                f"{name(release, 'locust-worker')}) in namespace {namespace}"
            )
    elif target in ("namenode", "datanode"):
        pods = _workload_pods(cluster, namespace, "StatefulSet", name(release, f"hdfs-{target}"))
    elif target == "kafka":
        cluster_name = name(release, "kafka")
        pods = cluster.pods(namespace, state.kafka_labels(cluster_name))
        if not pods:
            raise NoPods(
                f"no broker pods of Kafka {cluster_name} in namespace {namespace} "
                "(Strimzi creates them once it reconciles the Kafka)"
            )
    elif target == "executors":
        app = name(release, "extractor")
        pods = cluster.pods(namespace, state.executor_labels(app))
        if not pods:
            raise NoPods(
                f"no executor pods of SparkApplication {app} in namespace "
                f"{namespace} (its driver starts them once it runs)"
            )
    elif target == "extractor":
        pods = [_driver_pod(cluster, namespace, name(release, "extractor"))]
    else:
        raise ValueError(f"unknown logs target {target!r}")
    return sorted(pods, key=lambda p: p["metadata"]["name"])


def _driver_pod(cluster: Any, namespace: str, app_name: str) -> Mapping[str, Any]:
    group, version, plural = state.CUSTOM_KINDS["SparkApplication"]
    app = cluster.custom(group, version, plural, namespace, app_name)
    pods = cluster.pods(namespace, state.driver_labels(app_name))
    recorded = (((app or {}).get("status") or {}).get("driverInfo") or {}).get("podName")
    if recorded and all(p["metadata"]["name"] != recorded for p in pods):
        pod = cluster.pod(namespace, recorded)
        pods = [*pods, pod] if pod is not None else pods
    driver = state.current_driver(app, pods)
    if driver is None:
        if app is None:
            raise NoPods(f"SparkApplication {app_name} not found in namespace {namespace}")
        app_state = ((app.get("status") or {}).get("applicationState") or {}).get("state")
        raise NoPods(
            f"no driver pod of SparkApplication {app_name} "
            f"(state {app_state or 'not submitted yet'})"
        )
    return driver


class _Printer:
    """Whole lines to stdout from several threads, each with its pod's prefix."""

    def __init__(self, stream: Any):
        self._stream = stream
        self._lock = threading.Lock()

    def line(self, prefix: bytes, data: bytes) -> None:
        with self._lock:
            self._stream.write(prefix + data + (b"" if data.endswith(b"\n") else b"\n"))
            self._stream.flush()


def show_logs(
    cluster: Any,
    namespace: str,
    pods: Sequence[Mapping[str, Any]],
    follow: bool,
    tail: int | None,
    prefix: bool,
    out: Any,
    err: TextIO,
) -> int:
    """Every pod's log; with `follow`, all at once until they end or Ctrl-C. Answers 1 if
    the server refused any of them (its message on stderr, naming the pod)."""
    printer = _Printer(out)
    failed: list[str] = []

    def one(pod: Mapping[str, Any]) -> None:
        name, container = pod["metadata"]["name"], state.log_container(pod)
        head = f"[{name}] ".encode() if prefix else b""
        blocked = state.log_blocker(pod)
        if blocked:
            failed.append(name)
            print(
                f"{PROG}: logs of pod {name} (container {container}): {blocked}",
                file=err,
                flush=True,
            )
            return
        try:
            for data in cluster.pod_log(namespace, name, container, tail, follow):
                printer.line(head, data)
        except KubeError as exc:
            failed.append(name)
            print(
                f"{PROG}: logs of pod {name} (container {container}): {exc}", file=err, flush=True
            )

    if not follow or len(pods) == 1:
        for pod in pods:
            one(pod)
    else:
        threads = [threading.Thread(target=one, args=(pod,), daemon=True) for pod in pods]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)  # wakes for Ctrl-C
    return 1 if failed else 0


# ---- the command ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--namespace",
        "-n",
        default=DEFAULT_NAMESPACE,
        help="the release's namespace (default: %(default)s)",
    )
    common.add_argument(
        "--release", default=DEFAULT_RELEASE, help="the Helm release name (default: %(default)s)"
    )
    common.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)",
    )
    common.add_argument("--context", help="kubeconfig context (default: the current one)")

    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", parents=[common], help="every part, once")
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.add_argument(
        "--query-url",
        help="read the tables from this URL (e.g. "
        "http://127.0.0.1:8000 with a port-forward) instead of the API "
        "server's service proxy",
    )
    wait = commands.add_parser("wait", parents=[common], help="until every part is ready")
    wait.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds before giving up (default: %(default).0f)",
    )
    wait.add_argument(
        "--interval", type=float, default=5.0, help="seconds between polls (default: %(default).0f)"
    )
    logs = commands.add_parser("logs", parents=[common], help="the right pods' logs")
    logs.add_argument(
        "target",
        choices=LOG_TARGETS,
        help="extractor: the driver of the current run; executors: all "
        "executors; the others: every pod of the component",
    )
    logs.add_argument("--follow", "-f", action="store_true", help="stream until Ctrl-C")
    logs.add_argument("--tail", type=int, help="only the last N lines of each pod")
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command == "wait" and (args.timeout <= 0 or args.interval <= 0):
        parser.error("--timeout and --interval must be positive")
    if args.command == "logs" and args.tail is not None and args.tail < 0:
        parser.error("--tail must be 0 or more")


@contextlib.contextmanager
def _connected(args: argparse.Namespace) -> Iterator[Any]:
    from questlog_k8s import kube

    with kube.connect(args.kubeconfig, args.context) as api:
        yield kube.Cluster(api, timeout=REQUEST_TIMEOUT)


def _status(cluster: Any, args: argparse.Namespace) -> int:
    rep = report(cluster, args.namespace, args.release, args.query_url)
    print(json.dumps(rep.as_dict(), indent=2) if args.json else render(rep), flush=True)
    return 0 if rep.ready else 1


def _wait(cluster: Any, args: argparse.Namespace) -> int:
    def check() -> list[PartStatus]:
        return read_parts(cluster, args.namespace, args.release)[1]

    def log(msg: str) -> None:
        print(f"[wait] {msg}", flush=True)

    log(f"release {args.release!r} in namespace {args.namespace!r}, up to {args.timeout:g} s")
    left = wait_for(check, args.timeout, args.interval, log)
    if left == []:
        log("every part is ready")
        return 0
    if left is None:
        print(
            f"{PROG}: not ready after {args.timeout:g} s: the cluster could not be read",
            file=sys.stderr,
        )
        return 2
    # the final word says what the pods of each not-ready workload say
    _, left = read_parts(cluster, args.namespace, args.release, diagnose=True)
    print(f"{PROG}: not ready after {args.timeout:g} s:", file=sys.stderr)
    for part in left:
        if not part.ready:
            print(part.line(), file=sys.stderr)
    return 1


def _logs(cluster: Any, args: argparse.Namespace) -> int:
    try:
        pods = log_pods(cluster, args.namespace, args.release, args.target)
    except NoPods as exc:
        print(f"{PROG}: logs {args.target}: {exc}", file=sys.stderr)
        return 1
    prefix = args.target not in ("extractor", "namenode")  # one pod by nature
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a text stream without bytes (a test's capture)
        out = _TextBytes(sys.stdout)
    try:
        return show_logs(
            cluster, args.namespace, pods, args.follow, args.tail, prefix, out, sys.stderr
        )
    except KeyboardInterrupt:
        return 0


class _TextBytes:
    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data.decode(errors="replace"))

    def flush(self) -> None:
        self._stream.flush()


COMMANDS = {"status": _status, "wait": _wait, "logs": _logs}


def main(argv: Sequence[str] | None = None, cluster: Any = None) -> int:
    """The console script. `cluster` (anything with kube.Cluster's reads) replaces the
    connection made from --kubeconfig/--context: the tests' fake."""
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    # urllib3 would print each connection retry; the one error below says it all.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    command = COMMANDS[args.command]
    try:
        if cluster is not None:
            return command(cluster, args)
        with _connected(args) as real:
            return command(real, args)
    except BrokenPipeError:  # `questlog-k8s logs api | head`: the reader has had enough
        with contextlib.suppress(OSError, AttributeError):  # nothing to flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (KubeError, OSError) as exc:  # OSError: e.g. an unreadable kubeconfig
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
