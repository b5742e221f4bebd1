"""shadow.noise: the statistical test that tells nondeterminism from real differences."""

from __future__ import annotations

import pytest

from shadow.noise import MIN_SAMPLES, NoiseModel, excess_z


@pytest.mark.parametrize(
    ("k_c", "k_s", "n", "expect"),
    [
        (10, 10, 10, 0.0),  # differs always on both sides: no excess
        (0, 5, 10, -2.582),  # candidate differs less often than the secondary
        (10, 0, 10, 4.472),  # never noisy, always different for the candidate
        (0, 0, 10, 0.0),
        (0, 0, 0, 0.0),
    ],
)
def test_excess_z(k_c: int, k_s: int, n: int, expect: float) -> None:
    assert excess_z(k_c, k_s, n) == pytest.approx(expect, abs=1e-3)


def _feed(model: NoiseModel, n: int, noisy_every: int, candidate_every: int) -> None:
    for i in range(n):
        model.observe(
            "GET /a",
            {"$.id"} if i % noisy_every == 0 else set(),
            {"$.id"} if i % candidate_every == 0 else set(),
        )


def test_field_always_noisy_is_noise() -> None:
    model = NoiseModel()
    _feed(model, 40, 1, 1)
    evidence = model.verdict("GET /a", "$.id")
    assert evidence is not None and "40/40" in evidence


def test_field_that_differs_far_more_for_the_candidate_is_not_noise() -> None:
    model = NoiseModel()
    _feed(model, 100, 10, 1)  # noisy in 10%, candidate differs in 100%
    assert model.verdict("GET /a", "$.id") is None


def test_never_noisy_field_is_not_noise() -> None:
    model = NoiseModel()
    for _ in range(50):
        model.observe("GET /a", set(), {"$.name"})
    assert model.verdict("GET /a", "$.name") is None


def test_no_decision_before_enough_samples() -> None:
    model = NoiseModel()
    _feed(model, MIN_SAMPLES - 1, 1, 1)
    assert model.verdict("GET /a", "$.id") is None
    _feed(model, 1, 1, 1)
    assert model.verdict("GET /a", "$.id") is not None


def test_endpoints_are_separate() -> None:
    model = NoiseModel()
    _feed(model, 30, 1, 1)
    assert model.verdict("GET /b", "$.id") is None
