"""`shadow sink` on its own: what it sends where, what it sheds, and its bad input."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from shadow.sink.server import original_host
from tests.conftest import ROOT, serve, shadow_cmd, wait_until
from tests.integration.sink_helpers import json_app, run_sink

pytestmark = pytest.mark.integration


def _counting(app: Any, seen: list[str]) -> Any:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode()
            seen.append(f"{scope['method']} {scope['path']} {host}")
        await app(scope, receive, send)

    return wrapped


def test_sink_shadows_safe_requests_skips_unsafe_and_sheds_big_bodies(tmp_path: Path) -> None:
    primary_seen: list[str] = []
    db = tmp_path / "sink.duckdb"
    with (
        serve(_counting(json_app(), primary_seen)) as primary,
        serve(json_app(differ_on="/x")) as candidate,
        run_sink(primary.url, candidate.url, db, "--max-body", "1KiB", "--run-id", "s1") as sink,
    ):
        url = f"http://127.0.0.1:{sink.port}"
        with httpx.Client(base_url=url, timeout=10) as client:
            t0 = time.monotonic()
            assert client.get("/a/1", headers={"Host": "shop.example-shadow"}).status_code == 204
            assert client.get("/x/2").status_code == 204
            assert client.post("/a/3", content=b"{}").status_code == 204
            assert client.post("/a/4", content=b"x" * 5000).status_code == 204
            answered = time.monotonic() - t0
        wait_until("both GETs reach the primary", lambda: len(primary_seen) >= 2, 10)
        assert sink.stop() == 0, sink.output
    assert answered < 2
    # Unsafe methods are sent nowhere, not even to the primary; Envoy's -shadow suffix goes.
    assert sorted(s.split(" ")[:2] for s in primary_seen) == [["GET", "/a/1"], ["GET", "/x/2"]]
    assert any(s.endswith(" shop.example") for s in primary_seen) is False  # Host: the backend's
    with duckdb.connect(str(db), read_only=True) as con:
        rows = dict(con.execute("SELECT path, verdict FROM exchanges").fetchall())
        run = con.execute("SELECT requests, exchanges, requests_shed, source FROM runs").fetchone()
    assert rows == {"/a/1": "match", "/x/2": "differ", "/a/3": "skipped"}
    assert run == (4, 3, 1, "sink"), "the big body is shed and counted: 4 = 3 rows + 1 shed"
    assert "bodies over --max-body" in sink.output


def test_original_host_drops_the_mirror_suffix() -> None:
    assert original_host("shop.example-shadow") == "shop.example"
    assert original_host("shop.example-shadow:8443") == "shop.example:8443"
    assert original_host("shop.example:80") == "shop.example:80"
    assert original_host("[::1]:80") == "[::1]:80"


def _shadow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shadow_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=60)


def _one_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in result.stderr, lines


def test_sink_without_a_primary_is_one_line(tmp_path: Path) -> None:
    result = _shadow("sink", "--candidate", "http://127.0.0.1:9", "--db", str(tmp_path / "s.db"))
    _one_line(result, 2, "shadow sink needs --primary")
    assert not (tmp_path / "s.db").exists()


def test_readers_name_a_glob_matching_nothing_in_one_line(tmp_path: Path) -> None:
    pattern = str(tmp_path / "nothing-*.duckdb")
    for args in (
        ("check", "--db", pattern),
        ("report", "--db", pattern, "-o", str(tmp_path / "r.html")),
        ("export", "--db", pattern, "-o", str(tmp_path / "out")),
        ("rules", "suggest", "--db", pattern),
    ):
        _one_line(_shadow(*args), 3, "matches no file")


def test_readers_refuse_stores_of_different_schema_versions(tmp_path: Path) -> None:
    from shadow.store.schema import migrate

    for name, version in (("a", None), ("b", "7")):
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as con:
            migrate(con)
            if version:
                con.execute(
                    "UPDATE shadow_meta SET value = ? WHERE key = 'schema_version'", [version]
                )
    _one_line(_shadow("check", "--db", str(tmp_path)), 3, "different schema versions")
