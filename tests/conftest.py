"""Shared fixtures: free ports, real uvicorn backends on 127.0.0.1, the real proxy."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]  # the pytest plugin's tests (tests/shadow/testing)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# Tests that assert on wall-clock time (a rollback within its window, a client never
# waiting for the candidate): `make test` runs them alone first, then the rest in two
# processes (pytest-xdist), where a neighbour's load would make such a bound a coin toss.
TIMED_FILES = frozenset(
    {
        "test_fault_primary_dies.py",
        "test_fault_realtime.py",
        "test_fault_stop.py",
        "test_fault_worker_kill.py",
        "test_cutover.py",
        "test_cutover_redis.py",
        "test_sink_nginx.py",
        "test_notify.py",
        "test_pipeline_limits.py",
        "test_backends.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in TIMED_FILES:
            item.add_marker(pytest.mark.serial)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Server:
    url: str
    port: int


class UvicornThread(threading.Thread):
    """A real uvicorn server on 127.0.0.1 in a background thread (httpx's test model)."""

    def __init__(self, app: Any, port: int, **ssl: Any) -> None:
        super().__init__(daemon=True)
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **ssl
        )
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    def run(self) -> None:
        self.server.run()

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(10)


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (bounded in time); that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


@contextlib.contextmanager
def serve(app: Any, **ssl: Any) -> Iterator[Server]:
    """A real uvicorn server for `app`; `ssl`: uvicorn's ssl_* settings (then https)."""
    port = free_port()
    thread = UvicornThread(app, port, **ssl)
    thread.start()
    wait_port(port)
    scheme = "https" if ssl else "http"
    try:
        yield Server(f"{scheme}://127.0.0.1:{port}", port)
    finally:
        thread.stop()


@pytest.fixture(scope="session")
def legacy() -> Iterator[Server]:
    from examples.legacy.app import app

    with serve(app) as s:
        yield s


@pytest.fixture(scope="session")
def candidate() -> Iterator[Server]:
    from examples.candidate.app import app

    with serve(app) as s:
        yield s


@dataclass
class RunningProxy:
    url: str
    port: int
    db: Path
    process: subprocess.Popen[str]
    output: str = ""

    def stop(self, timeout: float = 60) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=timeout)
        self.output = out
        return out


def shadow_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "shadow.cli.main", *args]


@contextlib.contextmanager
def run_proxy(
    primary: str, candidate: str, db: Path, tmp: Path, *extra: str
) -> Iterator[RunningProxy]:
    """Start `shadow proxy` as a real subprocess; stop it with SIGINT on exit."""
    port = free_port()
    cmd = shadow_cmd(
        "proxy", "--primary", primary, "--candidate", candidate,
        "--listen", f"127.0.0.1:{port}", "--db", str(db), "--confdir", str(tmp / "mitm"),
        "--quiet", *extra,
    )  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    running = RunningProxy(f"http://127.0.0.1:{port}", port, db, proc)
    try:
        try:
            wait_port(port, 30)
        except TimeoutError:
            proc.kill()
            out, _ = proc.communicate()
            raise AssertionError(f"proxy did not start:\n{out}") from None
        yield running
    finally:
        if proc.poll() is None:
            running.stop()


# --- a real redis-server (tests/redis_server.py): the Redis flag store's tests -------------

from typing import TYPE_CHECKING  # noqa: E402  (appended section: the import it adds)

if TYPE_CHECKING:
    from tests.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free 127.0.0.1 port; the test may stop() and start() it."""
    from tests.redis_server import RedisServer

    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """redis://127.0.0.1:<port>/0 of a fresh, empty redis-server."""
    return redis_server.url


# --- a real PostgreSQL (tests/postgres_server.py): the data-diff and data-migration tests ---

if TYPE_CHECKING:
    from tests.postgres_server import TempPostgres


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TempPostgres]:
    """One throwaway PostgreSQL on a free 127.0.0.1 port for the whole session.

    The superuser `shadow` connects without a password; see examples/data/postgres.py.
    """
    from tests.postgres_server import TempPostgres, postgres_binaries

    postgres_binaries()  # skips (fails in CI) without PostgreSQL
    with TempPostgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: TempPostgres) -> Iterator[str]:
    """postgresql://shadow@127.0.0.1:<port>/t_<hex>: a fresh, empty database for this test."""
    import uuid

    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)  # DROP DATABASE ... WITH (FORCE)
