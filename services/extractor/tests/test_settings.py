from __future__ import annotations

import pytest

from questlog_extractor.settings import PREFIX, Settings, SettingsError

REQUIRED = {
    PREFIX + "KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    PREFIX + "LAKE_ROOT": "file:///var/questlog/lake/",
}


def test_defaults_and_derived_paths():
    s = Settings.from_env(REQUIRED)
    assert (s.topic, s.starting_offsets, s.watermark, s.spark_master) == (
        "events",
        "earliest",
        "1 hour",
        "local[2]",
    )
    assert s.spark_jars == ()
    assert s.table_uri("join_guild") == "file:///var/questlog/lake/tables/join_guild"
    assert s.checkpoint_uri == "file:///var/questlog/lake/_checkpoints/extractor"


def test_values_are_typed():
    s = Settings.from_env(
        {
            **REQUIRED,
            PREFIX + "MAX_OFFSETS_PER_TRIGGER": "5000",
            PREFIX + "SPARK_JARS": "/a.jar, /b.jar,",
            PREFIX + "WATERMARK": "30 minutes",
            PREFIX + "LAKE_ROOT": "hdfs://nn:8020/lake",
        }
    )
    assert s.max_offsets_per_trigger == 5000
    assert s.spark_jars == ("/a.jar", "/b.jar")
    assert s.checkpoint_uri == "hdfs://nn:8020/lake/_checkpoints/extractor"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KAFKA_BOOTSTRAP", "", "KAFKA_BOOTSTRAP is not set"),
        ("LAKE_ROOT", "/no/scheme", "must be a URI"),
        ("MAX_OFFSETS_PER_TRIGGER", "many", "must be an integer"),
        ("MAX_OFFSETS_PER_TRIGGER", "0", "must be >= 1"),
        ("WATERMARK", "1h", "WATERMARK"),
        ("STARTING_OFFSETS", "beginning", "STARTING_OFFSETS"),
        ("STATE_STORE", "redis", "STATE_STORE"),
        ("DEDUP", "bloom", "DEDUP must be one of"),
        ("STATE_STORE", "hdfs", "DEDUP=ttl needs STATE_STORE=rocksdb"),
    ],
)
def test_missing_or_malformed_values_fail_fast(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**REQUIRED, PREFIX + name: value})


def test_dedup_defaults_to_ttl_over_the_watermark_window():
    from questlog_extractor.settings import interval_ms

    s = Settings.from_env({**REQUIRED, PREFIX + "WATERMARK": "30 minutes"})
    assert (s.dedup, interval_ms(s.watermark)) == ("ttl", 30 * 60 * 1000)
    assert (interval_ms("1 day"), interval_ms("2 seconds")) == (86_400_000, 2000)
    old = {**REQUIRED, PREFIX + "DEDUP": "watermark", PREFIX + "STATE_STORE": "hdfs"}
    assert Settings.from_env(old).dedup == "watermark"


def test_local_checkpoints_use_the_file_system_manager_hdfs_keeps_the_default():
    from questlog_extractor.session import LOCAL_CHECKPOINT_MANAGER, session_conf

    key = "spark.sql.streaming.checkpointFileManagerClass"
    local = session_conf(Settings(kafka_bootstrap="k:9092", lake_root="file:///tmp/lake"))
    assert local[key] == LOCAL_CHECKPOINT_MANAGER
    hdfs = session_conf(Settings(kafka_bootstrap="k:9092", lake_root="hdfs://nn:8020/lake"))
    assert key not in hdfs


def test_vacuum_retention_defaults_to_the_tables_own_and_may_be_set_down_to_zero():
    assert Settings.from_env(REQUIRED).vacuum_retain_hours is None
    s = Settings.from_env({**REQUIRED, PREFIX + "VACUUM_RETAIN_HOURS": "0"})
    assert s.vacuum_retain_hours == 0
    with pytest.raises(SettingsError, match="VACUUM_RETAIN_HOURS must be >= 0"):
        Settings.from_env({**REQUIRED, PREFIX + "VACUUM_RETAIN_HOURS": "-1"})


def test_compaction_runs_once_unless_an_interval_is_set_and_keeps_an_hour_by_default():
    from questlog_extractor.compact import retain_hours

    assert Settings.from_env(REQUIRED).compact_every_s is None
    s = Settings.from_env({**REQUIRED, PREFIX + "COMPACT_EVERY_S": "300"})
    assert (s.compact_every_s, retain_hours(s)) == (300, 1)
    assert retain_hours(Settings.from_env({**REQUIRED, PREFIX + "VACUUM_RETAIN_HOURS": "0"})) == 0
    for bad, message in (("0", "must be >= 1"), ("5m", "must be an integer")):
        with pytest.raises(SettingsError, match=f"COMPACT_EVERY_S {message}"):
            Settings.from_env({**REQUIRED, PREFIX + "COMPACT_EVERY_S": bad})


def test_every_is_for_compact_only(capsys):
    from questlog_extractor.__main__ import main

    for argv in (["maintain", "--every", "60"], ["compact", "--every", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert "--every takes a number of seconds >= 1" in capsys.readouterr().err
