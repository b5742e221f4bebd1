"""Who answers a request: the route's effective mode, then the user's canary bucket.

The effective mode of a route is, in order:
1. `legacy` when the flag store has been unreadable for longer than `stale_after`;
2. its record in the flag store, else its mode in the config (default `shadow`);
3. a candidate-serving mode (canary, candidate) becomes `shadow` while any of its
   feature flags (its own `feature:<name>`, and [control] flag if set) is false,
   and before the flag store was read at all (nobody is sent to the candidate on
   flags we have not seen).

Pure and cheap: the proxy calls `decide` for every request on its event loop;
modes are cached per route until the flags change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from shadow.config.control import ControlConfig, RouteMode
from shadow.config.endpoints import EndpointMatcher, auto_template
from shadow.control import bucket
from shadow.control.flags import FlagState

STALE = RouteMode(mode="legacy", why="flag store unreadable for too long")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the proxy does with one request."""

    route: str
    mode: str  # the route's effective mode
    serve: bool  # the candidate answers this request (with fallback)
    reverse: bool  # ... and the primary gets a copy of it (safe methods)
    set_cookie: str | None = None  # the proxy's key cookie, for a user who brought none


def effective_mode(
    control: ControlConfig, state: FlagState, route: str, *, stale: bool, ever_read: bool
) -> RouteMode:
    """The mode `route` runs in now (see the module docstring)."""
    if stale:
        return STALE
    mode = state.routes.get(route) or control.route(route).mode
    if not mode.serving:
        return mode
    if not ever_read:
        return replace(mode, mode="shadow", percent=0, why="flags not read yet")
    for gate in control.gates(route):
        if state.features.get(gate) is False:
            return replace(mode, mode="shadow", percent=0, why=f"feature {gate} is false")
    return mode


class Router:
    """Decides per request; holds the modes of the current flags, per route."""

    def __init__(self, control: ControlConfig, matcher: EndpointMatcher) -> None:
        self.control = control
        self.matcher = matcher
        self._modes: dict[str, RouteMode] = {}
        self._route = lru_cache(maxsize=4096)(self._lookup)
        # The state the modes were worked out from, held (an id alone could be reused by
        # the next state once this one is freed) with the store's freshness.
        self._seen: tuple[FlagState, bool, bool] | None = None

    def route(self, method: str, path: str) -> str:
        """A request's route: the template of the first configured route its path matches,
        whatever the method (a mode covers every method of a route: a DELETE must not go
        to the other backend than the GET), else the path with id segments as {id}."""
        return self._route(path.split("?", 1)[0] or "/")

    def _lookup(self, path: str) -> str:
        for pattern in self.matcher.patterns:
            if pattern.regex.match(path) is not None:
                return pattern.template
        return auto_template(path)

    def mode(self, route: str, state: FlagState, *, stale: bool, ever_read: bool) -> RouteMode:
        seen = self._seen
        if seen is None or seen[0] is not state or seen[1:] != (stale, ever_read):
            self._modes.clear()  # the flags changed: forget the modes worked out before
            self._seen = (state, stale, ever_read)
        mode = self._modes.get(route)
        if mode is None:
            if len(self._modes) > 10_000:  # bounded: paths that never repeat
                self._modes.clear()
            mode = self._modes[route] = effective_mode(
                self.control, state, route, stale=stale, ever_read=ever_read
            )
        return mode

    def decide(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        state: FlagState,
        *,
        stale: bool,
        ever_read: bool,
        secure: bool = False,
    ) -> Decision:
        """Who answers this request, and whether the user needs the proxy's cookie."""
        route = self.route(method, path)
        mode = self.mode(route, state, stale=stale, ever_read=ever_read)
        if mode.mode == "candidate":
            return Decision(route, "candidate", True, mode.reverse)
        if mode.mode != "canary":
            return Decision(route, mode.mode, False, False)
        key, _source = bucket.user_key(headers, self.control.sticky, self.control.cookie)
        cookie = None
        if key is None:
            key = bucket.new_key()
            cookie = bucket.set_cookie(self.control.cookie, key, secure)
        serve = bucket.in_canary(route, key, mode.percent)
        return Decision(route, "canary", serve, mode.reverse and serve, cookie)
