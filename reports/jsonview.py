"""Pretty-printing a body as lines, marking the lines that hold differing paths."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    marked: bool = False  # holds a real difference
    soft: bool = False  # holds only a noise or accepted difference


def child_path(parent: str, key: str | int) -> str:
    """The comparators' path syntax: `$.a`, `$[3]`, `$["a b"]`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _IDENT.match(key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def _line(text: str, path: str, hard: frozenset[str], soft: frozenset[str]) -> Line:
    marked = path in hard
    return Line(text, marked, not marked and path in soft)


def _comma(out: list[Line]) -> None:
    last = out[-1]
    out[-1] = Line(last.text + ",", last.marked, last.soft)


def _render(
    value: Any,
    path: str,
    indent: int,
    prefix: str,
    targets: tuple[frozenset[str], frozenset[str]],
    out: list[Line],
) -> None:
    pad = "  " * indent
    if isinstance(value, dict) and value:
        out.append(_line(f"{pad}{prefix}{{", path, *targets))
        items = list(value.items())
        for i, (k, v) in enumerate(items):
            _render(v, child_path(path, k), indent + 1, f"{json.dumps(k)}: ", targets, out)
            if i < len(items) - 1:
                _comma(out)
        out.append(_line(f"{pad}}}", path, *targets))
    elif isinstance(value, list) and value:
        out.append(_line(f"{pad}{prefix}[", path, *targets))
        for i, v in enumerate(value):
            _render(v, child_path(path, i), indent + 1, "", targets, out)
            if i < len(value) - 1:
                _comma(out)
        out.append(_line(f"{pad}]", path, *targets))
    else:
        text = f"{pad}{prefix}{json.dumps(value, ensure_ascii=False)}"
        out.append(_line(text, path, *targets))


def body_lines(
    body: str | None,
    diff_paths: frozenset[str],
    max_lines: int = 400,
    soft_paths: frozenset[str] = frozenset(),
) -> list[Line]:
    """Lines of a body: JSON pretty-printed with differing paths marked, else raw text.

    Lines at `diff_paths` are marked; lines at `soft_paths` only (noise, accepted) are soft.
    """
    if body is None:
        return []
    try:
        value = json.loads(body)
    except ValueError:
        first = _line("", "$body", diff_paths, soft_paths)
        lines = [Line(t, first.marked, first.soft) for t in body.splitlines()[:max_lines]]
    else:
        lines = []
        _render(value, "$", 0, "", (diff_paths, soft_paths), lines)
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], Line(f"... {len(lines) - max_lines} more lines")]
    return lines
