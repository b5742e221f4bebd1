"""Traffic of whole endpoints for the gate tests, stored by the real evaluator and writer.

`Traffic` says how many exchanges of an endpoint end in each way; `calls()` turns
that into what the backends answered (`tests.store_builder.Call`), and
`build_store` runs them through `shadow.pipeline.evaluate` and `StoreWriter`. No
verdict or status is typed in here: a match is two equal answers, a difference is
two unequal ones, and a "noisy match" is a candidate that differs only where the
secondary differs too (noise) and in a path the config accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.store_builder import ERROR, Call, write_store

BODY: dict[str, Any] = {"metrics": {"avgOrderValue": 204.63}, "engine": "legacy", "ok": True}
# What the config used by `build_store` accepts: the candidate names itself.
ACCEPTED = {
    "endpoint": "GET /api/*",
    "path": "$.engine",
    "kind": "value_changed",
    "reason": "the rewrite names itself",
}
CONFIG: dict[str, Any] = {"accepted": [ACCEPTED]}


def body(aov: float = 204.63, engine: str = "legacy") -> dict[str, Any]:
    out = copy.deepcopy(BODY)
    out["metrics"]["avgOrderValue"] = aov
    out["engine"] = engine
    return out


@dataclass
class Traffic:
    """Exchanges of one endpoint: how many end in each way, and their latencies."""

    endpoint: str
    match: int = 0
    differ: int = 0  # $.metrics.avgOrderValue differs, no secondary: a real difference
    candidate_errors: int = 0  # the candidate timed out (5000 ms)
    primary_errors: int = 0
    skipped: int = 0
    # The candidate differs in $.metrics.avgOrderValue, as the secondary does (noise),
    # and in $.engine (accepted by CONFIG): a match once judged.
    noisy_matches: int = 0
    primary_ms: float = 10.0
    candidate_ms: float = 10.0  # the k-th exchange takes candidate_ms + 2k, the primary +k
    run_id: str = "r1"

    def __len__(self) -> int:
        return (
            self.match
            + self.noisy_matches
            + self.differ
            + self.candidate_errors
            + self.primary_errors
            + self.skipped
        )

    def calls(self) -> list[Call]:
        kinds = (
            ["match"] * self.match
            + ["noisy"] * self.noisy_matches
            + ["differ"] * self.differ
            + ["candidate_error"] * self.candidate_errors
            + ["primary_error"] * self.primary_errors
            + ["skipped"] * self.skipped
        )
        out = []
        for k, kind in enumerate(kinds):
            call = Call(
                self.endpoint,
                body(),
                body(),
                run_id=self.run_id,
                primary_ms=self.primary_ms + k,
                candidate_ms=self.candidate_ms + 2 * k,
            )
            if kind == "noisy":
                call.candidate = body(204.62, "rewrite")
                call.secondary = body(204.64)
            elif kind == "differ":
                call.candidate = body(204.62)
            elif kind == "candidate_error":
                call.candidate, call.candidate_ms = ERROR, 5000.0
            elif kind == "primary_error":
                call.primary, call.primary_ms = ERROR, 1.0
            elif kind == "skipped":
                call.candidate, call.skip_reason = None, "POST is not copied"
            out.append(call)
        return out


def build_store(
    path: Path, traffic: list[Traffic], config: Mapping[str, Any] | None = CONFIG
) -> str:
    """A store written by the real evaluator and StoreWriter; runs start with `config`."""
    calls = [c for t in traffic for c in t.calls()]
    return write_store(path, calls, config=config)


__all__ = ["ACCEPTED", "CONFIG", "Traffic", "body", "build_store"]
