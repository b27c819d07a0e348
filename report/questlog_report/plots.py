"""Charts as PNG bytes, drawn on matplotlib's Agg canvas (no display, no pyplot state).

Every chart carries, in its own pixels, the ``as_of`` it was computed from and the API
call that answered it, so a PNG copied out of the report still says where it came from.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

WIDTH, HEIGHT, DPI = 8.0, 4.0, 100


def _new(height: float = HEIGHT) -> Figure:
    fig = Figure(figsize=(WIDTH, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def footer(fig: Figure, as_of: str, call: str) -> None:
    fig.text(
        0.01,
        0.01,
        f"{call}\nas_of: {as_of}",
        fontsize=7,
        color="#555555",
        va="bottom",
        ha="left",
        wrap=True,
    )


def png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    ylabel: str,
    as_of: str,
    call: str,
) -> bytes:
    """Vertical bars, one per label; an empty answer draws a 'no data' chart."""
    fig = _new()
    ax = fig.add_axes((0.09, 0.3, 0.88, 0.6))
    if labels:
        positions = range(len(labels))
        ax.bar(positions, values, color="#3b6ea5")
        if all(isinstance(v, int) for v in values):  # counts: no 2.5 purchases on the axis
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xticks(
            list(positions), [str(label) for label in labels], rotation=20, ha="right", fontsize=8
        )
    else:
        _no_data(ax)
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    footer(fig, as_of, call)
    return png(fig)


def lines(
    x: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    ylabel: str,
    as_of: str,
    call: str,
) -> bytes:
    """One line (with markers) per series over shared categorical x labels."""
    fig = _new()
    ax = fig.add_axes((0.09, 0.3, 0.88, 0.6))
    if x and series:
        positions = list(range(len(x)))
        marker = "o" if len(x) <= 31 else None  # dots on a long series are noise
        for name, values in series.items():
            ax.plot(positions, values, marker=marker, label=name)
        step = max(1, len(x) // 12)  # at most ~12 tick labels
        ax.set_xticks(
            positions[::step], [str(v) for v in x][::step], rotation=20, ha="right", fontsize=8
        )
        ax.legend(fontsize=8)
        ax.set_ylim(bottom=0)
        if all(isinstance(v, int) for vs in series.values() for v in vs):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        _no_data(ax)
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)
    footer(fig, as_of, call)
    return png(fig)


def _no_data(ax) -> None:
    ax.text(
        0.5,
        0.5,
        "no data in this window",
        ha="center",
        va="center",
        transform=ax.transAxes,
        color="#777777",
    )
    ax.set_xticks([])
