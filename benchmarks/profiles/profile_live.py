"""Profile the live path: where `shadow proxy`'s processes spend their CPU under load.

    python benchmarks/profiles/profile_live.py --label before [--rate 400] [--duration 20]
    python benchmarks/profiles/profile_live.py --label mitmdump --mitmdump

Starts benchmarks/app.py twice (primary, candidate) and `shadow proxy` (or plain
mitmdump with `--mitmdump`), loads it with benchmarks/loadgen.py (closed loop, or
`--rate` per second) and samples each process with py-spy (`pip install py-spy`;
`record --nonblocking --format raw`, 200 Hz, active samples only; samples whose leaf is
a wait, which --nonblocking cannot always tell from work, are left out and counted): the proxy, its
worker and the worker's comparison process. Each process's samples become a text
file `<label>-<process>.txt` beside this script: its CPU per request (from /proc,
over the sampled window), then the functions with the most samples of their own
(self) and the most samples anywhere in their stack (cumulative), in % of that
process's samples. The raw stacks go to `<label>-<process>.raw` (not kept in git;
`flamegraph.pl` or speedscope read them).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import loadgen, report  # noqa: E402
from benchmarks.procs import Procs, cpu_seconds, descendants, free_port, tool  # noqa: E402

HERE = Path(__file__).resolve().parent
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _roles(proxy: int) -> dict[str, int]:
    """The proxy's worker and the worker's comparison process, by their place in the tree."""
    roles = {"proxy": proxy}
    kids = [p for p in descendants(proxy) if "resource_tracker" not in _cmdline(p)]
    worker = [p for p in kids if p in _direct(proxy)]
    if worker:
        roles["worker"] = worker[0]
        pool = [p for p in descendants(worker[0]) if "resource_tracker" not in _cmdline(p)]
        if pool:
            roles["pool"] = pool[0]
    return roles


def _direct(pid: int) -> set[int]:
    out: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out |= {int(c) for c in f.read().split()}
    return out


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


# Leaf frames of a thread waiting (py-spy's --nonblocking mode cannot always tell them
# from work): left out, and counted.
IDLE = (
    "EpollSelector.select (selectors.py)",
    "_PollLikeSelector.select (selectors.py)",
    "Condition.wait (threading.py)",
    "Connection._poll (multiprocessing/connection.py)",
    "Event.wait (threading.py)",
    "_worker (concurrent/futures/thread.py)",
)
# Frames of this project (and the cross-process queue it uses) in a process's stacks.
OURS = re.compile(r"\((shadow|comparators)/|multiprocessing/(queues|connection|reduction)\.py")


def summarize(raw: Path, title: str, top: int = 40) -> str:
    """Self and cumulative samples per function from py-spy's raw (collapsed) stacks."""
    own: collections.Counter[str] = collections.Counter()
    cum: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        if frames[-1] in IDLE:
            idle += n
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            cum[f] += n
    out = [
        title,
        f"samples: {total} working ({idle} waiting, left out); % of the working ones",
        "",
        "self %   cum %   function (file)",
    ]
    for func, n in own.most_common(top):
        out.append(f"{100 * n / total:6.2f}  {100 * cum[func] / total:6.2f}   {func}")
    out += ["", "cumulative (inclusive), top", "cum %   self %   function (file)"]
    for func, n in cum.most_common(top):
        out.append(f"{100 * n / total:6.2f}  {100 * own[func] / total:6.2f}   {func}")
    out += ["", "this project's frames (and its queue), cumulative", "cum %   self %   function"]
    for func, n in cum.most_common():
        if OURS.search(func) and n * 500 >= total:  # 0.2 % and up
            out.append(f"{100 * n / total:6.2f}  {100 * own[func] / total:6.2f}   {func}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--label", required=True, help="file name prefix: before, after, ...")
    p.add_argument("--duration", type=float, default=20.0, help="seconds sampled")
    p.add_argument("--rate", type=float, default=None, help="requests per second (else closed)")
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of load before sampling")
    p.add_argument("--hz", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--mitmdump", action="store_true", help="profile plain mitmdump instead")
    p.add_argument("--out", default=str(HERE), help="where the files go (default: beside this)")
    a = p.parse_args(argv)
    out = Path(a.out)
    pyspy = Path(sys.executable).parent / "py-spy"
    if not pyspy.exists():
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    tmp = tempfile.mkdtemp(prefix="shadow-profile-")
    procs = Procs(tmp)
    spies: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        app = [sys.executable, "benchmarks/app.py"]
        ports = {}
        for name in ("app_primary", "app_candidate"):
            ports[name] = free_port()
            procs.start(name, [*app, "--port", str(ports[name])], cwd=str(ROOT))
            procs.wait_port(name, ports[name])
        port = free_port()
        primary = f"http://127.0.0.1:{ports['app_primary']}"
        if a.mitmdump:
            argv_ = [tool("mitmdump"), "--mode", f"reverse:{primary}", "--listen-host",
                     "127.0.0.1", "--listen-port", str(port),
                     "--set", f"confdir={tmp}/mitm", "-q"]  # fmt: skip
        else:
            argv_ = [tool("shadow"), "proxy", "--primary", primary,
                     "--candidate", f"http://127.0.0.1:{ports['app_candidate']}",
                     "--db", f"{tmp}/p.duckdb", "--confdir", f"{tmp}/mitm", "--quiet",
                     "--listen", f"127.0.0.1:{port}"]  # fmt: skip
        proc = procs.start("proxy", argv_, cwd=str(ROOT))
        procs.wait_port("proxy", port)
        url = f"http://127.0.0.1:{port}/api/items/42"
        # Warm up (imports, the worker's pool, connections), then sample a steady run.
        warm = asyncio.run(
            loadgen.run(url, connections=a.connections, duration=a.warmup, warmup=0, rate=a.rate)
        )
        roles = _roles(proc.pid)
        cpu0 = {r: cpu_seconds(pid) for r, pid in roles.items()}
        for role, pid in roles.items():
            raw = out / f"{a.label}-{role}.raw"
            cmd = [str(pyspy), "record", "--pid", str(pid), "--nonblocking", "--format", "raw",
                   "--rate", str(a.hz), "--duration", str(int(a.duration) + 1),
                   "--output", str(raw)]  # fmt: skip
            spies.append((role, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL), raw))  # fmt: skip
        time.sleep(0.5)
        res = asyncio.run(
            loadgen.run(url, connections=a.connections, duration=a.duration, warmup=0, rate=a.rate)
        )
        cpu = {r: cpu_seconds(pid) - cpu0[r] for r, pid in roles.items()}
        for _, spy, _ in spies:
            spy.wait(timeout=a.duration + 30)
        n = max(1, res.total_responses)
        head = (
            f"load: {res.line()}\n"
            f"load avg at end: {os.getloadavg()[0]:.2f}; CPU ms per request over the window: "
            + ", ".join(f"{r} {1000 * c / n:.3f}" for r, c in cpu.items())
        )
        print(head)
        if not a.mitmdump:
            procs.stop("proxy", signal.SIGINT, timeout=120)
            print(
                report.copies(
                    "copies",
                    report.read_store(
                        f"{tmp}/p.duckdb", warm.total_responses + res.total_responses
                    ),
                )
            )
        for role, _, raw in spies:
            if raw.exists():
                title = f"{a.label}: {role} (pid {roles[role]})\n{head}"
                (out / f"{a.label}-{role}.txt").write_text(summarize(raw, title))
                print(f"written {out / f'{a.label}-{role}.txt'}")
    finally:
        for _, spy, _ in spies:
            if spy.poll() is None:
                spy.kill()
        procs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
