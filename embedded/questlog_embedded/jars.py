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
import zipfile
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


def extractor_jar() -> Path:
    """The extractor's JVM classes (services/extractor/jvm), as one jar for ``spark.jars``;
    the image builds the same sources into /opt/spark/jars."""
    return paths.cache_dir() / "extractor-jvm" / "questlog-extractor-jvm.jar"


def _extractor_stamp(sources: list[Path]) -> str:
    import pyspark  # local: only the spark classpath needs it

    return f"extractor-jvm:pyspark-{pyspark.__version__}:{_digest(*sources)}"


def _extractor_sources() -> list[Path]:
    return sorted(paths.EXTRACTOR_JVM_SRC.rglob("*.java"))


def extractor_jar_is_fresh() -> bool:
    stamp = extractor_jar().parent / _STAMP
    want = _extractor_stamp(_extractor_sources())
    return extractor_jar().is_file() and stamp.is_file() and stamp.read_text().strip() == want


def build_extractor_jar(log=print) -> bool:
    """Compile services/extractor/jvm against pyspark's own jars (the Spark the job runs
    on) into ``extractor_jar()``. Returns True if it compiled."""
    sources = _extractor_sources()
    if not sources:
        raise SetupError(f"no Java sources under {paths.EXTRACTOR_JVM_SRC}")
    if extractor_jar_is_fresh():
        return False
    javac = shutil.which("javac")
    if not javac:
        raise SetupError("javac (JDK 17) is not on PATH: install a JDK")
    folder = extractor_jar().parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    log(f"[setup] compiling the extractor's {', '.join(s.name for s in sources)}")
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        classes = Path(tmp) / "classes"
        proc = subprocess.run(
            [javac, "--release", "17", "-d", str(classes), "-cp", f"{pyspark_jars_dir()}/*"]
            + [str(s) for s in sources],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SetupError(f"javac failed on the extractor's classes:\n{proc.stderr[-2000:]}")
        staging = Path(tmp) / "jar"
        staging.mkdir()
        with zipfile.ZipFile(staging / extractor_jar().name, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
            for cls in sorted(classes.rglob("*.class")):
                jar.write(cls, cls.relative_to(classes).as_posix())
        (staging / _STAMP).write_text(_extractor_stamp(sources) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    return True


def setup(log=print) -> None:
    for profile in PROFILES:
        if not fetch(profile, log=log):
            log(f"[setup] {profile}: jars up to date")
    compile_java(log=log)
    if not build_extractor_jar(log=log):
        log("[setup] extractor JVM classes up to date")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m questlog_embedded.jars")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = [p for p in PROFILES if not is_fresh(p)]
            if not extractor_jar_is_fresh():
                stale.append("extractor-jvm")
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
