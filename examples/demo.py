"""`make demo`: start the example backends, shadow demo traffic, cut a route over, report.

Starts the legacy app (primary) and the FastAPI rewrite (candidate) on free
127.0.0.1 ports, runs `shadow proxy` between them and sends deterministic demo
traffic through it (shadow mode), plus a few real-time conversations (Socket.IO
and server-sent event streams, examples/realtime.py). Then it walks one route, GET /api/insights,
through a migration with `shadow flags`: canary 25 % of users -> candidate
(the rewrite answers, the legacy still gets copies) -> the rewrite starts
failing on that route, clients keep getting answers (fallback) and the
controller rolls the route back. It stops the proxy (which writes everything it
holds) and renders the HTML report. Output goes to ./demo-output/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.realtime import drive_realtime, summary_line  # noqa: E402
from examples.traffic import demo_requests  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise SystemExit(f"demo: nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until the proxy's /readyz says its worker and store are up: traffic sent before
    would wait in the queue, and reach the candidate late, in one burst."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"demo: the proxy was not ready after {timeout}s")


@contextlib.contextmanager
def started(cmd: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


MIGRATED = "/api/insights"  # the route the demo cuts over
USERS = 200  # distinct users (X-User-Id) in the cutover phases
RATE = 50.0  # requests a second the demo's clients send


async def send_traffic(
    base: str, n: int, concurrency: int, seed: int = 7, users: int = 0, rate: float = RATE
) -> dict[int, int]:
    """Send `n` demo requests, `rate` a second (at most `concurrency` at once), as staging
    traffic comes, not as fast as possible; with `users`, half go to MIGRATED, each from
    one of `users`."""
    statuses: dict[int, int] = {}
    reqs = demo_requests(n, seed)
    if users:
        reqs = [
            r if i % 2 else dataclasses.replace(r, method="GET", path=MIGRATED, body=None)
            for i, r in enumerate(reqs)
        ]
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one(i: int, r) -> None:  # type: ignore[no-untyped-def]
            headers = dict(r.headers)
            if users:
                headers["X-User-Id"] = f"user-{i % users}"
            await asyncio.sleep(i / rate)
            async with sem:
                resp = await client.request(r.method, r.path, headers=headers, content=r.body)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

        await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs)))
    return statuses


def send_realtime(base: str, conversations: int = 3, streams: int = 3) -> None:
    """A few Socket.IO conversations and SSE streams through the proxy, bounded in count
    and time (a few seconds at worst); whatever fails is reported on one line."""
    try:
        result = asyncio.run(drive_realtime(base, conversations, streams, timeout=5.0))
    except Exception as exc:  # the demo goes on without real-time traffic
        print(f"demo: real-time traffic failed: {type(exc).__name__}: {exc}")
        return
    print(f"demo: real-time through the proxy: {summary_line(result)}")


def flags(flags_file: Path, *args: str) -> str:
    """Run `shadow flags ...` as a person would; its output."""
    cmd = [sys.executable, "-m", "shadow.cli.main", "flags", *args]
    cmd += ["--flags", str(flags_file), "--config", "examples/shadow.toml"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"demo: {' '.join(cmd[3:])} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def mode_of(flags_file: Path) -> dict[str, object]:
    import json

    return json.loads(flags(flags_file, "get", MIGRATED, "--json"))  # type: ignore[no-any-return]


def migrate(base: str, flags_file: Path, faults: Path, concurrency: int) -> None:
    """Walk MIGRATED through canary -> candidate -> failing -> rolled back."""
    for mode, percent, why in (
        ("canary", "25", "parity 100 % in shadow"),
        ("candidate", None, "canary healthy"),
    ):
        extra = ["--percent", percent] if percent else []
        flags(flags_file, "set", MIGRATED, mode, *extra, "--by", "demo", "--why", why)
        time.sleep(1.2)  # the proxy reads the flags at least twice a second
        statuses = asyncio.run(send_traffic(base, 240, concurrency, seed=11, users=USERS))
        print(f"demo: {MIGRATED} {mode} {percent or ''}: 240 requests, statuses {statuses}")
    faults.write_text(MIGRATED + "\n", encoding="utf-8")
    print(f"demo: the rewrite now fails on {MIGRATED} (503); clients should not notice")
    deadline = time.monotonic() + 20
    sent: dict[int, int] = {}
    while time.monotonic() < deadline:
        for code, count in asyncio.run(
            send_traffic(base, 60, concurrency, seed=13, users=USERS)
        ).items():
            sent[code] = sent.get(code, 0) + count
        record = mode_of(flags_file)
        if record.get("rolled_back"):
            print(f"demo: clients got statuses {sent} meanwhile")
            print(f"demo: rolled back by {record.get('by')}: {record.get('why')}")
            break
    else:
        print("demo: warning: no rollback within 20 s", file=sys.stderr)
    faults.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", default="demo-output")
    args = parser.parse_args()

    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    db, report = out / "parity.duckdb", out / "report.html"
    flags_file, faults = out / "flags.json", out / "faults.txt"
    py = sys.executable
    p_port, c_port, s_port, x_port = free_port(), free_port(), free_port(), free_port()
    m_port = free_port()
    t0 = time.monotonic()
    with (
        started([py, "examples/legacy/app.py", "--port", str(p_port)], p_port, out / "legacy.log"),
        started(
            [py, "examples/candidate/app.py", "--port", str(c_port), "--faults", str(faults)],
            c_port,
            out / "cand.log",
        ),
        # a second legacy instance: what differs between the two legacies is noise
        started([py, "examples/legacy/app.py", "--port", str(s_port)], s_port, out / "sec.log"),
    ):
        proxy_cmd = [
            py, "-m", "shadow.cli.main", "proxy",
            "--primary", f"http://127.0.0.1:{p_port}",
            "--candidate", f"http://127.0.0.1:{c_port}",
            "--secondary", f"http://127.0.0.1:{s_port}",
            "--listen", f"127.0.0.1:{x_port}",
            "--db", str(db), "--config", "examples/shadow.toml",
            "--confdir", str(out / "mitmproxy"), "--quiet", "--flags", str(flags_file),
            "--metrics", f"127.0.0.1:{m_port}",
        ]  # fmt: skip
        print(
            f"demo: primary :{p_port} (legacy), secondary :{s_port} (legacy again), "
            f"candidate :{c_port} (FastAPI), proxy :{x_port}"
        )
        with started(proxy_cmd, x_port, out / "proxy.log") as proxy:
            wait_ready(m_port, proxy)
            print(f"demo: metrics at http://127.0.0.1:{m_port}/metrics (shadow status --metrics)")
            statuses = asyncio.run(
                send_traffic(f"http://127.0.0.1:{x_port}", args.requests, args.concurrency)
            )
            print(f"demo: sent {args.requests} requests through the proxy, statuses {statuses}")
            send_realtime(f"http://127.0.0.1:{x_port}")
            migrate(f"http://127.0.0.1:{x_port}", flags_file, faults, args.concurrency)
        # leaving the block sent SIGINT: the proxy wrote everything before exiting
    result = subprocess.run(
        [py, "-m", "shadow.cli.main", "report", "--db", str(db), "-o", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print(result.stdout, result.stderr, file=sys.stderr)
        return result.returncode
    print(result.stdout.strip())
    print(f"demo: finished in {time.monotonic() - t0:.0f}s")
    print(f"demo: database {db}")
    print(f"demo: open the report: {report}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
