"""Shared setup for comparators tests: a modest Hypothesis profile.

A profile loaded elsewhere (a global conftest, `--hypothesis-profile`) wins;
ours is only loaded when nothing else chose one.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "comparators",
    max_examples=100,
    deadline=None,  # timing varies on shared CI machines; correctness is what we test
    suppress_health_check=[HealthCheck.too_slow],
)
if settings.get_current_profile_name() == "default":
    settings.load_profile("comparators")
