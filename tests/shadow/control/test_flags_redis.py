"""The Redis flag store against a real redis-server: the key layout is the fleet's contract."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from shadow.config.control import RouteMode, check_mode
from shadow.control.flags import (
    CHANNEL,
    HISTORY_KEY,
    HISTORY_LIMIT,
    ROUTES_KEY,
    Change,
    open_store,
)
from shadow.control.redis_store import RedisFlagStore
from shadow.errors import FlagStoreError
from tests.conftest import free_port
from tests.redis_server import RedisServer


async def _raw(url: str, *command: Any) -> Any:
    """One command on a plain client: what another member of the fleet would see."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


def _store(url: str) -> RedisFlagStore:
    store = open_store(url)
    assert isinstance(store, RedisFlagStore)
    return store


@pytest.mark.integration
def test_set_route_writes_the_documented_keys(redis_url: str) -> None:
    record = RouteMode("canary", 10, reverse=True, by="alice", why="ramp", at=1714640000.0)
    change = Change.new(
        "route", "alice", "ramp", route="/a/{id}", flag="new_a", before="shadow", after="canary 10%"
    )

    async def run() -> None:
        store = _store(redis_url)
        try:
            await store.set_route("/a/{id}", record, "new_a", change)
            state = await store.read({"new_a", "absent"})
            assert state.routes == {"/a/{id}": record}
            assert state.features == {"new_a": True}
            assert state.problems == ()
            assert await store.history() == [change]
        finally:
            await store.aclose()
        assert await _raw(redis_url, "GET", "feature:new_a") == "true"
        assert json.loads(await _raw(redis_url, "GET", "shadow:route:/a/{id}")) == record.to_json()
        assert await _raw(redis_url, "SMEMBERS", ROUTES_KEY) in ({"/a/{id}"}, ["/a/{id}"])
        assert await _raw(redis_url, "TYPE", HISTORY_KEY) == "list"

    asyncio.run(run())


@pytest.mark.integration
def test_feature_round_trip_and_scan(redis_url: str) -> None:
    async def run() -> None:
        store = _store(redis_url)
        try:
            await store.set_feature("new_backend", True, Change.new("feature", "bob", flag="x"))
            await store.set_feature("old", False, Change.new("feature", "bob", flag="old"))
            await _raw(redis_url, "SET", "unrelated", "true")
            assert (await store.read({"new_backend"})).features == {"new_backend": True}
            assert await store.features() == {"new_backend": True, "old": False}
            assert [c.actor for c in await store.history()] == ["bob", "bob"]
            assert len(await store.history(limit=1)) == 1
            shadowing = check_mode("shadow")
            await store.set_route("/b", shadowing, "new_b", Change.new("route", "c", route="/b"))
            assert (await store.read({"new_b"})).features == {"new_b": False}
        finally:
            await store.aclose()
        assert await _raw(redis_url, "GET", "feature:old") == "false"

    asyncio.run(run())


@pytest.mark.integration
def test_values_written_by_others_false_and_malformed(redis_url: str) -> None:
    async def run() -> None:
        for key, value in (
            ("feature:off", "false"), ("feature:on", "true"), ("feature:weird", "maybe"),
            ("shadow:route:/good", json.dumps({"mode": "candidate"})),
            ("shadow:route:/bad", json.dumps({"mode": "canary", "percent": 300})),
            ("shadow:route:/junk", "{not json"),
        ):  # fmt: skip
            await _raw(redis_url, "SET", key, value)
        await _raw(redis_url, "SADD", ROUTES_KEY, "/good", "/bad", "/junk", "/gone")
        store = _store(redis_url)
        try:
            state = await store.read({"off", "on", "weird", "missing"})
            assert await store.features() == {"off": False, "on": True}
        finally:
            await store.aclose()
        assert state.features == {"off": False, "on": True}
        assert state.routes == {"/good": RouteMode("candidate")}
        assert len(state.problems) == 3, state.problems
        assert any(p.startswith("feature weird:") and "'maybe'" in p for p in state.problems)
        assert any(p.startswith("route /bad:") for p in state.problems)
        assert any(p.startswith("route /junk: record is not JSON") for p in state.problems)

    asyncio.run(run())


@pytest.mark.integration
def test_each_write_is_published(redis_url: str) -> None:
    async def run() -> None:
        listener = aioredis.Redis.from_url(redis_url, decode_responses=True)
        pubsub = listener.pubsub()
        await pubsub.subscribe(CHANNEL)
        await pubsub.get_message(timeout=1)  # the subscribe confirmation
        store = _store(redis_url)
        change = Change.new("feature", "a", flag="x", after="true")
        try:
            await store.set_feature("x", True, change)
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        finally:
            await store.aclose()
            await pubsub.aclose()
            await listener.aclose()
        assert message is not None and message["data"] == change.id

    asyncio.run(run())


@pytest.mark.integration
def test_the_history_keeps_the_last_1000(redis_url: str) -> None:
    async def run() -> None:
        old = [json.dumps(Change(f"c{i}", i, "a", "", "feature").to_json()) for i in range(1000)]
        await _raw(redis_url, "RPUSH", HISTORY_KEY, *old)
        await _raw(redis_url, "RPUSH", HISTORY_KEY, "not json")
        store = _store(redis_url)
        try:
            assert len(await store.history(limit=5)) == 4  # the malformed one is skipped
            newest = Change.new("feature", "b", flag="x")
            await store.set_feature("x", True, newest)
            history = await store.history()
        finally:
            await store.aclose()
        assert await _raw(redis_url, "LLEN", HISTORY_KEY) == HISTORY_LIMIT
        assert history[-1] == newest and history[0].id == "c2"

    asyncio.run(run())


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    port = free_port()  # nothing listens there

    async def run() -> None:
        store = _store(f"redis://:s3cret@127.0.0.1:{port}/0")
        try:
            for call in (
                store.read({"a"}),
                store.features(),
                store.history(),
                store.set_feature("a", True, Change.new("feature", "x")),
            ):
                with pytest.raises(FlagStoreError) as err:
                    await call
                text = str(err.value)
                assert text.startswith(f"flag store redis://:***@127.0.0.1:{port}/0 unreachable: ")
                assert "s3cret" not in text and "\n" not in text
                assert err.value.exit_code == 8
        finally:
            await store.aclose()

    asyncio.run(run())


@pytest.mark.integration
def test_a_restarted_server_is_used_again(redis_server: RedisServer) -> None:
    async def run() -> None:
        store = _store(redis_server.url)
        try:
            await store.set_feature("a", True, Change.new("feature", "x"))
            redis_server.stop()
            with pytest.raises(FlagStoreError, match="unreachable"):
                await store.read({"a"})
            redis_server.start()  # empty again: nothing is persisted
            await store.set_feature("a", False, Change.new("feature", "x"))
            assert (await store.read({"a"})).features == {"a": False}
        finally:
            await store.aclose()

    asyncio.run(run())


@pytest.mark.integration
def test_a_wrong_type_is_a_failure_not_a_crash(redis_url: str) -> None:
    async def run() -> None:
        await _raw(redis_url, "SET", ROUTES_KEY, "not a set")
        store = _store(redis_url)
        try:
            with pytest.raises(FlagStoreError, match=r" failed: .*WRONGTYPE"):
                await store.read(())
        finally:
            await store.aclose()

    asyncio.run(run())


@pytest.mark.integration
def test_a_hung_server_times_out_in_seconds(redis_server: RedisServer) -> None:
    async def run() -> None:
        store = _store(redis_server.url)
        try:
            await store.set_feature("a", True, Change.new("feature", "x"))
            redis_server.pause()
            started = time.monotonic()
            with pytest.raises(FlagStoreError, match=r"unreachable: .*Timeout"):
                await store.read({"a"})
            assert time.monotonic() - started < 5  # socket_timeout=1, one retry
            redis_server.resume()
            assert (await store.read({"a"})).features == {"a": True}
        finally:
            await store.aclose()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_without_redis_server_skip_with_the_reason_but_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    import tests.redis_server as helper

    monkeypatch.setattr(helper.shutil, "which", lambda name: None)
    monkeypatch.setattr(helper.os.path, "exists", lambda path: False)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="redis-server is not installed"):
        helper.redis_server_binary()
