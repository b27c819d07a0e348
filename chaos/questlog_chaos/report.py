"""One line of figures per scenario, and the table that ``make chaos`` keeps.

A scenario fills a ``Result``: the load it held, the faults it injected, the inputs it
tried, and what came out (events lost, duplicates in tables, 5xx answers), plus any
scenario-specific figures. Figures that depend on timing are lists, one value per run, and
are shown as the median with the min-max spread.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Scale:
    """How hard a scenario pushes: ``reduced`` inside ``make test``, ``full`` in
    ``make chaos``. Counts come from ``seed``; timing figures are taken over ``runs``."""

    name: str = "reduced"
    seed: int = 17
    runs: int = 1

    @property
    def full(self) -> bool:
        return self.name == "full"

    def pick(self, reduced, full):
        return full if self.full else reduced


def spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    """``median (min-max, n=runs)`` of one figure over the runs."""
    if not values:
        return "-"
    fmt = f"{{:.{digits}f}}"
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return f"{med}{unit}"
    return f"{med}{unit} ({fmt.format(min(values))}-{fmt.format(max(values))}, n={len(values)})"


@dataclass
class Result:
    scenario: str  # "T1"
    title: str
    load: str = "-"  # e.g. "3 runs x 6,000 events at 400/s, 16 clients"
    faults: str = "-"  # e.g. "SIGKILL broker at 30%, restart; SIGSTOP 8 s"
    inputs: str = "-"  # e.g. "212 hostile requests"
    lost: int = 0
    duplicates: int = 0
    errors_5xx: int = 0
    figures: dict[str, str] = field(default_factory=dict)  # name -> spread(...) or text
    problems: list[str] = field(default_factory=list)  # each broken invariant, in words

    def check(self, ok: bool, problem: str) -> None:
        """Record a broken invariant (the test asserts ``not result.problems`` at the end,
        so every figure is printed even when one invariant already failed)."""
        if not ok:
            self.problems.append(problem)

    @property
    def passed(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicates == 0

    def line(self) -> str:
        extra = "; ".join(f"{k} {v}" for k, v in self.figures.items())
        verdict = "ok" if self.passed else "FAILED: " + "; ".join(self.problems)
        return (
            f"{self.scenario} {self.title} | load {self.load} | faults {self.faults} | "
            f"inputs {self.inputs} | lost {self.lost} | duplicates {self.duplicates} | "
            f"5xx {self.errors_5xx} | {extra or '-'} | {verdict}"
        )


HEADER = (
    "| | scenario | load | faults | inputs | lost | duplicates | 5xx | figures "
    "(median (min-max, n)) | verdict |\n|---|---|---|---|---|---|---|---|---|---|"
)


def table(results: list[Result]) -> str:
    rows = []
    for r in sorted(results, key=lambda r: int(r.scenario.lstrip("T") or 0)):
        extra = "; ".join(f"{k} {v}" for k, v in r.figures.items()) or "-"
        verdict = "ok" if r.passed else "FAILED: " + "; ".join(r.problems)
        rows.append(
            f"| {r.scenario} | {r.title} | {r.load} | {r.faults} | {r.inputs} | "
            f"{r.lost} | {r.duplicates} | {r.errors_5xx} | {extra} | {verdict} |"
        )
    return "\n".join([HEADER, *rows])


def write(results: list[Result], folder: Path, command: str, scale: Scale) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(
        json.dumps(
            {"command": command, "scale": asdict(scale), "results": [asdict(r) for r in results]},
            indent=2,
        )
        + "\n"
    )
    out = folder / "latest.md"
    out.write_text(
        f"# questlog reliability figures ({scale.name} scale, seed {scale.seed}, "
        f"{scale.runs} run(s) per timing figure)\n\nReproduce: `{command}`\n\n"
        + table(results)
        + "\n"
    )
    return out
