"""Micro-benchmark of comparators.compare on a ~1 KB JSON pair, against plain DeepDiff.

    python benchmarks/compare_bench.py [--seconds 0.3]

Cases: equal bodies (the fast path), equal JSON with another key order, one
differing field; and deepdiff.DeepDiff on the same pair, with and without
parsing the JSON first. Prints microseconds per call (best of 5 rounds) and
ratios. Skips with a message when `comparators` is not importable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.app import BODY  # noqa: E402


def per_call_us(fn: Callable[[], Any], seconds: float) -> float:
    """Best of 5 rounds of ~seconds/5 each, in microseconds per call."""
    n, t = 1, 0.0
    while True:  # find a loop count that takes ~ seconds/5
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= seconds / 5 or n >= 1_000_000:
            break
        n *= 2 if t < seconds / 50 else max(2, int(seconds / 5 / max(t, 1e-9)))
    best = t / n
    for _ in range(4):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def run(seconds: float = 0.3) -> dict[str, Any]:
    try:
        from comparators import Payload, compare, parse_rules
    except ImportError as exc:
        print(f"compare bench: skipped (comparators not importable: {exc})")
        return {"skipped": str(exc)}
    from deepdiff import DeepDiff

    doc = json.loads(BODY)
    other = json.loads(BODY)
    other["metrics"]["throughput"] += 1
    body_b = json.dumps(other, separators=(",", ":")).encode()
    reordered = json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")).encode()
    headers = (("content-type", "application/json"), ("content-length", str(len(BODY))))
    rules = parse_rules({})
    a = Payload(200, headers, BODY)
    a2 = Payload(200, headers, bytes(bytearray(BODY)))  # equal content, another object
    a_reordered = Payload(200, headers, reordered)
    b = Payload(200, headers, body_b)
    checks = {
        "equal": compare(a, a2, rules),
        "reordered": compare(a, a_reordered, rules),
        "differ": compare(a, b, rules),
    }
    verdicts = {k: (c.verdict.value, len(c.differences)) for k, c in checks.items()}
    assert verdicts["equal"][0] == "match" and verdicts["reordered"][0] == "match", verdicts
    assert verdicts["differ"] == ("differ", 1), verdicts
    doc_b, doc_equal = json.loads(body_b), json.loads(BODY)
    cases: dict[str, Callable[[], Any]] = {
        "compare: equal bytes (fast path)": lambda: compare(a, a2, rules),
        "compare: equal JSON, other key order": lambda: compare(a, a_reordered, rules),
        "compare: one field differs": lambda: compare(a, b, rules),
        "DeepDiff(parsed): equal": lambda: DeepDiff(doc, doc_equal),
        "DeepDiff(parsed): one field differs": lambda: DeepDiff(doc, doc_b),
        "json.loads x2 + DeepDiff: equal": lambda: DeepDiff(json.loads(BODY), json.loads(BODY)),
        "json.loads x2 + DeepDiff: differs": lambda: DeepDiff(json.loads(BODY), json.loads(body_b)),
    }
    us = {name: per_call_us(fn, seconds) for name, fn in cases.items()}
    ref_eq = us["json.loads x2 + DeepDiff: equal"]
    ref_diff = us["json.loads x2 + DeepDiff: differs"]
    ratios = {
        "equal: DeepDiff / compare": ref_eq / us["compare: equal bytes (fast path)"],
        "reordered: DeepDiff / compare": ref_eq / us["compare: equal JSON, other key order"],
        "differs: DeepDiff / compare": ref_diff / us["compare: one field differs"],
        "compare differs / compare equal": us["compare: one field differs"]
        / us["compare: equal bytes (fast path)"],
    }
    print(f"compare bench ({len(BODY)} B JSON body; µs per call, best of 5):")
    for name, v in us.items():
        print(f"  {name:<40} {v:>10.1f} µs")
    for name, v in ratios.items():
        print(f"  {name:<40} {v:>10.1f} x")
    return {"body_bytes": len(BODY), "us_per_call": us, "ratios": ratios, "verdicts": verdicts}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=0.5, help="time per case (approx.)")
    run(p.parse_args().seconds)


if __name__ == "__main__":
    main()
