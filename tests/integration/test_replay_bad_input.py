"""Bad traffic files: one clear line naming the file (and entry), exit 5, no traceback.

With --skip-bad the bad entries are counted and passed over. Without it the
replay stops at the first bad entry, but everything before it is stored and
the run is ended, so nothing already done is lost.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shadow.sources import JsonlWriter, read_traffic
from tests.conftest import ROOT, Server
from tests.integration.helpers import replay as _replay
from tests.integration.helpers import rows as _rows

pytestmark = pytest.mark.integration

TRAFFIC = ROOT / "tests" / "data" / "traffic"
CHROMIUM = TRAFFIC / "chromium.har"  # 12 entries, all answered (see test_replay_files.py)
DUMP = TRAFFIC / "shadow_proxy.mitm"  # 40 flows recorded by shadow proxy


def _one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode == 5, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("shadow: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _har(tmp: Path, name: str, edit: Callable[[list[dict[str, Any]]], None]) -> Path:
    doc = json.loads(CHROMIUM.read_text())
    edit(doc["log"]["entries"])
    path = tmp / name
    path.write_text(json.dumps(doc, indent=1))
    return path


def _no_url(*indices: int) -> Callable[[list[dict[str, Any]]], None]:
    def edit(entries: list[dict[str, Any]]) -> None:
        for i in indices:
            del entries[i]["request"]["url"]

    return edit


def _jsonl_from_dump(path: Path) -> Path:
    with JsonlWriter(str(path)) as w:
        for rec in read_traffic(str(DUMP)):
            w.add(rec.request, rec.response, rec.started_at or 0.0, rec.elapsed_ms, rec.url)
    return path


# -- the file as a whole is bad: nothing is replayed, no run is created ---------------


def _empty(tmp: Path) -> tuple[Path, list[str]]:
    (p := tmp / "empty.har").write_bytes(b"")
    return p, ["empty file"]


def _blank(tmp: Path) -> tuple[Path, list[str]]:
    (p := tmp / "blank.jsonl").write_text("\n\n   \n")
    return p, ["empty file"]


def _binary(tmp: Path) -> tuple[Path, list[str]]:
    (p := tmp / "traffic.har").write_bytes(bytes(range(256)) * 8)
    return p, ["binary data"]


def _gzipped(tmp: Path) -> tuple[Path, list[str]]:
    import gzip

    (p := tmp / "traffic.har.gz").write_bytes(gzip.compress(CHROMIUM.read_bytes()))
    return p, ["gzip-compressed", "decompress"]


def _csv_named_har(tmp: Path) -> tuple[Path, list[str]]:
    (p := tmp / "traffic.har").write_text("method,url\nGET,http://x/a\n")
    return p, ["not a recognised traffic file"]


def _json_not_traffic(tmp: Path) -> tuple[Path, list[str]]:
    (p := tmp / "config.json").write_text('{"settings": {"a": 1}}\n')
    return p, ["JSON, but not a recognised traffic file"]


def _har_without_entries(tmp: Path) -> tuple[Path, list[str]]:
    (p := tmp / "x.har").write_text('{"log": {"version": "1.2", "creator": {}}}')
    return p, ["not a HAR file", "log.entries"]


@pytest.mark.parametrize(
    "make",
    [_empty, _blank, _binary, _gzipped, _csv_named_har, _json_not_traffic, _har_without_entries],
)
def test_whole_file_is_bad(
    make: Callable[[Path], tuple[Path, list[str]]], candidate: Server, tmp_path: Path
) -> None:
    path, needles = make(tmp_path)
    db = tmp_path / "x.duckdb"
    r = _replay(str(path), "--candidate", candidate.url, "--db", str(db))
    _one_line_error(r, str(path), *needles)
    assert not db.exists() or _rows(db, "SELECT count(*) FROM runs") == [(0,)]


@pytest.mark.parametrize(
    ("fmt", "source", "needles"),
    [
        ("har", DUMP, ["not valid HAR/JSON"]),
        ("mitm", CHROMIUM.with_suffix(".jsonl"), ["entry 0", "not a mitmproxy flow dump"]),
        ("jsonl", CHROMIUM, ["entry 0 (line 1)", "missing 'method'"]),  # HAR on one line
        ("gor", CHROMIUM, ["entry 0", "GoReplay"]),
    ],
)
def test_format_option_that_does_not_fit_the_file(
    fmt: str, source: Path, needles: list[str], candidate: Server, tmp_path: Path
) -> None:
    if source.suffix == ".jsonl":  # a JSON Lines file, read as a mitmproxy dump
        source = _jsonl_from_dump(tmp_path / "t.jsonl")
    db = tmp_path / "x.duckdb"
    r = _replay(str(source), "--format", fmt, "--candidate", candidate.url, "--db", str(db))
    _one_line_error(r, str(source), *needles)


def test_missing_file(candidate: Server, tmp_path: Path) -> None:
    r = _replay(str(tmp_path / "nope.har"), "--candidate", candidate.url)
    _one_line_error(r, "nope.har", "no such file")


# -- a bad entry: stop there, keep everything before it ----------------------------------


def _stored(db: Path, run: str = "r") -> tuple[int, Any, int]:
    ((n, ended, counted),) = _rows(
        db,
        "SELECT (SELECT count(*) FROM exchanges WHERE run_id = 'r'), ended_at, exchanges "
        f"FROM runs WHERE run_id = '{run}'",
    )
    return int(n), ended, int(counted)


def test_har_entry_without_url(candidate: Server, tmp_path: Path) -> None:
    path = _har(tmp_path, "nourl.har", _no_url(3))
    db = tmp_path / "x.duckdb"
    r = _replay(str(path), "--candidate", candidate.url, "--db", str(db), "--run-id", "r")
    line = _one_line_error(r, str(path), "entry 3", "request has no url")
    assert "3 exchanges before it are stored in run r" in line
    n, ended, counted = _stored(db)
    assert n == counted == 3 and ended is not None


@pytest.mark.parametrize("with_primary", [False, True], ids=["recorded", "primary"])
def test_entry_50_is_bad_first_49_are_stored(
    with_primary: bool, legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    def eighty_gets(entries: list[dict[str, Any]]) -> None:
        gets = [e for e in entries if e["request"]["method"] == "GET"]
        entries[:] = [json.loads(json.dumps(gets[i % len(gets)])) for i in range(80)]
        del entries[49]["request"]["url"]  # the 50th entry

    path = _har(tmp_path, "bad50.har", eighty_gets)
    db = tmp_path / "x.duckdb"
    primary = ["--primary", legacy.url] if with_primary else []
    r = _replay(str(path), "--candidate", candidate.url, *primary, "--db", str(db), "--run-id", "r")
    _one_line_error(r, str(path), "entry 49", "request has no url", "49 exchanges", "--skip-bad")
    n, ended, counted = _stored(db)
    assert n == counted == 49 and ended is not None
    # every stored exchange was compared: none cut short by the failure
    assert _rows(db, "SELECT DISTINCT verdict FROM exchanges ORDER BY 1") == [
        ("differ",),
        ("match",),
    ]


def test_truncated_har_keeps_complete_entries(candidate: Server, tmp_path: Path) -> None:
    text = json.dumps(json.loads(CHROMIUM.read_text()), indent=1)
    cut = text.index('"entries"')
    for _ in range(7):  # into the 7th entry (index 6), as a crashed exporter leaves it
        cut = text.index('"startedDateTime"', cut + 1)
    path = tmp_path / "cut.har"
    path.write_text(text[: cut + 30])
    db = tmp_path / "x.duckdb"
    r = _replay(str(path), "--candidate", candidate.url, "--db", str(db), "--run-id", "r")
    _one_line_error(r, str(path), "entry 6:", "truncated", "6 exchanges before it")
    n, ended, _ = _stored(db)
    assert n == 6 and ended is not None


def test_truncated_mitmproxy_dump(candidate: Server, tmp_path: Path) -> None:
    data = DUMP.read_bytes()
    path = tmp_path / "cut.mitm"
    path.write_bytes(data[: len(data) // 2])
    db = tmp_path / "x.duckdb"
    r = _replay(str(path), "--candidate", candidate.url, "--db", str(db), "--run-id", "r")
    line = _one_line_error(r, str(path), "truncated or corrupt flow data")
    n, ended, _ = _stored(db)
    assert f"entry {n}:" in line and 10 < n < 40 and ended is not None
    # --skip-bad: the same entries, the cut one counted as bad, exit 0
    r = _replay(str(path), "--candidate", candidate.url, "--db", str(db), "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert f"read {n + 1} entries: sent" in r.stdout and "bad entries 1" in r.stdout
    assert f"bad entry skipped: {path}: entry {n}: truncated" in r.stdout


def test_truncated_jsonl_last_line(candidate: Server, tmp_path: Path) -> None:
    path = _jsonl_from_dump(tmp_path / "t.jsonl")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # the last line loses its end
    db = tmp_path / "x.duckdb"
    r = _replay(str(path), "--candidate", candidate.url, "--db", str(db), "--run-id", "r")
    _one_line_error(r, str(path), "entry 39 (line 40)", "not valid JSON", "cut off")
    n, ended, _ = _stored(db)
    assert n == 39 and ended is not None


# -- --skip-bad --------------------------------------------------------------------------


def test_skip_bad_counts_and_passes_over_bad_entries(candidate: Server, tmp_path: Path) -> None:
    path = _har(tmp_path, "two-bad.har", _no_url(2, 5))
    db = tmp_path / "x.duckdb"
    r = _replay(
        str(path), "--candidate", candidate.url, "--db", str(db), "--run-id", "r", "--skip-bad"
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "read 12 entries: sent 9, skipped 1" in r.stdout
    assert "bad entries 2" in r.stdout
    assert f"bad entry skipped: {path}: entry 2: request has no url" in r.stdout
    assert f"bad entry skipped: {path}: entry 5: request has no url" in r.stdout
    n, ended, counted = _stored(db)
    assert n == counted == 10 and ended is not None  # 9 compared + the skipped POST
    options = json.loads(_rows(db, "SELECT options FROM runs")[0][0])
    assert options["skip_bad"] is True


def test_skip_bad_jsonl_lines(candidate: Server, tmp_path: Path) -> None:
    path = _jsonl_from_dump(tmp_path / "t.jsonl")
    lines = path.read_text().splitlines()
    lines[4] = "this is not json"
    lines[7] = json.dumps({"method": "GET"})  # no url
    path.write_text("\n".join(lines) + "\n")
    db = tmp_path / "x.duckdb"
    r = _replay(str(path), "--candidate", candidate.url, "--db", str(db), "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert "read 40 entries" in r.stdout and "bad entries 2" in r.stdout
    assert "entry 4 (line 5): not valid JSON" in r.stdout
    assert "entry 7 (line 8): missing 'url'" in r.stdout
    assert _rows(db, "SELECT count(*) FROM exchanges") == [(38,)]
