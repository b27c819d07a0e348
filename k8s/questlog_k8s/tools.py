"""Pinned Go tools built from the Go module proxy into a cache outside the clone.

No binary is downloaded from a project's website: each tool is compiled from its Go module
at a pinned version, once, into ``$QUESTLOG_TOOLS_DIR/<name>/<version>/`` (default
``~/.cache/questlog/tools``), like the jars of embedded/pom.xml. A warm call only checks
that the binary is there.

Usage:
    python -m questlog_k8s.tools              # build every missing tool, print their paths
    python -m questlog_k8s.tools helm         # one tool; prints its path
    python -m questlog_k8s.tools --check      # exit 1 if one is missing
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tool:
    name: str
    module: str
    version: str
    package: str  # the main package, relative to the module ("" for its root)
    # Some modules (skaffold) cannot be `go install`ed at a version: their go.mod has
    # replace directives. Those are built in a module of our own that copies them.
    own_module: bool = False
    ldflags: str = ""  # what the project's own release build stamps in (-X ...)
    # own_module: replace directives into the module's own tree (Kubernetes' ./staging/src/...)
    # cannot be copied; each such module is replaced by its published release at this
    # version instead. Without it those lines are dropped (etcd's ../api: the required
    # versions already match).
    staging_version: str = ""

    @property
    def import_path(self) -> str:
        return f"{self.module}/{self.package}" if self.package else self.module

    @property
    def recipe(self) -> tuple[str, ...]:
        """What the build depends on besides the name: tools sharing it build together."""
        return (self.module, self.version, str(self.own_module), self.ldflags, self.staging_version)

    @property
    def binary(self) -> Path:
        # keyed by version and recipe: a changed recipe builds anew, beside the old one
        recipe = f"{self.module} {self.package} {self.ldflags}"
        if self.staging_version:
            recipe += f" staging={self.staging_version}"
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:8]
        return tools_dir() / self.name / f"{self.version}-{digest}" / self.name


# helm's release build stamps its version and the Kubernetes version of its client-go
# (v0.37 -> 1.37); without them helm assumes Kubernetes 1.20 for .Capabilities and lint.
_HELM_LDFLAGS = " ".join(
    f"-X helm.sh/helm/v3/{var}"
    for var in (
        "internal/version.version=v3.22.0",
        "internal/version.gitTreeState=clean",
        "pkg/chartutil.k8sVersionMajor=1",
        "pkg/chartutil.k8sVersionMinor=37",
        "pkg/lint/rules.k8sVersionMajor=1",
        "pkg/lint/rules.k8sVersionMinor=37",
    )
)

# hack/lib/version.sh stamps both version packages; buildDate is the tag's time on the proxy.
# Unstamped, the server reports v0.0.0-master and helm refuses the chart's kubeVersion.
_KUBE_LDFLAGS = " ".join(
    f"-X k8s.io/{pkg}.{key}={value}"
    for pkg in ("client-go/pkg/version", "component-base/version")
    for key, value in (
        ("gitVersion", "v1.37.2"),
        ("gitMajor", "1"),
        ("gitMinor", "37"),
        ("gitTreeState", "clean"),
        ("buildDate", "2026-10-27T12:01:04Z"),
    )
)

# helm v3, not v4: skaffold calls `helm version --client`, which helm v4 refuses.
TOOLS = {
    tool.name: tool
    for tool in (
        Tool("helm", "helm.sh/helm/v3", "v3.22.0", "cmd/helm", ldflags=_HELM_LDFLAGS),
        Tool("kubeconform", "github.com/yannh/kubeconform", "v0.7.0", "cmd/kubeconform"),
        Tool(
            "skaffold",
            "github.com/GoogleContainerTools/skaffold/v2",
            "v2.16.1",
            "cmd/skaffold",
            own_module=True,
        ),
        # the control plane of the cluster tests (questlog_k8s.cluster); etcd's main package
        # is its server module's root
        Tool("etcd", "go.etcd.io/etcd/server/v3", "v3.6.16", "", own_module=True),
        # same recipe: built by one `go build`, in a module whose replaces point each
        # staging module (./staging/src/k8s.io/...) at its published v0.37.2
        *(
            Tool(
                name,
                "k8s.io/kubernetes",
                "v1.37.2",
                f"cmd/{name}",
                own_module=True,
                ldflags=_KUBE_LDFLAGS,
                staging_version="v0.37.2",
            )
            for name in ("kube-apiserver", "kubectl")
        ),
        # its go.mod pins client-go & co with replace directives; stamps as its Makefile does
        Tool(
            "spark-operator",
            "github.com/kubeflow/spark-operator/v2",
            "v2.5.2",
            "cmd/operator",
            own_module=True,
            ldflags=(
                "-X k8s.io/component-base/version.gitVersion=v2.5.2 "
                "-X k8s.io/component-base/version.gitCommit="
                "43afb8bbd32463037d8fb6e414e252c69081882b "
                "-X k8s.io/component-base/version.gitTreeState=clean"
            ),
        ),
    )
}


class ToolError(RuntimeError):
    """A tool could not be built; the message says which and why."""


def tools_dir() -> Path:
    default = Path.home() / ".cache" / "questlog" / "tools"
    return Path(os.environ.get("QUESTLOG_TOOLS_DIR", default)).expanduser().resolve()


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolError(
            "go not found: the Kubernetes tools build from the Go module proxy "
            "(install Go 1.24 or newer)"
        )
    return go


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def _replaces(gomod: str) -> list[str]:
    """The replace directives of a go.mod, one line each (block or single form)."""
    out: list[str] = []
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line:
                out.append(line)
        elif re.match(r"^replace\s*\($", line):
            in_block = True
        elif line.startswith("replace "):
            out.append(line[len("replace ") :].strip())
    return out


def _local_replace(line: str, staging_version: str) -> str | None:
    """A replace line as our own module needs it: one into the module's own tree
    (``=> ./staging/src/...``, ``=> ../api``) cannot resolve outside that tree."""
    old, _, new = (part.strip() for part in line.partition("=>"))
    if not new.startswith(("./", "../")):
        return line
    if not staging_version:
        return None
    return f"{old.split()[0]} => {old.split()[0]} {staging_version}"


def _go_binary_name(import_path: str) -> str:
    """The file `go build -o dir/` writes: the last path element, a major version dropped
    (go.etcd.io/etcd/server/v3 -> server)."""
    parts = import_path.split("/")
    if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _siblings(tool: Tool) -> list[Tool]:
    """The tools of one recipe (kube-apiserver and kubectl): one `go build` makes them all,
    so the packages they share compile once."""
    return [t for t in TOOLS.values() if t.recipe == tool.recipe] or [tool]


def build(tool: Tool, log=print) -> Path:
    """The tool's binary, compiled first if the cache lacks it (with its missing siblings)."""
    if tool.binary.is_file():
        return tool.binary
    go = _go()
    batch = [t for t in _siblings(tool) if not t.binary.is_file()]
    if tool not in batch:
        batch.append(tool)
    names = ", ".join(t.name for t in batch)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false -trimpath"}
    started = time.monotonic()
    log(
        f"[tools] {time.strftime('%H:%M:%S')} building {names} {tool.version} from "
        f"{tool.module} (once; cached in {tools_dir()})"
    )
    with tempfile.TemporaryDirectory(prefix=f"questlog-{tool.name}-") as tmp:
        outdir = Path(tmp) / "bin"
        outdir.mkdir()
        if tool.own_module:
            info = json.loads(
                _run([go, "mod", "download", "-json", f"{tool.module}@{tool.version}"], env=env)
            )
            replaces = [
                _local_replace(line, tool.staging_version)
                for line in _replaces(Path(info["GoMod"]).read_text())
            ]
            mod = Path(tmp) / "mod"
            mod.mkdir()
            lines = [
                "module questlog.local/tools",
                "",
                "go 1.24",
                "",
                f"require {tool.module} {tool.version}",
                "",
            ]
            lines += [f"replace {line}" for line in replaces if line]
            (mod / "go.mod").write_text("\n".join(lines) + "\n")
            imports = "".join(f'import _ "{t.import_path}"\n' for t in batch)
            (mod / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\n{imports}")
            _run([go, "mod", "tidy"], cwd=mod, env=env)
            _run(
                [
                    go,
                    "build",
                    "-ldflags",
                    tool.ldflags,
                    "-o",
                    f"{outdir}/",
                    *(t.import_path for t in batch),
                ],
                cwd=mod,
                env=env,
            )
        else:
            _run(
                [
                    go,
                    "install",
                    "-ldflags",
                    tool.ldflags,
                    *(f"{t.import_path}@{t.version}" for t in batch),
                ],
                env={**env, "GOBIN": str(outdir)},
            )
        for t in batch:
            built = outdir / _go_binary_name(t.import_path)
            t.binary.parent.mkdir(parents=True, exist_ok=True)
            # Appear whole or not at all: a killed build (or copy across file systems)
            # leaves no half binary behind.
            partial = t.binary.with_name(f".{t.name}.partial")
            shutil.move(str(built), partial)
            partial.replace(t.binary)
    log(
        f"[tools] {time.strftime('%H:%M:%S')} {names} {tool.version} built in "
        f"{time.monotonic() - started:.0f} s"
    )
    return tool.binary


def path(name: str) -> Path:
    return build(TOOLS[name], log=lambda msg: print(msg, file=sys.stderr))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="questlog-k8s-tools",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names", nargs="*", metavar="TOOL", help=f"some of: {', '.join(TOOLS)} (default: all)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a tool is missing")
    args = parser.parse_args(argv)
    names = args.names or list(TOOLS)
    unknown = sorted(set(names) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    if args.check:
        missing = [n for n in names if not TOOLS[n].binary.is_file()]
        for name in missing:
            print(f"missing: {name} {TOOLS[name].version} ({TOOLS[name].binary})")
        return 1 if missing else 0
    try:
        for name in names:
            print(path(name))
    except ToolError as exc:
        print(f"[tools] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
