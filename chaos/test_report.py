"""The figures' format: medians with their spread, and a failed invariant shown."""

from questlog_chaos import sabotage
from questlog_chaos.report import Result, Scale, spread, table


def test_spread_is_median_with_range():
    assert spread([3.0, 1.0, 2.0], " s") == "2.00 s (1.00-3.00, n=3)"
    assert spread([0.5]) == "0.50"
    assert spread([]) == "-"


def test_a_broken_invariant_fails_the_result_and_shows_in_the_line():
    result = Result("T9", "canaries", inputs="40 requests")
    result.check(True, "never shown")
    assert result.passed
    result.check(False, "canary found in the logs")
    assert not result.passed
    assert "FAILED: canary found in the logs" in result.line()
    assert "never shown" not in result.line()


def test_lost_or_duplicated_events_fail_even_without_a_stated_problem():
    assert not Result("T3", "kills", lost=1).passed
    assert not Result("T3", "kills", duplicates=2).passed


def test_table_is_ordered_by_scenario_number():
    text = table([Result("T10", "b"), Result("T2", "a")])
    assert text.index("| T2 |") < text.index("| T10 |")


def test_scale_picks_by_name():
    assert Scale("full").pick(1, 9) == 9
    assert Scale().pick(1, 9) == 1


def test_sabotage_env_reaches_child_processes_only_when_asked():
    assert sabotage.env(None) == {}
    env = sabotage.env("no_dedup", {"PYTHONPATH": "/x"})
    assert env["QUESTLOG_SABOTAGE"] == "no_dedup"
    assert env["PYTHONPATH"].split(":")[1] == "/x"
    assert (sabotage.HERE / "site" / "sitecustomize.py").is_file()


def test_every_sabotage_patches_something_that_exists():
    """A refactor that moves what a sabotage turns off would make its scenario's strict
    xfail pass for the wrong reason (an AttributeError, or a patch on nothing)."""
    import importlib
    import pkgutil

    class Recorder:
        def __init__(self) -> None:
            self.missing: list[tuple[str, str]] = []

        def setattr(self, target, name, value) -> None:
            if not hasattr(target, name):
                self.missing.append((getattr(target, "__name__", repr(target)), name))

    applied = 0
    for info in pkgutil.iter_modules(sabotage.__path__):
        module = importlib.import_module(f"{sabotage.__name__}.{info.name}")
        recorder = Recorder()
        module.apply(recorder)
        assert not recorder.missing, (info.name, recorder.missing)
        applied += 1
    assert applied >= 14
