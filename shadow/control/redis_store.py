"""The flag store in Redis (for a fleet); see shadow.control.flags for its keys."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Collection
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from shadow.config.control import ControlError, RouteMode, check_flag_name
from shadow.control.flags import (
    CHANNEL,
    FEATURE_PREFIX,
    HISTORY_KEY,
    HISTORY_LIMIT,
    ROUTE_PREFIX,
    ROUTES_KEY,
    SCAN_MAX,
    Change,
    FlagState,
    flag_text,
    parse_features,
    parse_history,
    parse_routes,
)
from shadow.errors import FlagStoreError


def hide_password(url: str) -> str:
    """`url` with its password (in the userinfo or a ?password= parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user = quote(unquote(parts.username or ""), safe="")
            netloc = f"{user}:***@{netloc.rpartition('@')[2]}"
        query = "&".join(
            "password=***" if item.lower().startswith("password=") else item
            for item in parts.query.split("&")
        )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return url.split("://", 1)[0] + "://***"


def _passwords(url: str) -> list[str]:
    """The secrets in `url`, to scrub from error texts."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
    except ValueError:
        return []
    return [s for s in found if s]


class RedisFlagStore:
    """Flags in Redis, shared by a fleet (the key layout is in the module docstring)."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self._shown = hide_password(url)
        self._secrets = _passwords(url)
        try:
            # One immediate retry: a pooled connection may have died with a restarted server.
            self._redis = Redis.from_url(
                url,
                socket_timeout=1,
                socket_connect_timeout=1,
                decode_responses=True,
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError as exc:
            raise ControlError(f"flag store {self._shown}: {exc}") from None

    def describe(self) -> str:
        return self._shown

    @contextlib.asynccontextmanager
    async def _talking(self) -> AsyncIterator[None]:
        """Turn what Redis or the network raises into one FlagStoreError line."""
        from redis.exceptions import RedisError, ResponseError

        try:
            yield
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
            for secret in self._secrets:
                text = text.replace(secret, "***")
            what = "failed" if isinstance(exc, ResponseError) else "unreachable"
            raise FlagStoreError(f"flag store {self._shown} {what}: {text}") from None

    async def read(self, features: Collection[str]) -> FlagState:
        names = sorted(set(features))
        async with self._talking():
            pipe = self._redis.pipeline(transaction=False)
            pipe.smembers(ROUTES_KEY)
            if names:
                pipe.mget([FEATURE_PREFIX + n for n in names])
            first = await pipe.execute()
            routes = sorted(first[0])
            records = await self._redis.mget([ROUTE_PREFIX + r for r in routes]) if routes else []
        raw_routes, problems = {}, []
        for route, text in zip(routes, records, strict=True):
            if text is None:
                continue  # in the set, record deleted: no record
            try:
                raw_routes[route] = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(f"route {route}: record is not JSON ({exc.msg})")
        parsed, bad_routes = parse_routes(raw_routes)
        found = dict(zip(names, first[1], strict=True)) if names else {}
        values, bad_features = parse_features({k: v for k, v in found.items() if v is not None})
        return FlagState(parsed, values, tuple(problems + bad_routes + bad_features))

    async def set_route(
        self, route: str, mode: RouteMode, flag: str, change: Change, write_flag: bool = True
    ) -> None:
        check_flag_name(flag)
        async with self._talking(), self._redis.pipeline(transaction=True) as pipe:
            pipe.set(ROUTE_PREFIX + route, json.dumps(mode.to_json(), sort_keys=True))
            pipe.sadd(ROUTES_KEY, route)
            if write_flag:
                pipe.set(FEATURE_PREFIX + flag, flag_text(mode.serving))
            self._log(pipe, change)
            await pipe.execute()

    async def set_feature(self, name: str, value: bool, change: Change) -> None:
        check_flag_name(name)
        async with self._talking(), self._redis.pipeline(transaction=True) as pipe:
            pipe.set(FEATURE_PREFIX + name, flag_text(value))
            self._log(pipe, change)
            await pipe.execute()

    @staticmethod
    def _log(pipe: Any, change: Change) -> None:
        """Append the change to the history (trimmed) and tell the listeners."""
        pipe.rpush(HISTORY_KEY, json.dumps(change.to_json(), sort_keys=True))
        pipe.ltrim(HISTORY_KEY, -HISTORY_LIMIT, -1)
        pipe.publish(CHANNEL, change.id)

    async def features(self) -> dict[str, bool]:
        async with self._talking():
            keys: list[str] = []
            cursor = 0
            while True:  # SCAN, never KEYS: a big keyspace must not block the server
                cursor, batch = await self._redis.scan(
                    cursor, match=FEATURE_PREFIX + "*", count=500
                )
                keys.extend(str(k) for k in batch)
                if not cursor or len(keys) >= SCAN_MAX:
                    break
            keys = sorted(set(keys))[:SCAN_MAX]
            values = await self._redis.mget(keys) if keys else []
        found = {k.removeprefix(FEATURE_PREFIX): v for k, v in zip(keys, values, strict=True) if v}
        return parse_features(found)[0]

    async def history(self, limit: int = HISTORY_LIMIT) -> list[Change]:
        if limit <= 0:
            return []
        async with self._talking():
            items = await self._redis.lrange(HISTORY_KEY, -limit, -1)
        parsed = []
        for item in items:
            with contextlib.suppress(ValueError):  # JSONDecodeError is a ValueError
                parsed.append(json.loads(item))
        return parse_history(parsed)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection must not fail
            await self._redis.aclose()


__all__ = ["RedisFlagStore", "hide_password"]
