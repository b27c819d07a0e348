"""The chaos scenarios' shared fixtures: scale, the results table, sabotage.

``pytest chaos`` (inside ``make test``) runs every scenario at the reduced scale.
``make chaos`` passes ``--chaos-scale full`` (full load, 3 runs of every timing figure)
and writes chaos/results/latest.md; ``make chaos-sabotage`` adds ``--sabotage``: each
scenario runs with the mechanism named by its ``sabotage`` marker broken, and is expected
to fail (strict xfail: a scenario that passes with its mechanism broken fails the run).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from questlog_chaos import sabotage
from questlog_chaos.report import Result, Scale, write

RESULTS: list[Result] = []
CHAOS = Path(__file__).resolve().parent
SCENARIO_FILE = re.compile(r"test_t\d\d_")  # chaos/test_t01_broker_outage.py ...


def pytest_addoption(parser):
    group = parser.getgroup("questlog chaos")
    group.addoption("--chaos-scale", choices=("reduced", "full"), default="reduced")
    group.addoption("--chaos-seed", type=int, default=17)
    group.addoption(
        "--sabotage",
        action="store_true",
        help="break each scenario's mechanism on purpose; expect it to fail",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if CHAOS not in Path(str(item.fspath)).parents:
            continue
        marker = item.get_closest_marker("sabotage")
        if marker is None and SCENARIO_FILE.match(Path(str(item.fspath)).name):
            raise pytest.UsageError(
                f"{item.nodeid}: a scenario must name the mechanism "
                "that breaks it (@pytest.mark.sabotage(...))"
            )
        if config.getoption("--sabotage") and marker is not None:
            item.add_marker(
                pytest.mark.xfail(
                    strict=True, reason=f"mechanism broken on purpose: {marker.args[0]}"
                )
            )


@pytest.fixture(scope="session")
def scale(pytestconfig) -> Scale:
    name = pytestconfig.getoption("--chaos-scale")
    return Scale(
        name=name, seed=pytestconfig.getoption("--chaos-seed"), runs=3 if name == "full" else 1
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One embedded stack (what `make run` starts: Kafka, API, extractor, query service)
    on free ports, shared by the scenarios that send hostile input but kill nothing. Each
    such scenario tags its events (its own player ids) so its counts are its own."""
    from questlog_embedded.stack import Stack

    with Stack(tmp_path_factory.mktemp("chaos-stack")) as running:
        yield running


@pytest.fixture
def sabotaged(request, pytestconfig, monkeypatch) -> str | None:
    """The name of the mechanism broken in this run (None normally). It is already broken
    in this process; pass ``sabotage_env`` to the processes the scenario starts."""
    marker = request.node.get_closest_marker("sabotage")
    if not (pytestconfig.getoption("--sabotage") and marker):
        return None
    name = marker.args[0]
    sabotage.apply(name, monkeypatch)
    return name


@pytest.fixture
def sabotage_env(sabotaged) -> dict[str, str]:
    return sabotage.env(sabotaged)


@pytest.fixture
def record(request, capsys):
    """Call with the scenario's ``Result``: printed at once as one line, kept for the
    table; the test then fails if any invariant broke."""

    def _record(result: Result) -> Result:
        RESULTS.append(result)
        with capsys.disabled():
            print("\n" + result.line(), flush=True)
        assert result.passed, result.line()
        return result

    return _record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RESULTS:
        return
    terminalreporter.section("questlog chaos figures")
    for result in RESULTS:
        terminalreporter.write_line(result.line())
    if config.getoption("--chaos-scale") == "full" and not config.getoption("--sabotage"):
        scale = Scale("full", config.getoption("--chaos-seed"), 3)
        out = write(
            RESULTS,
            CHAOS / "results",
            os.environ.get("QUESTLOG_CHAOS_COMMAND", "make chaos"),
            scale,
        )
        terminalreporter.write_line(f"table written to {out}")
