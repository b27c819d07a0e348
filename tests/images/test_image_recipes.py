"""The four image recipes, checked the way each image is built and run, without Docker
(none on these machines): a broken recipe fails here, not at the first `docker build`.

Per image: its Dockerfile read statically (pinned bases, a build stage and a runtime
stage, numeric non-root USER, exec-form CMD, no ENTRYPOINT, every COPY source shipped by
its whitelist); then its build stage replayed in a fresh venv (uv; the Dockerfile's own
lock and filters, its own --no-deps installs of the local packages, taken from a copy of
exactly what the whitelist ships; its own `python -c` checks); then, with the runtime
stage's ENV, every module of its packages imported, every installed distribution checked
to be one its packages require (a stale lock ships dead weight), and its CMD run.

Image paths map into a per-image folder (``root``): /opt/questlog/venv is a real venv
there, /app/locustfile.py a real copy. Only Python, and the query image's node stage (the
dashboard: the host's npm and node, offline from the npm cache `make setup` filled), is
replayed: apt-get, users and the extractor's jar stage are not (the image's own
/opt/spark/python is stood in for by the lock's pyspark pin).

Usage::

    .venv/bin/pytest tests/images -q
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .dockerfile import (
    Check,
    Filter,
    Install,
    Stage,
    Venv,
    Whitelist,
    _commands,
    copies,
    exec_form,
    install_steps,
    parse,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".venv" / "bin" / "uv"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# image paths under these are the system's (python, java), not the recipe's
SYSTEM_DIRS = {"usr", "bin", "sbin", "lib", "lib64", "etc", "proc", "dev", "sys"}
NEVER_SHIPPED = (
    ".venv/bin/python",
    ".cache/jars/spark/x.jar",
    "var/lake/tables/x.parquet",
    ".git/HEAD",
    "services/query/dashboard/node_modules/chart.js/package.json",
    "services/query/questlog_query/static/dashboard/index.html",
)


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: str
    packages: tuple[str, ...]  # every module of these must import with only the lock
    check: str  # which _check_* runs the image's command
    pyspark: bool = False  # False: the image must never have it
    flask: bool = True  # False: questlog_service's web modules must fail naming Flask
    stand_ins: tuple[str, ...] = ()  # lock pins the base image provides (installed last)
    never: tuple[str, ...] = ()  # distributions the image must not install, even if required
    env: dict[str, str] = field(default_factory=dict)  # test-only settings


IMAGES = [
    Image(
        "api",
        "services/api/Dockerfile",
        ("questlog_schemas", "questlog_service", "questlog_api"),
        "healthz",
        env={
            "QUESTLOG_API_IP_HASH_KEY": "image-recipe-test-key-0123456789",
            "QUESTLOG_API_SINK": "memory",
            "QUESTLOG_API_WORKERS": "1",
            "QUESTLOG_API_THREADS": "2",
        },
        never=("kafka-python",),
    ),  # the API produces with confluent-kafka only
    Image(
        "query",
        "services/query/Dockerfile",
        ("questlog_schemas", "questlog_service", "questlog_query"),
        "healthz",
        env={"QUESTLOG_QUERY_WORKERS": "1", "QUESTLOG_QUERY_THREADS": "2"},
    ),
    Image(
        "extractor",
        "services/extractor/Dockerfile",
        ("questlog_schemas", "questlog_service", "questlog_extractor"),
        "extractor",
        pyspark=True,
        flask=False,
        stand_ins=("pyspark", "py4j"),
        env={"SPARK_LOCAL_IP": "127.0.0.1", "QUESTLOG_EXTRACTOR_METRICS_PORT": "0"},
    ),
    Image("loadtest", "loadtest/Dockerfile", ("questlog_schemas", "questlog_loadtest"), "locust"),
]
ids = [image.name for image in IMAGES]


class RecipeError(AssertionError):
    pass


def _fail(image: Image, step: str, detail: str) -> RecipeError:
    return RecipeError(f"image {image.name}, step {step!r}: {detail}")


def _run(
    image: Image,
    step: str,
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 180,
    ok: Callable[[subprocess.CompletedProcess], bool] | None = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if not (ok(proc) if ok else proc.returncode == 0):
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-3000:]).strip()
        shown = " ".join(a if len(a) < 200 else "<script>" for a in argv)
        raise _fail(image, step, f"exit {proc.returncode}: {shown}\n{tail}")
    return proc


# -- the recipe, read ------------------------------------------------------------------


@dataclass
class Recipe:
    image: Image
    stages: list[Stage]
    whitelist: Whitelist

    @classmethod
    def load(cls, image: Image) -> Recipe:
        dockerfile = REPO / image.dockerfile
        return cls(
            image,
            parse(dockerfile),
            Whitelist.load(dockerfile.with_name("Dockerfile.dockerignore")),
        )

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    @property
    def build(self) -> Stage:
        """The stage whose venv the runtime stage copies."""
        names = {c.from_stage for c in copies(self.final) if c.from_stage}
        candidates = [s for s in self.stages[:-1] if s.name in names and install_steps(s)]
        if len(candidates) != 1:
            raise _fail(
                self.image,
                "find the build stage",
                f"want one stage with pip installs copied into the runtime stage, "
                f"got {[s.name for s in candidates]}",
            )
        return candidates[0]

    def venv(self) -> str:
        venvs = [s.path for s in install_steps(self.build) if isinstance(s, Venv)]
        if len(venvs) != 1:
            raise _fail(self.image, "find the venv", f"want one `python -m venv`, got {venvs}")
        return venvs[0]

    def shipped(self, source: str) -> list[str]:
        """The repo files a context COPY of ``source`` sends (whitelist applied)."""
        path = REPO / source
        if path.is_file():
            return [source] if self.whitelist.ships(source) else []
        found = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                rel = Path(dirpath, name).relative_to(REPO).as_posix()
                if self.whitelist.ships(rel):
                    found.append(rel)
        return found


def _static_problems(recipe: Recipe) -> list[str]:
    image, problems = recipe.image, []
    names = set()
    for stage in recipe.stages:
        if stage.base not in names:  # FROM <earlier stage> needs no tag
            repo, _, tag = stage.base.rpartition(":")
            if not repo or "/" in tag or "$" in stage.base:
                problems.append(f"base image {stage.base}: no pinned tag")
            elif tag == "latest":
                problems.append(f"base image {stage.base}: :latest")
        names.add(stage.name)
    if len(recipe.stages) < 2:
        problems.append("one stage: want a build stage and a runtime stage")
    final = recipe.final
    users = final.all("USER")
    if not users or not re.fullmatch(r"\d+(:\d+)?", users[-1].args):
        problems.append(f"runtime USER {users[-1].args if users else None!r}: want uid[:gid]")
    elif int(users[-1].args.split(":")[0]) == 0:
        problems.append("runtime USER is root")
    cmds = final.all("CMD")
    if not cmds or exec_form(cmds[-1].args) is None:
        problems.append(f"CMD {cmds[-1].args if cmds else None!r}: want the exec (JSON) form")
    if final.all("ENTRYPOINT"):
        problems.append("ENTRYPOINT set: the base image's stays (one CMD style for all)")
    build = recipe.build
    venv = recipe.venv()
    if not any(
        c.from_stage == build.name and c.sources == (venv,) and c.dest == venv
        for c in copies(final)
    ):
        problems.append(f"the runtime stage does not copy {venv} from stage {build.name}")
    build_path = dict(build.env()).get("PATH", "")
    for step in install_steps(build):
        if isinstance(step, Install):
            if not step.no_deps:
                problems.append(
                    f"{step.program} install without --no-deps: resolves around the lock"
                )
            in_venv = step.program.startswith(venv + "/") or build_path.startswith(venv + "/bin:")
            if not in_venv:
                problems.append(f"{step.program} installs outside {venv}")
    for stage in recipe.stages:
        for copy in copies(stage):
            if copy.from_stage:
                continue
            for source in copy.sources:
                if not (REPO / source).exists():
                    problems.append(f"COPY {source} (line {copy.line}): not in the repo")
                elif not recipe.shipped(source):
                    problems.append(
                        f"COPY {source} (line {copy.line}): the whitelist ships none of it"
                    )
    for path in NEVER_SHIPPED:
        if recipe.whitelist.ships(path):
            problems.append(f"the whitelist ships {path}")
    return [f"image {image.name}, step 'read the Dockerfile': {p}" for p in problems]


@pytest.mark.parametrize("image", IMAGES, ids=ids)
def test_recipe_is_pinned_multi_stage_non_root_and_whitelisted(image):
    problems = _static_problems(Recipe.load(image))
    assert not problems, "\n".join(problems)


def test_extractor_base_image_is_the_spark_of_the_lock():
    recipe = Recipe.load(IMAGES[2])
    pins = _pins(REPO / "services/extractor/requirements.lock")
    spark = recipe.final.base.partition(":")[2].split("-")[0]
    assert spark == pins["pyspark"], (
        f"image extractor, step 'base vs lock': base Spark {spark}, lock pyspark {pins['pyspark']}"
    )
    pythonpath = dict(recipe.final.env())["PYTHONPATH"]
    assert f"py4j-{pins['py4j']}-src.zip" in pythonpath, (
        f"image extractor, step 'base vs lock': PYTHONPATH {pythonpath} is not the lock's "
        f"py4j {pins['py4j']}"
    )


def test_query_image_builds_the_dashboard_from_the_npm_lockfile():
    """The dashboard's npm packages come from package-lock.json (npm ci, no dev packages,
    no browser download), and its build lands inside the package before pip installs it."""
    recipe = Recipe.load(IMAGES[1])
    nodes = [s for s in recipe.stages if s.base.startswith("node:")]
    assert len(nodes) == 1, "image query: want one node stage building the dashboard"
    node = nodes[0]
    runs = " && ".join(i.args for i in node.all("RUN"))
    assert "npm ci" in runs, runs
    assert "npm install" not in runs, runs
    assert "--omit=dev" in runs, "image query: playwright-core (a devDependency) shipped"
    assert dict(node.env()).get("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD") == "1"
    sources = {src for c in copies(node) for src in c.sources}
    assert "services/query/dashboard/package-lock.json" in sources
    out = re.search(r"build\.mjs --out (\S+)", runs)
    assert out, f"image query: the node stage does not run build.mjs --out DIR: {runs}"
    build = recipe.build
    into = [c for c in copies(build) if c.from_stage == node.name]
    assert [(c.sources, c.dest) for c in into] == [
        ((out.group(1),), "/src/query/questlog_query/static/dashboard")
    ]
    installs = [i.line for i in build.all("RUN") if "/src/query" in i.args]
    assert installs
    assert into[0].line < min(installs), "the dashboard is copied after pip"
    package_data = (REPO / "services/query/pyproject.toml").read_text()
    assert 'questlog_query = ["static/dashboard/*"]' in package_data


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not line.startswith(("#", " ")):
            pins[name.lower()] = version
    return pins


# -- the recipe, replayed ------------------------------------------------------------


@dataclass
class Built:
    recipe: Recipe
    root: Path  # the image's file system, as far as the recipe puts files there
    venv: Path

    @property
    def image(self) -> Image:
        return self.recipe.image

    def local(self, image_path: str) -> str:
        parts = PurePosixPath(image_path).parts
        if len(parts) > 1 and parts[1] in SYSTEM_DIRS:
            return image_path
        return str(self.root / image_path.lstrip("/"))

    def env(self, stage: Stage, **extra: str) -> dict[str, str]:
        """The stage's ENV with image paths mapped here, on a clean environment."""
        env = {"PATH": HOST_PATH, "HOME": str(self.root / "home"), "LANG": "C.UTF-8"}
        for name, value in stage.env():
            value = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
            items = value.split(":")
            if all(item.startswith("/") for item in items):
                value = ":".join(self.local(item) for item in items)
            env[name] = value
        return {**env, **self.image.env, **extra}

    def command(self) -> tuple[list[str], Path]:
        """The image's CMD with its program found on the image's PATH, and its WORKDIR."""
        argv = exec_form(self.recipe.final.all("CMD")[-1].args)
        program = shutil.which(argv[0], path=self.env(self.recipe.final)["PATH"])
        if program is None or not Path(program).is_relative_to(self.venv):
            raise _fail(
                self.image,
                "find the command",
                f"{argv[0]} resolves to {program}, not into the venv",
            )
        workdirs = self.recipe.final.all("WORKDIR")
        cwd = Path(self.local(workdirs[-1].args if workdirs else "/work-dir"))
        cwd.mkdir(parents=True, exist_ok=True)
        return [program, *(self.local(a) if a.startswith("/") else a for a in argv[1:])], cwd


def _copy_context(recipe: Recipe, root: Path) -> None:
    """Every COPY from the build context, of exactly the files the whitelist ships."""
    for stage in recipe.stages:
        for copy in copies(stage):
            if copy.from_stage:
                continue
            dest = PurePosixPath(copy.dest)
            for source in copy.sources:
                for rel in recipe.shipped(source):
                    if (REPO / source).is_dir():
                        target = dest / PurePosixPath(rel).relative_to(source)
                    elif copy.dest.endswith("/"):
                        target = dest / PurePosixPath(rel).name
                    else:
                        target = dest
                    local = root / str(target).lstrip("/")
                    local.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(REPO / rel, local)


def _replay_node_stages(built: Built) -> None:
    """A node stage (the query image's dashboard) run with the host's node and npm, from
    the npm cache `make setup` filled (offline: the lockfile must be enough), then its
    output put where the other stages' COPY --from takes it, before any pip install."""
    recipe, image = built.recipe, built.image
    for stage in recipe.stages:
        if not stage.base.startswith("node:"):
            continue
        workdirs = stage.all("WORKDIR")
        cwd = Path(built.local(workdirs[-1].args if workdirs else "/"))
        env = {
            **built.env(stage),
            "npm_config_offline": "true",
            "npm_config_cache": str(Path.home() / ".npm"),
            "npm_config_audit": "false",
        }
        for ins in stage.all("RUN"):
            for argv in _commands(ins.args):
                if argv[0] not in ("npm", "node"):
                    raise _fail(
                        image,
                        f"RUN {ins.args}",
                        f"{argv[0]}: only npm and node are replayed in a node stage",
                    )
                local = [built.local(a) if a.startswith("/") else a for a in argv]
                _run(
                    image,
                    f"RUN {' '.join(argv)} (stage {stage.name})",
                    local,
                    env=env,
                    cwd=cwd,
                    timeout=300,
                )
        for other in recipe.stages:
            for copy in copies(other):
                if copy.from_stage == stage.name:
                    for source in copy.sources:
                        shutil.copytree(
                            built.local(source), built.local(copy.dest), dirs_exist_ok=True
                        )


def _replay(built: Built) -> None:
    recipe, image = built.recipe, built.image
    uv_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    uv_env["UV_PYTHON_DOWNLOADS"] = "never"
    python = str(built.venv / "bin" / "python")
    filtered: dict[str, str] = {}  # filtered lock (image path) -> the lock it came from
    for step in install_steps(recipe.build):
        if isinstance(step, Venv):
            _run(
                image,
                f"python -m venv {step.path}",
                [str(UV), "venv", "-q", "--python", "3.11", built.local(step.path)],
                env=uv_env,
            )
        elif isinstance(step, Filter):
            source = Path(built.local(step.src))
            kept = [
                line
                for line in source.read_text().splitlines(keepends=True)
                if not re.search(step.pattern, line)
            ]
            Path(built.local(step.dst)).write_text("".join(kept))
            filtered[step.dst] = step.src
        elif isinstance(step, Install):
            argv = [str(UV), "pip", "install", "-q", "--python", python, "--no-deps"]
            for requirement in step.requirements:
                argv += ["-r", built.local(requirement)]
            argv += [built.local(p) for p in step.paths]
            what = " ".join(step.requirements + step.paths)
            _run(image, f"pip install {what}", argv, env=uv_env)
        elif isinstance(step, Check):
            _run(
                image,
                f"python -c {step.code!r}",
                [python, "-c", step.code],
                env=built.env(recipe.build),
                cwd=built.root,
            )
    if image.stand_ins:
        locks = list(filtered.values())
        if len(locks) != 1:
            raise _fail(image, "stand-ins", f"want one filtered lock, got {locks}")
        pins = _pins(Path(built.local(locks[0])))
        _run(
            image,
            f"pip install {image.stand_ins} (the base image's own)",
            [
                str(UV),
                "pip",
                "install",
                "-q",
                "--python",
                python,
                "--no-deps",
                *(f"{name}=={pins[name]}" for name in image.stand_ins),
            ],
            env=uv_env,
        )


@pytest.fixture(scope="module", params=IMAGES, ids=ids)
def built(request, tmp_path_factory):
    image = request.param
    recipe = Recipe.load(image)
    root = tmp_path_factory.mktemp(f"image-{image.name}")
    for folder in ("tmp", "home"):
        (root / folder).mkdir()
    result = Built(recipe, root, Path(root / recipe.venv().lstrip("/")))
    _copy_context(recipe, root)
    _replay_node_stages(result)
    _replay(result)
    for copy in copies(recipe.final):
        if copy.from_stage == recipe.build.name:
            for source in copy.sources:
                if not Path(result.local(source)).exists():
                    raise _fail(
                        image,
                        f"COPY --from={copy.from_stage} {source}",
                        "the build stage made no such path",
                    )
    return result


WALK = r"""
import importlib, json, pkgutil, sys
failed, places = {}, {}
def note(name):
    error = sys.exc_info()[1]
    failed[name] = "%s: %s" % (type(error).__name__, error)
for top in sys.argv[1:]:
    try:
        package = importlib.import_module(top)
    except Exception:
        note(top)
        continue
    places[top] = package.__path__[0]
    for info in pkgutil.walk_packages(package.__path__, top + ".", onerror=note):
        try:
            importlib.import_module(info.name)
        except Exception:
            note(info.name)
print(json.dumps({"failed": failed, "places": places}))
"""


def test_every_module_imports_with_only_the_lock(built):
    image = built.image
    _, cwd = built.command()
    env = built.env(built.recipe.final)
    if "PROMETHEUS_MULTIPROC_DIR" in env:  # made by gunicorn's on_starting in the image
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    proc = _run(
        image,
        "import every module",
        [str(built.venv / "bin" / "python"), "-c", WALK, *image.packages],
        env=env,
        cwd=cwd,
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    site = built.venv / "lib"
    for top, place in found["places"].items():
        assert Path(place).is_relative_to(site), (
            f"image {image.name}, step 'import every module': {top} imported from {place}, "
            "not the venv"
        )
    failed = dict(found["failed"])
    # without pyspark, the one module that needs it must say so
    needs_pyspark = None if image.pyspark else failed.pop("questlog_schemas.spark", "")
    # without Flask (the extractor's image), the shared package's web modules must say so
    needs_flask = (
        []
        if image.flask
        else [
            failed.pop(f"questlog_service.{m}", "") for m in ("hooks", "errors", "ops", "factory")
        ]
    )
    assert all("flask" in reason for reason in needs_flask), (
        f"image {image.name}, step 'import every module': questlog_service's web modules "
        f"imported without Flask: {needs_flask}"
    )
    assert not failed, f"image {image.name}, step 'import every module': {failed}"
    assert needs_pyspark is None or "pyspark" in needs_pyspark, (
        f"image {image.name}, step 'import every module': questlog_schemas.spark imported "
        "without pyspark"
    )


def test_pyspark_only_where_the_image_provides_it(built):
    image = built.image
    probe = "import pyspark; print(pyspark.__version__)"
    proc = _run(
        image,
        "import pyspark",
        [str(built.venv / "bin" / "python"), "-c", probe],
        env=built.env(built.recipe.final),
        cwd=built.root,
        ok=lambda p: True,
    )
    if image.pyspark:
        spark = built.recipe.final.base.partition(":")[2].split("-")[0]
        assert (proc.returncode, proc.stdout.strip()) == (0, spark), (
            f"image {image.name}, step 'import pyspark': want the base image's Spark "
            f"{spark}, got {proc.stdout}{proc.stderr}"
        )
    else:
        missing = proc.returncode != 0 and "No module named 'pyspark'" in proc.stderr
        assert missing, (
            f"image {image.name}, step 'import pyspark': the image must never install "
            f"pyspark, got {proc.stdout.strip() or proc.stderr[-500:]}"
        )


DISTRIBUTIONS = r"""
import importlib.metadata as m, json
print(json.dumps({d.metadata["Name"]: d.requires or [] for d in m.distributions()}))
"""
VENV_TOOLS = {"pip", "setuptools", "wheel"}  # what `python -m venv` seeds in the image


def _installed(built: Built) -> dict[str, list[str]]:
    """``{distribution: its Requires-Dist}`` of the image's venv (``-I``: nothing from
    PYTHONPATH, e.g. the extractor base image's own Spark)."""
    proc = _run(
        built.image,
        "list the installed distributions",
        [str(built.venv / "bin" / "python"), "-I", "-c", DISTRIBUTIONS],
        env=built.env(built.recipe.final),
        cwd=built.root,
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return {canonicalize_name(name): requires for name, requires in found.items()}


def _required(installed: dict[str, list[str]]) -> set[str]:
    """The installed distributions questlog's own packages need, transitively (markers
    evaluated for this Python, extras followed)."""
    todo = [(name, "") for name in installed if name.startswith("questlog-")]
    seen: set[tuple[str, str]] = set()
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen or name not in installed:
            continue
        seen.add((name, extra))
        for line in installed[name]:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                continue
            dep = canonicalize_name(requirement.name)
            todo += [(dep, "")] + [(dep, e) for e in requirement.extras]
    return {name for name, _ in seen}


def test_the_image_installs_only_what_its_packages_require(built):
    """A dependency dropped from a pyproject.toml but still pinned in the image's lock is
    dead weight in every image: each installed distribution must be needed."""
    image = built.image
    installed = _installed(built)
    unneeded = sorted(set(installed) - _required(installed) - VENV_TOOLS)
    assert not unneeded, (
        f"image {image.name}, step 'installed vs required': {unneeded} installed but "
        "required by none of its packages (a stale lock? re-run bin/lock)"
    )
    forbidden = sorted(set(installed) & {canonicalize_name(n) for n in image.never})
    assert not forbidden, f"image {image.name}, step 'installed vs never': {forbidden}"


def test_the_image_command_runs(built, tmp_path):
    CHECKS[built.image.check](built, tmp_path)


def _check_healthz(built: Built, tmp_path: Path) -> None:
    image = built.image
    port = _free_port()
    lake = tmp_path / "lake"
    lake.mkdir()
    extra = {
        "api": {"QUESTLOG_API_BIND": f"127.0.0.1:{port}"},
        "query": {
            "QUESTLOG_QUERY_HOST": "127.0.0.1",
            "QUESTLOG_QUERY_PORT": str(port),
            "QUESTLOG_QUERY_LAKE_ROOT": lake.as_uri(),
        },
    }[image.name]
    argv, cwd = built.command()
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            argv,
            env=built.env(built.recipe.final, **extra),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        status = _wait_for(f"http://127.0.0.1:{port}/healthz", server, deadline_s=60)
        if status != 200:
            raise _fail(
                image,
                f"GET /healthz of {' '.join(argv)}",
                f"got {status}\n{log.read_text()[-3000:]}",
            )
        if image.name == "query":  # the dashboard its node stage built, inside the package
            _check_dashboard(image, port)
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        if code != 0:
            raise _fail(image, "stop on SIGTERM", f"exit {code}\n{log.read_text()[-3000:]}")
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _check_dashboard(image: Image, port: int) -> None:
    base = f"http://127.0.0.1:{port}/dashboard"
    for path, kind in (
        ("", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/chart.umd.min.js", "text/javascript"),
        ("/pico.min.css", "text/css"),
    ):
        try:
            with urllib.request.urlopen(base + path, timeout=10) as resp:
                got = (resp.status, resp.headers.get_content_type())
                csp = resp.headers.get("Content-Security-Policy", "")
        except urllib.error.HTTPError as exc:
            raise _fail(
                image, f"GET /dashboard{path}", f"{exc.code}: {exc.read()[:500]!r}"
            ) from None
        if got != (200, kind) or "default-src 'self'" not in csp:
            raise _fail(image, f"GET /dashboard{path}", f"got {got}, CSP {csp!r}")


def _check_extractor(built: Built, tmp_path: Path) -> None:
    image, final = built.image, built.recipe.final
    argv, cwd = built.command()
    env = built.env(final)
    # `docker run IMAGE ... --help`: the entrypoint passes any non-Spark command through
    _run(
        image,
        "CMD --help (docker run)",
        [*argv, "--help"],
        env=env,
        cwd=cwd,
        ok=lambda p: p.returncode == 0 and "usage:" in p.stdout,
    )
    # The operator's driver: spark-submit runs the same file as the application (one JVM
    # for both checks: the file as __main__ with --help, then the session it would build,
    # where spark-submit, not the settings, decides master and jars).
    main = next(a for a in argv if a.endswith("spark_main.py"))
    probe = tmp_path / "driver_probe.py"
    probe.write_text(
        "import json, runpy, sys\n"
        "sys.argv = [sys.argv[1], '--help']\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "from questlog_extractor import job\n"
        "from questlog_extractor.settings import Settings\n"
        "spark = job.build_session(Settings.from_env())\n"
        "conf = spark.sparkContext.getConf()\n"
        "print(json.dumps({'help_exit': code, 'master': conf.get('spark.master'),"
        " 'jars': conf.get('spark.jars', '')}))\n"
        "spark.stop()\n"
    )
    settings = {
        "QUESTLOG_EXTRACTOR_KAFKA_BOOTSTRAP": "127.0.0.1:9",
        "QUESTLOG_EXTRACTOR_LAKE_ROOT": (tmp_path / "lake").as_uri(),
        "QUESTLOG_EXTRACTOR_SPARK_MASTER": "local[2]",
        "QUESTLOG_EXTRACTOR_SPARK_JARS": str(tmp_path / "from-settings.jar"),
    }
    step = "spark-submit spark_main.py (the driver)"
    submit = [
        str(built.venv / "bin" / "spark-submit"),
        "--master",
        "local[1]",
        "--conf",
        "spark.ui.enabled=false",
        str(probe),
        main,
    ]
    proc = _run(image, step, submit, env={**env, **settings}, cwd=cwd)
    driver = json.loads(proc.stdout.strip().splitlines()[-1])
    assert driver["help_exit"] in (0, None), f"image extractor, step {step!r}: {proc.stdout}"
    assert "usage:" in proc.stdout, f"image extractor, step {step!r}: no --help output"
    assert (driver["master"], "from-settings" in driver["jars"]) == ("local[1]", False), (
        f"image extractor, step {step!r}: the settings overrode spark-submit: {driver}"
    )


def _check_locust(built: Built, tmp_path: Path) -> None:
    image = built.image
    argv, cwd = built.command()
    env = built.env(built.recipe.final)
    _run(
        image,
        "CMD --help",
        [*argv, "--help"],
        env=env,
        cwd=cwd,
        ok=lambda p: p.returncode == 0 and "--master" in p.stdout,
    )
    # --list imports the locustfile (--help does not): its imports, its ledger path
    _run(
        image,
        "CMD --list (imports the locustfile)",
        [*argv, "--list"],
        env=env,
        cwd=cwd,
        ok=lambda p: p.returncode == 0 and "Player" in p.stdout,
    )


CHECKS = {"healthz": _check_healthz, "extractor": _check_extractor, "locust": _check_locust}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, deadline_s: float) -> int | None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.2)
    return None
