"""A real `redis-server` on 127.0.0.1 for tests: started in a tmp dir, stopped after.

    with RedisServer(tmp_path) as server:
        server.url            # redis://127.0.0.1:<port>/0
        server.stop()         # Redis goes down (connections are refused) ...
        server.start()        # ... and comes back on the same port, empty
        server.pause()        # Redis hangs (commands time out) ...
        server.resume()       # ... and answers again, its data kept

Without `redis-server` the tests that need it skip with the reason, except in CI
(CI=true), where they fail: there they must run (scripts/ensure-services installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from tests.conftest import free_port


def redis_server_binary() -> str:
    """The path of redis-server; skips the test (fails it in CI) when there is none."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if found:
        return found
    reason = (
        "redis-server is not installed (apt-get install redis-server; see scripts/ensure-services)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def ping(port: int, timeout: float = 0.2) -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process without persistence, on a fixed port across restarts."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        self.binary = redis_server_binary()
        self.dir = tmp
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        assert self.process is None, "already running"
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
        ]  # fmt: skip
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115  (the child keeps it open)
        with log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{text}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (its data goes with it: nothing is persisted)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server could not stop
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang instead of being refused."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
