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
    package: str  # the main package, relative to the module
    # Some modules (skaffold) cannot be `go install`ed at a version: their go.mod has
    # replace directives. Those are built in a module of our own that copies them.
    own_module: bool = False
    ldflags: str = ""  # what the project's own release build stamps in (-X ...)

    @property
    def binary(self) -> Path:
        # keyed by version and recipe: a changed recipe builds anew, beside the old one
        recipe = hashlib.sha256(f"{self.module} {self.package} {self.ldflags}".encode())
        return tools_dir() / self.name / f"{self.version}-{recipe.hexdigest()[:8]}" / self.name


# helm's release build stamps its version and the Kubernetes version of its client-go
# (v0.37 -> 1.37); without them helm assumes Kubernetes 1.20 for .Capabilities and lint.
_HELM_LDFLAGS = " ".join(
    f"-X helm.sh/helm/v3/{var}" for var in (
        "internal/version.version=v3.22.0", "internal/version.gitTreeState=clean",
        "pkg/chartutil.k8sVersionMajor=1", "pkg/chartutil.k8sVersionMinor=37",
        "pkg/lint/rules.k8sVersionMajor=1", "pkg/lint/rules.k8sVersionMinor=37"))

# helm v3, not v4: skaffold calls `helm version --client`, which helm v4 refuses.
TOOLS = {
    tool.name: tool
    for tool in (
        Tool("helm", "helm.sh/helm/v3", "v3.22.0", "cmd/helm", ldflags=_HELM_LDFLAGS),
        Tool("kubeconform", "github.com/yannh/kubeconform", "v0.7.0", "cmd/kubeconform"),
        Tool("skaffold", "github.com/GoogleContainerTools/skaffold/v2", "v2.16.1",
             "cmd/skaffold", own_module=True),
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
        raise ToolError("go not found: the Kubernetes tools build from the Go module proxy "
                        "(install Go 1.24 or newer)")
    return go


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n"
                        f"{proc.stderr[-4000:]}")
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
            out.append(line[len("replace "):].strip())
    return out


def build(tool: Tool, log=print) -> Path:
    """The tool's binary, compiled first if the cache lacks it."""
    if tool.binary.is_file():
        return tool.binary
    go = _go()
    target = tool.binary.parent
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false -trimpath"}
    started = time.monotonic()
    log(f"[tools] building {tool.name} {tool.version} from {tool.module} "
        f"(once; cached in {target})")
    with tempfile.TemporaryDirectory(prefix=f"questlog-{tool.name}-") as tmp:
        out = Path(tmp) / tool.name
        if tool.own_module:
            info = json.loads(_run([go, "mod", "download", "-json",
                                    f"{tool.module}@{tool.version}"], env=env))
            replaces = _replaces(Path(info["GoMod"]).read_text())
            mod = Path(tmp) / "mod"
            mod.mkdir()
            lines = ["module questlog.local/tools", "", "go 1.24", "",
                     f"require {tool.module} {tool.version}", ""]
            lines += [f"replace {line}" for line in replaces]
            (mod / "go.mod").write_text("\n".join(lines) + "\n")
            (mod / "tools.go").write_text(
                f'//go:build tools\n\npackage tools\n\nimport _ "{tool.module}/{tool.package}"\n')
            _run([go, "mod", "tidy"], cwd=mod, env=env)
            _run([go, "build", "-ldflags", tool.ldflags, "-o", str(out),
                  f"{tool.module}/{tool.package}"], cwd=mod, env=env)
        else:
            _run([go, "install", "-ldflags", tool.ldflags,
                  f"{tool.module}/{tool.package}@{tool.version}"], env={**env, "GOBIN": tmp})
            built = Path(tmp) / Path(tool.package).name
            if built != out:
                built.rename(out)
        # Appear whole or not at all: a killed build leaves no half binary behind.
        shutil.move(str(out), tool.binary)
    log(f"[tools] {tool.name} {tool.version} built in {time.monotonic() - started:.0f} s")
    return tool.binary


def path(name: str) -> Path:
    return build(TOOLS[name], log=lambda msg: print(msg, file=sys.stderr))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="questlog-k8s-tools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="TOOL",
                        help=f"some of: {', '.join(TOOLS)} (default: all)")
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
