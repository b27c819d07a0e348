"""Just enough of a Dockerfile and its ``.dockerignore`` to check an image recipe without
Docker: the stages and instructions, BuildKit's whitelist rules, and the build stage's
install steps (venv, ``pip install``, ``grep -v`` filters, ``python -c`` checks) as data
the test replays in a local venv.

Usage::

    stages = parse(Path("services/api/Dockerfile"))
    ignore = Whitelist.load(Path("services/api/Dockerfile.dockerignore"))
    ignore.ships("schemas/pyproject.toml")      # True: BuildKit sends it
    steps = install_steps(stages[0])            # [Venv(...), Install(...), ...]
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Instruction:
    op: str  # upper case: FROM, RUN, COPY, ...
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, op: str) -> list[Instruction]:
        return [i for i in self.instructions if i.op == op]

    def env(self) -> list[tuple[str, str]]:
        """The stage's ENV assignments in order (values unexpanded)."""
        pairs = []
        for ins in self.all("ENV"):
            words = shlex.split(ins.args)
            if words and "=" not in words[0]:  # legacy form: ENV NAME value with spaces
                pairs.append((words[0], ins.args.split(None, 1)[1]))
            else:
                pairs.extend(tuple(w.split("=", 1)) for w in words)
        return pairs


def parse(path: Path) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comment lines dropped."""
    stages: list[Stage] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):  # BuildKit skips both, even mid-line
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text, pending = pending + stripped, ""
        if not text.strip():
            continue
        op, _, args = text.partition(" ")
        ins = Instruction(op.upper(), args.strip(), start)
        if ins.op == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if ins.op != "ARG":
                raise ValueError(f"{path}:{number}: {ins.op} before the first FROM")
        else:
            stages[-1].instructions.append(ins)
    if pending:
        raise ValueError(f"{path}: ends inside a continued line")
    return stages


def exec_form(args: str) -> list[str] | None:
    """The argv of a CMD/ENTRYPOINT in exec (JSON) form, None for the shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None
    line: int


def copies(stage: Stage) -> list[Copy]:
    """The stage's COPY/ADD instructions, each with the WORKDIR a relative dest is under."""
    result, workdir = [], "/"
    for ins in stage.instructions:
        if ins.op == "WORKDIR":
            workdir = str(PurePosixPath(workdir, ins.args))
        elif ins.op in ("COPY", "ADD"):
            words = exec_form(ins.args) or shlex.split(ins.args)
            flags = {w.split("=", 1)[0]: w.partition("=")[2] for w in words if w.startswith("--")}
            paths = [w for w in words if not w.startswith("--")]
            dest = str(PurePosixPath(workdir, paths[-1])) + ("/" if paths[-1].endswith("/") else "")
            result.append(Copy(tuple(paths[:-1]), dest, flags.get("--from"), ins.line))
    return result


class Whitelist:
    """BuildKit's ``.dockerignore`` rules: each line a pattern (``*``, ``?``, ``**``), ``!``
    re-includes, the last matching line wins, and a pattern that matches a directory
    matches everything under it."""

    def __init__(self, rules: list[tuple[bool, re.Pattern[str]]]) -> None:
        self.rules = rules

    @classmethod
    def load(cls, path: Path) -> Whitelist:
        rules = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = str(PurePosixPath(line.lstrip("!").strip().lstrip("/")))
            rules.append((include, _regex(pattern)))
        return cls(rules)

    def ships(self, relpath: str) -> bool:
        parts = PurePosixPath(relpath).parts
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        shipped = True
        for include, rx in self.rules:
            if any(rx.fullmatch(c) for c in candidates):
                shipped = include
        return shipped


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


# -- the build stage's install steps ---------------------------------------------------


@dataclass(frozen=True)
class Venv:
    path: str


@dataclass(frozen=True)
class Filter:
    """``grep -v PATTERN SRC > DST``: a lock minus some pins."""

    pattern: str
    src: str
    dst: str


@dataclass(frozen=True)
class Install:
    program: str  # as written: pip, /opt/.../bin/pip, python -m pip
    requirements: tuple[str, ...]
    paths: tuple[str, ...]
    no_deps: bool


@dataclass(frozen=True)
class Check:
    code: str  # python -c CODE


Step = Venv | Filter | Install | Check


def install_steps(stage: Stage) -> list[Step]:
    """What the stage's RUN lines do to Python, in order. Commands that do not touch the
    venv (apt-get, rm, mkdir, ...) are left out."""
    steps: list[Step] = []
    for ins in stage.all("RUN"):
        for argv in _commands(ins.args):
            step = _step(argv, ins.line)
            if step is not None:
                steps.append(step)
    return steps


def _commands(script: str) -> list[list[str]]:
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def _step(argv: list[str], line: int) -> Step | None:
    prog = PurePosixPath(argv[0]).name
    if prog.startswith("python") and argv[1:3] == ["-m", "venv"]:
        return Venv([a for a in argv[3:] if not a.startswith("-")][-1])
    if prog.startswith("python") and argv[1:2] == ["-c"]:
        return Check(argv[2])
    if prog == "grep" and ">" in argv:
        where = argv.index(">")
        words = [a for a in argv[1:where] if not a.startswith("-")]
        flags = "".join(a for a in argv[1:where] if a.startswith("-"))
        if "v" not in flags or len(words) != 2:
            raise ValueError(f"line {line}: only `grep -v PATTERN SRC > DST` is understood")
        return Filter(words[0], words[1], argv[where + 1])
    if prog == "pip" or (prog.startswith("python") and argv[1:3] == ["-m", "pip"]):
        rest = argv[1:] if prog == "pip" else argv[3:]
        if rest[:1] != ["install"]:
            return None
        return _install(" ".join(argv[: len(argv) - len(rest)]), rest[1:], line)
    return None


_VALUE_FLAGS = {
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--prefix",
}


def _install(program: str, args: list[str], line: int) -> Install:
    requirements, paths, no_deps = [], [], False
    it = iter(args)
    for arg in it:
        if arg in ("-r", "--requirement"):
            requirements.append(next(it))
        elif arg.startswith("--requirement="):
            requirements.append(arg.partition("=")[2])
        elif arg == "--no-deps":
            no_deps = True
        elif arg in _VALUE_FLAGS:
            raise ValueError(f"line {line}: pip install {arg} is not part of the recipe")
        elif arg.startswith("-"):
            continue  # --no-cache-dir and friends change nothing installed
        else:
            paths.append(arg)
    return Install(program, tuple(requirements), tuple(paths), no_deps)
