"""The pipeline as a diagram drawn from what the running services report about themselves.

Nothing here is pasted in: the topic, bootstrap servers, trigger, lake root, tables and
the counters on the arrows all come from ``GET /v1/pipeline``, the query service's URL is
the one the report talked to. The same facts give a PNG and a plain-text version.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from questlog_report import plots
from questlog_report.model import cell

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Node:
    title: str
    lines: list[str]


@dataclass(frozen=True)
class Flow:
    nodes: list[Node]
    edges: list[str]  # edges[i] labels the arrow from nodes[i] to nodes[i + 1]


def _total(counts: Any) -> int | None:
    if not isinstance(counts, dict) or not counts:
        return None
    return sum(int(v) for v in counts.values() if isinstance(v, int))


def flow(pipeline: dict[str, Any], base_url: str) -> Flow:
    lake = pipeline.get("lake") or {}
    extractor = pipeline.get("extractor") or {}
    api = pipeline.get("api") or {}
    settings = extractor.get("settings") or {}
    tables = list(lake.get("tables") or [])
    written = extractor.get("rows_written") or {}

    def setting(name: str) -> str:
        return cell(settings.get(name)) if settings.get(name) not in (None, "") else UNKNOWN

    trigger = setting("trigger_seconds")
    extractor_lines = [
        f"trigger: every {trigger} s" if trigger != UNKNOWN else "trigger: unknown",
        f"watermark: {setting('watermark')}",
    ]
    if not extractor.get("available"):
        extractor_lines.append("metrics unavailable")
    api_lines = ["POST /v1/events", "GET /purchase_sword, /join_guild"]
    if not api.get("available"):
        api_lines.append("metrics unavailable")
    nodes = [
        Node("game clients", ["players, load generators"]),
        Node("event API", api_lines),
        Node("Kafka", [f"topic: {setting('topic')}", f"bootstrap: {setting('kafka_bootstrap')}"]),
        Node("extractor (Spark)", extractor_lines),
        Node(
            "lake (Delta)",
            [
                f"root: {cell(lake.get('root'))}",
                "tables: " + (", ".join(tables) if tables else UNKNOWN),
            ],
        ),
        Node("query service", [base_url, "DuckDB over committed snapshots"]),
        Node("this report", ["REST GET only"]),
    ]
    accepted = _total(api.get("events_accepted"))
    rows_in = extractor.get("input_rows")
    written_text = ", ".join(f"{name} {written[name]}" for name in sorted(written)) or "?"
    edges = [
        "HTTP",
        "produce, acks=all" + (f" ({accepted} accepted)" if accepted is not None else ""),
        "consume" + (f" ({rows_in} rows read)" if isinstance(rows_in, int) else ""),
        "append, dedup on event_id" + (f" (written: {written_text})" if written else ""),
        "read committed snapshots",
        "GET /v1/...",
    ]
    return Flow(nodes, edges)


def text(f: Flow) -> str:
    """The flow top to bottom, one node per line and its arrow label between them."""
    out: list[str] = []
    for i, node in enumerate(f.nodes):
        out.append(f"[{node.title}] " + " · ".join(node.lines))
        if i < len(f.edges):
            out.append(f"    │ {f.edges[i]}")
            out.append("    ▼")
    return "\n".join(out)


def _wrap(value: str, width: int) -> str:
    return (
        "\n".join(textwrap.wrap(value, width, break_long_words=True, break_on_hyphens=False))
        or value
    )


def png(f: Flow, as_of: str, call: str) -> bytes:
    """Boxes in a snake: the first four left to right, the rest right to left below."""
    fig = plots._new(height=5.2)
    fig.set_size_inches(12, 5.2)
    ax = fig.add_axes((0, 0.1, 1, 0.9))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 5)
    ax.axis("off")
    width, height = 2.3, 1.5
    top = [(0.2 + i * 3.1, 3.9) for i in range(4)]
    bottom = [(0.2 + i * 3.1, 1.0) for i in (3, 2, 1, 0)]
    places = (top + bottom)[: len(f.nodes)]
    for (x, y), node in zip(places, f.nodes, strict=True):
        ax.add_patch(
            FancyBboxPatch(
                (x, y - height / 2),
                width,
                height,
                boxstyle="round,pad=0.05",
                facecolor="#eef3fa",
                edgecolor="#3b6ea5",
                linewidth=1.2,
            )
        )
        ax.text(
            x + width / 2,
            y + height / 2 - 0.22,
            node.title,
            ha="center",
            va="top",
            fontsize=10,
            fontweight="bold",
        )
        body = "\n".join(_wrap(line, 34) for line in node.lines)
        ax.text(x + width / 2, y + height / 2 - 0.55, body, ha="center", va="top", fontsize=7)
    for i, label in enumerate(f.edges[: len(places) - 1]):
        (x0, y0), (x1, y1) = places[i], places[i + 1]
        if y0 == y1:  # same row: side to side
            start = (x0 + width, y0) if x1 > x0 else (x0, y0)
            end = (x1, y1) if x1 > x0 else (x1 + width, y1)
            where = ((start[0] + end[0]) / 2, y0 + 0.12)
        else:  # down the right-hand side
            start, end = (x0 + width / 2, y0 - height / 2), (x1 + width / 2, y1 + height / 2)
            where = (x0 + width / 2 - 0.1, (y0 + y1) / 2)
        ax.add_patch(
            FancyArrowPatch(
                start, end, arrowstyle="-|>", mutation_scale=14, color="#333333", linewidth=1.2
            )
        )
        same_row = y0 == y1
        ax.text(
            where[0],
            where[1],
            _wrap(label, 13 if same_row else 36),
            fontsize=6.5,
            ha="center" if same_row else "right",
            va="bottom" if same_row else "center",
            color="#333333",
        )
    plots.footer(fig, as_of, call)
    return plots.png(fig)
