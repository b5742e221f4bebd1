"""The cutover settings: route modes, sticky canaries, rollback thresholds ([control]).

[control]
flags = "shadow-flags.json"     # or "redis://127.0.0.1:6379/0" (--flags overrides)
sticky = ["header:x-user-id", "jwt:sub"]   # where a user's key comes from, in order;
cookie = "shadow_uid"           # else this cookie, which the proxy sets when it is missing
flag = "new_backend"            # a feature flag gating every route (optional)
stale_after = 30                # seconds the flag store may be unreadable before routes go legacy
timeout = 10                    # seconds the candidate has to answer a request it serves
webhook = "https://hooks.example/..."   # notified of rollbacks (JSON POST, retried)
command = "notify-team"         # run on a rollback, the event as JSON on stdin

[control.rollback]              # defaults for every route; [[endpoints]] rollback = {...}
window = 60                     # seconds of traffic judged
error_rate = 0.05               # candidate 5xx + transport errors / requests it was sent
fallback_rate = 0.05
mismatch_rate = 0.05            # reverse-shadow exchanges that differ / compared
latency_ratio = 0               # candidate p95 / primary p95 (0: not judged)
min_requests = 20               # fewer in the window: hold, never healthy
failures = 2                    # failed checks in a row before the rollback

[[endpoints]]
route = "/api/analysis/{id}"
mode = "canary"                 # legacy | shadow | canary | candidate (initial; flags override)
percent = 10
flag = "new_analysis"           # its feature:<name> key (default: from the route)
reverse = true                  # the primary keeps getting copies of safe requests
rollback = { error_rate = 0.02 }

Modes: `legacy` the primary answers, nothing is copied; `shadow` the primary
answers, the candidate gets a copy; `canary` `percent` of users are answered by
the candidate, the rest as `shadow`; `candidate` the candidate answers. Both
candidate-serving modes fall back to the primary (see docs/control.md).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from shadow.errors import ConfigError

MODES = ("legacy", "shadow", "canary", "candidate")
SERVING = frozenset({"canary", "candidate"})  # modes in which the candidate answers users
DEFAULT_COOKIE = "shadow_uid"
DEFAULT_FLAGS_FILE = "shadow-flags.json"
_STICKY_KINDS = ("header", "cookie", "jwt")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_RECORD_KEYS = {"mode", "percent", "reverse", "by", "why", "at", "rolled_back"}


class ControlError(ConfigError):
    """A bad mode, percentage, route or setting: its text is the one line a user sees."""


@dataclass(frozen=True)
class RouteMode:
    """How one route is served, and who set it so, when and why."""

    mode: str = "shadow"
    percent: int = 0  # canary only: the share of users the candidate answers
    reverse: bool = True  # while the candidate answers: the primary gets copies of safe requests
    by: str = ""
    why: str = ""
    at: float = 0.0  # unix seconds
    rolled_back: bool = False  # set by the controller; cleared by the next person's change

    @property
    def serving(self) -> bool:
        """Whether the candidate answers some users in this mode."""
        return self.mode == "candidate" or (self.mode == "canary" and self.percent > 0)

    def label(self) -> str:
        return f"canary {self.percent}%" if self.mode == "canary" else self.mode

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> RouteMode:
        """Parse a stored record strictly: ControlError names what is wrong."""
        if not isinstance(raw, Mapping):
            raise ControlError("a route's record must be a JSON object")
        unknown = set(raw) - _RECORD_KEYS
        if unknown:
            raise ControlError(f"unknown key {sorted(unknown)[0]!r} in a route's record")
        mode = check_mode(raw.get("mode", "shadow"), raw.get("percent"))
        for key, kind in (("reverse", bool), ("rolled_back", bool), ("by", str), ("why", str)):
            if key in raw and not isinstance(raw[key], kind):
                raise ControlError(f"{key!r} must be a {kind.__name__}")
        at = raw.get("at", 0.0)
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise ControlError("'at' must be a number (unix seconds)")
        return replace(
            mode,
            reverse=raw.get("reverse", True),
            by=raw.get("by", ""),
            why=raw.get("why", ""),
            at=float(at),
            rolled_back=raw.get("rolled_back", False),
        )


def check_mode(mode: Any, percent: Any = None) -> RouteMode:
    """A validated mode and percentage (canary needs one in 0-100; others take none)."""
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        raise ControlError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
    mode = mode.strip().lower()
    if mode != "canary":
        if percent not in (None, 0) and not (mode == "candidate" and percent == 100):
            raise ControlError(f"a percentage goes with mode canary only, not {mode}")
        return RouteMode(mode=mode)
    if percent is None:
        raise ControlError("mode canary needs a percentage (0-100)")
    value = parse_percent(percent)
    return RouteMode(mode="canary", percent=value)


def parse_percent(value: Any) -> int:
    """An integer percentage in 0-100 ('25', 25, '25%')."""
    text = str(value).strip().removesuffix("%") if not isinstance(value, bool) else "x"
    try:
        number = float(text)
    except ValueError:
        raise ControlError(f"percentage {value!r} is not a number in 0-100") from None
    if not math.isfinite(number) or not 0 <= number <= 100 or number != int(number):
        raise ControlError(f"percentage {value!r} must be a whole number in 0-100")
    return int(number)


def flags_spec(option: str, control: ControlConfig, config_path: str | None) -> str:
    """The flag store to use: `option` (--flags; relative to the working directory), else
    the config's `flags` or the default file, relative to the config's folder. A file is
    returned as an absolute path, so every process of a proxy opens the same one."""
    spec = option.strip()
    base = os.getcwd()
    if not spec:
        spec = control.flags.strip() or DEFAULT_FLAGS_FILE
        if config_path:
            base = os.path.dirname(os.path.abspath(config_path))
    if spec.lower().startswith(("redis://", "rediss://", "unix://")):
        return spec
    return os.path.join(base, os.path.expanduser(spec))


def flag_name(route: str) -> str:
    """The default feature flag of a route: '/api/analysis/{id}' -> 'api_analysis_id'."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", route).strip("_").lower()
    return slug or "root"


def check_flag_name(name: Any, where: str = "flag") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ControlError(
            f"{where} {name!r} must be 1-128 letters, digits or _ . : - (e.g. new_backend)"
        )
    return name


def parse_bool(value: Any) -> bool:
    """A flag value as stored ('true'/'false', 1/0, yes/no, on/off): explicit, never truthy."""
    if isinstance(value, bool):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ControlError(f"flag value {str(value)[:40]!r} is neither true nor false")


@dataclass(frozen=True)
class Thresholds:
    """When a route the candidate serves is rolled back (see the module docstring)."""

    window: float = 60.0
    error_rate: float = 0.05
    fallback_rate: float = 0.05
    mismatch_rate: float = 0.05
    latency_ratio: float = 0.0
    min_requests: int = 20
    failures: int = 2

    def merged(self, raw: Mapping[str, Any], where: str) -> Thresholds:
        known = {f.name: f.type for f in fields(self)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise ControlError(f"{where}: unknown key {key!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ControlError(f"{where}: {key!r} must be a number")
            if key in ("min_requests", "failures"):
                if value != int(value) or value < 1:
                    raise ControlError(f"{where}: {key!r} must be a whole number of at least 1")
                value = int(value)
            elif key == "window":
                if not 1 <= value <= 86400:
                    raise ControlError(f"{where}: 'window' must be 1-86400 seconds")
            elif key == "latency_ratio":
                if value < 0 or not math.isfinite(value):
                    raise ControlError(f"{where}: 'latency_ratio' must be 0 (off) or more")
            elif not 0 < value <= 1:
                raise ControlError(f"{where}: {key!r} must be a rate in (0, 1], e.g. 0.05")
            values[key] = value
        return replace(self, **values)


@dataclass(frozen=True)
class ControlRoute:
    """A route named in the config: its initial mode, its flag and its thresholds."""

    route: str
    mode: RouteMode = RouteMode()
    flag: str = ""
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True)
class ControlConfig:
    flags: str = ""  # flag store: a file path or redis:// URL ("" : the default file)
    sticky: tuple[str, ...] = ()
    cookie: str = DEFAULT_COOKIE
    flag: str = ""  # a flag gating every route
    stale_after: float = 30.0
    timeout: float = 10.0
    max_body: int = 64 * 1024 * 1024  # bytes of a candidate's answer served (buffered)
    webhook: str = ""
    command: str = ""
    thresholds: Thresholds = Thresholds()
    routes: Mapping[str, ControlRoute] = field(default_factory=dict)

    def route(self, template: str) -> ControlRoute:
        """The config's view of `template` (a route it does not name: shadow, default flag)."""
        known = self.routes.get(template)
        if known is not None:
            return known
        return ControlRoute(template, flag=flag_name(template), thresholds=self.thresholds)

    def gates(self, template: str) -> tuple[str, ...]:
        """The feature flags that must not be false for the candidate to serve `template`."""
        own = self.route(template).flag
        return (own, self.flag) if self.flag and self.flag != own else (own,)


_CONTROL_KEYS = {
    "flags", "sticky", "cookie", "flag", "stale_after", "timeout", "max_body", "webhook",
    "command", "rollback",
}  # fmt: skip
ENDPOINT_CONTROL_KEYS = {"mode", "percent", "flag", "reverse", "rollback"}


def parse_control(
    raw: Any, endpoints: list[tuple[str, str, Mapping[str, Any]]], source: str
) -> ControlConfig:
    """[control] and the control keys of [[endpoints]] ((where, route, table) each)."""
    where = f"{source}: [control]"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ControlError(f"{source}: 'control' must be a table ([control])")
    unknown = set(raw) - _CONTROL_KEYS
    if unknown:
        raise ControlError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    sticky = raw.get("sticky", [])
    if isinstance(sticky, str):
        sticky = [sticky]
    if not isinstance(sticky, list):
        raise ControlError(f"{where}: 'sticky' must be a list like [\"header:x-user-id\"]")
    for item in sticky:
        kind, _, name = str(item).partition(":")
        if kind not in _STICKY_KINDS or not name.strip():
            raise ControlError(
                f"{where}: sticky entry {item!r} must be header:<name>, cookie:<name> or "
                "jwt:<claim>"
            )
    values: dict[str, Any] = {"sticky": tuple(str(s).strip() for s in sticky)}
    for key in ("flags", "cookie", "webhook", "command"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise ControlError(f"{where}: {key!r} must be a string")
            values[key] = raw[key]
    if "flag" in raw:
        values["flag"] = check_flag_name(raw["flag"], f"{where}: 'flag'")
    if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$", values.get("cookie", DEFAULT_COOKIE)):
        raise ControlError(f"{where}: 'cookie' must be a cookie name")
    for key, low, high in (("stale_after", 0.1, 86400), ("timeout", 0.05, 3600)):
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
                raise ControlError(f"{where}: {key!r} must be {low:g}-{high:g} seconds")
            values[key] = float(v)
    if "max_body" in raw:
        v = raw["max_body"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ControlError(f"{where}: 'max_body' must be a positive number of bytes")
        values["max_body"] = v
    rollback = raw.get("rollback", {})
    if not isinstance(rollback, Mapping):
        raise ControlError(f"{where}: 'rollback' must be a table ([control.rollback])")
    thresholds = Thresholds().merged(rollback, f"{source}: [control.rollback]")
    routes: dict[str, ControlRoute] = {}
    for ep_where, route, table in endpoints:
        try:
            mode = (
                check_mode(table["mode"], table.get("percent")) if "mode" in table else RouteMode()
            )
            if "percent" in table and "mode" not in table:
                raise ControlError("'percent' needs mode = \"canary\"")
            reverse = table.get("reverse", True)
            if not isinstance(reverse, bool):
                raise ControlError("'reverse' must be true or false")
            flag = check_flag_name(table["flag"]) if "flag" in table else flag_name(route)
            own = table.get("rollback", {})
            if not isinstance(own, Mapping):
                raise ControlError("'rollback' must be a table")
            limits = thresholds.merged(own, "rollback")
        except ControlError as exc:
            raise ControlError(f"{ep_where}: {exc}") from None
        if route in routes and any(k in table for k in ENDPOINT_CONTROL_KEYS):
            raise ControlError(f"{ep_where}: route {route} has control keys twice")
        if route not in routes or any(k in table for k in ENDPOINT_CONTROL_KEYS):
            routes[route] = ControlRoute(route, replace(mode, reverse=reverse), flag, limits)
    return ControlConfig(thresholds=thresholds, routes=routes, **values)


__all__ = [
    "DEFAULT_COOKIE",
    "DEFAULT_FLAGS_FILE",
    "ENDPOINT_CONTROL_KEYS",
    "MODES",
    "SERVING",
    "ControlConfig",
    "ControlError",
    "ControlRoute",
    "RouteMode",
    "Thresholds",
    "check_flag_name",
    "check_mode",
    "flag_name",
    "flags_spec",
    "parse_bool",
    "parse_control",
    "parse_percent",
]
