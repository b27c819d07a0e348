"""The jar cache: pins in one pom, Spark's classpath free of pyspark's own jars."""

import re
import xml.etree.ElementTree as ET

import pyspark
import pytest

from questlog_embedded import jars, paths

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def pom_property(name: str) -> str:
    node = ET.parse(paths.POM).getroot().find(f"m:properties/m:{name}", NS)
    assert node is not None, f"{name} missing from {paths.POM}"
    return node.text


def test_pom_spark_version_matches_pyspark():
    assert pom_property("spark.version") == pyspark.__version__


def test_pom_delta_version_matches_delta_spark_pip():
    from importlib.metadata import version

    assert pom_property("delta.version") == version("delta-spark")


@pytest.mark.parametrize(
    ("jar", "artifact"),
    [
        ("kafka-clients-3.9.1.jar", "kafka-clients"),
        ("delta-spark_4.1_2.13-4.4.0.jar", "delta-spark_4.1_2.13"),
        ("spark-sql-kafka-0-10_2.13-4.1.1.jar", "spark-sql-kafka-0-10_2.13"),
        ("jackson-databind-2.13.5.jar", "jackson-databind"),
        ("zstd-jni-1.5.7-3.jar", "zstd-jni"),
    ],
)
def test_artifact_name(jar, artifact):
    assert jars.artifact_name(jar) == artifact


def test_spark_classpath_has_connectors_and_no_pyspark_duplicates():
    names = [j.name for j in jars.jars("spark")]
    assert any(n.startswith("spark-sql-kafka-0-10_2.13-") for n in names)
    assert any(re.match(r"delta-spark_4\.1_2\.13-", n) for n in names)
    provided = {jars.artifact_name(j.name) for j in jars.pyspark_jars_dir().glob("*.jar")}
    assert not provided & {jars.artifact_name(n) for n in names}


def test_stale_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("QUESTLOG_CACHE_DIR", str(tmp_path))
    with pytest.raises(jars.SetupError, match="make setup"):
        jars.classpath("kafka")


def test_unknown_profile_is_rejected():
    with pytest.raises(jars.SetupError, match="unknown jar profile"):
        jars.fetch("zookeeper")
