"""Who decides where Spark runs: the settings, unless spark-submit started the driver."""

from __future__ import annotations

from questlog_extractor.session import JIT_OPTIONS, SPARK_SUBMIT_MARK, launch_conf, session_conf
from questlog_extractor.settings import Settings

SETTINGS = Settings(
    kafka_bootstrap="k:9092",
    lake_root="file:///lake",
    spark_master="local[3]",
    spark_jars=("/jars/a.jar", "/jars/b.jar"),
)


def test_a_process_that_starts_spark_itself_takes_master_and_jars_from_the_settings():
    assert launch_conf(SETTINGS, {"PATH": "/usr/bin"}) == {
        "spark.master": "local[3]",
        "spark.jars": "/jars/a.jar,/jars/b.jar",
    }


def test_no_jars_setting_sets_no_jars():
    bare = Settings(kafka_bootstrap="k:9092", lake_root="file:///lake")
    assert launch_conf(bare, {}) == {"spark.master": "local[2]"}


def test_under_spark_submit_the_submitter_decides_master_and_jars():
    # PythonRunner sets the gateway port in the Python driver it starts.
    assert SPARK_SUBMIT_MARK == "PYSPARK_GATEWAY_PORT"
    assert launch_conf(SETTINGS, {SPARK_SUBMIT_MARK: "41234"}) == {}


def test_the_job_conf_never_carries_master_or_jars():
    # build_session merges both: a key here would undo the choice above.
    assert not {"spark.master", "spark.jars"} & session_conf(SETTINGS).keys()


def test_whole_stage_code_drops_the_method_limit_and_gives_the_jvm_its_option():
    whole = Settings(kafka_bootstrap="k:9092", lake_root="file:///lake", codegen="whole-stage")
    assert "spark.sql.codegen.hugeMethodLimit" not in session_conf(whole)
    assert launch_conf(whole, {})["spark.driver.extraJavaOptions"] == JIT_OPTIONS
    # per-operator (the default): Spark falls back to small methods, the JVM keeps its default
    assert session_conf(SETTINGS)["spark.sql.codegen.hugeMethodLimit"] == "8000"
    assert "spark.driver.extraJavaOptions" not in launch_conf(SETTINGS, {})
    # spark-submit's JVM is already running: its options come from the submitter
    assert launch_conf(whole, {SPARK_SUBMIT_MARK: "1"}) == {}
