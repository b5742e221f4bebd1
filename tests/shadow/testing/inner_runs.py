"""What the plugin's pytester tests share: each inner item's deciding report."""

from __future__ import annotations

import pytest


def deciding_reports(result: pytest.RunResult, last: bool = False) -> dict[str, pytest.TestReport]:
    """Each item's deciding report, by its name after the first `::` (`last`: after the
    last one): its first failure or skip, else its call."""
    found: dict[str, pytest.TestReport] = {}
    for rep in result.reprec.getreports("pytest_runtest_logreport"):  # type: ignore[attr-defined]
        name = rep.nodeid.rpartition("::")[2] if last else rep.nodeid.partition("::")[2]
        if (rep.when == "call" or not rep.passed) and (name not in found or found[name].passed):
            found[name] = rep
    return found
