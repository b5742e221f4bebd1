"""The guide's flag test: one request with a route (or a feature flag) set to legacy,
then to candidate, through the flag store the fleet reads; both answers compared.

`FlagSide` is a backend that first puts the store in its state, waits `settle`
seconds (a proxy's `FlagWatcher` polls every 0.5 s; an app reading Redis per
request needs none), then sends. Every write is a `Change` in the store's
history (actor `pytest`), and the flag's first state is put back at the end.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from shadow.config.control import RouteMode, check_flag_name
from shadow.config.loader import Config
from shadow.control.flags import Change, FlagStore, flag_text, open_store
from shadow.errors import ShadowError
from shadow.model import BackendResponse, Request
from shadow.testing.backends import Backend

ACTOR = "pytest"
ROUTE_SETTLE = 1.0  # seconds after a route write: two polls of a proxy's watcher


@dataclass
class Switch:
    """What to set: a route's mode (and its flag) or one feature flag."""

    store: FlagStore
    config: Config
    route: str | None = None
    flag: str | None = None
    settle: float = 0.0
    _first: tuple[RouteMode | None, bool | None] | None = None
    # One loop for the store's life: a Redis client is bound to the loop it was made on.
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    @classmethod
    def open(
        cls,
        spec: str,
        config: Config,
        route: str | None,
        flag: str | None,
        settle: float | None,
    ) -> Switch:
        if (route is None) == (flag is None):
            raise ValueError("give exactly one of route= (a route template) or flag= (a name)")
        if flag is not None:
            flag = check_flag_name(flag.removeprefix("feature:"))
        if route is not None and not any(e.pattern.template == route for e in config.endpoints):
            # A proxy routes by the config's routes: a record for another one changes nothing.
            known = ", ".join(e.pattern.template for e in config.endpoints) or "none"
            raise ValueError(f"route {route!r} is not a route of the config (its routes: {known})")
        store = open_store(spec or config.control.flags)
        wait = settle if settle is not None else (ROUTE_SETTLE if route else 0.0)
        return cls(store, config, route, flag, wait)

    def _flag(self) -> str:
        if self.flag is not None:
            return self.flag
        assert self.route is not None
        return self.config.control.route(self.route).flag

    async def _set(self, candidate: bool) -> None:
        flag = self._flag()
        state = await self.store.read({flag})
        if self._first is None:
            before = state.routes.get(self.route) if self.route else None
            self._first = (before, state.features.get(flag))
        why = "shadow flag test: " + ("candidate" if candidate else "legacy")
        if self.route is not None:
            before_mode = state.routes.get(self.route) or self.config.control.route(self.route).mode
            mode = RouteMode(
                "candidate" if candidate else "legacy", by=ACTOR, why=why, at=time.time()
            )
            change = Change.new(
                "route", ACTOR, why, route=self.route, flag=flag,
                before=before_mode.label(), after=mode.label(),
            )  # fmt: skip
            await self.store.set_route(self.route, mode, flag, change)
        else:
            was = state.features.get(flag)
            change = Change.new(
                "feature", ACTOR, why, flag=flag,
                before=None if was is None else flag_text(was), after=flag_text(candidate),
            )  # fmt: skip
            await self.store.set_feature(flag, candidate, change)

    def set(self, candidate: bool) -> None:
        self._loop.run_until_complete(self._set(candidate))
        if self.settle:
            time.sleep(self.settle)

    def restore(self) -> None:
        """Put the route's record and the flag back as they were before the first write."""
        if self._first is None:
            self._loop.run_until_complete(self.store.aclose())
            self._loop.close()
            return
        route_mode, value = self._first

        async def back() -> None:
            flag = self._flag()
            why = "shadow flag test: restored"
            if self.route is not None:
                mode = route_mode or self.config.control.route(self.route).mode
                change = Change.new("route", ACTOR, why, route=self.route, flag=flag,
                                    after=mode.label())  # fmt: skip
                await self.store.set_route(self.route, mode, flag, change, write_flag=False)
            # A flag absent at first ends false (off: the legacy answers), never left on.
            back_to = bool(value)
            change = Change.new("feature", ACTOR, why, flag=flag, after=flag_text(back_to))
            await self.store.set_feature(flag, back_to, change)
            await self.store.aclose()

        try:
            self._loop.run_until_complete(back())
        finally:
            self._loop.close()


class FlagSide:
    """A backend seen with the switch in one state (legacy or candidate)."""

    def __init__(self, backend: Backend, switch: Switch, candidate: bool) -> None:
        self.backend = backend
        self.switch = switch
        self.candidate = candidate
        self.label = f"{backend.label} with {'candidate' if candidate else 'legacy'}"

    def send(self, request: Request) -> BackendResponse:
        try:
            self.switch.set(self.candidate)
        except ShadowError as exc:  # an unreadable or unreachable store: the test's failure
            raise pytest.fail.Exception(f"shadow_flag_pair: {exc}", pytrace=False) from None
        return self.backend.send(request)

    def close(self) -> None:
        pass  # the backend is the session's
