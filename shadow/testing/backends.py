"""The backends a test talks to: a base URL, or an ASGI / WSGI app in this process.

Every backend answers `send(Request) -> BackendResponse` synchronously (tests are
sync): the raw body (still content-encoded, so both sides are decoded by the same
comparator code) read in chunks into a `BodyBuffer`, so memory stays bounded by
`max_body` whatever the backend sends. An ASGI app runs on an event loop of its own
in a daemon thread, with its lifespan started first (a FastAPI app opening its pools
in `lifespan` works as under uvicorn); httpx's ASGI transport carries the requests.

A backend is named by a spec: `http(s)://host:port[/prefix]`, or `module:attribute`
(an app, imported with the current directory on `sys.path`, as uvicorn does), or the
object itself (an app, a URL string). `BackendError` says in one line what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from shadow.config.tls import BackendTls, client_context
from shadow.model import DEFAULT_MAX_BODY, BackendResponse, BodyBuffer, Request
from shadow.pipeline.sender import (
    describe_failure,
    outgoing_headers,
    proxy_for,
    wire_target,
    wire_value,
)

T = TypeVar("T")
LIFESPAN_TIMEOUT = 30.0  # seconds an app's startup or shutdown may take
IN_PROCESS = "http://testserver"  # the base URL in-process apps see


class BackendError(Exception):
    """A backend spec that names nothing usable (one line, for a pytest usage error)."""


@dataclass(frozen=True)
class App:
    """An application object to run in this process; `kind` is "asgi" or "wsgi"."""

    app: Any
    kind: str
    name: str = ""


def asgi(app: Any, name: str = "") -> App:
    """Mark `app` as an ASGI application (when it cannot be told from its signature)."""
    return App(app, "asgi", name or _name_of(app))


def wsgi(app: Any, name: str = "") -> App:
    """Mark `app` as a WSGI application."""
    return App(app, "wsgi", name or _name_of(app))


def _name_of(app: Any) -> str:
    cls = type(app)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_asgi(app: Any) -> bool:
    if inspect.isfunction(app) or inspect.ismethod(app):
        return inspect.iscoroutinefunction(app)
    # An instance (Starlette, FastAPI, socketio.ASGIApp): its class's __call__ says.
    return inspect.iscoroutinefunction(type(app).__call__)


def import_app(spec: str) -> Any:
    """`module:attr` (dotted attributes allowed) imported; BackendError names what failed."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise BackendError(f"{spec!r}: expected a URL (http://host:port) or module:attribute")
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)  # as uvicorn does: `examples.candidate.app:app` from the repo
    try:
        obj: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # an app's import may fail any way: say why
        raise BackendError(
            f"{spec}: cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BackendError(f"{spec}: {module_name} has no attribute {attr!r}") from None
    return obj


def resolve(spec: Any, what: str) -> App | str:
    """A spec as an `App` or a checked base URL (no trailing slash)."""
    if isinstance(spec, App):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower().startswith(("http://", "https://")):
            parts = urlsplit(text)
            if not parts.hostname:
                raise BackendError(f"{what} {text!r}: the URL has no host")
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                raise BackendError(f"{what} {text!r}: the URL has a bad port") from None
            if parts.query or parts.fragment:
                raise BackendError(f"{what} {text!r}: a base URL has no query or fragment")
            return text.rstrip("/")
        if "://" in text:
            raise BackendError(f"{what} {text!r}: only http:// and https:// URLs are backends")
        try:
            obj = import_app(text)
        except BackendError as exc:
            raise BackendError(f"{what} {exc}") from None
        return resolve(obj, what) if isinstance(obj, str | App) else _as_app(obj, what, text)
    return _as_app(spec, what, _name_of(spec))


def _as_app(obj: Any, what: str, name: str) -> App:
    if not callable(obj):
        raise BackendError(f"{what} {name}: not an application (not callable)")
    return App(obj, "asgi" if _is_asgi(obj) else "wsgi", name)


class _Loop:
    """An event loop in a daemon thread: where in-process ASGI apps run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(_as_coro(coro), self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()


async def _in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread of its own: a WSGI call abandoned at its deadline
    neither holds the process at exit nor takes a pool thread from the next request."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return  # the deadline came first
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def run() -> None:
        try:
            value, error = fn(*args), None
        except BaseException as exc:
            value, error = None, exc
        # (Its backend may be closed by now, its loop with it: nobody waits any more.)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, daemon=True).start()
    return await future


async def _as_coro(aw: Awaitable[T]) -> T:
    return await aw


class _Lifespan:
    """The ASGI lifespan protocol driven as a server would: startup, then shutdown."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.supported = True

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._events.put)
        except BaseException as exc:  # an app without lifespan support raises: as uvicorn's "auto"
            await self._events.put({"type": "_raised", "error": exc})
        else:  # or returns at once (`if scope["type"] != "http": return`): no lifespan either
            await self._events.put({"type": "_returned"})

    async def start(self, name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        try:
            event = await asyncio.wait_for(self._events.get(), LIFESPAN_TIMEOUT)
        except TimeoutError:
            self.supported = False
            raise BackendError(
                f"{name}: the app's startup did not finish within {LIFESPAN_TIMEOUT:.0f} s"
            ) from None
        if event["type"] in ("_raised", "_returned"):
            self.supported = False
        elif event["type"] == "lifespan.startup.failed":
            self.supported = False  # nothing to shut down
            raise BackendError(f"{name}: the app's startup failed: {event.get('message', '')}")

    async def stop(self) -> None:
        if not self.supported or self._task is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._events.get(), LIFESPAN_TIMEOUT)
        self._task.cancel()


class Backend:
    """One backend a test sends to: `send(request)` returns what it answered (or why not)."""

    def __init__(
        self,
        spec: Any,
        what: str,
        *,
        timeout: float = 10.0,
        max_body: int = DEFAULT_MAX_BODY,
        headers: tuple[tuple[str, str], ...] = (),
        tls: BackendTls | None = None,
    ) -> None:
        self.target = resolve(spec, what)
        self.what = what
        self.timeout = timeout
        self.max_body = max_body
        self.headers = headers
        self._loop: _Loop | None = None
        self._lifespan: _Lifespan | None = None
        self._async: httpx.AsyncClient | None = None
        self._sync: httpx.Client | None = None
        # The base URL, or the app's name (what messages and the stored run show).
        self.label = self.target if isinstance(self.target, str) else f"app {self.target.name}"
        # Every backend is driven from an event loop of its own, so that one deadline
        # (asyncio.wait_for) bounds a whole answer: httpx's timeouts bound each read only
        # (a trickling stream never ends), and its WSGI transport has none.
        self._loop = _Loop()
        if isinstance(self.target, str):
            self.base_url = self.target
            verify: Any = client_context(tls) if tls is not None else True
            target = self.target

            async def client() -> httpx.AsyncClient:
                # The environment's proxy as `shadow replay` takes it (never for loopback).
                return httpx.AsyncClient(
                    timeout=timeout, verify=verify, trust_env=False, proxy=proxy_for(target)
                )

            self._async = self._loop.run(client())
            self.label = _without_password(target)
        elif self.target.kind == "wsgi":
            self.base_url = IN_PROCESS
            self._sync = httpx.Client(
                transport=httpx.WSGITransport(app=self.target.app), timeout=timeout
            )
        else:
            self.base_url = IN_PROCESS
            self._start_asgi(self.target)

    def _start_asgi(self, app: App) -> None:
        assert self._loop is not None
        self._lifespan = _Lifespan(app.app)
        try:
            self._loop.run(self._lifespan.start(f"{self.what} {app.name}"), LIFESPAN_TIMEOUT + 5)
        except BackendError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise BackendError(f"{self.what} {app.name}: startup: {exc}") from None

        async def client() -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app))

        self._async = self._loop.run(client())

    def send(self, request: Request) -> BackendResponse:
        """Send `request`; a failure (refused, timeout, the app raised) is the answer's error."""
        headers = outgoing_headers(request, self.base_url, None, self.headers)
        url = self.base_url + wire_target(request.target)
        started = time.perf_counter()
        assert self._loop is not None
        try:
            work: Awaitable[BackendResponse] = (
                self._send_async(request, url, headers)
                if self._async is not None
                else _in_daemon_thread(self._send_sync, request, url, headers)
            )
            return self._loop.run(asyncio.wait_for(work, self.timeout), self.timeout + 5)
        except Exception as exc:  # any failure is the backend's answer, never the test's crash
            ms = (time.perf_counter() - started) * 1000
            return BackendResponse.failed(describe_failure(exc, ms), ms)

    def _send_sync(
        self, request: Request, url: str, headers: list[tuple[str, str]]
    ) -> BackendResponse:
        assert self._sync is not None
        started = time.perf_counter()
        buf = BodyBuffer(self.max_body)
        built = _only(self._sync.build_request(request.method, url, content=request.body), headers)
        r = self._sync.send(built, stream=True)
        try:
            for chunk in r.iter_raw():
                buf.add(chunk)
            return self._answer(r, buf, started)
        finally:
            r.close()

    async def _send_async(
        self, request: Request, url: str, headers: list[tuple[str, str]]
    ) -> BackendResponse:
        assert self._async is not None
        started = time.perf_counter()
        buf = BodyBuffer(self.max_body)
        built = _only(self._async.build_request(request.method, url, content=request.body), headers)
        r = await self._async.send(built, stream=True)
        try:
            async for chunk in r.aiter_raw():
                buf.add(chunk)
            return self._answer(r, buf, started)
        finally:
            await r.aclose()

    @staticmethod
    def _answer(r: httpx.Response, buf: BodyBuffer, started: float) -> BackendResponse:
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in r.headers.raw)
        ms = (time.perf_counter() - started) * 1000
        return BackendResponse(buf.payload(r.status_code, headers), ms)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        if self._loop is not None:
            loop = self._loop
            self._loop = None
            with contextlib.suppress(Exception):
                if self._async is not None:
                    loop.run(self._async.aclose(), 5)
                if self._lifespan is not None:
                    loop.run(self._lifespan.stop(), LIFESPAN_TIMEOUT + 5)
            loop.close()
        self._async = None


def _without_password(url: str) -> str:
    """`url` with the password of its user info hidden (what messages may show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:[REDACTED]@{host}").geturl()


def _only(built: httpx.Request, headers: list[tuple[str, str]]) -> httpx.Request:
    """The request with exactly `headers` (and its length): httpx's client defaults
    (Accept-Encoding, User-Agent, ...) would make a replayed request another one."""
    length = [
        (k, v)
        for k, v in built.headers.raw
        if k.lower() in (b"content-length", b"transfer-encoding")
    ]
    built.headers = httpx.Headers([*((wire_value(k), wire_value(v)) for k, v in headers), *length])
    return built
