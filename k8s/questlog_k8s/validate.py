"""Strict offline validation of rendered manifests (a multi-document YAML stream).

kubeconform checks every document against the local schemas of questlog_k8s.schemas only:
the strict Kubernetes core schemas and the operators' CRDs made strict, so an unknown
field fails as it would on an API server with fieldValidation=Strict. A kind without a
schema fails too (no -ignore-missing-schemas, no allow-list): every kind the chart may
render, ServiceMonitor included, has one.

Each document is handed to kubeconform as a file of its own, so that a problem can name
the document's namespace and Helm's ``# Source:`` template, which kubeconform's report
lacks.

Usage:
    python -m questlog_k8s.validate rendered.yaml
    helm template charts/questlog | python -m questlog_k8s.validate -
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import schemas, tools

# kubeconform splits a stream at "\n---" and drops the rest of that line; so do we, so
# that our documents are exactly its documents.
_SEPARATOR = re.compile(r"\n---[^\n]*(?:\n|$)")
_HELM_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)
# santhosh-tekuri/jsonschema's leaf messages inside kubeconform's "msg", one per location.
_LEAF = re.compile(r"- at '(?P<path>[^']*)': (?P<msg>.*?)(?=\s+- at '|$)")
_UNKNOWN = re.compile(r"^additional properties (?P<names>'.*') not allowed$")


class ValidationSetupError(RuntimeError):
    """kubeconform could not run at all (as opposed to finding problems)."""


@dataclass(frozen=True)
class Problem:
    kind: str
    api_version: str
    namespace: str
    name: str
    path: str  # the field, dotted: spec.template.spec.containers[0].image; "" for the object
    message: str
    source: str = ""  # Helm's "# Source:" template, else "document N" of the stream

    def __str__(self) -> str:
        obj = (
            f"{self.kind or '?'} {self.namespace + '/' if self.namespace else ''}{self.name or '?'}"
        )
        where = f"{self.path}: " if self.path else ""
        return f"{obj} ({self.source}): {where}{self.message}"


@dataclass(frozen=True)
class _Document:
    index: int
    text: str
    kind: str = ""
    api_version: str = ""
    namespace: str = ""
    name: str = ""
    source: str = ""


def split_documents(stream: str) -> list[str]:
    """The documents of a YAML stream as kubeconform cuts them (blank ones included)."""
    return _SEPARATOR.split("\n" + stream)


def _describe(index: int, text: str) -> _Document:
    match = _HELM_SOURCE.search(text)
    source = match.group(1).strip() if match else f"document {index + 1}"
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError:
        obj = None  # kubeconform reports the syntax error itself
    if not isinstance(obj, dict):
        return _Document(index, text, source=source)
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return _Document(
        index,
        text,
        str(obj.get("kind") or ""),
        str(obj.get("apiVersion") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        source,
    )


def field_path(pointer: str) -> str:
    """kubeconform's "/spec/containers/0/image" as "spec.containers[0].image"."""
    out = ""
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def problems_from_result(result: dict, doc: _Document) -> list[Problem]:
    """One kubeconform result (a document that is not valid) as Problems."""
    kind = result.get("kind") or doc.kind
    name = result.get("name") or doc.name

    def problem(path: str, message: str) -> Problem:
        return Problem(
            kind,
            result.get("version") or doc.api_version,
            doc.namespace,
            name,
            path,
            message,
            doc.source,
        )

    msg = result.get("msg") or result.get("status", "invalid")
    if msg.startswith("could not find schema"):
        return [
            problem(
                "",
                f"no schema for {result.get('version') or doc.api_version} {kind}: "
                f"neither a Kubernetes {schemas.KUBERNETES_VERSION} kind nor one "
                "of the operators' CRDs in questlog_k8s.schemas",
            )
        ]
    leaves = [(field_path(m["path"]), m["msg"].strip()) for m in _LEAF.finditer(msg)]
    leaves = [(p, m) for p, m in leaves if m != "validation failed"]  # inner nodes of the tree
    if not leaves:
        return [problem("", msg)]
    out = []
    for path, message in leaves:
        unknown = _UNKNOWN.match(message)
        if unknown:
            for field in re.findall(r"'([^']*)'", unknown.group("names")):
                out.append(problem(_join(path, field), "unknown field (not in the schema)"))
        else:
            out.append(problem(path, message))
    return out


def kubeconform_command(files: list[Path]) -> list[str]:
    cmd = [
        str(tools.path("kubeconform")),
        "-strict",
        "-summary",
        "-output",
        "json",
        "-kubernetes-version",
        schemas.KUBERNETES_VERSION,
    ]
    for location in schemas.schema_locations():
        cmd += ["-schema-location", location]
    return cmd + [str(f) for f in files]


def validate(manifests_yaml: str) -> list[Problem]:
    """Every problem kubeconform finds in a rendered stream; [] means valid."""
    docs = [_describe(i, text) for i, text in enumerate(split_documents(manifests_yaml))]
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        return []
    with tempfile.TemporaryDirectory(prefix="questlog-validate-") as tmp:
        files = {}
        for doc in docs:
            path = Path(tmp) / f"doc-{doc.index:05d}.yaml"
            path.write_text(doc.text)
            files[str(path)] = doc
        cmd = kubeconform_command([Path(p) for p in files])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ValidationSetupError(
            f"kubeconform gave no JSON report (exit {proc.returncode}):"
            f"\n{proc.stderr[-2000:] or proc.stdout[-2000:]}"
        ) from exc
    found: list[tuple[int, Problem]] = []
    for result in report.get("resources", []):
        doc = files.get(result.get("filename", ""), _Document(-1, "", source="?"))
        found += [(doc.index, p) for p in problems_from_result(result, doc)]
    if proc.returncode != 0 and not found:
        raise ValidationSetupError(
            f"kubeconform failed (exit {proc.returncode}) without "
            f"naming a resource:\n{proc.stderr[-2000:]}"
        )
    return [p for _, p in sorted(found, key=lambda f: (f[0], f[1].name, f[1].path))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m questlog_k8s.validate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE|-", help="rendered manifests; - reads stdin")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        problems = validate(text)
    except (schemas.SchemaError, tools.ToolError, ValidationSetupError) as exc:
        print(f"[validate] ERROR: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    print(f"[validate] {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
