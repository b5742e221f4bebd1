"""The TOML config file: comparison rules, endpoint routes, what may be copied.

[compare]                       # global rules (see comparators.parse_rules)
ignore_paths = ["$..request_id"]

[[endpoints]]
route = "/api/analysis/{id}"    # groups requests; also where per-endpoint rules apply
methods = ["GET"]               # optional
mirror_unsafe = true            # allow copying POST/PUT/PATCH/DELETE here
[endpoints.compare]             # rules for this endpoint only, extending [compare]
ignore_order = ["$.tags"]

[redact]                        # names added to the built-in deny-list of secrets
headers = ["X-Tenant-Key"]      # header names
keys = ["customer_ref"]         # JSON keys, form fields, multipart parts, query parameters
query = ["ref_code"]            # query parameters and form fields only
paths = ["^/reset/([^/]+)"]     # regexes over the path: the match (or its groups) hidden
random_segments = true          # hide path segments that look like random tokens

[tls.candidate]                 # TLS to a backend (primary, secondary, candidate):
ca = "internal-ca.pem"          # see shadow/config/tls.py
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from comparators import DEFAULT_RULES, Kind, RuleError, Rules, cluster_path, parse_rules
from shadow.config.control import ENDPOINT_CONTROL_KEYS, ControlConfig, parse_control
from shadow.config.data import DataTable, parse_data
from shadow.config.endpoints import EndpointMatcher, RoutePattern, endpoint_matches
from shadow.config.tls import BackendTls, parse_tls_section
from shadow.errors import ConfigError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Methods a copy may be allowed for (RFC 9110, PATCH, WebDAV and a few common extensions).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT", "QUERY",
     "PURGE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT",
     "SEARCH"}
)  # fmt: skip
_TOP_KEYS = {"compare", "endpoints", "accepted", "redact", "tls", "control", "data"}
_REDACT_LISTS = ("headers", "keys", "query", "paths")
_ACCEPTED_KEYS = {"endpoint", "path", "kind", "reason"}
_KINDS = tuple(k.value for k in Kind)
_ENDPOINT_KEYS = {"route", "methods", "mirror_unsafe", "compare", *ENDPOINT_CONTROL_KEYS}


@dataclass(frozen=True)
class EndpointConfig:
    pattern: RoutePattern
    mirror_unsafe: bool = False
    compare: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    """A known, accepted difference: shown as accepted, never counted against parity."""

    endpoint: str  # "GET /api/analysis/{id}" (shell-style wildcards allowed)
    path: str  # exact difference path, or with list indices as [*]
    reason: str
    kind: str | None = None

    def matches(self, endpoint: str, path: str, kind: str) -> bool:
        if self.kind is not None and self.kind != kind:
            return False
        if not endpoint_matches(self.endpoint, endpoint):
            return False
        return path == self.path or cluster_path(path) == self.path


@dataclass(frozen=True)
class RedactSettings:
    """The [redact] section: names and path patterns added to the built-in deny-list.

    Names match case-insensitively by word parts (shadow.pipeline.redact.NameList);
    `paths` are regexes (their groups, or else the whole match, are hidden);
    `random_segments` hides path segments that look like long random tokens.
    """

    headers: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    random_segments: bool = True


@dataclass(frozen=True)
class Config:
    """A parsed config; `rules_for` and `may_copy` answer per request."""

    rules: Rules = DEFAULT_RULES
    endpoints: tuple[EndpointConfig, ...] = ()
    source: str = "<defaults>"
    accepted: tuple[Accepted, ...] = ()
    redact: RedactSettings = RedactSettings()  # shadow.pipeline.redact.redactor_for builds it
    tls: Mapping[str, BackendTls] = field(default_factory=dict)  # per leg, see config/tls.py
    control: ControlConfig = field(
        default_factory=ControlConfig
    )  # route modes, flags, rollback (config/control.py)
    data: Mapping[str, DataTable] = field(default_factory=dict)  # [data.tables.*] (config/data.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matcher", EndpointMatcher(e.pattern for e in self.endpoints))
        object.__setattr__(self, "_rules_cache", {})

    matcher: EndpointMatcher = field(init=False, repr=False, compare=False)

    def _endpoint_config(self, method: str, path: str) -> EndpointConfig | None:
        pattern = self.matcher.pattern_for(method, path)
        if pattern is None:
            return None
        return next(e for e in self.endpoints if e.pattern is pattern)

    def rules_for(self, method: str, path: str) -> Rules:
        """Global rules merged with those of the endpoint the request belongs to."""
        ep = self._endpoint_config(method, path)
        if ep is None or not ep.compare:
            return self.rules
        cache: dict[str, Rules] = self._rules_cache  # type: ignore[attr-defined]
        key = ep.pattern.template
        if key not in cache:
            cache[key] = self.rules.merged(ep.compare)
        return cache[key]

    def accepted_reason(self, endpoint: str, path: str, kind: str) -> str | None:
        """The reason a difference was accepted, or None."""
        for entry in self.accepted:
            if entry.matches(endpoint, path, kind):
                return entry.reason
        return None

    def may_copy(self, method: str, path: str, unsafe_allowed: frozenset[str]) -> bool:
        """Whether a request may be sent to the candidate as well.

        Safe methods always; others only when allowed globally (by name or "*")
        or by the endpoint's `mirror_unsafe`, because a copied POST writes twice.
        """
        m = method.upper()
        if m in SAFE_METHODS or m in unsafe_allowed or "*" in unsafe_allowed:
            return True
        ep = self._endpoint_config(m, path)
        return ep is not None and ep.mirror_unsafe


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> Config:
    """Build a Config from parsed TOML; ConfigError names the bad entry."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown section {sorted(unknown)[0]!r}")
    try:
        rules = parse_rules(data.get("compare", {}))
    except RuleError as exc:
        raise ConfigError(f"{source}: [compare] {exc}") from None
    endpoints = []
    controlled: list[tuple[str, str, Mapping[str, Any]]] = []
    for where, ep in _tables(data, "endpoints", _ENDPOINT_KEYS, source):
        route = ep.get("route")
        if not isinstance(route, str):
            raise ConfigError(f"{where}: 'route' (a string like \"/api/items/{{id}}\") is required")
        methods = ep.get("methods")
        if methods is not None and (
            not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)
        ):
            raise ConfigError(f"{where}: 'methods' must be a list of strings")
        mirror = ep.get("mirror_unsafe", False)
        if not isinstance(mirror, bool):
            raise ConfigError(f"{where}: 'mirror_unsafe' must be true or false")
        compare = ep.get("compare", {})
        if not isinstance(compare, dict):
            raise ConfigError(f"{where}: 'compare' must be a table")
        try:
            pattern = RoutePattern.parse(route, methods)
            rules.merged(compare)  # validate now, not on the first matching request
        except (ValueError, RuleError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        endpoints.append(EndpointConfig(pattern, mirror, compare))
        controlled.append((where, route, ep))
    accepted = _parse_accepted(data, source)
    redact = _parse_redact(data, source)
    return Config(
        rules=rules,
        endpoints=tuple(endpoints),
        source=source,
        accepted=accepted,
        redact=redact,
        tls=parse_tls_section(data, source),
        control=parse_control(data.get("control"), controlled, source),
        data=parse_data(data.get("data"), source, rules),
    )


def _tables(
    data: Mapping[str, Any], name: str, keys: set[str], source: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, table) of an array of tables `[[name]]`, each checked for unknown keys."""
    raw = data.get(name, [])
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: '{name}' must be an array of tables ([[{name}]])")
    for i, table in enumerate(raw):
        where = f"{source}: {name}[{i}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(table) - keys
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        yield where, table


def _parse_accepted(raw: Mapping[str, Any], source: str) -> tuple[Accepted, ...]:
    out = []
    for where, entry in _tables(raw, "accepted", _ACCEPTED_KEYS, source):
        values: dict[str, Any] = {k: entry.get(k) for k in _ACCEPTED_KEYS}
        for key in ("endpoint", "path", "reason"):
            if not isinstance(values[key], str) or not values[key].strip():
                raise ConfigError(f"{where}: {key!r} (a non-empty string) is required")
        if values["kind"] is not None and values["kind"] not in _KINDS:
            raise ConfigError(f"{where}: 'kind' must be one of {', '.join(_KINDS)}")
        if not values["path"].startswith("$"):
            raise ConfigError(f"{where}: 'path' must start with '$'")
        out.append(Accepted(values["endpoint"], values["path"], values["reason"], values["kind"]))
    return tuple(out)


def _parse_redact(data: Mapping[str, Any], source: str) -> RedactSettings:
    raw = data.get("redact", {})
    where = f"{source}: [redact]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: 'redact' must be a table ([redact])")
    unknown = set(raw) - {*_REDACT_LISTS, "random_segments"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    lists: dict[str, tuple[str, ...]] = {}
    for key in _REDACT_LISTS:
        items = raw.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise ConfigError(f"{where}: '{key}' must be a list of non-empty strings")
        lists[key] = tuple(items)
    for key in ("headers", "keys", "query"):
        for name in lists[key]:
            if not any(c.isalnum() for c in name):
                raise ConfigError(f"{where}: {key} entry {name!r} has no letters or digits")
    for i, pattern in enumerate(lists["paths"]):
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: paths[{i}] {pattern!r} is not a regex: {exc}") from None
        if rx.search("") is not None or any(m.end() == m.start() for m in rx.finditer("/a/1")):
            raise ConfigError(f"{where}: paths[{i}] {pattern!r} matches the empty string")
    random_segments = raw.get("random_segments", True)
    if not isinstance(random_segments, bool):
        raise ConfigError(f"{where}: 'random_segments' must be true or false")
    return RedactSettings(random_segments=random_segments, **lists)


def load_config(path: str | None) -> Config:
    """Read and parse a TOML config file (None: defaults)."""
    if not path:
        return Config()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    config = parse_config(data, source=path)
    if config.tls:
        # A file named in the config is found beside it (and ~ is the user's home).
        base = os.path.dirname(os.path.abspath(path))
        config = replace(config, tls={k: v.resolved(base) for k, v in config.tls.items()})
    return config


def parse_methods(value: str | Iterable[str]) -> frozenset[str]:
    """'POST,PUT' / 'all' / '*' -> set of method names ('*' for all)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = set()
    for item in items:
        m = item.strip().upper()
        if not m:
            continue
        if m in ("ALL", "*"):
            out.add("*")
        elif m not in KNOWN_METHODS:
            raise ConfigError(
                f"not an HTTP method: {item.strip()!r} (one of {', '.join(sorted(KNOWN_METHODS))})"
            )
        else:
            out.add(m)
    return frozenset(out)
