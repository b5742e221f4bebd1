"""Peak memory of `shadow replay` on a large HAR file, and of reading the file alone.

    python benchmarks/replay_memory.py                  # 100,000 entries: ~4 min
    python benchmarks/replay_memory.py --entries 20000 --old-replay
    python benchmarks/replay_memory.py --reader-only    # no backend, no replay

Writes a HAR of N recorded GETs (browser-like entries of ~1.5 KB; the recorded
answer is benchmarks/app.py's) into a temporary directory, starts benchmarks/app.py
on a free 127.0.0.1 port as the candidate and runs the `shadow replay` CLI on
the file without --primary (the recorded answer stands for the primary's), at
`--concurrency` 16, as a subprocess. It prints

- **peak RSS**: of the replay process, exact (`wait4`: the largest of it and
  the processes it waited for, i.e. its compare process), and a sampled peak
  of the sum over the replay process and its children (every 0.1 s);
- **rate**: requests sent per second, from the replay's own summary;

then reads the file alone in a fresh interpreter (`read_traffic`, nothing
else) with the current reader and with the old one that parsed the file whole
(its har.py taken from git history with `git show`, loaded as a module), each
with its seconds and peak RSS. `--old-replay` also replays with the old reader
patched in, for a before/after of the whole replay.

Bounded: N is at most 1,000,000 (a ~1.5 GB file), every subprocess has a
timeout, the server only listens on 127.0.0.1 and is killed on exit, and the
temporary directory is removed unless `--keep-tmp`. Results also go to
benchmarks/results/replay_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.app import BODY  # noqa: E402
from benchmarks.procs import Procs, descendants, free_port  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "replay_memory.json"
MAX_ENTRIES = 1_000_000
_SENT = re.compile(r"\(([\d.]+) sent/s\)")
_HAR = "shadow/sources/har.py"

# Runs in a fresh interpreter: read the file with the current reader, or with the
# old har.py given as argv[2], and print seconds and peak RSS as JSON.
_READ_ALONE = """
import importlib.util, json, resource, sys, time
sys.path.insert(0, {root!r})
from shadow.sources import read_traffic
from shadow.sources._base import Recorded
path, old = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
if old:
    spec = importlib.util.spec_from_file_location("old_har", old)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    items = module.read(path)
else:
    items = read_traffic(path, fmt="har")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
count = sum(1 for item in items if isinstance(item, Recorded))
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"entries": count, "seconds": seconds, "peak_kb": peak, "start_kb": before}}))
"""

# Runs the CLI with the old HAR reader patched in (argv[1]: the old har.py).
_OLD_REPLAY = """
import importlib.util, sys
sys.path.insert(0, {root!r})
spec = importlib.util.spec_from_file_location("old_har", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from shadow.sources import read
read.READERS["har"] = module.read
from shadow.cli.main import main
sys.argv = ["shadow", *sys.argv[2:]]
main()
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Peak memory of shadow replay on a large HAR.")
    p.add_argument("--entries", type=int, default=100_000, help="entries in the HAR file")
    p.add_argument("--concurrency", type=int, default=16, help="replay --concurrency")
    p.add_argument("--reader-only", action="store_true", help="measure the readers only")
    p.add_argument("--old-replay", action="store_true", help="also replay with the old reader")
    p.add_argument("--no-old", action="store_true", help="skip the old reader altogether")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per subprocess")
    p.add_argument("--keep-tmp", action="store_true", help="keep the HAR file and stores")
    p.add_argument("--json", default=str(RESULTS), help="where to write the results")
    a = p.parse_args(argv)
    if not 1 <= a.entries <= MAX_ENTRIES:
        p.error(f"--entries must be between 1 and {MAX_ENTRIES}")
    if a.concurrency < 1:
        p.error("--concurrency must be at least 1")
    return a


# -- the traffic file ----------------------------------------------------------------------


def write_har(path: Path, entries: int) -> None:
    """A HAR of `entries` GETs shaped like a browser's export, one entry at a time."""
    text = BODY.decode()
    response_headers = [
        {"name": "content-type", "value": "application/json"},
        {"name": "content-length", "value": str(len(BODY))},
        {"name": "date", "value": "Thu, 26 Nov 2026 18:11:08 GMT"},
        {"name": "server", "value": "uvicorn"},
    ]
    request_headers = [
        {"name": "Accept", "value": "application/json"},
        {"name": "Accept-Language", "value": "en-US,en;q=0.9"},
        {"name": "Connection", "value": "keep-alive"},
        {"name": "Host", "value": "recorded.example"},
        {
            "name": "User-Agent",
            "value": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
        },
    ]
    start = time.time() - entries / 100
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"log": {"version": "1.2", "creator": {"name": "replay_memory"}, "entries": [\n')
        for i in range(entries):
            entry = {
                "startedDateTime": time.strftime(
                    "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start + i / 100)
                ),
                "time": 1.5,
                "request": {
                    "method": "GET",
                    "url": f"http://recorded.example/api/items/{i}?page={i % 7}",
                    "httpVersion": "HTTP/1.1",
                    "headers": request_headers,
                    "queryString": [],
                    "headersSize": -1,
                    "bodySize": 0,
                },
                "response": {
                    "status": 200,
                    "statusText": "OK",
                    "httpVersion": "HTTP/1.1",
                    "headers": response_headers,
                    "content": {"size": len(BODY), "mimeType": "application/json", "text": text},
                    "headersSize": -1,
                    "bodySize": len(BODY),
                },
                "timings": {"send": 0, "wait": 1.2, "receive": 0.3},
            }
            fh.write((",\n" if i else "") + json.dumps(entry))
        fh.write("\n]}}\n")


# -- measuring -----------------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_measured(argv: list[str], timeout: float, log: Path) -> dict[str, Any]:
    """Run `argv`; its exit code, wall seconds, output and peak RSS (exact and sampled tree)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: killed whole on timeout
        )  # fmt: skip
        t0 = time.perf_counter()
        tree_peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                os.killpg(proc.pid, 9)
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise SystemExit(f"bench: {argv[:4]} did not finish in {timeout:.0f}s; see {log}")
            tree = [proc.pid, *descendants(proc.pid)]
            tree_peak = max(tree_peak, sum(_rss_kb(p) for p in tree))
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "code": proc.returncode,
        "seconds": time.perf_counter() - t0,
        "peak_mb": usage.ru_maxrss / 1024,  # Linux: KiB
        "tree_peak_mb": tree_peak / 1024,
        "output": log.read_text(errors="replace"),
    }


def replay(har: Path, tmp: Path, candidate: str, a: argparse.Namespace, old: Path | None) -> Any:
    """One `shadow replay` of the file; with `old`, the old HAR reader patched in."""
    name = "old" if old else "new"
    args = [
        "replay", str(har), "--candidate", candidate, "--db", str(tmp / f"{name}.duckdb"),
        "--concurrency", str(a.concurrency), "--no-progress", "--run-id", "bench",
    ]  # fmt: skip
    if old:
        argv = [sys.executable, "-c", _OLD_REPLAY.format(root=str(ROOT)), str(old), *args]
    else:
        argv = [sys.executable, "-m", "shadow.cli.main", *args]
    r = run_measured(argv, a.timeout, tmp / f"replay-{name}.log")
    if r["code"] != 0 or not (m := _SENT.search(r["output"])):
        raise SystemExit(f"bench: shadow replay ({name}) failed ({r['code']}):\n{r['output']}")
    r["sent_per_s"] = float(m.group(1))
    del r["output"]
    return r


def read_alone(har: Path, tmp: Path, a: argparse.Namespace, old: Path | None) -> Any:
    """Read the file with read_traffic (or the old reader) in a fresh interpreter."""
    argv = [sys.executable, "-c", _READ_ALONE.format(root=str(ROOT)), str(har)]
    argv += [str(old)] if old else []
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=a.timeout)
    if r.returncode != 0:
        print(f"bench: reading with the {'old' if old else 'new'} reader failed:\n{r.stderr}")
        return None
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return {
        "entries": out["entries"],
        "seconds": round(out["seconds"], 2),
        "peak_mb": round(out["peak_kb"] / 1024, 1),
        "after_imports_mb": round(out["start_kb"] / 1024, 1),
    }


def old_reader(tmp: Path) -> Path | None:
    """har.py of the newest commit that still read HAR files whole, written to `tmp`."""
    try:
        log = subprocess.run(
            ["git", "log", "--format=%H", "-n", "50", "--", _HAR],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()  # fmt: skip
        for commit in log:
            text = subprocess.run(
                ["git", "show", f"{commit}:{_HAR}"],
                cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
            if "def _read_damaged" in text and "json.loads(text)" in text:
                path = tmp / "old_har.py"
                path.write_text(f"# har.py of {commit}\n{text}")
                return path
    except (OSError, subprocess.SubprocessError):
        pass
    print("bench: no old whole-file reader found in git history; measuring the new one only")
    return None


# -- the run -------------------------------------------------------------------------------


def run(a: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="replay-memory-"))
    procs = Procs(str(tmp))
    results: dict[str, Any] = {"entries": a.entries, "concurrency": a.concurrency}
    try:
        har = tmp / "traffic.har"
        t0 = time.perf_counter()
        write_har(har, a.entries)
        size = har.stat().st_size
        results["file_mb"] = round(size / 1e6, 1)
        print(f"wrote {har.name}: {a.entries} entries, {size / 1e6:.0f} MB "
              f"in {time.perf_counter() - t0:.0f}s", flush=True)  # fmt: skip
        old = None if a.no_old else old_reader(tmp)

        for name, path in (("new", None), ("old", old)):
            if name == "old" and path is None:
                continue
            r = read_alone(har, tmp, a, path)
            results[f"reader_{name}"] = r
            if r:
                print(f"reader alone ({name}): {r['entries']} entries in {r['seconds']:.1f}s, "
                      f"peak RSS {r['peak_mb']:.0f} MB "
                      f"({r['after_imports_mb']:.0f} MB after imports)", flush=True)  # fmt: skip

        if not a.reader_only:
            port = free_port()
            procs.start("candidate", [
                sys.executable, "-m", "uvicorn", "benchmarks.app:app", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning", "--no-access-log",
                "--lifespan", "off",
            ], cwd=str(ROOT))  # fmt: skip
            procs.wait_port("candidate", port)
            candidate = f"http://127.0.0.1:{port}"
            runs = [("new", None)] + ([("old", old)] if a.old_replay and old else [])
            for name, path in runs:
                r = replay(har, tmp, candidate, a, path)
                results[f"replay_{name}"] = {k: round(v, 1) for k, v in r.items()}
                print(f"shadow replay ({name} reader): {r['sent_per_s']:.0f} sent/s, "
                      f"{r['seconds']:.0f}s wall, peak RSS {r['peak_mb']:.0f} MB "
                      f"(replay + children, sampled: {r['tree_peak_mb']:.0f} MB)",
                      flush=True)  # fmt: skip
    finally:
        procs.close()
        if a.keep_tmp:
            print(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    print(f"replay memory: {a.entries} HAR entries, concurrency {a.concurrency}, "
          f"{cpus} CPUs, load {load:.1f}")  # fmt: skip
    if load > cpus / 2:
        print("bench: warning: the machine is busy; rates will be noisy (memory is not)")
    results = run(a)
    results.update(load_at_start=load, cpus=cpus, python=sys.version.split()[0])
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
