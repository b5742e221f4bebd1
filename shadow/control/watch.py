"""A cached, polled view of a flag store, for the proxy and the worker.

The live path reads `FlagWatcher.state` (in memory) and never the store: a
background task polls the store every `interval` seconds (a file store only when
its stat changes) and keeps the last good state. When Redis cannot be reached
the last known flags stay in force until `stale()` turns true after
`[control] stale_after` seconds, when the callers send every route to legacy. A
file store is never stale: a broken file keeps the last good flags until it is fixed.

Each episode is logged once (unreachable, stale, reachable again, a broken file,
a new malformed entry), not once per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

from shadow.config.control import ControlConfig
from shadow.control.file_store import FileFlagStore
from shadow.control.flags import FlagState, FlagStore
from shadow.errors import FlagStoreError

_LOG = logging.getLogger("shadow.control")

StatKey = tuple[int, int, int, int] | None  # (mtime_ns, ctime_ns, size, inode); None: no file


class FlagWatcher:
    """The last good `FlagState` of a store, refreshed in the background."""

    def __init__(
        self,
        store: FlagStore,
        control: ControlConfig,
        *,
        interval: float = 0.5,
        on_change: Callable[[FlagState, FlagState], None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.control = control
        self.interval = interval
        self.on_change = on_change
        self.log = log or _LOG
        self.state = FlagState()
        self.ever_read = False
        self._file = store.path if isinstance(store, FileFlagStore) else None
        self._since = time.monotonic()  # last good read, or the start
        self._stat: StatKey | tuple[str] = ("unread",)  # the file's stat at the last read
        self._failing: str | None = None  # the error of the current failure episode
        self._stale_said = False
        self._problems: set[str] = set()
        self._crash: str | None = None
        self._task: asyncio.Task[None] | None = None

    def stale(self) -> bool:
        """Whether Redis has not been read for `stale_after` seconds (files never are)."""
        if self._file is not None:
            return False
        return time.monotonic() - self._since >= self.control.stale_after

    def age(self) -> float:
        """Seconds since the last good read (or since the start, before the first)."""
        return max(0.0, time.monotonic() - self._since)

    def names(self) -> set[str]:
        """The feature flags to read: every known route's flag and the global one."""
        routes = set(self.control.routes) | set(self.state.routes)
        names = {self.control.route(r).flag for r in routes}
        if self.control.flag:
            names.add(self.control.flag)
        return names

    async def refresh(self) -> bool:
        """Read the store now; True if it answered (the state is then the new one)."""
        names = self.names()
        if self._file is not None:
            self._stat = _stat(self._file)
        try:
            new = await self.store.read(names)
            more = {self.control.route(r).flag for r in new.routes} - names
            if more:  # records of routes not seen before: read their flags too, now
                new = await self.store.read(names | more)
        except FlagStoreError as exc:
            self._failed(str(exc))
            return False
        self._succeeded(new)
        return True

    async def start(self) -> None:
        """Read once (never raising), then poll in the background."""
        self._since = time.monotonic()
        with contextlib.suppress(Exception):
            await self._guarded()
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="shadow-flag-watcher")

    async def aclose(self) -> None:
        """Stop polling (the store belongs to whoever opened it, who closes it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._guarded()

    async def _guarded(self) -> None:
        """One poll; whatever goes wrong is logged (once) and polling goes on."""
        try:
            if self._file is None or _stat(self._file) != self._stat:
                await self.refresh()
        except Exception as exc:  # a bug must not stop the flags from being watched
            text = f"{type(exc).__name__}: {exc}"
            if text != self._crash:
                self._crash = text
                self.log.exception("shadow: watching flag store %s failed", self.store.describe())

    def _failed(self, error: str) -> None:
        if self._file is not None:
            if error != self._failing:
                self.log.warning("shadow: %s; keeping the last good flags", error)
            self._failing = error
            return
        if self._failing is None:
            self.log.warning(
                "shadow: %s; keeping the last known flags; routes go legacy after %g s",
                error,
                self.control.stale_after,
            )
        self._failing = error
        if self.stale() and not self._stale_said:
            self._stale_said = True
            self.log.warning(
                "shadow: flag store %s unreachable for %g s: routes now legacy",
                self.store.describe(),
                self.control.stale_after,
            )

    def _succeeded(self, new: FlagState) -> None:
        if self._failing is not None:
            if self._file is not None:
                self.log.warning("shadow: flags file %s readable again", self._file)
            else:
                self.log.warning("shadow: flag store %s reachable again", self.store.describe())
        self._failing, self._stale_said, self._crash = None, False, None
        for problem in new.problems:
            if problem not in self._problems:
                self.log.warning(
                    "shadow: flag store %s: %s (skipped)", self.store.describe(), problem
                )
        self._problems = set(new.problems)
        old, self.state = self.state, new
        self.ever_read = True
        self._since = time.monotonic()
        if (old.routes, old.features) != (new.routes, new.features) and self.on_change:
            try:
                self.on_change(old, new)
            except Exception:  # the listener's bug must not stop the polling
                self.log.exception("shadow: a flag change listener failed")


def _stat(path: str) -> StatKey:
    """What tells a changed file: a rename gives a new inode, a write a new mtime or size
    (and a chmod a new ctime: a file made readable again is read again)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


__all__ = ["FlagWatcher"]
