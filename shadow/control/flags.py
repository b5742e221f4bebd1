"""The flag stores: where route modes and feature flags live (a local file, or Redis).

Both stores answer the same `FlagStore` protocol. `read` is what the proxy and
the worker poll (through `shadow.control.watch.FlagWatcher`); a malformed entry
is skipped and named in `FlagState.problems`, never an error; an unreadable or
unreachable store is a one-line `FlagStoreError` (exit 8).

File store (the default, `shadow-flags.json`):

    {"routes":   {"/api/analysis/{id}": {"mode": "canary", "percent": 10, ...}},
     "features": {"new_analysis": true},
     "history":  [{"id": "...", "at": 1714640000.0, "actor": "alice", ...}]}

Writers take an exclusive `flock` on `<file>.lock`, read, modify, and replace
the file atomically (tmp + fsync + rename); the history keeps the last 1000 changes.

Redis store: the keys are the fleet's contract (a FastAPI app reads
`feature:<name>` as "true"/"false"), so they must stay compatible:

    feature:<name>          STRING  "true" | "false"
    shadow:route:<route>    STRING  the route's record as JSON (RouteMode.to_json)
    shadow:routes           SET     the routes that have a record
    shadow:history          LIST    changes as JSON, oldest first (the last 1000 kept)
    shadow:flags            CHANNEL each write publishes its change id

Every write is one MULTI/EXEC transaction and ends with the PUBLISH.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from shadow.config.control import (
    DEFAULT_FLAGS_FILE,
    ControlError,
    RouteMode,
    parse_bool,
)

HISTORY_LIMIT = 1000  # changes a store keeps
MAX_FILE_BYTES = 4 * 1024 * 1024  # a flags file larger than this is refused
LOCK_WAIT = 10.0  # seconds a file writer waits for another one
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
FEATURE_PREFIX = "feature:"
ROUTE_PREFIX = "shadow:route:"
ROUTES_KEY = "shadow:routes"
HISTORY_KEY = "shadow:history"
CHANNEL = "shadow:flags"
SCAN_MAX = 10_000  # feature keys `features()` lists at most


@dataclass(frozen=True)
class FlagState:
    """What a store says: route records (overriding the config's modes) and flag values."""

    routes: Mapping[str, RouteMode] = field(default_factory=dict)
    features: Mapping[str, bool] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # malformed entries that were skipped, one line each


@dataclass(frozen=True)
class Change:
    """One change by a person or by the controller, kept in the store's history."""

    id: str
    at: float  # unix seconds
    actor: str
    reason: str
    kind: str  # "route" | "feature"
    route: str | None = None
    flag: str | None = None
    before: str | None = None  # RouteMode.label() of a route, "true"/"false" of a flag
    after: str | None = None

    @classmethod
    def new(
        cls,
        kind: str,
        actor: str,
        reason: str = "",
        *,
        route: str | None = None,
        flag: str | None = None,
        before: str | None = None,
        after: str | None = None,
    ) -> Change:
        """A change made now, with a fresh id."""
        return cls(
            secrets.token_hex(8), time.time(), actor, reason, kind, route, flag, before, after
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> Change:
        """A stored change; ValueError if it is not one."""
        if not isinstance(raw, Mapping):
            raise ValueError("a change must be a JSON object")
        at = raw.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float):
            raise ValueError("a change's 'at' must be a number")
        texts: list[Any] = [raw.get(k) for k in ("id", "actor", "reason", "kind")]
        optional: list[Any] = [raw.get(k) for k in ("route", "flag", "before", "after")]
        if not all(isinstance(v, str) for v in texts) or not all(
            v is None or isinstance(v, str) for v in optional
        ):
            raise ValueError("a change's fields must be strings")
        ident, actor, reason, kind = texts
        return cls(ident, float(at), actor, reason, kind, *optional)


class FlagStore(Protocol):
    """Where route records, feature flags and their history are kept."""

    def describe(self) -> str:
        """The file's path, or the Redis URL without its password."""
        ...

    async def read(self, features: Collection[str]) -> FlagState:
        """Every route record and the values of `features` present in the store."""
        ...

    async def set_route(
        self, route: str, mode: RouteMode, flag: str, change: Change, write_flag: bool = True
    ) -> None:
        """Write a route's record and (unless told not to) its flag: true when the
        candidate serves."""
        ...

    async def set_feature(self, name: str, value: bool, change: Change) -> None: ...

    async def features(self) -> dict[str, bool]:
        """Every feature flag in the store (malformed values skipped)."""
        ...

    async def history(self, limit: int = HISTORY_LIMIT) -> list[Change]:
        """The last `limit` changes, newest last."""
        ...

    async def aclose(self) -> None: ...


def open_store(spec: str, base_dir: str | None = None, polled: bool = False) -> FlagStore:
    """A Redis store for redis://, rediss:// and unix:// URLs, else a file store.

    A relative file path is taken relative to `base_dir` (the config's folder) if given.
    `polled`: for a FlagWatcher (a file found empty is taken as being written, not as
    "no flags", which would send every route back to its config mode for a moment).
    """
    spec = spec.strip() or DEFAULT_FLAGS_FILE
    if spec.lower().startswith(REDIS_SCHEMES):
        from shadow.control.redis_store import RedisFlagStore

        return RedisFlagStore(spec)
    path = os.path.expanduser(spec)
    if base_dir and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    from shadow.control.file_store import FileFlagStore

    return FileFlagStore(path, polled)


def flag_text(value: bool) -> str:
    return "true" if value else "false"


def parse_routes(raw: Mapping[str, Any]) -> tuple[dict[str, RouteMode], list[str]]:
    """Route records that parse, and one problem line for each that does not."""
    routes: dict[str, RouteMode] = {}
    problems: list[str] = []
    for route, record in raw.items():
        try:
            routes[route] = RouteMode.from_json(record)
        except ControlError as exc:
            problems.append(f"route {route}: {exc}")
    return routes, problems


def parse_features(raw: Mapping[str, Any]) -> tuple[dict[str, bool], list[str]]:
    """Flag values that parse ("false" is false), and one problem line for each other."""
    values: dict[str, bool] = {}
    problems: list[str] = []
    for name, value in raw.items():
        try:
            values[name] = parse_bool(value)
        except ControlError as exc:
            problems.append(f"feature {name}: {exc}")
    return values, problems


def parse_history(raw: list[Any]) -> list[Change]:
    changes = []
    for item in raw:
        with contextlib.suppress(ValueError, TypeError):
            changes.append(Change.from_json(item))
    return changes


# ---------------------------------------------------------------------------- file


__all__ = [
    "CHANNEL",
    "FEATURE_PREFIX",
    "HISTORY_KEY",
    "HISTORY_LIMIT",
    "ROUTES_KEY",
    "ROUTE_PREFIX",
    "Change",
    "FlagState",
    "FlagStore",
    "open_store",
]
