"""A real PostgreSQL server on 127.0.0.1 for tests (examples/data/postgres.py's TempPostgres).

    def test_something(postgres_url: str) -> None:   # tests/conftest.py's fixtures
        ...                                          # a fresh, empty database of its own

`postgres_server` (one server for the whole session) and `postgres_url` (a new database
`t_<hex>` per test, dropped after it) live in tests/conftest.py. Without PostgreSQL's
initdb / pg_ctl the tests that need them skip with the reason, except in CI (CI=true),
where they fail: there they must run (scripts/ensure-services installs postgresql).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from examples.data.postgres import TempPostgres, find_binaries

__all__ = ["TempPostgres", "postgres_binaries"]


def postgres_binaries() -> Path:
    """The directory of initdb and pg_ctl; skips the test (fails it in CI) when there is none."""
    found = find_binaries()
    if found is not None:
        return found
    reason = (
        "PostgreSQL is not installed: no initdb/pg_ctl (apt-get install postgresql;"
        " see scripts/ensure-services)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)
