"""What a section hands the renderer: tables of text, PNG figures, the calls that answered.

Cells are formatted here, once, so the HTML and the Markdown show the same characters;
money goes through ``Decimal`` only (``money``), never through a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

NONE = "(none)"


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    call: str


@dataclass(frozen=True)
class Figure:
    name: str  # file stem of the PNG next to report.md
    title: str
    png: bytes
    as_of: str
    call: str


@dataclass
class Section:
    key: str
    title: str
    calls: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    preformatted: str | None = None  # e.g. the pipeline diagram as text


def money(value: Any) -> Decimal | None:
    """An amount from the API (a decimal string, or a number parsed as Decimal) exactly."""
    if value is None:
        return None
    if isinstance(value, float):  # the client never makes floats; refuse to round silently
        raise TypeError("money must not arrive as a float")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None


def cell(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value)


def as_of_text(as_of: Any) -> str:
    """``{"purchase_sword": 3, "quarantine": None}`` -> 'purchase_sword v3, quarantine (empty)'."""
    if isinstance(as_of, dict):
        parts = [
            f"{name} v{version}" if version is not None else f"{name} (no version yet)"
            for name, version in as_of.items()
        ]
        return ", ".join(parts) if parts else NONE
    return cell(as_of)
