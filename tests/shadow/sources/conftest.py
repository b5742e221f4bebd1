"""Fixtures for the traffic-file readers: paths of the checked-in sample files."""

from __future__ import annotations

from pathlib import Path

import pytest

TRAFFIC = Path(__file__).resolve().parents[2] / "data" / "traffic"


@pytest.fixture
def traffic_dir() -> Path:
    return TRAFFIC
