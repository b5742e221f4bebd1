"""What the pytest plugin costs: a parity check against two plain requests, side by side.

    python benchmarks/pytest_bench.py [--requests 400] [--cycles 5] [--examples 200]

In one process, against the bundled example apps in process (no servers):
- plain: the same request sent to the legacy and the candidate app through httpx's
  ASGI transport (what a hand-written `old == new` test does, without comparing);
- shadow_pair: `ShadowPair.get(...)`: both requests, the comparison under the
  demo's rules, the evaluated rows (what every `assert ...matches()` costs);
the two alternating in cycles so that both see the same machine. Then the time of a
`--shadow-openapi` differential run over the candidate's document (a real pytest
subprocess) and what it found. Results go to benchmarks/results/pytest_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
PATHS = ["/api/health", "/api/insights/2", "/api/analysis/9", "/api/reports", "/api/insights"]


def plain_rate(n: int) -> float:
    """Requests pairs per second sent with httpx's ASGI transport, nothing compared."""
    import httpx

    from examples.candidate.app import http_app as new
    from examples.legacy.app import http_app as old

    async def run() -> float:
        a = httpx.AsyncClient(transport=httpx.ASGITransport(app=old), base_url="http://t")
        b = httpx.AsyncClient(transport=httpx.ASGITransport(app=new), base_url="http://t")
        t0 = time.perf_counter()
        for i in range(n):
            path = PATHS[i % len(PATHS)]
            (await a.get(path)).read()
            (await b.get(path)).read()
        seconds = time.perf_counter() - t0
        await a.aclose()
        await b.aclose()
        return n / seconds

    return asyncio.run(run())


def pair_rate(pair: Any, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        pair.get(PATHS[i % len(PATHS)])
    return n / (time.perf_counter() - t0)


def openapi_run(examples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pytest.ini").write_text("[pytest]\n")
        cmd = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--shadow-primary", "examples.legacy.app:http_app",
            "--shadow-candidate", "examples.candidate.app:http_app",
            "--shadow-secondary", "primary", "--shadow-openapi", "/openapi.json",
            "--shadow-config", str(ROOT / "examples" / "shadow.toml"),
            "--shadow-examples", str(examples),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - t0
    found = sorted(
        {ln.split(": in ")[0] for ln in done.stdout.splitlines() if ": in " in ln and "(" in ln}
    )
    return {"seconds": round(seconds, 1), "exit_code": done.returncode, "differences": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()

    from shadow.config.loader import load_config
    from shadow.testing.backends import Backend
    from shadow.testing.pair import ShadowPair

    config = load_config(str(ROOT / "examples" / "shadow.toml"))
    primary = Backend("examples.legacy.app:http_app", "primary")
    candidate = Backend("examples.candidate.app:http_app", "candidate")
    pair = ShadowPair(primary, candidate, config)
    pair_rate(pair, 50)  # warm up both (imports, first requests)
    plain_rate(50)
    plain, shadow = [], []
    for _ in range(args.cycles):
        plain.append(plain_rate(args.requests))
        shadow.append(pair_rate(pair, args.requests))
    primary.close()
    candidate.close()
    ratios = [s / p for s, p in zip(shadow, plain, strict=True)]
    result = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "requests_per_cycle": args.requests,
        "plain_pairs_per_s": round(statistics.median(plain), 1),
        "shadow_pair_per_s": round(statistics.median(shadow), 1),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
        "ms_per_check_added": round(
            1000 / statistics.median(shadow) - 1000 / statistics.median(plain), 3
        ),
        "openapi": openapi_run(args.examples),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pytest_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"plain ASGI request pairs: {result['plain_pairs_per_s']}/s")
    print(
        f"shadow_pair checks:       {result['shadow_pair_per_s']}/s "
        f"({result['ratio_median']}x plain, cycles {result['ratio_min_max']}; "
        f"+{result['ms_per_check_added']} ms per check)"
    )
    o = result["openapi"]
    print(
        f"--shadow-openapi over the candidate's document ({args.examples} examples per "
        f"operation): {o['seconds']} s, exit {o['exit_code']}, "
        f"{len(o['differences'])} distinct differences:"
    )
    for d in o["differences"]:
        print(f"  {d}")


if __name__ == "__main__":
    main()
