"""FlagWatcher: the last good flags survive broken files and Redis outages, logged once."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shadow.config.control import ControlConfig, ControlRoute, RouteMode, check_mode
from shadow.control.file_store import FileFlagStore
from shadow.control.flags import Change, FlagState, open_store
from shadow.control.redis_store import RedisFlagStore
from shadow.control.watch import FlagWatcher
from tests.redis_server import RedisServer

LOGGER = "tests.watch"
CONTROL = ControlConfig(
    flag="everything",
    routes={"/a": ControlRoute("/a", flag="new_a"), "/b": ControlRoute("/b", flag="new_b")},
)


def _replace(path: Path, text: str) -> None:
    """Write as an editor or `shadow flags` would: a new file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _flags(features: dict[str, Any], routes: dict[str, Any] | None = None) -> str:
    return json.dumps({"features": features, "routes": routes or {}})


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _said(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.name == LOGGER)


def _watcher(store: Any, control: ControlConfig = CONTROL, **kw: Any) -> FlagWatcher:
    return FlagWatcher(store, control, interval=0.03, log=logging.getLogger(LOGGER), **kw)


def test_names_are_every_known_routes_flag_and_the_global_one() -> None:
    watcher = _watcher(FileFlagStore("unused.json"))
    assert watcher.names() == {"new_a", "new_b", "everything"}
    watcher.state = FlagState(routes={"/api/x/{id}": RouteMode("candidate")})
    assert watcher.names() == {"new_a", "new_b", "everything", "api_x_id"}


def test_a_file_is_followed_and_on_change_runs_once_per_change(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    _replace(path, _flags({"new_a": True, "unrelated": True}))
    changes: list[tuple[FlagState, FlagState]] = []

    async def run() -> None:
        watcher = _watcher(FileFlagStore(str(path)), on_change=lambda o, n: changes.append((o, n)))
        await watcher.start()
        try:
            assert watcher.ever_read and watcher.state.features == {"new_a": True}
            assert len(changes) == 1  # the first read differs from nothing
            await asyncio.sleep(0.2)  # several polls of an unchanged file
            assert len(changes) == 1
            store = FileFlagStore(str(path))
            await store.set_route("/a", check_mode("canary", 5), "new_a", Change.new("route", "x"))
            await _until(lambda: "/a" in watcher.state.routes)
            await asyncio.sleep(0.2)
            assert len(changes) == 2
            old, new = changes[-1]
            assert "/a" not in old.routes and new.routes["/a"].label() == "canary 5%"
            assert not watcher.stale()
        finally:
            await watcher.aclose()

    asyncio.run(run())


def test_a_missing_file_is_empty_flags_not_an_error(tmp_path: Path) -> None:
    async def run() -> None:
        watcher = _watcher(FileFlagStore(str(tmp_path / "none.json")))
        assert await watcher.refresh() is True
        assert watcher.ever_read and watcher.state == FlagState()
        assert not watcher.stale()

    asyncio.run(run())


def test_a_broken_file_keeps_the_last_good_flags_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "flags.json"
    _replace(path, _flags({"new_a": True}, {"/a": {"mode": "candidate"}}))

    async def run() -> None:
        watcher = _watcher(FileFlagStore(str(path)), control=replace(CONTROL, stale_after=0.1))
        await watcher.start()
        try:
            good = watcher.state
            assert good.features == {"new_a": True}
            _replace(path, '{"features": {"new_a": false,}}')
            for _ in range(5):  # touched again and again: read again, still one message
                await asyncio.sleep(0.06)
                os.utime(path, ns=(time.time_ns(), time.time_ns()))
            await asyncio.sleep(0.1)
            assert watcher.state == good
            assert not watcher.stale()  # a file store never goes stale
            assert _said(caplog, "keeping the last good flags") == 1
            message = next(r.getMessage() for r in caplog.records if "keeping" in r.getMessage())
            assert f"flags file {path} is not valid JSON" in message and "(line 1)" in message

            _replace(path, _flags({"new_a": False}))
            await _until(lambda: watcher.state.features == {"new_a": False})
            assert watcher.state.routes == {}
            assert _said(caplog, "readable again") == 1
        finally:
            await watcher.aclose()

    asyncio.run(run())


def test_a_malformed_entry_is_skipped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "flags.json"
    _replace(path, _flags({"new_a": "maybe", "new_b": "false"}))

    async def run() -> None:
        watcher = _watcher(FileFlagStore(str(path)))
        await watcher.start()
        try:
            for n in range(4):  # rewritten, the bad value still there
                _replace(path, _flags({"new_a": "maybe", "new_b": "false", "n": n}))
                await asyncio.sleep(0.08)
            assert watcher.state.features == {"new_b": False}
            assert watcher.state.problems and "feature new_a" in watcher.state.problems[0]
            assert _said(caplog, "feature new_a:") == 1
            assert _said(caplog, "(skipped)") == 1
        finally:
            await watcher.aclose()

    asyncio.run(run())


def test_a_failing_listener_does_not_stop_the_watching(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    path = tmp_path / "flags.json"
    _replace(path, _flags({"new_a": True}))

    def broken(old: FlagState, new: FlagState) -> None:
        raise RuntimeError("listener bug")

    async def run() -> None:
        watcher = _watcher(FileFlagStore(str(path)), on_change=broken)
        await watcher.start()
        try:
            _replace(path, _flags({"new_a": False}))
            await _until(lambda: watcher.state.features == {"new_a": False})
            assert _said(caplog, "listener failed") == 2
        finally:
            await watcher.aclose()

    asyncio.run(run())


@pytest.mark.integration
def test_redis_going_down_keeps_the_flags_then_goes_stale_then_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    control = ControlConfig(stale_after=0.8, routes=CONTROL.routes)

    async def run() -> None:
        store = open_store(redis_server.url)
        assert isinstance(store, RedisFlagStore)
        watcher = _watcher(store, control)
        try:
            await store.set_route("/a", check_mode("candidate"), "new_a", Change.new("route", "x"))
            await watcher.start()
            known = watcher.state
            assert known.features == {"new_a": True} and "/a" in known.routes

            redis_server.stop()
            await asyncio.sleep(0.3)
            assert watcher.state == known  # the last known flags stay in force
            assert not watcher.stale()
            assert _said(caplog, "unreachable: ") == 1
            assert _said(caplog, "keeping the last known flags; routes go legacy after 0.8 s") == 1

            await _until(watcher.stale, timeout=3)
            await asyncio.sleep(0.2)  # more failed polls: nothing more is said
            assert watcher.state == known
            assert _said(caplog, "routes now legacy") == 1
            assert _said(caplog, "keeping the last known flags") == 1

            redis_server.start()  # back, and empty: the flags are written again
            await store.set_feature("new_a", False, Change.new("feature", "x", flag="new_a"))
            await _until(lambda: watcher.state.features == {"new_a": False})
            assert not watcher.stale() and watcher.state.routes == {}
            assert _said(caplog, "reachable again") == 1
        finally:
            await watcher.aclose()
            await store.aclose()

    asyncio.run(run())


@pytest.mark.integration
def test_redis_unreachable_from_the_start_goes_stale(caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import free_port

    caplog.set_level(logging.INFO, logger=LOGGER)

    async def run() -> None:
        store = open_store(f"redis://127.0.0.1:{free_port()}/0")
        watcher = _watcher(store, ControlConfig(stale_after=0.3))
        try:
            await watcher.start()  # never raises
            assert not watcher.ever_read and watcher.state == FlagState()
            await _until(watcher.stale, timeout=3)
            await asyncio.sleep(0.1)
            assert _said(caplog, "unreachable: ") == 1 and _said(caplog, "routes now legacy") == 1
        finally:
            await watcher.aclose()
            await store.aclose()

    asyncio.run(run())
