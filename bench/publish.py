"""Copy the last full run's table (bench/results/latest.md) into docs/benchmarks.md,
between its `<!-- bench:latest -->` and `<!-- /bench:latest -->` markers, so the doc
quotes exactly what the run measured.

Usage: .venv/bin/python bench/publish.py [results.md]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:latest -->", "<!-- /bench:latest -->"


def publish(results: Path, doc: Path = DOC) -> None:
    text = doc.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{doc}: markers {START} ... {END} not found")
    table = results.read_text().strip()
    # the results' own title becomes a subsection of the doc
    table = table.replace("# questlog benchmarks", "### Run", 1)
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{START}\n{table}\n{END}{tail}")


if __name__ == "__main__":
    publish(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench/results/latest.md")
