"""Noise cancellation: telling nondeterminism from migration differences.

With a secondary (a second instance of the legacy backend) every request is
answered three times. A field that differs between primary and secondary is
nondeterministic (request ids, `now()` timestamps, random order). Two kinds of
evidence mark a primary-vs-candidate difference as noise:

1. Direct: the same field (list indices folded to `[*]`) also differs between
   primary and secondary in the same exchange.
2. Statistical, per endpoint and field, over the exchanges seen so far:
   n exchanges compared with a secondary, k_s of them with the field differing
   primary-vs-secondary, k_c with it differing primary-vs-candidate. The field
   is noise when it was seen noisy (k_s >= 1), there are at least MIN_SAMPLES
   exchanges, and the candidate's rate is not meaningfully above the noise
   rate: a one-sided two-proportion z-test of p_c > p_s gives z < Z_CRITICAL
   (2.326, i.e. alpha = 0.01), and p_c - p_s < MAX_EXCESS (0.10).

Noise is stored and shown (status 'noise', with the evidence as its reason),
never dropped, and never turns a verdict into "differ".
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

MIN_SAMPLES = 10
Z_CRITICAL = 2.326
MAX_EXCESS = 0.10


@dataclass
class FieldCounts:
    noisy: int = 0  # exchanges where primary and secondary differ at the field
    candidate: int = 0  # exchanges where primary and candidate differ at the field


def excess_z(k_c: int, k_s: int, n: int) -> float:
    """z statistic of "candidate differs more often than the secondary" (pooled)."""
    if n == 0:
        return 0.0
    p_c, p_s = k_c / n, k_s / n
    pooled = (k_c + k_s) / (2 * n)
    se = math.sqrt(2 * pooled * (1 - pooled) / n)
    # se is 0 only when both rates are 0 or both are 1: no excess either way
    return (p_c - p_s) / se if se else 0.0


class NoiseModel:
    """Per endpoint and field counts, updated as exchanges with a secondary arrive."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = defaultdict(int)
        self.fields: dict[tuple[str, str], FieldCounts] = defaultdict(FieldCounts)

    def observe(self, endpoint: str, noisy: set[str], candidate: set[str]) -> None:
        """Count one exchange: the fields differing vs the secondary and vs the candidate."""
        self.seen[endpoint] += 1
        for path in noisy:
            self.fields[(endpoint, path)].noisy += 1
        for path in candidate:
            self.fields[(endpoint, path)].candidate += 1

    def verdict(self, endpoint: str, path: str) -> str | None:
        """The evidence that `path` is noise on `endpoint`, or None if it is not."""
        n = self.seen.get(endpoint, 0)
        counts = self.fields.get((endpoint, path))
        if counts is None or counts.noisy == 0 or n < MIN_SAMPLES:
            return None
        z = excess_z(counts.candidate, counts.noisy, n)
        excess = (counts.candidate - counts.noisy) / n
        if z < Z_CRITICAL and excess < MAX_EXCESS:
            return (
                f"differs primary-vs-secondary in {counts.noisy}/{n} exchanges and "
                f"primary-vs-candidate in {counts.candidate}/{n} (z={z:.2f} < {Z_CRITICAL})"
            )
        return None
