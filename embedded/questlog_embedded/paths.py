"""Where the embedded mode keeps things: the repo root, the jar cache, ./var state.

Overridable by env so CI, tests and users can move them:
QUESTLOG_CACHE_DIR (default <repo>/.cache) and QUESTLOG_VAR_DIR (default <repo>/var).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "embedded" / "pom.xml"
JAVA_SRC = REPO_ROOT / "embedded" / "java"
# the extractor's JVM classes (its dedup operator), built into a jar on Spark's classpath
EXTRACTOR_JVM_SRC = REPO_ROOT / "services" / "extractor" / "jvm"


def cache_dir() -> Path:
    return Path(os.environ.get("QUESTLOG_CACHE_DIR", REPO_ROOT / ".cache")).resolve()


def var_dir() -> Path:
    return Path(os.environ.get("QUESTLOG_VAR_DIR", REPO_ROOT / "var")).resolve()


def jars_dir(profile: str) -> Path:
    """Folder holding one classpath: 'kafka', 'spark' or 'hdfs'."""
    return cache_dir() / "jars" / profile
