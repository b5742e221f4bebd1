"""A mitmproxy addon that times the garbage collector's pauses in the proxy process.

    mitmdump --mode reverse:http://127.0.0.1:P1 -q -s shadow/live/addon.py \\
        -s benchmarks/profiles/gc_pauses.py --set shadow_candidate=http://127.0.0.1:P2 \\
        --set shadow_db=/tmp/gc.duckdb

At the proxy's exit it prints, per generation, how many collections ran, their total
and longest pause and the median, and how many objects the collector still tracks
(objects frozen by `gc.freeze()` are not). Each pause stops every request in flight.
"""

from __future__ import annotations

import collections
import gc
import sys
import time

_started: dict[int, float] = {}
pauses: dict[int, list[float]] = collections.defaultdict(list)


def _timer(phase: str, info: dict[str, int]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.perf_counter()
    elif generation in _started:
        pauses[generation].append((time.perf_counter() - _started.pop(generation)) * 1000)


gc.callbacks.append(_timer)


class GcPauses:
    def done(self) -> None:
        for generation, ms in sorted(pauses.items()):
            ms.sort()
            print(
                f"gen{generation}: {len(ms)} collections, {sum(ms):.1f} ms in all, "
                f"longest {ms[-1]:.2f} ms, median {ms[len(ms) // 2]:.3f} ms",
                file=sys.stderr,
            )
        print(f"objects tracked: {len(gc.get_objects())}", file=sys.stderr)


addons = [GcPauses()]
