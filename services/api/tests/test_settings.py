import pytest

from questlog_api.settings import DEV_IP_HASH_KEY, Settings, SettingsError

KEY = "x" * 20


def test_defaults_from_empty_env_with_key():
    s = Settings.from_env({"QUESTLOG_API_IP_HASH_KEY": KEY})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.topic == "events"
    assert s.sink == "confluent"
    assert s.write_keys == ()
    assert s.ip_hash_key == KEY.encode()


def test_parses_every_typed_value():
    s = Settings.from_env(
        {
            "QUESTLOG_API_IP_HASH_KEY": KEY,
            "QUESTLOG_API_KAFKA_BOOTSTRAP": "a:1,b:2",
            "QUESTLOG_API_TOPIC": "t",
            "QUESTLOG_API_SINK": "memory",
            "QUESTLOG_API_MAX_BATCH_EVENTS": "10",
            "QUESTLOG_API_MAX_BODY_BYTES": "2048",
            "QUESTLOG_API_WRITE_KEYS": " k1, k2 ,,",
            "QUESTLOG_API_RATE_LIMIT": "2.5",
            "QUESTLOG_API_PRODUCE_TIMEOUT_S": "1.5",
            "QUESTLOG_API_MAX_IN_FLIGHT": "100",
        }
    )
    assert (s.kafka_bootstrap, s.topic, s.sink) == ("a:1,b:2", "t", "memory")
    assert (s.max_batch_events, s.max_body_bytes, s.max_in_flight) == (10, 2048, 100)
    assert s.write_keys == ("k1", "k2")
    assert (s.rate_limit, s.produce_timeout_s) == (2.5, 1.5)


def test_missing_ip_hash_key_fails_fast_unless_dev_allowed():
    with pytest.raises(SettingsError, match="IP_HASH_KEY is not set"):
        Settings.from_env({})
    s = Settings.from_env({"QUESTLOG_API_ALLOW_DEV_IP_HASH_KEY": "1"})
    assert s.ip_hash_key == DEV_IP_HASH_KEY


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("MAX_BATCH_EVENTS", "ten", "MAX_BATCH_EVENTS must be an integer"),
        ("RATE_LIMIT", "nan", "RATE_LIMIT must be a finite number"),
        ("PRODUCE_TIMEOUT_S", "0", "PRODUCE_TIMEOUT_S must be"),
        ("SINK", "redis", "must be one of 'confluent', 'memory'"),
        ("KAFKA_BOOTSTRAP", "localhost", "KAFKA_BOOTSTRAP must be host:port"),
        ("IP_HASH_KEY", "short", "at least 16 bytes"),
        ("MAX_IN_FLIGHT", "1", "MAX_IN_FLIGHT must be >= MAX_BATCH_EVENTS"),
    ],
)
def test_malformed_values_name_the_variable(name, value, fragment):
    env = {"QUESTLOG_API_IP_HASH_KEY": KEY, f"QUESTLOG_API_{name}": value}
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_the_removed_kafka_python_sink_is_refused_naming_the_choices():
    """``kafka`` (the kafka-python sink, removed) stops the start; the message lists what
    is left, whether the value comes from the environment or from code."""
    env = {"QUESTLOG_API_IP_HASH_KEY": KEY, "QUESTLOG_API_SINK": "kafka"}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert info.value.problems == [
        "QUESTLOG_API_SINK must be one of 'confluent', 'memory' (got 'kafka')"
    ]
    with pytest.raises(SettingsError, match="QUESTLOG_API_SINK must be one of confluent, memory"):
        Settings(sink="kafka", ip_hash_key=KEY.encode())


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"QUESTLOG_API_MAX_BATCH_EVENTS": "x", "QUESTLOG_API_RATE_LIMIT": "y"})
    message = str(info.value)
    assert "MAX_BATCH_EVENTS" in message
    assert "RATE_LIMIT" in message
    assert "IP_HASH_KEY" in message


def test_create_app_reads_env_and_fails_fast(monkeypatch):
    from questlog_api import create_app

    monkeypatch.delenv("QUESTLOG_API_IP_HASH_KEY", raising=False)
    monkeypatch.delenv("QUESTLOG_API_ALLOW_DEV_IP_HASH_KEY", raising=False)
    with pytest.raises(SettingsError):
        create_app()
