from dataclasses import dataclass

import pytest

from questlog_service import env
from questlog_service.env import SettingsError

PREFIX = "QUESTLOG_TEST_"


@dataclass(frozen=True)
class Settings:
    root: str
    workers: int = 2
    ratio: float = 0.5
    mode: str = "fast"
    keys: tuple[str, ...] = ()
    verbose: bool = False

    def __post_init__(self) -> None:
        env.check(
            "questlog test",
            PREFIX,
            [
                (self.root.startswith("/"), "ROOT must be an absolute path"),
                (self.workers <= 8 or self.mode == "fast", "WORKERS must be <= 8 unless MODE=fast"),
            ],
        )


PARSERS = {
    "root": str,
    "workers": env.integer(minimum=1),
    "ratio": env.number(maximum=1),
    "mode": env.one_of("fast", "safe"),
    "keys": env.items,
    "verbose": env.flag,
}


def load(variables, **kwargs):
    return env.from_env(
        Settings,
        PREFIX,
        PARSERS,
        {PREFIX + k: v for k, v in variables.items()},
        service="questlog test",
        **kwargs,
    )


def test_typed_values_defaults_and_blank_is_unset():
    s = load({"ROOT": " /lake ", "WORKERS": "4", "KEYS": " a, b ,,", "VERBOSE": "yes", "RATIO": ""})
    assert s == Settings(root="/lake", workers=4, keys=("a", "b"), verbose=True)


def test_every_problem_at_once_parse_and_class_checks_alike():
    with pytest.raises(SettingsError) as info:
        load({"ROOT": "relative", "WORKERS": "many", "RATIO": "nan", "MODE": "slow"})
    assert info.value.problems == [
        "QUESTLOG_TEST_WORKERS must be an integer (got 'many')",
        "QUESTLOG_TEST_RATIO must be a finite number (got 'nan')",
        "QUESTLOG_TEST_MODE must be one of 'fast', 'safe' (got 'slow')",
        "QUESTLOG_TEST_ROOT must be an absolute path",
    ]
    assert str(info.value).startswith("invalid questlog test settings: QUESTLOG_TEST_WORKERS")


def test_a_missing_required_variable_is_named_with_the_others():
    with pytest.raises(SettingsError) as info:
        load({"WORKERS": "0", "RATIO": "2"})
    assert info.value.problems == [
        "QUESTLOG_TEST_WORKERS must be >= 1 (got '0')",
        "QUESTLOG_TEST_RATIO must be <= 1 (got '2')",
        "QUESTLOG_TEST_ROOT is not set",
    ]


def test_values_the_caller_decided_are_overridden_by_the_environment():
    assert load({}, values={"root": "/given"}).root == "/given"
    assert load({"ROOT": "/env"}, values={"root": "/given"}).root == "/env"


def test_cross_field_checks_see_the_parsed_values():
    with pytest.raises(SettingsError, match="WORKERS must be <= 8 unless MODE=fast"):
        load({"ROOT": "/l", "WORKERS": "9", "MODE": "safe"})


def test_read_plain_variables():
    table = {
        "PORT": (env.integer(minimum=1, maximum=65535), 8000),
        "LOG_LEVEL": (env.log_level, "INFO"),
    }
    assert env.read(PREFIX, table, {PREFIX + "LOG_LEVEL": "debug"}) == {
        "PORT": 8000,
        "LOG_LEVEL": "DEBUG",
    }
    with pytest.raises(SettingsError) as info:
        env.read(PREFIX, table, {PREFIX + "PORT": "70000", PREFIX + "LOG_LEVEL": "loud"})
    assert [p.split(" ")[0] for p in info.value.problems] == [
        "QUESTLOG_TEST_PORT",
        "QUESTLOG_TEST_LOG_LEVEL",
    ]
