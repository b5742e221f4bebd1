"""`make demo`: start the example backends, shadow demo traffic, write the report.

Starts the legacy app (primary) and the FastAPI rewrite (candidate) on free
127.0.0.1 ports, runs `shadow proxy` between them, sends deterministic demo
traffic through it, stops the proxy (which writes everything it holds) and
renders the HTML report. Output goes to ./demo-output/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


async def send_traffic(base: str, n: int, concurrency: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    reqs = demo_requests(n)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one(r) -> None:  # type: ignore[no-untyped-def]
            async with sem:
                resp = await client.request(r.method, r.path, headers=r.headers, content=r.body)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

        await asyncio.gather(*(one(r) for r in reqs))
    return statuses


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
    py = sys.executable
    p_port, c_port, s_port, x_port = free_port(), free_port(), free_port(), free_port()
    t0 = time.monotonic()
    with (
        started([py, "examples/legacy/app.py", "--port", str(p_port)], p_port, out / "legacy.log"),
        started([py, "examples/candidate/app.py", "--port", str(c_port)], c_port, out / "cand.log"),
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
            "--confdir", str(out / "mitmproxy"), "--quiet",
        ]  # fmt: skip
        print(
            f"demo: primary :{p_port} (legacy), secondary :{s_port} (legacy again), "
            f"candidate :{c_port} (FastAPI), proxy :{x_port}"
        )
        with started(proxy_cmd, x_port, out / "proxy.log"):
            statuses = asyncio.run(
                send_traffic(f"http://127.0.0.1:{x_port}", args.requests, args.concurrency)
            )
            print(f"demo: sent {args.requests} requests through the proxy, statuses {statuses}")
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
