"""`--shadow-replay FILE`: one test item per recorded exchange.

Any file `shadow replay` reads (HAR, mitmproxy dump, GoReplay, JSON Lines). Items
are named `<METHOD> <route> #<entry>` (the entry's position in the file), so CI
and JUnit show which request regressed. The recorded answer stands for the
primary's unless a primary backend is given; requests that may not be copied
(unsafe methods, as in `shadow replay`) are skipped with the reason.

Memory stays bounded by one entry: collection streams the file and keeps each
item's position, method and route only; running reads the entries again through
one forward cursor (restarted only when items run out of file order).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from shadow.model import BackendResponse
from shadow.pipeline.redact import redactor_for
from shadow.sources import Recorded, read_traffic

if TYPE_CHECKING:
    from shadow.testing.plugin import ShadowState

T = TypeVar("T")


@dataclass(frozen=True)
class Filters:
    methods: frozenset[str] = frozenset()  # upper case; empty: all
    routes: tuple[str, ...] = ()  # a route template, or a glob on the path or the route

    def keep(self, method: str, path: str, route: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        return not self.routes or any(
            r == route or fnmatch.fnmatchcase(path, r) or fnmatch.fnmatchcase(route, r)
            for r in self.routes
        )


class Cursor:
    """Reads entries of a traffic file by position, streaming forward."""

    def __init__(self, path: str, fmt: str | None, skip_bad: bool) -> None:
        self.path, self.fmt, self.skip_bad = path, fmt, skip_bad
        self._entries: Iterator[Recorded] | None = None
        self._next = 0

    def get(self, index: int) -> Recorded:
        if self._entries is None or index < self._next:
            self.close()
            self._entries = read_traffic(self.path, fmt=self.fmt, skip_bad=True)
            self._next = 0
        for rec in self._entries:
            self._next = rec.index + 1
            if rec.index == index:
                return rec
            if rec.index > index:
                break
        raise LookupError(f"{self.path}: entry {index} is no longer readable")

    def close(self) -> None:
        if self._entries is not None and hasattr(self._entries, "close"):
            self._entries.close()
        self._entries = None


class ParityFailure(Exception):
    """A replayed or generated exchange that did not match; its text is the failure."""

    def __init__(self, lines: tuple[str, ...] | list[str], summary: str = "") -> None:
        super().__init__("\n".join(lines))
        self.lines = tuple(lines)
        self.summary = summary or (lines[0] if lines else "")


@dataclass(frozen=True)
class _Crash:
    """Where and what, in one line: pytest's short summary and JUnit's message use it."""

    path: str
    lineno: int
    message: str


class ParityRepr:
    """A failure shown as its lines (the differences); summarized by the first one.

    (A plain string would be repeated whole in the short summary on CI, where pytest
    does not shorten it.)
    """

    def __init__(self, lines: tuple[str, ...], summary: str, path: str) -> None:
        self.lines = lines
        self.reprcrash = _Crash(path, 0, summary)

    def toterminal(self, tw: Any) -> None:
        for line in self.lines:
            tw.line(line)

    def __str__(self) -> str:
        return "\n".join(self.lines)


class ShadowItem(pytest.Item):
    """An item whose failure is shown as the differences, not a traceback."""

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, ParityFailure):
            return ParityRepr(excinfo.value.lines, excinfo.value.summary, str(self.path))
        return super().repr_failure(excinfo, style)


class ReplayItem(ShadowItem):
    def __init__(self, *, index: int, route: str, state: ShadowState, **kw: Any) -> None:
        super().__init__(**kw)
        self.index = index
        self.route = route
        self.state = state
        self.add_marker("shadow_replay")

    def runtest(self) -> None:
        state = self.state
        rec = state.cursor(str(self.path)).get(self.index)
        req = rec.request
        from shadow.pipeline.realtime import is_websocket

        if is_websocket(req):
            pytest.skip("a WebSocket conversation: `shadow replay` copies those")
        if not state.config.may_copy(req.method, req.path, state.unsafe):
            pytest.skip(
                f"{req.method} is not copied (allow it with --shadow-unsafe or the route's "
                "mirror_unsafe)"
            )
        primary = None
        if not state.has_primary:
            if rec.response is None:
                pytest.skip("no recorded answer and no --shadow-primary to ask")
            primary = BackendResponse(rec.response, rec.elapsed_ms)
        pair = backends_or_fail(
            lambda: state.pair(names=("primary" if state.has_primary else "recorded", "candidate"))
        )
        result = pair.compare_request(req, primary, rec.started_at or 0.0)
        parity = result.matches()
        if not parity:
            raise ParityFailure(parity.explained.lines, parity.explained.summary)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.route} (entry {self.index})"


def backends_or_fail(make: Callable[[], T]) -> T:
    """`make()`, or this item's failure in one line when a backend cannot start."""
    from shadow.testing.backends import BackendError

    try:
        return make()
    except BackendError as exc:
        raise pytest.fail.Exception(f"shadow: {exc}", pytrace=False) from None


class ReplayFile(pytest.File):
    """The traffic file as a collector of `ReplayItem`s."""

    state: ShadowState
    filters: Filters

    def collect(self) -> Iterator[ReplayItem]:
        state = self.state
        hide = redactor_for(state.config.redact).path
        for rec in read_traffic(str(self.path), fmt=state.fmt, skip_bad=state.skip_bad):
            req = rec.request
            route = state.config.matcher.endpoint(req.method, hide(req.path))
            if not self.filters.keep(req.method, req.path, route.partition(" ")[2]):
                continue
            yield ReplayItem.from_parent(
                self, name=f"{route} #{rec.index}", index=rec.index, route=route, state=state
            )


def replay_items(
    session: pytest.Session, path: str, state: ShadowState, filters: Filters
) -> list[pytest.Item]:
    """Every item of the file, read now (a bad file: InputError, one line)."""
    collector = ReplayFile.from_parent(session, path=Path(path).resolve())
    collector.state = state
    collector.filters = filters
    return list(collector.collect())
