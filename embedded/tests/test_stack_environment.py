"""The embedded stack's settings are accepted by each service's own settings module (a
typo here would only show when `make run` starts a service that then exits)."""

from __future__ import annotations

from questlog_embedded import stack


def test_every_service_accepts_the_stack_environment(tmp_path, monkeypatch):
    from questlog_api.settings import Settings as ApiSettings
    from questlog_extractor.settings import Settings as ExtractorSettings
    from questlog_query.settings import Settings as QuerySettings

    for name in (
        "QUESTLOG_QUERY_SNAPSHOT_TTL_S",
        "QUESTLOG_EXTRACTOR_TRIGGER_SECONDS",
        "QUESTLOG_EXTRACTOR_COMPACT_EVERY_S",
        "QUESTLOG_EXTRACTOR_VACUUM_RETAIN_HOURS",
        "QUESTLOG_EXTRACTOR_CODEGEN",
    ):
        monkeypatch.delenv(name, raising=False)  # the stack's defaults, not the caller's
    env = stack.environment(tmp_path / "var")
    api = ApiSettings.from_env(env)
    extractor = ExtractorSettings.from_env(env)
    query = QuerySettings.from_env(env)
    assert api.kafka_bootstrap == extractor.kafka_bootstrap == f"127.0.0.1:{stack.KAFKA_PORT}"
    assert extractor.lake_root == query.lake_root == (tmp_path / "var" / "lake").as_uri()
    assert extractor.trigger_seconds == 1
    # small batches a second: whole-stage code (the service's default is per-operator)
    assert extractor.codegen == "whole-stage"
    assert ExtractorSettings(kafka_bootstrap="k:1", lake_root="file:///l").codegen == "per-operator"
    # the `compact` process: a pass every 5 minutes, removed files kept an hour
    assert (extractor.compact_every_s, extractor.vacuum_retain_hours) == (300, 1)
    assert query.snapshot_ttl_s == 0.25  # a local disk: checked 4x a second


def test_the_stack_environment_gives_gunicorn_its_worker_threads(tmp_path, monkeypatch):
    import importlib

    monkeypatch.delenv("QUESTLOG_API_THREADS", raising=False)
    # Set before the config module is imported: it would otherwise set it in os.environ
    # for good, and every later test's prometheus_client would run in multiprocess mode.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    for name, value in stack.environment(tmp_path / "var").items():
        monkeypatch.setenv(name, value)
    from questlog_api import gunicorn_config

    assert importlib.reload(gunicorn_config).threads == 8
    monkeypatch.setenv("QUESTLOG_API_THREADS", "3")  # the user's own setting wins
    assert importlib.reload(gunicorn_config).threads == 3


def _clean(monkeypatch):
    for name in ("QUESTLOG_LAKE", "QUESTLOG_TRINO", "QUESTLOG_LAKE_HDFS", "QUESTLOG_TRINO_ENABLED"):
        monkeypatch.delenv(name, raising=False)


def test_by_default_the_lake_is_local_and_trino_off(tmp_path, monkeypatch):
    _clean(monkeypatch)
    env = stack.environment(tmp_path / "var")
    assert (env["QUESTLOG_LAKE_HDFS"], env["QUESTLOG_TRINO_ENABLED"]) == ("0", "0")
    assert env["QUESTLOG_LAKE_ROOT"] == (tmp_path / "var" / "lake").as_uri()


def test_lake_hdfs_puts_every_reader_and_writer_on_hdfs(tmp_path, monkeypatch):
    from questlog_extractor.settings import Settings as ExtractorSettings
    from questlog_query.settings import Settings as QuerySettings
    from questlog_query.trino_sync import SyncSettings

    _clean(monkeypatch)
    monkeypatch.setenv("QUESTLOG_LAKE", "hdfs")
    monkeypatch.setenv("QUESTLOG_TRINO", "1")
    env = stack.environment(tmp_path / "var")
    root = f"hdfs://127.0.0.1:{stack.HDFS_PORT}/questlog/lake"
    assert (env["QUESTLOG_LAKE_HDFS"], env["QUESTLOG_TRINO_ENABLED"]) == ("1", "1")
    extractor = ExtractorSettings.from_env(env)
    assert extractor.lake_root == QuerySettings.from_env(env).lake_root == root
    assert extractor.checkpoint_uri.startswith(root)  # checkpoints on HDFS too
    sync = SyncSettings.from_env(env)
    assert (sync.lake_root, sync.url) == (root, f"http://127.0.0.1:{stack.TRINO_PORT}")
    assert not (tmp_path / "var" / "lake").exists()


def test_an_unknown_switch_value_is_refused_with_the_choices(tmp_path, monkeypatch, capsys):
    _clean(monkeypatch)
    monkeypatch.setenv("QUESTLOG_LAKE", "s3")
    assert stack.main(["env"]) == 2
    assert "LAKE='s3': use LAKE=local (the default) or LAKE=hdfs" in capsys.readouterr().err
    monkeypatch.setenv("QUESTLOG_LAKE", "hdfs")
    monkeypatch.setenv("QUESTLOG_TRINO", "yes")
    assert stack.main(["env"]) == 2
    assert "TRINO='yes': use TRINO=1" in capsys.readouterr().err
