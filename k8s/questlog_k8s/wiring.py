"""The chart's containers as local processes: the one mapping of the wiring test.

From the rendered chart, each workload's command, arguments and environment exactly as
its pod would get them (secretKeyRef resolved from the rendered Secrets). Only addresses
and paths are rewritten, by one mapping (``Mapping``; docs/deploy-kubernetes.md lists it):

- ``addresses``: a Service's in-cluster host:port (or host) -> where the test runs it;
- ``listen``: what a container listens on (a variable or a flag) -> a loopback address;
- ``paths``: a path inside an image or volume -> the file or folder it stands for here
  (the repository file the image copies; a test directory for each pod's /tmp).
The extractor's SparkApplication becomes the spark-submit line the operator would run,
with the master and deploy mode of a local driver and the jar cache as the jars the image
bakes into /opt/spark/jars. Variable names, values, the topic, the lake path and every
other argument stay as rendered.

Usage::

    found = containers(objects, release="questlog")   # {"api": Container, ...}
    local = apply(found["api"], mapping)              # the same, rewritten
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

# What the Spark Operator passes to spark-submit for the SparkApplication (abridged: it adds
# the spark.kubernetes.* settings for pods, images and the service account).
K8S_MASTER = "k8s://https://kubernetes.default.svc:443"


@dataclass(frozen=True)
class Container:
    workload: str
    command: tuple[str, ...]
    env: dict[str, str]

    def __str__(self) -> str:
        return shlex.join(self.command)


@dataclass
class Mapping:
    addresses: dict[str, str] = field(default_factory=dict)
    listen: dict[tuple[str, str], str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    spark_master: str = "local[2]"
    spark_jars: str = ""


class WiringError(ValueError):
    """The rendered chart lacks a workload or uses an env source the test cannot play."""


def _secrets(objects: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    out = {}
    for obj in objects:
        if obj.get("kind") == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            data.update(obj.get("stringData") or {})
            out[obj["metadata"]["name"]] = data
    return out


def resolve_env(
    env: list[dict[str, Any]] | None, secrets: dict[str, dict[str, str]], where: str
) -> dict[str, str]:
    out: dict[str, str] = {}
    for var in env or []:
        name = var["name"]
        if name in out:
            raise WiringError(f"{where}: {name} is set twice")
        if "value" in var:
            out[name] = str(var["value"])
            continue
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            raise WiringError(f"{where}: {name}: only value and secretKeyRef are played here")
        secret = secrets.get(ref["name"])
        if secret is None or ref["key"] not in secret:
            raise WiringError(
                f"{where}: {name} refers to secret {ref['name']!r} key "
                f"{ref['key']!r}, which the chart does not render"
            )
        out[name] = secret[ref["key"]]
    return out


def _pod_container(obj: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The pod's one container, or the one called ``name`` (a sidecar)."""
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    spec = spec["template"]["spec"]
    where = f"{obj['kind']} {obj['metadata']['name']}"
    if name is not None:
        named = [c for c in spec["containers"] if c.get("name") == name]
        if len(named) != 1:
            raise WiringError(f"{where}: expected one container named {name!r}")
        return named[0]
    if len(spec["containers"]) != 1:
        raise WiringError(f"{where}: expected one container")
    return spec["containers"][0]


def containers(objects: list[dict[str, Any]], release: str) -> dict[str, Container]:
    secrets = _secrets(objects)
    wanted = {
        ("Deployment", f"{release}-api"): "api",
        ("Deployment", f"{release}-query"): "query",
        ("Deployment", f"{release}-locust-master"): "locust-master",
        ("Deployment", f"{release}-locust-worker"): "locust-worker",
        ("Job", f"{release}-test-ingest"): "helm-test",
        ("CronJob", f"{release}-extractor-compact"): "compact",
    }
    # sidecars: (kind, name) -> (container, workload); the Trino pod's own container runs
    # the image's entrypoint with files, not a questlog process
    sidecars = {("Deployment", f"{release}-trino"): ("registrar", "trino-registrar")}
    found: dict[str, Container] = {}
    for obj in objects:
        key = (obj.get("kind"), (obj.get("metadata") or {}).get("name"))
        where = f"{key[0]} {key[1]}"
        if key in wanted or key in sidecars:
            container, workload = sidecars[key] if key in sidecars else (None, wanted[key])
            c = _pod_container(obj, container)
            found[workload] = Container(
                workload,
                (*c.get("command", ()), *c.get("args", ())),
                resolve_env(c.get("env"), secrets, where),
            )
        elif key == ("SparkApplication", f"{release}-extractor"):
            spec = obj["spec"]
            driver = spec["driver"]["template"]["spec"]["containers"][0]
            confs = [
                arg
                for k, v in (spec.get("sparkConf") or {}).items()
                for arg in ("--conf", f"{k}={v}")
            ]
            command = (
                "spark-submit",
                "--master",
                K8S_MASTER,
                "--deploy-mode",
                spec["mode"],
                *confs,
                spec["mainApplicationFile"],
                *spec.get("arguments", ()),
            )
            found["extractor"] = Container(
                "extractor", command, resolve_env(driver.get("env"), secrets, where)
            )
    return found


def _pattern(mapping: Mapping) -> re.Pattern[str] | None:
    """One alternation of every address and path, longest first, each matched whole: not
    inside a longer name ("questlog-api" in "x-questlog-api") or path ("/tmp" in "/tmpx",
    "/x/tmp"). One pass, so a replacement (a repository path under /tmp, say) is never
    rewritten again."""
    parts = [(key, r"(?<![\w.-])") for key in mapping.addresses]
    parts += [(key, r"(?<![\w/.-])") for key in mapping.paths]
    if not parts:
        return None
    parts.sort(key=lambda part: len(part[0]), reverse=True)
    return re.compile("|".join(f"{before}{re.escape(key)}(?![\\w.-])" for key, before in parts))


def _rewrite(value: str, mapping: Mapping) -> str:
    pattern = _pattern(mapping)
    if pattern is None:
        return value
    table = {**mapping.addresses, **mapping.paths}
    return pattern.sub(lambda m: table[m.group(0)], value)


def apply(container: Container, mapping: Mapping) -> Container:
    """The container with its addresses and paths rewritten (nothing else)."""
    name = container.workload
    env = {}
    for var, value in container.env.items():
        env[var] = mapping.listen.get((name, var), _rewrite(value, mapping))
    command: list[str] = []
    args = list(container.command)
    for i, arg in enumerate(args):
        flag = args[i - 1] if i else ""
        if (name, flag) in mapping.listen:
            command.append(mapping.listen[(name, flag)])
        elif name == "extractor" and flag == "--master":
            command.append(mapping.spark_master)
        elif name == "extractor" and flag == "--deploy-mode":
            command.append("client")
        else:
            command.append(_rewrite(arg, mapping))
    if name == "extractor" and mapping.spark_jars:
        command[1:1] = ["--jars", mapping.spark_jars]
    return replace(container, command=tuple(command), env=env)
