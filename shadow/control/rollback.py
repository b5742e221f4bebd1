"""Automatic rollback: judge each route the candidate serves; roll a failing one back.

Runs in the worker, fed every stored result of a controlled route, which it
judges with the store's own figures (shadow.control.judge). Every `interval`
seconds, for each route in a candidate-serving mode:

- fewer than `min_requests` requests asked of the candidate: hold (never healthy);
- error, fallback or mismatch rate (or the p95 latency ratio, when set) over its
  threshold: one failed check; `failures` failed checks in a row roll it back;
- otherwise the failed checks start over.

A rollback writes the route's record (mode shadow, rolled_back) and its feature
flag false to the flag store, so every proxy and every app reading the store sees
it; records a `rollback` event with its evidence; logs one line; and notifies
(webhook, command). It never promotes: a rolled-back route stays in shadow until
a person sets it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shadow.config.control import SERVING, RouteMode, Thresholds
from shadow.config.loader import Config
from shadow.control import notify
from shadow.control.flags import Change, FlagState, FlagStore
from shadow.control.judge import Evaluated, Figures, Window, judge, naive
from shadow.control.routing import effective_mode
from shadow.control.watch import FlagWatcher
from shadow.store.rows import EventRow

log = logging.getLogger("shadow")
_QUIET = logging.getLogger("shadow.control.worker")
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())

ACTOR = "shadow-controller"
# Changes made while no proxy ran are recorded by the next run, up to this old (seconds):
# a new store does not take in a year of another store's history.
HISTORY_AGE = 24 * 3600
MAX_ROWS = 100_000  # exchanges kept for judging; past it the oldest go (counted, logged)


@dataclass
class _RouteState:
    failures: int = 0
    record_at: float = -1.0  # the record judged (a person's new setting starts over)
    rolled_back: bool = False
    pending: RouteMode | None = None  # a rollback whose flag write has not succeeded yet
    before: str | None = None  # the mode it was rolled back from
    serving: bool | None = None  # the candidate served it at the last check
    serving_since: float = 0.0  # since when, without a break


class Controller:
    """Watches the flags, judges the serving routes, rolls back, notifies, records events."""

    def __init__(
        self,
        config: Config,
        store: FlagStore,
        run_id: str,
        add_events: Callable[[Sequence[EventRow]], None],
        *,
        act: bool = True,
        interval: float = 1.0,
        started_at: float | None = None,
        known_events: set[str] | Callable[[], set[str] | None] | None = None,
    ) -> None:
        self.config = config
        self.control = config.control
        self.store = store
        self.run_id = run_id
        self.add_events = add_events
        self.act = act
        self.interval = interval
        self.started_at = time.time() if started_at is None else started_at
        # The proxy's own watcher says what happens to the store; this one stays quiet
        # (the same episode, told twice, would only confuse).
        self.watcher = FlagWatcher(store, config.control, log=_QUIET, on_change=self._changed)
        self.window = Window(config)
        self._new: deque[Evaluated] = deque()
        self._dropped = 0  # exchanges left out of the window (MAX_ROWS)
        self._routes: dict[str, _RouteState] = {}
        self._serving_seen: set[str] = set()  # routes with candidate-serving rows
        self._fallbacks: Counter[str] = Counter()
        self._fallback_errors: dict[str, Counter[str]] = {}
        self._minute = int(time.time() // 60)
        # Changes already recorded as events (in the store): the rest of the store's
        # history is imported, whenever it was made. Unknown: those since the start.
        # (A callable is called once, in a thread, before the first import: it reads the
        # store, which must not hold up the worker's start.)
        self._known = known_events if callable(known_events) else None
        self._history_ids: set[str] = set() if callable(known_events) else set(known_events or ())
        self._import_all = known_events is not None
        self._own_changes: set[str] = set()
        self._stale = False
        self._task: asyncio.Task[None] | None = None
        self._side: set[asyncio.Task[Any]] = set()
        self._history_due = True
        self._importing: asyncio.Task[None] | None = None

    # -- input (the pipeline's observer, on the worker's loop) -------------------
    def observe(self, result: Evaluated) -> None:
        row = result.row
        if row.mode is None:
            return
        # Shadow-mode traffic too: it is the noise evidence the outcome definition judges
        # the reverse-shadow comparisons with (as the store has it for the report).
        if len(self._new) >= MAX_ROWS:
            self._new.popleft()
            self._note_dropped(1)
        self._new.append(result)
        if row.mode in SERVING and len(self._serving_seen) < 10_000:  # routes are templates
            self._serving_seen.add(_route(row.endpoint))
        if row.fell_back:
            route = _route(row.endpoint)
            self._fallbacks[route] += 1
            if row.candidate_error:
                why = row.candidate_error
            elif (row.candidate_status or 0) >= 500:
                why = f"status {row.candidate_status}"
            else:
                why = "answer over the serving limit"
            self._fallback_errors.setdefault(route, Counter())[why[:80]] += 1

    def _note_dropped(self, n: int) -> None:
        if n and not self._dropped:
            log.warning(
                f"shadow: rollback controller: more than {MAX_ROWS} exchanges in its window; "
                "the oldest are left out of the figures"
            )
        self._dropped += n

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        await self.watcher.start()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.tick()  # the last events (a flag change, fallbacks) are kept
        if self._importing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._importing, notify.WEBHOOK_TIMEOUT)
        self._summarise_fallbacks(force=True)
        if self._side:
            # Notifications still under way get a few seconds; then they are given up,
            # and say so (an event and a line), rather than hold the stop for ~20 s.
            _, late = await asyncio.wait(set(self._side), timeout=notify.WEBHOOK_TIMEOUT)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        await self.watcher.aclose()
        with contextlib.suppress(Exception):
            await self.store.aclose()
        self.window.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception as exc:  # never the end of judging: log and go on
                log.error(f"shadow: rollback controller: {exc!r}")

    # -- one check ------------------------------------------------------------
    async def tick(self) -> None:
        """Take in new exchanges, judge every serving route, act on failing ones."""
        now = time.time()
        batch = list(self._new)
        self._new.clear()
        longest = max(
            [self.control.thresholds.window]
            + [r.thresholds.window for r in self.control.routes.values()]
        )
        state, stale = self.watcher.state, self.watcher.stale()
        modes = {
            route: effective_mode(
                self.control, state, route, stale=stale, ever_read=self.watcher.ever_read
            )
            for route in self._routes_to_judge(state)
        }
        # Each route is judged on its window, and never on what came before its current
        # setting or before the candidate serves it again (a feature flag switched back
        # on): a route a person promotes again starts with a clean slate.
        since: dict[str, float] = {}
        for route, mode in modes.items():
            rs = self._routes.setdefault(route, _RouteState())
            if mode.serving and rs.serving is False:  # (None: not known before this check)
                rs.serving_since = now
            rs.serving = mode.serving
            if mode.serving:
                window = self.control.route(route).thresholds.window
                since[route] = max(now - window, mode.at, rs.serving_since)
        figures = await asyncio.to_thread(self._update, batch, now, longest, since)
        self._flag_store_events(now)
        if self._history_due and (self._importing is None or self._importing.done()):
            # Beside the checks, not in them: a slow store must not delay a rollback.
            self._history_due = False
            self._importing = asyncio.get_running_loop().create_task(self._import_history())
        self._summarise_fallbacks()
        for route, mode in modes.items():
            rs = self._routes.setdefault(route, _RouteState())
            if rs.pending is not None:
                await self._write_rollback(route, rs)
                continue
            if mode.at != rs.record_at:  # a new setting: judged afresh
                rs.failures, rs.record_at, rs.rolled_back = 0, mode.at, False
            if not mode.serving or mode.rolled_back or rs.rolled_back:
                rs.failures = 0
                continue
            t = self.control.route(route).thresholds
            f = figures.get(route)
            if f is None:
                rs.failures = 0
                continue
            verdict, crossed = judge(f, t)
            if verdict != "failing":
                rs.failures = 0 if verdict == "healthy" else rs.failures
                continue
            rs.failures += 1
            if rs.failures >= t.failures and self.act:
                await self._roll_back(route, mode, f, t, crossed, rs)

    def _update(
        self, batch: list[Evaluated], now: float, longest: float, since: dict[str, float]
    ) -> dict[str, Figures]:
        """(In a thread) add the batch, forget what left the window, read each route's figures."""
        if batch:
            self.window.add(batch)
        self.window.forget_before(now - longest - 5)
        self._note_dropped(self.window.keep_newest(MAX_ROWS))
        out: dict[str, Figures] = {}
        for start in set(since.values()):
            found = self.window.figures(start)
            out.update({r: found[r] for r, s in since.items() if s == start and r in found})
        return out

    def _routes_to_judge(self, state: FlagState) -> set[str]:
        return set(state.routes) | set(self.control.routes) | self._serving_seen

    async def _roll_back(
        self,
        route: str,
        mode: RouteMode,
        f: Figures,
        t: Thresholds,
        crossed: list[str],
        rs: _RouteState,
    ) -> None:
        if await self._changed_meanwhile(route, mode):
            # Another proxy's controller rolled it back first, or a person set it anew:
            # nothing to do (its own change reaches us through the store's history).
            rs.failures = 0
            await self.watcher.refresh()
            return
        now = time.time()
        why = "; ".join(crossed) + f" over {t.window:g} s ({rs.failures} checks in a row)"
        after = RouteMode(
            "shadow", reverse=mode.reverse, by=ACTOR, why=why, at=now, rolled_back=True
        )
        rs.rolled_back, rs.pending, rs.failures = True, after, 0
        rs.before = mode.label()
        flag = self.control.route(route).flag
        evidence = {
            "figures": {k: v for k, v in f.__dict__.items() if k != "route"},
            "thresholds": t.__dict__,
            "mode_before": mode.label(),
            "set_by": mode.by,
            "set_at": mode.at,
        }
        self.add_events(
            [self._event("rollback", route, flag, mode.label(), "shadow", why, evidence, now)]
        )
        log.error(
            f"shadow: rolled back {route} ({mode.label()} -> shadow): {why}; feature {flag} = false"
        )
        await self._write_rollback(route, rs)
        summary = f"shadow rolled back {route} ({mode.label()} -> shadow): {why}"
        self._notify(
            {
                "kind": "rollback",
                "route": route,
                "flag": flag,
                "summary": summary,
                "at": now,
                "mode_before": mode.label(),
                "mode_after": "shadow",
                "evidence": evidence,
                "run_id": self.run_id,
            }
        )

    async def _changed_meanwhile(self, route: str, judged: RouteMode) -> bool:
        """Whether the store's record of `route` is no longer the one judged (read afresh).

        A fleet shares one store: each proxy's controller judges its own traffic, and
        the first to act wins; the others see its record here and stand down.
        """
        try:
            fresh = await self.store.read(self.watcher.names() | {self.control.route(route).flag})
        except Exception:
            return False  # cannot tell: act (the write is retried until the store answers)
        if not effective_mode(self.control, fresh, route, stale=False, ever_read=True).serving:
            return True  # a person pulled its feature flag meanwhile: nothing to roll back
        record = fresh.routes.get(route)
        if record is None:
            return False  # still the config's mode, as judged
        return record.rolled_back or record.at != judged.at or record.mode != judged.mode

    async def _write_rollback(self, route: str, rs: _RouteState) -> None:
        """Write the rolled-back record and flag; retried at the next check if it fails."""
        after = rs.pending
        assert after is not None
        flag = self.control.route(route).flag
        change = Change(
            id=uuid.uuid4().hex,
            at=after.at,
            actor=ACTOR,
            reason=after.why,
            kind="route",
            route=route,
            flag=flag,
            before=rs.before,
            after=after.label(),
        )
        try:
            await self.store.set_route(route, after, flag, change)
        except Exception as exc:
            log.error(f"shadow: rollback of {route}: writing the flag failed ({exc}); retrying")
            return
        self._own_changes.add(change.id)
        rs.pending = None
        rs.record_at = after.at
        await self.watcher.refresh()

    def _notify(self, event: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        if self.control.webhook:
            self._background(loop, "webhook", self.control.webhook, event)
        if self.control.command:
            self._background(loop, "command", self.control.command, event)

    def _background(
        self, loop: asyncio.AbstractEventLoop, kind: str, target: str, event: dict[str, Any]
    ) -> None:
        async def send() -> None:
            try:
                if kind == "webhook":
                    ok, text = await notify.post_webhook(target, event)
                else:
                    ok, text = await notify.run_command(target, event)
            except asyncio.CancelledError:
                ok, text = False, "still under way when the proxy stopped: given up"
            self.add_events(
                [
                    self._event(
                        "notification",
                        event.get("route"),
                        event.get("flag"),
                        None,
                        None,
                        f"{kind} {'sent' if ok else 'failed'}: {text}",
                        {"kind": kind, "ok": ok, "about": event.get("kind")},
                        time.time(),
                    )
                ]
            )
            if not ok:
                log.error(f"shadow: notifying by {kind} failed: {text}")

        task = loop.create_task(send())
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    # -- events -----------------------------------------------------------------
    def _event(
        self,
        kind: str,
        route: str | None,
        flag: str | None,
        before: str | None,
        after: str | None,
        reason: str,
        evidence: dict[str, Any] | None,
        ts: float,
        actor: str = ACTOR,
        event_id: str | None = None,
    ) -> EventRow:
        return EventRow(
            event_id=event_id or uuid.uuid4().hex,
            run_id=self.run_id,
            ts=naive(ts),
            kind=kind,
            route=route,
            flag=flag,
            mode_before=before,
            mode_after=after,
            actor=actor,
            reason=reason,
            evidence=orjson.dumps(evidence, default=str).decode() if evidence else None,
        )

    def _changed(self, old: FlagState, new: FlagState) -> None:
        self._history_due = True  # imported at the next check, off this callback

    async def _import_history(self) -> None:
        """Flag changes (by people or controllers) not recorded yet become events."""
        if self._known is not None:
            known, self._known = await asyncio.to_thread(self._known), None
            self._history_ids |= known or set()
            self._import_all = known is not None
        try:
            changes = await self.store.history(200)
        except Exception:
            # The store is down (the watcher says so, once): try again at the next check.
            self._history_due = True
            return
        rows = []
        for c in changes:
            oldest = self.started_at - (HISTORY_AGE if self._import_all else 1)
            if c.id in self._history_ids or c.at < oldest:
                continue
            self._history_ids.add(c.id)
            if c.id in self._own_changes:
                continue  # recorded as the rollback itself
            rows.append(
                self._event(
                    "flag_change",
                    c.route,
                    c.flag,
                    c.before,
                    c.after,
                    c.reason,
                    None,
                    c.at,
                    actor=c.actor,
                    event_id=c.id,
                )
            )
        if rows:
            self.add_events(rows)

    def _flag_store_events(self, now: float) -> None:
        stale = self.watcher.stale()
        if stale != self._stale:
            self._stale = stale
            what = (
                f"flag store {self.store.describe()} unreadable for over "
                f"{self.control.stale_after:g} s: routes run legacy"
                if stale
                else f"flag store {self.store.describe()} readable again"
            )
            self.add_events([self._event("flag_store", None, None, None, None, what, None, now)])

    def _summarise_fallbacks(self, force: bool = False) -> None:
        minute = int(time.time() // 60)
        if not self._fallbacks or (minute == self._minute and not force):
            return
        now = time.time()
        rows = []
        for route, count in sorted(self._fallbacks.items()):
            top = self._fallback_errors.get(route, Counter()).most_common(3)
            rows.append(
                self._event(
                    "fallbacks",
                    route,
                    None,
                    None,
                    None,
                    f"{count} requests fell back to the primary",
                    {"count": count, "since": self._minute * 60, "why": dict(top)},
                    now,
                )
            )
        self._fallbacks.clear()
        self._fallback_errors.clear()
        self._minute = minute
        self.add_events(rows)


def _route(endpoint: str) -> str:
    return endpoint.partition(" ")[2]


__all__ = ["ACTOR", "Controller"]
