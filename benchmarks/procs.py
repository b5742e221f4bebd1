"""Subprocesses for the benchmark: start, wait for their port, measure CPU, always kill."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A console script installed next to this interpreter (mitmdump, shadow)."""
    path = BIN / name
    if not path.exists():
        raise SystemExit(f"bench: {path} not found (is the project installed in this venv?)")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    todo, seen = _children(pid), []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds used so far by process `pid` (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def peak_rss(pid: int) -> int:
    """Peak resident set size (VmHWM) of process `pid` in bytes (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Procs:
    """Owns every subprocess of a benchmark run; `close()` kills whatever is left."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], cwd: str | None = None) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self.logdir, f"{name}.log"), "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C is ours to forward
        )
        log.close()
        self.running[name] = proc
        return proc

    def log(self, name: str) -> str:
        try:
            return Path(self.logdir, f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def wait_port(self, name: str, port: int, timeout: float = 30.0) -> None:
        proc = self.running[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{name} did not listen on {port} within {timeout}s:\n{self.log(name)}")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Send `sig` to the process only, wait up to `timeout`, then kill its group."""
        proc = self.running.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"bench: {name} did not exit within {timeout}s after {sig!r}; killing it")
        _kill_group(proc)
        return proc.returncode

    def close(self) -> None:
        for name in list(self.running):
            self.stop(name, signal.SIGTERM, timeout=3.0)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # also any worker it left behind
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
