"""Comparison rules: parsed and validated from a `[compare]` table, compiled once.

`parse_rules({})` gives the defaults; `rules.merged(endpoint_table)` layers an
endpoint's own `[compare]` table on top (list keys extend, the rest override).

Migration-aware keys (see `comparators.align`):

    normalize = {int_float = true, iso_instants = true, null_absent = false,
                 key_case = false, media_type_params = true,
                 header_name_case = true, auto_list_key = true}   # the defaults
    list_keys = {"$.items" = "id", "$..reports" = "report_id"}   # pattern -> key field

An endpoint's `normalize` table overrides only the switches it names;
`list_keys` merges per pattern (the later pattern wins where several match).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from comparators.align import DEFAULT_NORMALIZATION, NORMALIZE_KEYS, Aligner, Normalization
from comparators.errors import RuleError
from comparators.masks import Mask, parse_mask
from comparators.normalize import Normalizer
from comparators.paths import PathSet, Pattern, PatternError, Step, parse_pattern

# Keys whose lists are appended to, not replaced, by `Rules.merged`.
EXTENDING_KEYS = ("ignore_paths", "ignore_order", "ignore_headers", "masks")


@dataclass(frozen=True)
class Rules:
    """Validated comparison rules plus their compiled normalizers."""

    headers: tuple[str, ...] = ("content-type",)
    ignore_headers: tuple[str, ...] = ()
    compare_status: bool = True
    ignore_paths: tuple[Pattern, ...] = ()
    ignore_order: tuple[Pattern, ...] = ()
    tolerance: float = 0.0
    tolerances: tuple[tuple[Pattern, float], ...] = ()
    masks: tuple[Mask, ...] = ()
    max_diffs: int = 200
    max_body_bytes_for_diff: int = 2_000_000
    max_decoded_bytes: int = 16 * 1024 * 1024  # a bigger decoded body is compared raw
    normalize: Normalization = DEFAULT_NORMALIZATION
    list_keys: tuple[tuple[Pattern, str], ...] = ()
    normalizer: Normalizer = field(init=False, repr=False, compare=False)
    aligner: Aligner = field(init=False, repr=False, compare=False)
    _tolerance_set: PathSet = field(init=False, repr=False, compare=False)
    # `sorted(compared_headers)`, computed once: compare() reads it on every call.
    sorted_compared_headers: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once here so that every compare() reuses them.
        object.__setattr__(
            self, "aligner", Aligner(self.normalize, self.list_keys, self.ignore_order)
        )
        object.__setattr__(
            self, "normalizer", Normalizer(self.ignore_paths, self.ignore_order, self.masks)
        )
        object.__setattr__(self, "_tolerance_set", PathSet(p for p, _ in self.tolerances))
        object.__setattr__(self, "sorted_compared_headers", tuple(sorted(self.compared_headers)))

    @property
    def compared_headers(self) -> tuple[str, ...]:
        """Lowercase header names to compare: `headers` minus `ignore_headers`."""
        ignored = set(self.ignore_headers)
        return tuple(h for h in self.headers if h not in ignored)

    @property
    def has_tolerance(self) -> bool:
        """True when some numeric differences may be tolerated."""
        return self.tolerance > 0 or any(t > 0 for _, t in self.tolerances)

    def tolerance_at(self, path: Sequence[Step]) -> float:
        """Tolerance for a number at `path`.

        A `tolerances` pattern covers the value it matches and everything below
        it; when several match, the last entry wins; else the global `tolerance`.
        """
        hits = self._tolerance_set.matches(path, subtree=True) if self._tolerance_set else []
        return self.tolerances[max(hits)][1] if hits else self.tolerance

    def merged(self, mapping: Mapping[str, Any]) -> Rules:
        """New Rules with `mapping` layered on top: list keys extend, others override.

        `tolerances` and `list_keys` merge per pattern (a pattern given again gets
        the new value); `normalize` overrides only the switches it names.
        """
        changes = _parse_fields(mapping, self.normalize)
        for key in EXTENDING_KEYS:
            if key in changes:
                changes[key] = _dedupe((*getattr(self, key), *changes[key]))
        for key in ("tolerances", "list_keys"):
            if key in changes:
                table = {p.source: (p, v) for p, v in getattr(self, key)}
                table.update({p.source: (p, v) for p, v in changes[key]})
                changes[key] = tuple(table.values())
        return replace(self, **changes)


def _dedupe(items: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


def _where(key: str) -> str:
    return f"compare.{key}"


def _list(value: Any, key: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise RuleError(f"{_where(key)} must be a list, got {type(value).__name__} {value!r}")
    return value


def _header_names(value: Any, key: str) -> tuple[str, ...]:
    names = []
    for i, item in enumerate(_list(value, key)):
        if not isinstance(item, str) or not item.strip():
            raise RuleError(f"{_where(key)}[{i}] must be a header name, got {item!r}")
        names.append(item.strip().lower())
    return _dedupe(tuple(names))


def _pattern(value: Any, where: str) -> Pattern:
    if not isinstance(value, str):
        raise RuleError(f"{where} must be a path pattern string, got {value!r}")
    try:
        return parse_pattern(value)
    except PatternError as exc:
        raise RuleError(f"{where} {value!r}: bad path pattern: {exc}") from exc


def _patterns(value: Any, key: str) -> tuple[Pattern, ...]:
    out = tuple(_pattern(item, f"{_where(key)}[{i}]") for i, item in enumerate(_list(value, key)))
    if key == "ignore_paths":
        for i, pattern in enumerate(out):
            if not pattern.steps:
                raise RuleError(
                    f"{_where(key)}[{i}] {pattern.source!r} would ignore the whole body"
                )
    return out


def _number(value: Any, where: str) -> float:
    # bool is an int subclass; `tolerance = true` is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(f"{where} must be a number >= 0, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise RuleError(f"{where} must be a finite number >= 0, got {value!r}")
    return float(value)


def _tolerances(value: Any, key: str) -> tuple[tuple[Pattern, float], ...]:
    if not isinstance(value, Mapping):
        raise RuleError(f"{_where(key)} must be a table of path pattern = number, got {value!r}")
    where = _where(key)
    return tuple(
        (_pattern(path, f"{where} key"), _number(tol, f"{where}[{path!r}]"))
        for path, tol in value.items()
    )


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise RuleError(f"{_where(key)} must be true or false, got {value!r}")
    return value


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RuleError(f"{_where(key)} must be an integer >= {minimum}, got {value!r}")
    return value


def _normalize(value: Any, key: str) -> dict[str, bool]:
    """The switches a `normalize` table names (applied over a base by the caller)."""
    if not isinstance(value, Mapping):
        raise RuleError(f"{_where(key)} must be a table of name = true/false, got {value!r}")
    out = {}
    for name, flag in value.items():
        if name not in NORMALIZE_KEYS:
            close = difflib.get_close_matches(str(name), NORMALIZE_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(NORMALIZE_KEYS)
            raise RuleError(f"unknown key {name!r} in [compare.normalize]{hint} (known: {known})")
        out[name] = _bool(flag, f"{key}.{name}")
    return out


def _list_keys(value: Any, key: str) -> tuple[tuple[Pattern, str], ...]:
    where = _where(key)
    if not isinstance(value, Mapping):
        raise RuleError(f"{where} must be a table of path pattern = key field, got {value!r}")
    out = []
    for path, name in value.items():
        if not isinstance(name, str) or not name:
            raise RuleError(f"{where}[{path!r}] must be a key field name, got {name!r}")
        out.append((_pattern(path, f"{where} key"), name))
    return tuple(out)


def _masks(value: Any, key: str) -> tuple[Mask, ...]:
    return tuple(
        parse_mask(spec, f"{_where(key)}[{i}]") for i, spec in enumerate(_list(value, key))
    )


_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "headers": _header_names,
    "ignore_headers": _header_names,
    "compare_status": _bool,
    "ignore_paths": _patterns,
    "ignore_order": _patterns,
    "tolerance": lambda v, k: _number(v, _where(k)),
    "tolerances": _tolerances,
    "masks": _masks,
    "max_diffs": lambda v, k: _int(v, k, 1),
    "max_body_bytes_for_diff": lambda v, k: _int(v, k, 0),
    "max_decoded_bytes": lambda v, k: _int(v, k, 1),
    "normalize": _normalize,
    "list_keys": _list_keys,
}


def _parse_fields(
    mapping: Mapping[str, Any], base: Normalization = DEFAULT_NORMALIZATION
) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        raise RuleError(f"[compare] must be a table, got {type(mapping).__name__}")
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        parser = _PARSERS.get(key)
        if parser is None:
            close = difflib.get_close_matches(str(key), _PARSERS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise RuleError(f"unknown key {key!r} in [compare]{hint}")
        out[key] = parser(value, key)
    if "normalize" in out:
        out["normalize"] = replace(base, **out["normalize"])
    return out


def parse_rules(mapping: Mapping[str, Any]) -> Rules:
    """Rules from a `[compare]` table; raises RuleError naming the bad key or value."""
    return Rules(**_parse_fields(mapping))


DEFAULT_RULES = parse_rules({})
