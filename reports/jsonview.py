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
    marked: bool = False


def child_path(parent: str, key: str | int) -> str:
    """The comparators' path syntax: `$.a`, `$[3]`, `$["a b"]`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _IDENT.match(key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def _marked(path: str, targets: frozenset[str]) -> bool:
    return path in targets


def _render(
    value: Any, path: str, indent: int, prefix: str, targets: frozenset[str], out: list[Line]
) -> None:
    pad = "  " * indent
    mark = _marked(path, targets)
    if isinstance(value, dict) and value:
        out.append(Line(f"{pad}{prefix}{{", mark))
        items = list(value.items())
        for i, (k, v) in enumerate(items):
            _render(v, child_path(path, k), indent + 1, f"{json.dumps(k)}: ", targets, out)
            if i < len(items) - 1:
                out[-1] = Line(out[-1].text + ",", out[-1].marked)
        out.append(Line(f"{pad}}}", mark))
    elif isinstance(value, list) and value:
        out.append(Line(f"{pad}{prefix}[", mark))
        for i, v in enumerate(value):
            _render(v, child_path(path, i), indent + 1, "", targets, out)
            if i < len(value) - 1:
                out[-1] = Line(out[-1].text + ",", out[-1].marked)
        out.append(Line(f"{pad}]", mark))
    else:
        out.append(Line(f"{pad}{prefix}{json.dumps(value, ensure_ascii=False)}", mark))


def body_lines(body: str | None, diff_paths: frozenset[str], max_lines: int = 400) -> list[Line]:
    """Lines of a body: JSON pretty-printed with differing paths marked, else raw text."""
    if body is None:
        return []
    try:
        value = json.loads(body)
    except ValueError:
        mark = "$body" in diff_paths
        lines = [Line(t, mark) for t in body.splitlines()[:max_lines]]
    else:
        lines = []
        _render(value, "$", 0, "", diff_paths, lines)
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], Line(f"... {len(lines) - max_lines} more lines")]
    return lines
