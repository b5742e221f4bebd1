"""`shadow proxy --processes N`: N mitmproxy processes on one port, one run, one store.

mitmproxy listens with `asyncio.start_server` and offers no SO_REUSEPORT option,
so each proxy process here replaces its reverse-mode listener by one that sets it
(`_listen_reusing_port`): the kernel then spreads new connections over the N
processes. Each process has its own addon and worker (CPU of the copies scales
with the proxies) and writes its own shard, `<db>.shards/<run>/p<k>.duckdb`, all
under one run id. Readers can read the shards live (`--db '<db>.shards/<run>'`);
when every process has stopped, the shards are folded into `--db` as one run
(`shadow.store.shards.merge_into`: counts summed) and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import multiprocessing
import os
import re
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from shadow.errors import COPIES_LOST, ConfigError, ShadowError, StoreError
from shadow.live.proxy import ProxySettings, request_stop, run_proxy

MAX_PROCESSES = 64


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_processes(n: int, s: ProxySettings) -> None:
    """ConfigError for a process count or an option that cannot be shared by processes."""
    if n > 1 and s.run_id and not _RUN_ID.fullmatch(s.run_id):
        # It names the shards' folder: no path of its own (`../x`, `/home/me`).
        raise ConfigError(
            f"--run-id {s.run_id!r} with --processes: letters, digits, '.', '_' and '-' only"
        )
    if n < 1:
        raise ConfigError(f"--processes {n}: expected at least 1")
    if n > MAX_PROCESSES:
        raise ConfigError(f"--processes {n}: at most {MAX_PROCESSES}")
    if n > 1 and s.metrics:
        raise ConfigError("--metrics with --processes > 1: not supported (one port per process)")
    if n > 1 and s.record:
        raise ConfigError("--record with --processes > 1: not supported (one file per process)")


def _listen_reusing_port() -> None:
    """Make mitmproxy's TCP listeners in this process set SO_REUSEPORT."""
    from mitmproxy.proxy import mode_servers

    async def listen(self: Any, host: str, port: int) -> list[Any]:
        if self.mode.transport_protocol != "tcp":
            raise ConfigError("--processes: only TCP modes can share a port")
        return [await asyncio.start_server(self.handle_stream, host, port, reuse_port=True)]

    mode_servers.AsyncioServerInstance.listen = listen  # type: ignore[method-assign]


def _child(settings: ProxySettings, ready: Any) -> None:
    # Until mitmproxy's loop handles them, a stop is remembered, not a KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    ready.set()
    _listen_reusing_port()
    try:
        code = run_proxy(settings, checked=True)
    except ShadowError as exc:
        print(f"shadow: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    sys.exit(code)


def _unknown(shard: str, run_id: str, name: str) -> None:
    """A killed process counted requests it never settled: its run's count is unknown."""
    from shadow.store.writer import connect

    if not os.path.exists(shard):
        return
    print(
        f"shadow: {name} was killed: the requests it took are unknown (runs.requests is "
        "empty for this run); what it had not handed to its worker is lost",
        file=sys.stderr,
    )
    with contextlib.suppress(Exception):
        con = connect(shard, read_only=False, wait=10)
        try:
            ended = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as the writer's
            con.execute(
                "UPDATE runs SET requests = NULL, ended_at = coalesce(ended_at, ?) "
                "WHERE run_id = ?",
                [ended, run_id],
            )
        finally:
            con.close()


def _descendants(pid: int) -> set[int]:
    """Processes below `pid` (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as fh:
                kids = {int(p) for p in fh.read().split()}
        except (OSError, ValueError):
            continue
        todo.extend(kids - found)
        found |= kids
    return found


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _wait_gone(pids: set[int], seconds: float) -> None:
    """Until every process in `pids` has exited; past `seconds`, kill what is left."""
    deadline = time.monotonic() + seconds
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if _running(p)}
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def shard_folder(db: str, run_id: str) -> str:
    """Where the processes of run `run_id` keep their shards until they are folded into `db`."""
    return os.path.join(f"{db}.shards", run_id)


def fold(db: str, folder: str) -> None:
    """Append the shards in `folder` to the store `db` (one run), then remove them."""
    from shadow.store.schema import migrate
    from shadow.store.shards import merge_into
    from shadow.store.writer import connect

    files = sorted(glob.glob(os.path.join(glob.escape(folder), "p[0-9]*.duckdb")))
    if not files:
        return
    con = None
    try:
        con = connect(db, read_only=False)
        migrate(con)
        merge_into(con, files)  # all or nothing
    except Exception as exc:
        raise StoreError(
            f"could not fold the shards in {folder} into {db}: {exc}; the run is kept "
            f"there (shadow report --db '{folder}')"
        ) from None
    finally:
        if con is not None:
            con.close()
    for path in files:  # only what the processes wrote: never anything else in there
        for leftover in (path, path + ".wal"):
            with contextlib.suppress(OSError):
                os.remove(leftover)
    for empty in (folder, os.path.dirname(folder)):  # <db>.shards, once no run is left
        with contextlib.suppress(OSError):
            os.rmdir(empty)


def run_processes(s: ProxySettings, n: int) -> int:
    """Serve with `n` proxy processes until SIGINT/SIGTERM; fold their shards; an exit code."""
    from shadow.store.writer import ensure_new_run

    run_id = s.run_id or uuid.uuid4().hex[:12]
    ensure_new_run(s.db, run_id, "--run-id")
    folder = shard_folder(s.db, run_id)
    os.makedirs(folder, exist_ok=True)
    mp = multiprocessing.get_context("spawn")
    children: list[Any] = []
    ready: list[Any] = []  # set by each process once a stop no longer kills it
    told: set[int] = set()
    stopping = False
    workers: dict[int, set[int]] = {}  # process -> its descendants (worker, compare pool)

    def forward(signum: int | None = None, frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        # Once per process, and only once it handles the signal: a SIGINT while it boots
        # would be a KeyboardInterrupt, a second one after its loop ended kills its drain.
        for child, up in zip(children, ready, strict=True):
            if child.pid not in told and child.exitcode is None and up.is_set():
                told.add(child.pid)
                with contextlib.suppress(OSError):
                    os.kill(child.pid, signal.SIGINT)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for k in range(n):
            if stopping:
                break  # told to stop while starting: start no more
            shard = dataclasses.replace(
                s, db=os.path.join(folder, f"p{k}.duckdb"), run_id=run_id, quiet=s.quiet or k > 0
            )
            up = mp.Event()
            child = mp.Process(
                target=_child, args=(shard, up), name=f"shadow-proxy-{k}", daemon=False
            )
            child.start()
            children.append(child)
            ready.append(up)
        deadline: float | None = None
        while any(c.is_alive() for c in children):
            # One process that stopped (it could not start, or it was killed) stops the rest:
            # a run with fewer processes than asked is not the run that was asked for.
            if stopping or any(c.exitcode is not None for c in children):
                forward()
                if deadline is None:
                    deadline = time.monotonic() + s.drain_timeout + 120
                elif time.monotonic() > deadline:
                    for c in children:
                        if c.is_alive():
                            print(f"shadow: {c.name} did not stop in time; killing it",
                                  file=sys.stderr)  # fmt: skip
                            c.kill()
                            c.join(5)
                    break
            for child in children:  # its worker outlives it if it is killed: wait for it
                if child.pid is not None and child.exitcode is None:
                    workers.setdefault(child.pid, set()).update(_descendants(child.pid))
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for child in children:
        if (child.exitcode or 0) < 0:
            # A worker whose proxy died drains what it has and writes it (worker.py
            # watches its parent): the shard is complete only once it is gone.
            _wait_gone(workers.get(child.pid or 0, set()), s.drain_timeout + 60)
    # Killed by a signal (a negative code): what it held is lost.
    codes = [COPIES_LOST if (c.exitcode or 0) < 0 else c.exitcode or 0 for c in children]
    for k, (child, code) in enumerate(zip(children, codes, strict=True)):
        if code:
            print(f"shadow: {child.name} ended with code {child.exitcode}", file=sys.stderr)
        if (child.exitcode or 0) < 0:
            _unknown(os.path.join(folder, f"p{k}.duckdb"), run_id, child.name)
    fold(s.db, folder)
    if any(code == COPIES_LOST for code in codes):
        return COPIES_LOST
    return max(codes, default=0)
