"""Recorded WebSocket conversations replayed: a real mitmdump's dump, and our own --record.

A real `mitmdump --mode reverse:... -w` records a conversation with the primary;
`shadow replay` sends its client messages, with their recorded spacing, to the
candidate (and to the primary, with --primary) and compares what comes back.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Server, run_proxy, serve, shadow_cmd
from tests.integration.test_noise_mitmdump import mitmdump
from tests.integration.test_websocket import app, converse, differences, outcomes

pytestmark = pytest.mark.integration

SLIPS = [
    ("$ws[2].progress", "type_changed", "50", '"50"'),
    ("$ws[5].progress", "type_changed", "50", '"50"'),
]


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[Server, Server]]:
    with serve(app()) as primary, serve(app(slip=True)) as candidate:
        yield primary, candidate


@pytest.fixture(scope="module")
def dump(backends: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two conversations with the primary, recorded by a real mitmdump (its own format)."""
    primary, _ = backends
    path = tmp_path_factory.mktemp("dump") / "flows.mitm"
    with mitmdump("--mode", f"reverse:{primary.url}", "-w", str(path)) as (url, _proc):
        for _ in range(2):
            asyncio.run(converse(url))
    assert path.stat().st_size > 0
    return path


def replay(traffic: Path, db: Path, *args: str) -> str:
    done = subprocess.run(
        shadow_cmd("replay", str(traffic), "--db", str(db), "--no-progress", *args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_recorded_answers_stand_for_the_primary(
    backends: tuple[Server, Server], dump: Path, tmp_path: Path
) -> None:
    _, candidate = backends
    db = tmp_path / "recorded.duckdb"
    replay(dump, db, "--candidate", candidate.url)
    assert outcomes(db) == [("GET /ws/progress", "differ", None)] * 2
    assert differences(db) == sorted(SLIPS * 2)


def test_both_backends_live(backends: tuple[Server, Server], dump: Path, tmp_path: Path) -> None:
    primary, candidate = backends
    db = tmp_path / "live.duckdb"
    replay(dump, db, "--primary", primary.url, "--candidate", candidate.url)
    assert outcomes(db) == [("GET /ws/progress", "differ", None)] * 2
    assert differences(db) == sorted(SLIPS * 2)
    # The primary against itself: the same conversations match.
    same = tmp_path / "same.duckdb"
    replay(dump, same, "--primary", primary.url, "--candidate", primary.url)
    assert outcomes(same) == [("GET /ws/progress", "match", None)] * 2


@pytest.mark.parametrize("suffix", [".mitm", ".har", ".jsonl"])
def test_what_the_proxy_records_replays(
    backends: tuple[Server, Server], tmp_path: Path, suffix: str
) -> None:
    """`shadow proxy --record` writes conversations out; replayed, they compare the same."""
    primary, candidate = backends
    recording = tmp_path / f"rec{suffix}"
    with run_proxy(
        primary.url, candidate.url, tmp_path / "p.duckdb", tmp_path, "--record", str(recording)
    ) as proxy:
        asyncio.run(converse(proxy.url))
        proxy.stop()
    db = tmp_path / "r.duckdb"
    replay(recording, db, "--candidate", candidate.url)
    assert outcomes(db) == [("GET /ws/progress", "differ", None)]
    assert differences(db) == SLIPS
