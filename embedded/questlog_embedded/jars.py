"""Fetch the pinned JVM artifacts of embedded/pom.xml once, and build classpaths from them.

Each pom profile becomes one folder of the cache (see paths.jars_dir). A folder carries a
stamp of the inputs it was made from; when the stamp matches, setup does nothing and
touches no network, so a warm `make setup` takes seconds.

Usage:
    python -m questlog_embedded.jars            # fetch every profile, compile helpers
    python -m questlog_embedded.jars --check    # exit 1 if anything is missing or stale
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import paths

PROFILES = ("kafka", "spark", "hdfs")
_STAMP = ".stamp"
_JAR_NAME = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d+(?:\.\d+)+(?:[-.][A-Za-z0-9]+)*)\.jar$")


class SetupError(RuntimeError):
    """A setup step failed; the message says which and what to do."""


def _digest(*files: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _java_sources() -> list[Path]:
    return sorted(paths.JAVA_SRC.glob("*.java")) if paths.JAVA_SRC.is_dir() else []


def _stamp_for(profile: str) -> str:
    return f"{profile}:{_digest(paths.POM)}"


def is_fresh(profile: str) -> bool:
    stamp = paths.jars_dir(profile) / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == _stamp_for(profile)


def artifact_name(jar: str) -> str:
    """'kafka-clients-3.9.1.jar' -> 'kafka-clients' (what two copies of a jar share)."""
    m = _JAR_NAME.match(jar)
    return m.group("artifact") if m else jar.removesuffix(".jar")


def pyspark_jars_dir() -> Path:
    import pyspark  # local: only the spark profile needs it

    return Path(pyspark.__file__).parent / "jars"


def _prune_provided(folder: Path) -> list[str]:
    """Drop jars pyspark already ships: two versions of one library on Spark's classpath
    fail in odd ways (jackson, scala-library, hadoop, parquet)."""
    provided = {artifact_name(j.name) for j in pyspark_jars_dir().glob("*.jar")}
    dropped = []
    for jar in folder.glob("*.jar"):
        if artifact_name(jar.name) in provided:
            jar.unlink()
            dropped.append(jar.name)
    return sorted(dropped)


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise SetupError("Maven ('mvn') is not on PATH: install it (apt-get install maven)")
    return mvn


def fetch(profile: str, log=print) -> bool:
    """Make paths.jars_dir(profile) current. Returns True if it had to download."""
    if profile not in PROFILES:
        raise SetupError(f"unknown jar profile {profile!r}; expected one of {PROFILES}")
    if is_fresh(profile):
        return False
    target = paths.jars_dir(profile)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"[setup] {profile}: resolving pinned jars from Maven Central (embedded/pom.xml) ...")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / profile
        cmd = [
            _mvn(),
            "-B",
            "-ntp",
            "-f",
            str(paths.POM),
            f"-Dmaven.repo.local={paths.cache_dir() / 'm2'}",
            "-P",
            profile,
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            errors = [ln for ln in proc.stdout.splitlines() if "ERROR" in ln][:8]
            raise SetupError(
                f"downloading the {profile} jars failed (mvn exit {proc.returncode}):\n  "
                + "\n  ".join(errors or proc.stdout.splitlines()[-8:])
                + "\nCheck that Maven Central is reachable, then run `make setup` again."
            )
        if profile == "spark":
            dropped = _prune_provided(staging)
            log(f"[setup] spark: {len(dropped)} jars already in pyspark, not duplicated")
        (staging / _STAMP).write_text(_stamp_for(profile) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    size = sum(f.stat().st_size for f in target.glob("*.jar")) / 2**20
    count = len(list(target.glob("*.jar")))
    log(f"[setup] {profile}: {count} jars, {size:.0f} MiB in {time.monotonic() - started:.1f}s")
    return True


def jars(profile: str) -> list[Path]:
    folder = paths.jars_dir(profile)
    if not is_fresh(profile):
        raise SetupError(f"the {profile} jars are missing or stale in {folder}: run `make setup`")
    return sorted(folder.glob("*.jar"))


def classpath(profile: str, *extra: Path) -> str:
    return ":".join(str(p) for p in [*extra, *jars(profile)])


def classes_dir() -> Path:
    return paths.cache_dir() / "classes"


def compile_java(log=print) -> bool:
    """Compile embedded/java/*.java against the hdfs classpath (e.g. the MiniDFSCluster
    launcher). Returns True if it compiled."""
    sources = _java_sources()
    if not sources:
        return False
    out = classes_dir()
    stamp = out / _STAMP
    want = f"java:{_digest(paths.POM, *sources)}"
    if stamp.is_file() and stamp.read_text().strip() == want:
        return False
    javac = shutil.which("javac")
    if not javac:
        raise SetupError("javac (JDK 17) is not on PATH: install a JDK")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    log(f"[setup] compiling {', '.join(s.name for s in sources)}")
    proc = subprocess.run(
        [javac, "-d", str(out), "-cp", classpath("hdfs"), *map(str, sources)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SetupError(f"javac failed:\n{proc.stderr[-2000:]}")
    stamp.write_text(want + "\n")
    return True


def setup(log=print) -> None:
    for profile in PROFILES:
        if not fetch(profile, log=log):
            log(f"[setup] {profile}: jars up to date")
    compile_java(log=log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m questlog_embedded.jars")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = [p for p in PROFILES if not is_fresh(p)]
            if stale:
                print(f"stale or missing jar profiles: {', '.join(stale)}", file=sys.stderr)
                return 1
            return 0
        setup()
    except SetupError as exc:
        print(f"[setup] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
