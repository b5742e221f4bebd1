"""Masks: regexes whose matches inside strings are replaced by a fixed placeholder.

Volatile values (timestamps, generated ids) differ on every call; masking them
turns "2024-05-01T10:00:00Z" and "2024-05-01T10:00:01Z" into the same
"<iso_timestamp>" so only real differences remain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from comparators.errors import RuleError
from comparators.paths import Pattern, PatternError, parse_pattern

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"
_ZONE = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"

BUILTIN_REGEXES: dict[str, str] = {
    # Extended (2024-05-01T10:00:00.123+02:00, space separator allowed) or basic
    # (20240501T100000Z) ISO-8601 date-times; a bare date is not volatile enough to mask.
    "iso_timestamp": (
        r"(?<!\d)(?:"
        rf"\d{{4}}-\d{{2}}-\d{{2}}[Tt ]\d{{2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?{_ZONE}"
        rf"|\d{{8}}[Tt]\d{{4}}(?:\d{{2}}(?:[.,]\d+)?)?{_ZONE}"
        r")(?![\d:])"
    ),
    "uuid": (
        _NOT_ALNUM_BEFORE
        + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
        + _NOT_ALNUM_AFTER
    ),
    "hex_id": _NOT_ALNUM_BEFORE + r"[0-9a-fA-F]{16,}" + _NOT_ALNUM_AFTER,
}

_TABLE_KEYS = frozenset({"name", "regex", "replace", "paths"})


@dataclass(frozen=True, slots=True)
class Mask:
    """A compiled mask; `paths` empty means it applies everywhere."""

    name: str
    regex: re.Pattern[str]
    replace: str
    paths: tuple[Pattern, ...] = ()

    def apply(self, text: str) -> tuple[str, int]:
        """`text` with every match replaced, and how many matches there were."""
        # Escape backslashes so `replace` is taken literally, not as a template.
        return self.regex.subn(self.replace.replace("\\", "\\\\"), text)


def builtin(name: str) -> Mask:
    """The builtin mask `name` with its default replacement `<name>`."""
    return Mask(name, re.compile(BUILTIN_REGEXES[name]), f"<{name}>")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RuleError(f"{where} must be a string, got {type(value).__name__} {value!r}")
    return value


def _paths(value: Any, where: str) -> tuple[Pattern, ...]:
    if not isinstance(value, list | tuple):
        raise RuleError(f"{where} must be a list of path patterns, got {value!r}")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(parse_pattern(_str(item, f"{where}[{i}]")))
        except PatternError as exc:
            raise RuleError(f"{where}[{i}] {item!r}: {exc}") from exc
    return tuple(out)


def parse_mask(spec: Any, where: str) -> Mask:
    """Build a Mask from a builtin name or a `{name, regex, replace?, paths?}` table."""
    known = ", ".join(sorted(BUILTIN_REGEXES))
    if isinstance(spec, str):
        if spec not in BUILTIN_REGEXES:
            raise RuleError(f"{where}: unknown builtin mask {spec!r} (known: {known})")
        return builtin(spec)
    if not isinstance(spec, Mapping):
        raise RuleError(f"{where} must be a builtin name or a table, got {spec!r}")
    unknown = sorted(set(spec) - _TABLE_KEYS)
    if unknown:
        raise RuleError(
            f"{where}: unknown key {unknown[0]!r} (allowed: name, regex, replace, paths)"
        )
    if "name" not in spec:
        raise RuleError(f"{where}: missing key 'name'")
    name = _str(spec["name"], f"{where}.name")
    if "regex" in spec:
        source = _str(spec["regex"], f"{where}.regex")
        try:
            regex = re.compile(source)
        except re.error as exc:
            raise RuleError(f"{where}.regex {source!r}: bad regex: {exc}") from exc
        if regex.fullmatch(""):
            raise RuleError(f"{where}.regex {source!r} matches the empty string")
    elif name in BUILTIN_REGEXES:
        regex = re.compile(BUILTIN_REGEXES[name])
    else:
        raise RuleError(f"{where}: missing key 'regex' (or use a builtin name: {known})")
    replace = _str(spec.get("replace", f"<{name}>"), f"{where}.replace")
    # A replacement its own regex would match again makes masking not idempotent.
    if regex.search(replace):
        raise RuleError(f"{where}.replace {replace!r} is matched by its own regex")
    paths = _paths(spec.get("paths", []), f"{where}.paths")
    return Mask(name, regex, replace, paths)
