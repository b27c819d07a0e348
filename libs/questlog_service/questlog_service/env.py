"""Settings from ``<PREFIX>_*`` environment variables, read once, typed, and checked up
front, with every problem reported at once (one failed start names every bad variable,
not one per attempt).

A service's settings are a frozen dataclass plus a table ``{field: parser}``: the
variable of a field is the prefix plus the field's name in upper case; a parser takes the
stripped text and returns the value or raises ``ValueError("must be ...")``. Unset or
blank means the field's default; a field without a default is required. Checks across
fields (or of values built in code) belong to the class: its ``__post_init__`` raises
``SettingsError`` via ``check``, and ``from_env`` adds those problems to the rest.

Usage::

    PARSERS = {"topic": str, "workers": integer(minimum=1), "sink": one_of("kafka", "memory")}
    settings = from_env(Settings, "QUESTLOG_API_", PARSERS, service="questlog API")
    values = read("QUESTLOG_API_", {"WORKERS": (integer(minimum=1), 2)})  # no dataclass
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
N = TypeVar("N", int, float)
Parser = Callable[[str], Any]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """Settings missing or malformed: ``problems`` lists each, the message all of them."""

    def __init__(self, service: str, problems: Iterable[str]) -> None:
        self.service = service
        self.problems = list(problems)
        super().__init__(f"invalid {service} settings: " + "; ".join(self.problems))


def check(service: str, prefix: str, checks: Iterable[tuple[bool, str]]) -> None:
    """For ``__post_init__``: raise ``SettingsError`` naming every failed check, each
    ``(ok, "NAME must be ...")``."""
    problems = [prefix + message for ok, message in checks if not ok]
    if problems:
        raise SettingsError(service, problems)


def read(
    prefix: str,
    table: Mapping[str, tuple[Parser, Any]],
    environ: Mapping[str, str] | None = None,
    *,
    service: str = "questlog",
) -> dict[str, Any]:
    """``{NAME: value}`` for each ``NAME: (parser, default)`` of ``table``;
    ``SettingsError`` naming every bad variable."""
    values, problems = _parse(prefix, {name: p for name, (p, _) in table.items()}, environ)
    if problems:
        raise SettingsError(service, problems)
    return {name: values.get(name, default) for name, (_, default) in table.items()}


def from_env(
    cls: type[T],
    prefix: str,
    parsers: Mapping[str, Parser],
    environ: Mapping[str, str] | None = None,
    *,
    service: str,
    values: Mapping[str, Any] | None = None,
) -> T:
    """``cls`` built from the variables of the fields in ``parsers``, over ``values``
    (what the caller decided itself, e.g. a default that depends on the command)."""
    names = {
        spec.name.upper(): spec.name for spec in dataclasses.fields(cls) if spec.name in parsers
    }
    parsed, problems = _parse(prefix, {n: parsers[f] for n, f in names.items()}, environ)
    kwargs = dict(values or {})
    kwargs.update({names[name]: value for name, value in parsed.items()})
    required = [
        spec.name
        for spec in dataclasses.fields(cls)
        if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
    ]
    for name in required:
        if name not in kwargs and not any(
            p.startswith(f"{prefix}{name.upper()} ") for p in problems
        ):
            problems.append(f"{prefix}{name.upper()} is not set")
    if any(name not in kwargs for name in required):
        raise SettingsError(service, problems)
    try:  # values that did not parse are left at their defaults: checked, they pass
        settings = cls(**kwargs)
    except SettingsError as exc:
        problems.extend(exc.problems)
    if problems:
        raise SettingsError(service, problems)
    return settings


def _parse(
    prefix: str, parsers: Mapping[str, Parser], environ: Mapping[str, str] | None
) -> tuple[dict[str, Any], list[str]]:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, parse in parsers.items():
        raw = env.get(prefix + name, "").strip()
        if not raw:
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            problems.append(f"{prefix}{name} {exc} (got {raw!r})")
    return values, problems


# -- parsers: text in, value out, or ValueError("must be ...") ---------------------------


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be an integer") from None
        return _within(value, minimum, maximum)

    return parse


def number(minimum: float | None = None, maximum: float | None = None) -> Parser:
    """A finite float (``nan`` and ``inf`` parse as floats but are never settings)."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return _within(value, minimum, maximum)

    return parse


def one_of(*options: str) -> Parser:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError("must be one of " + ", ".join(repr(o) for o in options))
        return raw

    return parse


def items(raw: str) -> tuple[str, ...]:
    """Comma-separated, blanks dropped: ``" a, b ,,"`` is ``("a", "b")``."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def flag(raw: str) -> bool:
    return raw.lower() in {"1", "true", "yes", "on"}


def log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
    return level


def _within(value: N, minimum: N | None, maximum: N | None) -> N:
    if minimum is not None and value < minimum:
        raise ValueError(f"must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be <= {maximum}")
    return value
