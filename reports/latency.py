"""An endpoint's latency, candidate against primary, as `shadow_latency_comparison` has it.

The SQL measures and decides (docs/latency.md); this only puts its row into words
for the page: "1.32\u00d7 [1.10\u20131.58] slower", "too few samples (n=12)".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VERDICT_CLASS = {"slower": "bad", "faster": "good", "same": "", "too few": "na"}


@dataclass(frozen=True)
class LatencyComparison:
    pairs: int  # compared exchanges fit to compare (shadow_latency_pair)
    excluded: int  # compared exchanges left out: our own delay touched the candidate's time
    samples: int  # pairs the test used (at most 500)
    median_ratio: float | None  # candidate p50 / primary p50, over every pair
    p95_ratio: float | None
    shift_ratio: float | None  # Hodges-Lehmann: how many times slower the candidate is
    ci_low: float | None  # its 95 % interval (None with too few samples)
    ci_high: float | None
    verdict: str  # slower | faster | same | too few

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LatencyComparison:
        """Take the latency columns of a queries.ENDPOINTS row out of it."""
        return cls(
            pairs=int(row.pop("latency_pairs") or 0),
            excluded=int(row.pop("latency_excluded") or 0),
            samples=int(row.pop("latency_samples") or 0),
            median_ratio=row.pop("median_ratio"),
            p95_ratio=row.pop("p95_ratio"),
            shift_ratio=row.pop("shift_ratio"),
            ci_low=row.pop("ci_low"),
            ci_high=row.pop("ci_high"),
            verdict=row.pop("latency_verdict") or "too few",
        )

    @property
    def judged(self) -> bool:
        return self.verdict != "too few" and self.ci_low is not None and self.ci_high is not None

    @property
    def text(self) -> str:
        if not self.judged or self.shift_ratio is None:
            return f"too few samples (n={self.samples})"
        interval = f"[{self.ci_low:.2f}\u2013{self.ci_high:.2f}]"  # an en dash
        return f"{self.shift_ratio:.2f}\u00d7 {interval} {self.verdict}"

    @property
    def css(self) -> str:
        return VERDICT_CLASS.get(self.verdict, "na")

    @property
    def figures_css(self) -> str:
        """The ratios are shown greyed where the test has too few samples to say anything."""
        return "" if self.judged else "na"

    @property
    def sort_value(self) -> float | None:
        """What the overview sorts on: the shift where there is a verdict."""
        return self.shift_ratio if self.judged else None
